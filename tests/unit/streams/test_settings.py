"""Settings come from CITYGRID_* only, fail clearly on bad values, and match the README table."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.exceptions import SettingsError
from streams.settings import Settings, parse_duration

README = Path(__file__).resolve().parents[3] / "README.md"


def test_defaults_suit_a_worker_on_a_laptop() -> None:
    settings = Settings.from_env({})
    assert settings.store == "rocksdb://"
    assert settings.bootstrap_servers == "127.0.0.1:9092"
    assert settings.merge_window == 1800
    assert settings.rebound_horizon == 7 * 86400


def test_environment_is_read_and_typed() -> None:
    settings = Settings.from_env(
        {
            "CITYGRID_BROKER_URL": "kafka://a:1,kafka://b:2",
            "CITYGRID_PARTITIONS": "12",
            "CITYGRID_MERGE_WINDOW": "15m",
            "CITYGRID_REBOUND_HORIZON": "3d",
            "CITYGRID_DATA_DIR": "/srv/citygrid",
            "CITYGRID_STORE": "memory://",
        }
    )
    assert settings.bootstrap_servers == "a:1,b:2"
    assert settings.partitions == 12
    assert settings.merge_window == 900
    assert settings.rebound_horizon == 3 * 86400
    assert settings.data_dir == Path("/srv/citygrid")
    assert settings.store == "memory://"


def test_faust_variables_are_not_settings() -> None:
    assert Settings.from_env({"BROKER_URL": "kafka://elsewhere:1"}).broker_url.endswith(":9092")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CITYGRID_PARTITIONS", "many", "CITYGRID_PARTITIONS"),
        ("CITYGRID_PARTITIONS", "0", "at least 1"),
        ("CITYGRID_MAX_TASK_REPORTS", "0", "MAX_TASK_REPORTS must be at least 1"),
        ("CITYGRID_WEB_PORT", "70000", "TCP port"),
        ("CITYGRID_MERGE_WINDOW", "soon", "not a duration"),
        ("CITYGRID_SECURITY_PROTOCOL", "TLS", "SASL_SSL"),
        ("CITYGRID_TOPIC_PREFIX", "Dev_", "dot-separated"),
    ],
)
def test_bad_values_name_the_variable_and_the_rule(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({variable: value})


def test_secrets_are_redacted_for_logs() -> None:
    settings = Settings.from_env({"CITYGRID_SASL_PASSWORD": "hunter2"})
    assert "hunter2" not in repr(settings.redacted())


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("30m", 1800), ("2h", 7200), ("7d", 604800)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_readme_settings_table_lists_every_setting_with_its_default() -> None:
    readme = README.read_text()
    for variable, default, _ in Settings.documented():
        row = f"| `{variable}` | `{default}` |" if default else f"| `{variable}` | |"
        assert row in readme, f"README settings table lacks or misstates {variable}"


def test_local_time_limits_are_read_as_minutes_by_category() -> None:
    settings = Settings.from_env({"CITYGRID_TIME_LIMITS": "4002=1h, 3001=2d"})
    assert settings.time_limit_minutes == {"4002": 60.0, "3001": 2880.0}


def test_a_malformed_time_limit_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="CITYGRID_TIME_LIMITS"):
        Settings.from_env({"CITYGRID_TIME_LIMITS": "vending=1h"})
