"""Working-time calendars: which minutes count towards a handling time limit.

Time limits are set "in working hours or days" (DOMAIN.md), so a deadline is counted on a
:class:`Calendar`: :data:`WALL_CLOCK` counts every minute, a :class:`WorkingCalendar` only the
office's working hours, minus holidays, plus make-up workdays (调休). Both work on aware datetimes
and return results in the time zone of their ``start``.

A :class:`WorkingCalendar` steps through the calendar one day at a time and through each day's
few working intervals, never minute by minute, so the cost of a call grows with the days it spans
(a 15-working-day limit looks at about 21 days).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from itertools import pairwise
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from schemas.json import loads

__all__ = [
    "WALL_CLOCK",
    "WEEKDAYS",
    "Calendar",
    "WorkingCalendar",
    "calendar_from_setting",
    "load_calendar",
]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Weekday names as calendar files spell them; the index is :meth:`date.weekday`."""

Interval = tuple[time, time]

_ONE_DAY = timedelta(days=1)
_MONDAY = 0


class Calendar(Protocol):
    """Counts working minutes between instants. Every datetime in and out is timezone-aware."""

    def add(self, start: datetime, minutes: float) -> datetime:
        """The instant ``minutes`` working minutes after ``start``.

        When ``start`` lies in non-working time, counting begins at the next working instant.
        Adding zero minutes returns ``start`` unchanged.
        """
        ...

    def working_minutes(self, start: datetime, end: datetime) -> float:
        """The working minutes in ``[start, end)``; 0 when ``end <= start``."""
        ...


def _aware(name: str, value: datetime) -> None:
    if value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value!r}")


def _span(minutes: float) -> timedelta:
    if not 0 <= minutes < float("inf"):
        raise ValueError(f"minutes must be a finite number >= 0, got {minutes!r}")
    return timedelta(minutes=minutes)


def _in_minutes(span: timedelta) -> float:
    return span / timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class _WallClock:
    """Every minute counts: 24 hours a day, 7 days a week."""

    def add(self, start: datetime, minutes: float) -> datetime:
        _aware("start", start)
        return start + _span(minutes)

    def working_minutes(self, start: datetime, end: datetime) -> float:
        _aware("start", start)
        _aware("end", end)
        return max(0.0, _in_minutes(end - start))

    def __repr__(self) -> str:
        return "WALL_CLOCK"


WALL_CLOCK: Calendar = _WallClock()
"""The calendar on which every minute is a working minute."""


