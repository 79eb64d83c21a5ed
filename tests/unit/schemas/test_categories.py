"""The shipped category table holds CONTRACT.md's codes, domains and sensor thresholds."""

from __future__ import annotations

import math

import pytest

from schemas.categories import CATEGORIES, SensorRule, categories_of, load_categories
from schemas.enums import Domain, Severity

CONTRACT_CODES = {
    "1001": Domain.FIRE,
    "1002": Domain.FIRE,
    "1003": Domain.FIRE,
    "1004": Domain.FIRE,
    "2001": Domain.ENVIRONMENT,
    "2002": Domain.ENVIRONMENT,
    "2003": Domain.ENVIRONMENT,
    "2004": Domain.ENVIRONMENT,
    "3001": Domain.SANITATION,
    "3002": Domain.SANITATION,
    "3003": Domain.SANITATION,
    "3004": Domain.SANITATION,
    "4001": Domain.CITYMGMT,
    "4002": Domain.CITYMGMT,
    "4003": Domain.CITYMGMT,
    "4004": Domain.CITYMGMT,
    "4005": Domain.CITYMGMT,
}

# code: (metric, op, threshold, one reading suffices)
CONTRACT_SENSORS = {
    "1001": ("smoke", ">=", 1.0, True),
    "2001": ("pm25", ">", 150.0, False),
    "2002": ("pm10", ">", 250.0, False),
    "2003": ("noise_db", ">", 70.0, False),
    "3002": ("bin_fill", ">=", 0.9, False),
}


@pytest.mark.parametrize(("code", "domain"), CONTRACT_CODES.items())
def test_contract_code_is_in_the_table_with_its_domain(code: str, domain: Domain) -> None:
    category = CATEGORIES[code]
    assert category.code == code
    assert category.domain is domain
    assert category.name_en
    assert category.name_zh
    assert isinstance(category.default_severity, Severity)
    assert category.time_limit_minutes > 0


def test_every_code_is_four_digits_whose_major_class_names_the_domain() -> None:
    major = {
        Domain.FIRE: "1",
        Domain.ENVIRONMENT: "2",
        Domain.SANITATION: "3",
        Domain.CITYMGMT: "4",
    }
    for code, category in CATEGORIES.items():
        assert len(code) == 4
        assert code.isascii()
        assert code.isdigit()
        assert code.startswith(major[category.domain]), code


@pytest.mark.parametrize(("code", "rule"), CONTRACT_SENSORS.items())
def test_sensor_threshold_is_the_contracts(code: str, rule: tuple[str, str, float, bool]) -> None:
    sensor = CATEGORIES[code].sensor
    assert sensor is not None
    assert (sensor.metric, sensor.op, sensor.threshold, sensor.one_reading) == rule
    assert sensor.unit


def test_only_the_contracts_sensor_categories_have_a_sensor_rule() -> None:
    with_sensor = {code for code in CONTRACT_CODES if CATEGORIES[code].sensor is not None}
    assert with_sensor == set(CONTRACT_SENSORS)


@pytest.mark.parametrize(
    ("code", "value", "exceeded"),
    [
        ("1001", 1.0, True),
        ("1001", 0.999, False),
        ("1001", 0.0, False),
        ("2001", 150.0, False),
        ("2001", 150.0001, True),
        ("2002", 250.0, False),
        ("2002", 250.5, True),
        ("2003", 70.0, False),
        ("2003", 70.1, True),
        ("3002", 0.9, True),
        ("3002", 0.8999, False),
        ("3002", 1.0, True),
    ],
)
def test_exceeded_by_at_the_threshold(code: str, value: float, exceeded: bool) -> None:
    sensor = CATEGORIES[code].sensor
    assert sensor is not None
    assert sensor.exceeded_by(value) is exceeded


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_non_finite_reading_exceeds_nothing(value: float) -> None:
    rule = SensorRule(metric="pm25", op=">", threshold=150.0, unit="ug/m3", one_reading=False)
    assert not rule.exceeded_by(value)


@pytest.mark.parametrize("domain", list(Domain), ids=str)
def test_categories_of_lists_a_domains_categories_in_code_order(domain: Domain) -> None:
    codes = [c.code for c in categories_of(domain)]
    assert codes == sorted(codes)
    # The table may grow beyond the contract's codes, never lose one.
    assert set(codes) >= {code for code, d in CONTRACT_CODES.items() if d is domain}
    assert all(CATEGORIES[code].domain is domain for code in codes)


def test_the_table_is_read_once_and_read_only() -> None:
    assert load_categories() is CATEGORIES
    with pytest.raises(TypeError):
        CATEGORIES["9999"] = CATEGORIES["1001"]  # type: ignore[index]
