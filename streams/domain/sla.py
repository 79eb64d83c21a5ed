"""Handling deadlines (CONTRACT.md, "Overdue"): when a task is due, and how a suspension moves it.

A task is due its category's ``time_limit_minutes`` working minutes after it was created, counted
on a :class:`~streams.domain.calendar.Calendar`. Parked time (挂账) does not count: what was left
of the limit when the task was suspended is counted again from its resumption.
"""

from __future__ import annotations

from datetime import datetime

from schemas.categories import Category
from streams.domain.calendar import Calendar

__all__ = ["due_at", "is_overdue", "resumed_due_at"]


def due_at(created_at: datetime, category: Category, calendar: Calendar) -> datetime:
    """When a task of ``category`` created at ``created_at`` must be handled."""
    return calendar.add(created_at, category.time_limit_minutes)


def resumed_due_at(
    due: datetime, suspended_at: datetime, resumed_at: datetime, calendar: Calendar
) -> datetime:
    """The new deadline of a task suspended at ``suspended_at`` and resumed at ``resumed_at``.

    The working minutes left at suspension (none when it was already past ``due``) are counted
    from the resumption, so a task that was overdue when parked is due again the moment it
    resumes. A resumption stamped before its suspension (terminal clocks disagree) counts from
    the suspension, which leaves the deadline where it was.
    """
    left = calendar.working_minutes(suspended_at, due)
    return calendar.add(max(resumed_at, suspended_at), left)


def is_overdue(due: datetime, now: datetime) -> bool:
    """Whether a task due at ``due`` and not handled yet is overdue at ``now``."""
    return now >= due
