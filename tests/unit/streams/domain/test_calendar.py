"""Working-time calendars (DOMAIN.md: time limits "in working hours or days").

Most tests use the shipped example calendar, deploy/calendar/office-hours.json: Asia/Shanghai,
Mon-Fri 08:30-12:00 and 14:00-18:00 (450 working minutes a day), 2026 holidays including National
Day 10-01..10-07 with make-up workdays Sun 09-20 and Sat 10-10. Expected instants are worked out
by hand in the comments.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.json import dumps
from streams.domain.calendar import (
    WALL_CLOCK,
    WorkingCalendar,
    calendar_from_setting,
    load_calendar,
)

OFFICE_HOURS = Path(__file__).resolve().parents[4] / "deploy" / "calendar" / "office-hours.json"
OFFICE = load_calendar(OFFICE_HOURS)
CST = timezone(timedelta(hours=8))
DAY = 450.0
"""Working minutes in one office day: 3.5 h in the morning and 4 h in the afternoon."""

WEEKLY = WorkingCalendar(
    tz=CST,
    hours=dict.fromkeys(range(5), ((time(8, 30), time(12)), (time(14), time(18)))),
)
"""The office hours without any holiday."""


def cst(month: int, day: int, hour: int = 0, minute: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=CST)


# Wall clock ----------------------------------------------------------------------------------


def test_the_wall_clock_counts_every_minute() -> None:
    start = cst(11, 28, 23, 0)  # a Saturday night
    assert WALL_CLOCK.add(start, 90) == start + timedelta(minutes=90)
    assert WALL_CLOCK.add(start, 0) == start
    assert WALL_CLOCK.working_minutes(start, start + timedelta(days=3)) == 3 * 24 * 60
    assert WALL_CLOCK.working_minutes(start, start - timedelta(hours=1)) == 0


# Adding working minutes on the office calendar -----------------------------------------------

ADD_CASES = [
    # Mon 09:00 + 1 h, all in the morning.
    ("within a morning", cst(11, 30, 9), 60, cst(11, 30, 10)),
    # Mon 11:00 + 1 h ends with the morning, not when the afternoon starts.
    ("to the end of a morning", cst(11, 30, 11), 60, cst(11, 30, 12)),
    # Mon 11:00-12:00 is 60, the other 60 from 14:00.
    ("across lunch", cst(11, 30, 11), 120, cst(11, 30, 15)),
    # Mon 17:00-18:00 is 60, the other 60 from Tue 08:30.
    ("across the evening", cst(11, 30, 17), 120, cst(12, 1, 9, 30)),
    # Fri 11-27 17:00-18:00 is 60; Sat and Sun are off; 60 from Mon 08:30.
    ("across a weekend", cst(11, 27, 17), 120, cst(11, 30, 9, 30)),
    # A whole day from opening ends at closing.
    ("one working day", cst(11, 30, 8, 30), DAY, cst(11, 30, 18)),
    # Wed 09-30 17:00-18:00 is 60; Oct 1-7 are National Day; 60 from Thu 10-08 08:30.
    ("across a holiday", cst(9, 30, 17), 120, cst(10, 8, 9, 30)),
    # Fri 10-09 17:00-18:00 is 60; Sat 10-10 is a make-up workday: 60 from 08:30.
    ("onto a make-up Saturday", cst(10, 9, 17), 120, cst(10, 10, 9, 30)),
    # Sat 09-19 is off; Sun 09-20 is a make-up workday.
    ("onto a make-up Sunday", cst(9, 19, 10), 60, cst(9, 20, 9, 30)),
    # Counting begins at the next working instant.
    ("from a Saturday", cst(11, 28, 10), 60, cst(11, 30, 9, 30)),
    ("from lunch time", cst(11, 30, 12, 30), 30, cst(11, 30, 14, 30)),
    ("from before opening", cst(11, 30, 7), 30, cst(11, 30, 9)),
    ("from the evening", cst(11, 30, 20), 30, cst(12, 1, 9)),
    ("from a holiday", cst(10, 3, 10), 30, cst(10, 8, 9)),
    # Mon to Mon three weeks later is 15 working days.
    ("fifteen working days", cst(11, 30, 9), 15 * DAY, cst(12, 21, 9)),
]


@pytest.mark.parametrize(
    ("start", "minutes", "expected"), [c[1:] for c in ADD_CASES], ids=[c[0] for c in ADD_CASES]
)
def test_add_counts_only_office_hours(start: datetime, minutes: float, expected: datetime) -> None:
    assert OFFICE.add(start, minutes) == expected


def test_adding_nothing_stays_put_even_outside_office_hours() -> None:
    saturday = cst(11, 28, 10)
    assert OFFICE.add(saturday, 0) == saturday


def test_results_are_aware_and_in_the_zone_of_the_start() -> None:
    start = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)  # Fri 17:00 in Zhengzhou
    due = OFFICE.add(start, 120)
    assert due.tzinfo is UTC
    assert due == datetime(2026, 11, 30, 1, 30, tzinfo=UTC)  # Mon 09:30 in Zhengzhou


# Counting working minutes ---------------------------------------------------------------------

WORKING_MINUTES_CASES = [
    ("a weekend in between", cst(11, 27, 17), cst(11, 30, 9, 30), 120),
    ("one calendar day", cst(11, 30), cst(12, 1), DAY),
    ("one week", cst(11, 30), cst(12, 7), 5 * DAY),
    ("lunch only", cst(11, 30, 12), cst(11, 30, 14), 0),
    # Mon 09-28 to Mon 10-12: Sep 28-30 worked, Oct 1-7 off, Oct 8, 9 and the make-up
    # Saturday 10 worked, Sunday 11 off: 6 days.
    ("the National Day fortnight", cst(9, 28), cst(10, 12), 6 * DAY),
    ("end before start", cst(12, 1), cst(11, 30), 0),
]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [c[1:] for c in WORKING_MINUTES_CASES],
    ids=[c[0] for c in WORKING_MINUTES_CASES],
)
def test_working_minutes_counts_only_office_hours(
    start: datetime, end: datetime, expected: float
) -> None:
    assert OFFICE.working_minutes(start, end) == expected


def test_five_years_count_every_weekday() -> None:
    start, end = cst(1, 4, year=2027), cst(1, 5, year=2032)  # Monday to Monday, 261 weeks
    weekdays = (end.date() - start.date()).days // 7 * 5
    assert WEEKLY.working_minutes(start, end) == weekdays * DAY
    assert WEEKLY.add(start, weekdays * DAY) == cst(1, 2, 18, year=2032)  # the last Friday
    assert OFFICE.working_minutes(start, end) == weekdays * DAY  # its holidays are all in 2026


# Properties -------------------------------------------------------------------------------------

_starts = st.datetimes(
    min_value=datetime(2025, 12, 1),  # noqa: DTZ001 - hypothesis attaches the zones below
    max_value=datetime(2027, 1, 31),  # noqa: DTZ001
    timezones=st.sampled_from([UTC, CST, timezone(timedelta(hours=-5))]),
)
_minutes = st.floats(min_value=0, max_value=10 * DAY, allow_nan=False)


@given(start=_starts, minutes=_minutes)
def test_working_minutes_undoes_add(start: datetime, minutes: float) -> None:
    assert OFFICE.working_minutes(start, OFFICE.add(start, minutes)) == pytest.approx(
        minutes, abs=1e-6
    )


@given(start=_starts, a=_minutes, b=_minutes)
def test_add_is_monotonic_in_minutes(start: datetime, a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert start <= OFFICE.add(start, low) <= OFFICE.add(start, high)


@given(start=_starts, first=st.timedeltas(timedelta(0), timedelta(days=20)), second=_minutes)
def test_working_minutes_add_up_over_consecutive_spans(
    start: datetime, first: timedelta, second: float
) -> None:
    middle = start + first
    end = middle + timedelta(minutes=second)
    assert OFFICE.working_minutes(start, middle) + OFFICE.working_minutes(
        middle, end
    ) == pytest.approx(OFFICE.working_minutes(start, end), abs=1e-6)


# Bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize("calendar", [WALL_CLOCK, OFFICE], ids=["wall", "office"])
def test_naive_datetimes_and_bad_minute_counts_are_refused(calendar: Any) -> None:
    naive = datetime(2026, 11, 30, 9)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar.add(naive, 10)
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar.working_minutes(cst(11, 30), naive)
    for minutes in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="minutes must be"):
            calendar.add(cst(11, 30, 9), minutes)


# Calendar files ---------------------------------------------------------------------------------


def test_the_shipped_example_loads() -> None:
    assert OFFICE.hours[4] == ((time(8, 30), time(12)), (time(14), time(18)))
    assert 5 not in OFFICE.hours
    assert 6 not in OFFICE.hours
    assert date(2026, 10, 1) in OFFICE.holidays
    assert all(day.weekday() >= 5 for day in OFFICE.workdays)  # Sat, Sun
    assert repr(OFFICE) == (
        "WorkingCalendar(tz=Asia/Shanghai, 37.5 h/week, 19 holidays, 5 workdays)"
    )


def _write(tmp_path: Path, content: Any) -> Path:
    path = tmp_path / "calendar.json"
    path.write_bytes(content if isinstance(content, bytes) else dumps(content))
    return path


def _calendar(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "timezone": "+08:00",
        "hours": {"mon": ["08:30-12:00", "14:00-18:00"], "fri": ["08:30-12:00"]},
        "holidays": ["2026-10-01..2026-10-07"],
        "workdays": ["2026-10-10"],
    }
    base.update(changes)
    return base


def test_a_fixed_offset_counts_like_the_named_zone(tmp_path: Path) -> None:
    fixed = load_calendar(_write(tmp_path, _calendar()))
    # Fri 10-09 11:30-12:00 is 30 (no afternoon on Fridays here); the make-up Saturday 10-10
    # has Monday's hours: 30 from 08:30.
    assert fixed.add(cst(10, 9, 11, 30), 60) == cst(10, 10, 9)
    assert fixed.hours[0] == OFFICE.hours[0]


def test_intervals_may_come_in_any_order(tmp_path: Path) -> None:
    loaded = load_calendar(
        _write(tmp_path, _calendar(hours={"mon": ["14:00-18:00", "08:30-12:00"]}))
    )
    assert loaded.hours[0] == ((time(8, 30), time(12)), (time(14), time(18)))


BAD_FILES = [
    ("bad time", _calendar(hours={"mon": ["08:30-25:00"]}), "mon: bad time '25:00'"),
    ("bad interval", _calendar(hours={"mon": ["08:30"]}), "mon: bad interval '08:30'"),
    (
        "overlap",
        _calendar(hours={"tue": ["08:30-12:00", "11:00-13:00"]}),
        "tue: intervals 08:30-12:00 and 11:00-13:00 overlap",
    ),
    (
        "backwards interval",
        _calendar(hours={"mon": ["12:00-08:30"]}),
        "mon: interval 12:00-08:30 does not end after it starts",
    ),
    ("unknown weekday", _calendar(hours={"fry": ["08:30-12:00"]}), "unknown weekday 'fry'"),
    ("no hours", _calendar(hours={"mon": []}, workdays=[]), "no working hours on any weekday"),
    ("unknown zone", _calendar(timezone="Asia/Zhengzhou"), "unknown time zone 'Asia/Zhengzhou'"),
    ("bad date", _calendar(holidays=["2026-02-30"]), "holidays: bad date '2026-02-30'"),
    (
        "backwards range",
        _calendar(holidays=["2026-10-07..2026-10-01"]),
        "holidays: range '2026-10-07..2026-10-01' ends before it starts",
    ),
    (
        "holiday and workday",
        _calendar(workdays=["2026-10-03"]),
        "both holiday and workday: 2026-10-03",
    ),
    ("workday on a weekday", _calendar(workdays=["2026-10-09"]), "2026-10-09 is a fri"),
    (
        "workday without Monday hours",
        _calendar(hours={"fri": ["08:30-12:00"]}),
        "Monday has none",
    ),
    ("misspelt key", {**_calendar(), "holiday": []}, "unknown key(s) holiday"),
    ("missing hours", {"timezone": "+08:00"}, "needs 'timezone' and 'hours'"),
    ("not an object", [], "must be a JSON object"),
    ("not JSON", b"{'timezone': '+08:00'}", "expected a string key: line 1"),
]


@pytest.mark.parametrize(
    ("content", "problem"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES]
)
def test_a_bad_file_is_refused_naming_the_problem(
    tmp_path: Path, content: Any, problem: str
) -> None:
    path = _write(tmp_path, content)
    with pytest.raises(ValueError, match=re.escape(problem)) as caught:
        load_calendar(path)
    assert str(caught.value).startswith(f"calendar {path}: ")


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read it"):
        load_calendar(tmp_path / "nowhere.json")


# The setting ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", "wall", " wall "])
def test_an_empty_or_wall_setting_is_the_wall_clock(value: str) -> None:
    assert calendar_from_setting(value) is WALL_CLOCK


def test_any_other_setting_is_a_calendar_file() -> None:
    calendar = calendar_from_setting(str(OFFICE_HOURS))
    assert isinstance(calendar, WorkingCalendar)
    assert calendar.add(cst(11, 27, 17), 120) == cst(11, 30, 9, 30)


def test_real_minutes_are_counted_across_a_daylight_saving_change(tmp_path: Path) -> None:
    berlin = load_calendar(
        _write(tmp_path, {"timezone": "Europe/Berlin", "hours": {"sun": ["01:00-04:00"]}})
    )
    # 2026-03-29: clocks jump from 02:00 to 03:00, so 01:00-04:00 lasts two real hours.
    day = datetime(2026, 3, 29, tzinfo=UTC)
    assert berlin.working_minutes(day - timedelta(hours=2), day + timedelta(hours=22)) == 120
