"""The contract's closed vocabularies, defined once.

Every string a message may carry in these fields, and every metric label value citygrid uses for
them, comes from these enums. Their values are the wire spelling in CONTRACT.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum, StrEnum
from functools import cache
from typing import Any, TypeVar

__all__ = [
    "Action",
    "Domain",
    "Priority",
    "RejectReason",
    "Severity",
    "Source",
    "Status",
    "TaskEventType",
    "by_value",
]

E = TypeVar("E", bound=Enum)


@cache
def by_value(kind: type[E]) -> Mapping[Any, E]:
    """``kind``'s members by value, one map per enum: a lookup in it costs a fraction of
    ``kind(value)``, on paths that decode every message."""
    return {member.value: member for member in kind}


class Domain(StrEnum):
    """The four enforcement lines merged into one task stream."""

    FIRE = "fire"
    ENVIRONMENT = "environment"
    SANITATION = "sanitation"
    CITYMGMT = "citymgmt"


class Source(StrEnum):
    """What kind of producer observed an event."""

    TERMINAL = "terminal"
    SENSOR = "sensor"
    CAMERA = "camera"
    DRONE = "drone"
    HOTLINE = "hotline"


class Severity(StrEnum):
    """CAP 1.2 severities, lowest first in :data:`SEVERITY_RANK` order."""

    MINOR = "minor"
    MODERATE = "moderate"
    SEVERE = "severe"
    EXTREME = "extreme"

    @property
    def rank(self) -> int:
        """0 for minor up to 3 for extreme, so severities compare by urgency."""
        return _SEVERITY_ORDER.index(self)


_SEVERITY_ORDER = (Severity.MINOR, Severity.MODERATE, Severity.SEVERE, Severity.EXTREME)


class Priority(StrEnum):
    """Dispatch priority: P1 is the most urgent."""

    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"


class Status(StrEnum):
    """Task statuses; the GB/T 30428 stage each one stands for is in the comment."""

    REGISTERED = "registered"  # 立案
    DISPATCHED = "dispatched"  # 派遣
    ACCEPTED = "accepted"  # 处置中
    HANDLED = "handled"  # 反馈
    CLOSED = "closed"  # 核查结案
    SUSPENDED = "suspended"  # 挂账
    CANCELLED = "cancelled"

    @property
    def is_open(self) -> bool:
        """Closed and cancelled tasks are final; everything else is still someone's work."""
        return self not in (Status.CLOSED, Status.CANCELLED)


class Action(StrEnum):
    """What a terminal or console may ask of a task on ``city.feedback``."""

    ACCEPT = "accept"
    HANDLE = "handle"
    VERIFY_PASS = "verify_pass"  # noqa: S105 - an action name, not a password
    VERIFY_FAIL = "verify_fail"
    SUSPEND = "suspend"
    RESUME = "resume"
    CANCEL = "cancel"
    DISPATCH = "dispatch"


class RejectReason(StrEnum):
    """Values of the ``citygrid.error.reason`` header on ``city.events.dlq``."""

    INVALID_JSON = "invalid_json"
    """Not UTF-8, not JSON, or JSON outside what the codec accepts (NaN, deep nesting)."""
    SCHEMA = "schema"
    """Valid JSON that breaks a field rule: missing, wrong type, out of range, too long."""
    DOMAIN_MISMATCH = "domain_mismatch"
    """``domain`` differs from the topic's domain, or the category belongs to another domain."""
    UNKNOWN_CATEGORY = "unknown_category"
    """A well-formed category code that the category table does not hold."""
    FUTURE_TIMESTAMP = "future_timestamp"
    """``occurred_at`` more than five minutes ahead of the processing clock."""
    INVALID_TRANSITION = "invalid_transition"
    """Feedback whose action is not allowed in the task's current status."""
    UNKNOWN_TASK = "unknown_task"
    """Feedback for a task id citygrid has never created."""
    TOO_LARGE = "too_large"
    """A message larger than ``CITYGRID_MAX_MESSAGE_BYTES``; not parsed at all."""
    BAD_SIGNATURE = "bad_signature"
    """A registered device's event without a valid signature."""
    TASK_FULL = "task_full"
    """A report for a task that already lists ``CITYGRID_MAX_TASK_REPORTS`` reports."""


class TaskEventType(StrEnum):
    """The ``type`` of a TaskEvent on ``city.tasks.events``: one per transition."""

    CREATED = "created"
    MERGED = "merged"
    PRIORITY_RAISED = "priority_raised"
    DISPATCHED = "dispatched"
    ACCEPTED = "accepted"
    HANDLED = "handled"
    VERIFY_PASSED = "verify_passed"
    VERIFY_FAILED = "verify_failed"
    SUSPENDED = "suspended"
    RESUMED = "resumed"
    CANCELLED = "cancelled"
    OVERDUE = "overdue"
