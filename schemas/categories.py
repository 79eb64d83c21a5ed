"""The category table (CONTRACT.md) loaded from ``schemas/data/categories.json``.

Codes are ``MMNN`` strings: a two-digit major class and a two-digit minor class. Each category
belongs to one domain, carries its default severity, its handling time limit and, for categories a
fixed sensor can raise, the metric and threshold that make a reading a report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Literal

from schemas.enums import Domain, Severity
from schemas.json import loads

__all__ = [
    "CATEGORIES",
    "Category",
    "SensorRule",
    "categories_of",
    "load_categories",
]


@dataclass(frozen=True, slots=True)
class SensorRule:
    """When a sensor reading of ``metric`` crosses ``threshold`` for this category."""

    metric: str
    op: Literal[">", ">="]
    threshold: float
    unit: str
    one_reading: bool
    """True when one reading over the threshold is a report (smoke); else it must be sustained."""

    def exceeded_by(self, value: float) -> bool:
        """Whether one reading crosses the threshold."""
        if not math.isfinite(value):
            return False
        return value >= self.threshold if self.op == ">=" else value > self.threshold


@dataclass(frozen=True, slots=True)
class Category:
    """One row of the category table."""

    code: str
    domain: Domain
    name_zh: str
    name_en: str
    default_severity: Severity
    time_limit_minutes: int
    sensor: SensorRule | None = None
    merge_window_minutes: int | None = None
    """This category's merge window; None means the default (``CITYGRID_MERGE_WINDOW``)."""
    wall_clock: bool = False
    """True when the time limit runs around the clock (emergencies), not on the office calendar."""


def _parse(row: dict[str, object]) -> Category:
    sensor = row.get("sensor")
    rule = None
    if isinstance(sensor, dict):
        op = sensor["op"]
        if op not in (">", ">="):
            raise ValueError(f"category {row['code']}: sensor op must be '>' or '>=', got {op!r}")
        rule = SensorRule(
            metric=str(sensor["metric"]),
            op=op,
            threshold=float(sensor["threshold"]),
            unit=str(sensor["unit"]),
            one_reading=bool(sensor["one_reading"]),
        )
    code = str(row["code"])
    window = row.get("merge_window_minutes")
    if len(code) != 4 or not code.isascii() or not code.isdigit():  # noqa: PLR2004 - MMNN
        raise ValueError(f"category code must be four digits MMNN, got {code!r}")
    return Category(
        code=code,
        domain=Domain(str(row["domain"])),
        name_zh=str(row["name_zh"]),
        name_en=str(row["name_en"]),
        default_severity=Severity(str(row["default_severity"])),
        time_limit_minutes=int(str(row["time_limit_minutes"])),
        sensor=rule,
        merge_window_minutes=None if window is None else int(str(window)),
        wall_clock=_clock(code, row.get("clock", "calendar")),
    )


def _clock(code: str, value: object) -> bool:
    if value not in ("calendar", "wall"):
        raise ValueError(f"category {code}: clock must be 'calendar' or 'wall', got {value!r}")
    return value == "wall"


@cache
def load_categories() -> MappingProxyType[str, Category]:
    """Read the shipped category table once; keys are the category codes."""
    raw = resources.files("schemas").joinpath("data", "categories.json").read_bytes()
    rows = loads(raw)["categories"]
    table = {c.code: c for c in map(_parse, rows)}
    if len(table) != len(rows):
        raise ValueError("categories.json lists a category code twice")
    return MappingProxyType(table)


CATEGORIES = load_categories()


def categories_of(domain: Domain) -> tuple[Category, ...]:
    """The categories of one domain, in code order."""
    return tuple(c for code, c in sorted(CATEGORIES.items()) if c.domain is domain)