@dataclass(frozen=True, slots=True)
class WorkingCalendar:
    """An office's working time: weekly hours in a local time zone, holidays and workdays.

    ``hours`` maps a weekday (0 is Monday) to that day's working intervals in local wall time,
    each ``(start, end)`` within the day; a weekday without intervals is not worked. Intervals may
    be given in any order and may touch but not overlap. A holiday is a whole day off. A workday
    (调休) is a normally free day that is worked, with Monday's hours.
    """

    tz: tzinfo
    hours: Mapping[int, tuple[Interval, ...]]
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        hours: dict[int, tuple[Interval, ...]] = {}
        for weekday, intervals in self.hours.items():
            if weekday not in range(7):
                raise ValueError(f"unknown weekday {weekday!r}: use 0 (Monday) to 6 (Sunday)")
            hours[weekday] = _ordered(WEEKDAYS[weekday], intervals)
        hours = {weekday: intervals for weekday, intervals in hours.items() if intervals}
        if not hours:
            raise ValueError("no working hours on any weekday")
        both = self.holidays & self.workdays
        if both:
            raise ValueError(
                f"listed as both holiday and workday: {', '.join(map(str, sorted(both)))}"
            )
        for day in sorted(self.workdays):
            if day.weekday() in hours:
                raise ValueError(
                    f"workday {day} is a {WEEKDAYS[day.weekday()]}, which is worked anyway"
                )
        if self.workdays and _MONDAY not in hours:
            raise ValueError("workdays are worked with Monday's hours, but Monday has none")
        # Frozen: the normalised, read-only hours replace what the caller passed.
        object.__setattr__(self, "hours", MappingProxyType(hours))

    def add(self, start: datetime, minutes: float) -> datetime:
        _aware("start", start)
        remaining = _span(minutes)
        if not remaining:
            return start
        at = start.astimezone(UTC)
        day = at.astimezone(self.tz).date()
        # Terminates: some weekday has hours, and holidays are finitely many.
        while True:
            for begin, end in self._spans(day):
                if end <= at:
                    continue
                counted_from = max(begin, at)
                available = end - counted_from
                if remaining <= available:
                    return (counted_from + remaining).astimezone(start.tzinfo)
                remaining -= available
            day += _ONE_DAY

    def working_minutes(self, start: datetime, end: datetime) -> float:
        _aware("start", start)
        _aware("end", end)
        lo, hi = start.astimezone(UTC), end.astimezone(UTC)
        total = timedelta(0)
        day, last = lo.astimezone(self.tz).date(), hi.astimezone(self.tz).date()
        while day <= last:
            for begin, finish in self._spans(day):
                overlap = min(finish, hi) - max(begin, lo)
                if overlap > timedelta(0):
                    total += overlap
            day += _ONE_DAY
        return _in_minutes(total)

    def __repr__(self) -> str:
        # The dataclass repr lists every holiday; this one is short enough for a startup log line.
        weekly = sum(
            (
                datetime.combine(date.min, end) - datetime.combine(date.min, start)
                for intervals in self.hours.values()
                for start, end in intervals
            ),
            timedelta(0),
        )
        return (
            f"WorkingCalendar(tz={self.tz}, {_in_minutes(weekly) / 60:g} h/week, "
            f"{len(self.holidays)} holidays, {len(self.workdays)} workdays)"
        )

    def _intervals(self, day: date) -> tuple[Interval, ...]:
        if day in self.holidays:
            return ()
        weekday = _MONDAY if day in self.workdays else day.weekday()
        return self.hours.get(weekday, ())

    def _spans(self, day: date) -> Iterator[tuple[datetime, datetime]]:
        """The working intervals of one local day as UTC instants, in order.

        Computed in UTC so that a daylight-saving change inside an interval is counted in real
        minutes (comparing datetimes that share a tzinfo would ignore it).
        """
        for start, end in self._intervals(day):
            begin = datetime.combine(day, start, self.tz).astimezone(UTC)
            finish = datetime.combine(day, end, self.tz).astimezone(UTC)
            if finish > begin:
                yield begin, finish


def _ordered(day_name: str, intervals: tuple[Interval, ...]) -> tuple[Interval, ...]:
    ordered = tuple(sorted(intervals))
    for start, end in ordered:
        if start.tzinfo is not None or end.tzinfo is not None:
            raise ValueError(f"{day_name}: interval times are local wall times, without a zone")
        if not start < end:
            raise ValueError(
                f"{day_name}: interval {_show(start, end)} does not end after it starts"
            )
    for (s1, e1), (s2, e2) in pairwise(ordered):
        if s2 < e1:
            raise ValueError(f"{day_name}: intervals {_show(s1, e1)} and {_show(s2, e2)} overlap")
    return ordered


def _show(start: time, end: time) -> str:
    return f"{start:%H:%M}-{end:%H:%M}"


# Calendar files ---------------------------------------------------------------------------------

_KEYS = frozenset({"timezone", "hours", "holidays", "workdays"})
_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})$")
_CLOCK = re.compile(r"^(\d{2}):(\d{2})$")


