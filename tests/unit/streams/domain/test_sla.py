"""Handling deadlines (CONTRACT.md "Overdue"; DOMAIN.md: parked time does not count).

The working-time cases use the shipped example calendar, deploy/calendar/office-hours.json:
Mon-Fri 08:30-12:00 and 14:00-18:00 in Zhengzhou, 450 working minutes a day. Expected deadlines
are worked out by hand in the comments.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.categories import CATEGORIES, Category
from streams.domain.calendar import WALL_CLOCK, Calendar, load_calendar
from streams.domain.sla import due_at, is_overdue, resumed_due_at

OFFICE = load_calendar(
    Path(__file__).resolve().parents[4] / "deploy" / "calendar" / "office-hours.json"
)
CST = timezone(timedelta(hours=8))
BLOCKED_FIRE_LANE = CATEGORIES["1003"]


def cst(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=CST)


def limited(minutes: int) -> Category:
    """A category with this time limit (the shipped limits are data and may be retuned)."""
    return replace(BLOCKED_FIRE_LANE, time_limit_minutes=minutes)


@pytest.mark.parametrize("code", sorted(CATEGORIES))
def test_on_the_wall_clock_a_task_is_due_its_time_limit_after_creation(code: str) -> None:
    category = CATEGORIES[code]
    created = cst(11, 28, 23, 10)  # a Saturday night: the wall clock does not care
    assert due_at(created, category, WALL_CLOCK) == created + timedelta(
        minutes=category.time_limit_minutes
    )


# Created Mon 11-30 10:00; Monday has 120 minutes left before lunch and 240 after it.
OFFICE_DUE = [
    (30, cst(11, 30, 10, 30)),
    (120, cst(11, 30, 12)),
    # 120 before lunch, 60 from 14:00.
    (180, cst(11, 30, 15)),
    # 120 + 240 on Monday, the other 120 from Tue 08:30.
    (480, cst(12, 1, 10, 30)),
    # 360 on Monday, 450 each on Tue and Wed, the last 180 from Thu 08:30.
    (1440, cst(12, 3, 11, 30)),
    # 360 on Monday, 15 whole days (Tue 12-01 to Mon 12-21) make 6750, the last 90 from
    # Tue 12-22 08:30.
    (7200, cst(12, 22, 10)),
]


@pytest.mark.parametrize(("minutes", "expected"), OFFICE_DUE, ids=[str(m) for m, _ in OFFICE_DUE])
def test_on_office_hours_a_task_is_due_its_time_limit_in_working_minutes(
    minutes: int, expected: datetime
) -> None:
    assert due_at(cst(11, 30, 10), limited(minutes), OFFICE) == expected


def test_a_deadline_waits_over_the_weekend() -> None:
    # Fri 11-27 15:00-18:00 is 180 of the 240; the other 60 from Mon 08:30.
    assert due_at(cst(11, 27, 15), limited(240), OFFICE) == cst(11, 30, 9, 30)


def test_a_deadline_waits_over_a_public_holiday() -> None:
    # Wed 09-30 16:00-18:00 is 120 of the 240; Oct 1-7 are off; the other 120 from Thu 10-08.
    assert due_at(cst(9, 30, 16), limited(240), OFFICE) == cst(10, 8, 10, 30)


def test_suspended_time_does_not_count() -> None:
    due = due_at(cst(11, 27, 15), limited(240), OFFICE)  # Mon 11-30 09:30, as above
    # Suspended Fri 16:00 with 180 working minutes left (Fri 16:00-18:00 and Mon 08:30-09:30);
    # resumed Tue 12-01 09:00, the 180 run to 12:00.
    assert resumed_due_at(due, cst(11, 27, 16), cst(12, 1, 9), OFFICE) == cst(12, 1, 12)


def test_on_the_wall_clock_a_suspension_moves_the_deadline_by_its_length() -> None:
    due = cst(11, 30, 12)
    suspended, resumed = cst(11, 30, 10), cst(11, 30, 16, 45)
    assert resumed_due_at(due, suspended, resumed, WALL_CLOCK) == due + (resumed - suspended)


def test_a_suspension_outside_office_hours_changes_nothing() -> None:
    due = cst(11, 30, 9, 30)  # Monday
    assert resumed_due_at(due, cst(11, 28, 10), cst(11, 29, 20), OFFICE) == due  # Sat to Sun


@pytest.mark.parametrize("calendar", [WALL_CLOCK, OFFICE], ids=["wall", "office"])
def test_a_task_suspended_past_due_is_due_again_on_resumption(calendar: Calendar) -> None:
    due = cst(11, 30, 9, 30)
    resumed = cst(12, 2, 10)
    new_due = resumed_due_at(due, cst(11, 30, 11), resumed, calendar)
    assert new_due == resumed
    assert is_overdue(new_due, resumed)


def test_a_resumption_stamped_before_its_suspension_leaves_the_deadline() -> None:
    due = cst(11, 30, 15)
    assert resumed_due_at(due, cst(11, 30, 11), cst(11, 30, 10), OFFICE) == due


@given(
    created=st.datetimes(
        min_value=datetime(2026, 1, 1),  # noqa: DTZ001 - hypothesis attaches the zone
        max_value=datetime(2026, 12, 31),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
    minutes=st.integers(min_value=1, max_value=7200),
    paused_after=st.timedeltas(timedelta(0), timedelta(days=10)),
)
def test_a_suspension_of_no_time_leaves_the_deadline(
    created: datetime, minutes: int, paused_after: timedelta
) -> None:
    due = due_at(created, limited(minutes), OFFICE)
    at = created + paused_after
    # Resumed the instant it was suspended: the deadline stays, or is now when already past.
    assert resumed_due_at(due, at, at, OFFICE) == max(due, at)


def test_a_task_is_overdue_from_its_due_instant_on() -> None:
    due = cst(11, 30, 9, 30)
    assert not is_overdue(due, due - timedelta(microseconds=1))
    assert is_overdue(due, due)
    assert is_overdue(due, datetime(2026, 11, 30, 2, 0, tzinfo=UTC))  # 10:00 in Zhengzhou