def load_calendar(path: Path) -> WorkingCalendar:
    """Read a calendar file; a ValueError names the file and what is wrong with it.

    The file is a JSON object (keys starting with ``_`` are comments)::

        {"timezone": "Asia/Shanghai",
         "hours": {"mon": ["08:30-12:00", "14:00-18:00"], ...},
         "holidays": ["2026-10-01..2026-10-07"],
         "workdays": ["2026-10-10"]}

    ``timezone`` is an IANA name or a fixed offset like ``+08:00``; ``hours`` maps ``mon`` to
    ``sun`` to ``HH:MM-HH:MM`` intervals (a missing day is not worked); ``holidays`` and
    ``workdays`` list ``YYYY-MM-DD`` dates or inclusive ``YYYY-MM-DD..YYYY-MM-DD`` ranges.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"calendar {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        return _parse(loads(raw))
    except ValueError as exc:  # also the JSON decoder's error
        raise ValueError(f"calendar {path}: {exc}") from None


def calendar_from_setting(value: str) -> Calendar:
    """The calendar a setting names: ``""`` or ``"wall"`` is :data:`WALL_CLOCK`, else a file."""
    text = value.strip()
    if text in ("", "wall"):
        return WALL_CLOCK
    return load_calendar(Path(text))


def _parse(obj: Any) -> WorkingCalendar:
    if not isinstance(obj, dict):
        raise ValueError("must be a JSON object")  # noqa: TRY004 - one error type for bad files
    unknown = sorted(k for k in obj if not str(k).startswith("_") and k not in _KEYS)
    if unknown:
        raise ValueError(
            f"unknown key(s) {', '.join(unknown)}; expected {', '.join(sorted(_KEYS))}"
        )
    if "timezone" not in obj or "hours" not in obj:
        raise ValueError("needs 'timezone' and 'hours'")
    hours = obj["hours"]
    if not isinstance(hours, dict):
        raise ValueError("'hours' must map weekday names (mon..sun) to lists of intervals")  # noqa: TRY004
    return WorkingCalendar(
        tz=_zone(obj["timezone"]),
        hours={_weekday(name): _intervals(name, spans) for name, spans in hours.items()},
        holidays=_dates("holidays", obj.get("holidays", [])),
        workdays=_dates("workdays", obj.get("workdays", [])),
    )


def _zone(value: Any) -> tzinfo:
    if not isinstance(value, str) or not value:
        raise ValueError(f"'timezone' must be an IANA name or an offset like +08:00, got {value!r}")
    offset = _OFFSET.match(value)
    if offset is not None:
        sign, hh, mm = offset.groups()
        span = timedelta(hours=int(hh), minutes=int(mm))
        if span >= _ONE_DAY:
            raise ValueError(f"time zone offset out of range: {value!r}")
        return timezone(-span if sign == "-" else span)
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r} (an IANA name needs the tz database; "
            "a fixed offset like +08:00 does not)"
        ) from None


def _weekday(name: Any) -> int:
    key = str(name).strip().lower()
    if key not in WEEKDAYS:
        raise ValueError(f"unknown weekday {name!r} in 'hours'; use {', '.join(WEEKDAYS)}")
    return WEEKDAYS.index(key)


def _intervals(day_name: str, spans: Any) -> tuple[Interval, ...]:
    if not isinstance(spans, list):
        raise ValueError(f"{day_name}: expected a list of 'HH:MM-HH:MM' intervals")  # noqa: TRY004
    parsed = []
    for span in spans:
        parts = span.split("-") if isinstance(span, str) else []
        if len(parts) != 2:  # noqa: PLR2004 - start and end
            raise ValueError(f"{day_name}: bad interval {span!r}; expected 'HH:MM-HH:MM'")
        parsed.append((_clock(day_name, parts[0]), _clock(day_name, parts[1])))
    return tuple(parsed)


def _clock(day_name: str, text: str) -> time:
    match = _CLOCK.match(text.strip())
    hour, minute = (int(g) for g in match.groups()) if match else (-1, -1)
    if not (0 <= hour < 24 and 0 <= minute < 60):  # noqa: PLR2004 - clock ranges
        raise ValueError(f"{day_name}: bad time {text!r}; expected HH:MM from 00:00 to 23:59")
    return time(hour, minute)


def _dates(key: str, entries: Any) -> frozenset[date]:
    if not isinstance(entries, list):
        raise ValueError(f"'{key}' must be a list of dates")  # noqa: TRY004
    days: set[date] = set()
    for entry in entries:
        text = str(entry)
        first, _, last = text.partition("..")
        try:
            lo = date.fromisoformat(first.strip())
            hi = date.fromisoformat(last.strip()) if last else lo
        except ValueError:
            raise ValueError(
                f"{key}: bad date {entry!r}; expected YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD"
            ) from None
        if hi < lo:
            raise ValueError(f"{key}: range {entry!r} ends before it starts")
        days.update(lo + timedelta(days=i) for i in range((hi - lo).days + 1))
    return frozenset(days)
