"""The Task (latest state on ``city.tasks.state``) and the TaskEvent (each transition on
``city.tasks.events``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from enum import Enum
from operator import attrgetter
from sys import intern
from typing import Any, TypeVar

from schemas.codec import parse_timestamp
from schemas.enums import Domain, Priority, Source, Status, TaskEventType, by_value
from schemas.json import dumps, loads

__all__ = ["Task", "TaskEvent"]

E = TypeVar("E", bound=Enum)


def _interned(value: Any) -> str | None:
    # A few hundred places, communities and people recur across every task a worker holds.
    return None if value is None else intern(str(value))


def _dt(value: Any) -> datetime | None:
    return None if value is None else parse_timestamp(value if type(value) is str else str(value))


@dataclass(frozen=True, slots=True)
class Task:
    """One real-world problem at one place, with everything merged into it.

    ``place`` is the merge key: the road id, or the grid cell of the first report when no road is
    near. ``road_id`` and ``community`` are None when the task has no road.
    """

    task_id: str
    status: Status
    domain: Domain
    category: str
    priority: Priority
    place: str
    road_id: str | None
    community: str | None
    assignee: str | None
    created_at: datetime
    updated_at: datetime
    due_at: datetime
    event_ids: tuple[str, ...]
    sources: tuple[Source, ...]
    rework_count: int = 0
    rebound_of: str | None = None
    closed_at: datetime | None = None
    cancel_reason: str | None = None
    dispatched_at: datetime | None = None
    """When the task was last dispatched (first dispatch, re-assignment, rework)."""
    handled_at: datetime | None = None
    """When the assignee reported it handled; cleared when verification fails."""
    suspended_at: datetime | None = None
    """When the current suspension (挂账) began; None while not suspended."""
    overdue: bool = False
    """Set once the task was still not handled at ``due_at``; stays set."""

    def replace(self, **changes: Any) -> Task:
        """This task with ``changes`` (field names and new values), as ``dataclasses.replace``
        does, at about half its cost: the merge stage makes a new task for every report it
        merges. Raises KeyError for a name that is not a field."""
        values = list(_values(self))
        for name, value in changes.items():
            values[_POSITION[name]] = value
        return Task(*values)

    def to_wire(self) -> dict[str, Any]:
        """The task as the contract's JSON object: :meth:`wire_fields` as JSON decodes them."""
        wire: dict[str, Any] = loads(dumps(self.wire_fields()))
        return wire

    def wire_fields(self) -> dict[str, Any]:
        """The contract's fields, for :func:`schemas.json.dumps`: datetimes and enums are left
        for it to write (RFC 3339, the enum's value), several times faster than converting them
        here, on a path that encodes every task a batch changes twice."""
        return {
            "task_id": self.task_id,
            "status": self.status,
            "domain": self.domain,
            "category": self.category,
            "priority": self.priority,
            "place": self.place,
            "road_id": self.road_id,
            "community": self.community,
            "assignee": self.assignee,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "due_at": self.due_at,
            "event_ids": self.event_ids,
            "sources": self.sources,
            "rework_count": self.rework_count,
            "rebound_of": self.rebound_of,
            "closed_at": self.closed_at,
            "cancel_reason": self.cancel_reason,
            "dispatched_at": self.dispatched_at,
            "handled_at": self.handled_at,
            "suspended_at": self.suspended_at,
            "overdue": self.overdue,
        }

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> Task:
        """Rebuild a task citygrid wrote; raises KeyError or ValueError on anything else.

        Every worker rebuilds every task state it follows: enum members come from value maps
        and the fields go in by position, at about half the cost of ``Status(...)`` and keywords.
        """
        created_at = _dt(obj["created_at"])
        updated_at = _dt(obj["updated_at"])
        due_at = _dt(obj["due_at"])
        if created_at is None or updated_at is None or due_at is None:
            raise ValueError("a task needs created_at, updated_at and due_at")
        get = obj.get
        return cls(
            str(obj["task_id"]),
            _member(_STATUSES, obj["status"]),
            _member(_DOMAINS, obj["domain"]),
            intern(str(obj["category"])),
            _member(_PRIORITIES, obj["priority"]),
            intern(str(obj["place"])),
            _interned(get("road_id")),
            _interned(get("community")),
            _interned(get("assignee")),
            created_at,
            updated_at,
            due_at,
            tuple(obj["event_ids"]),
            tuple([_member(_SOURCES, s) for s in obj["sources"]]),
            int(get("rework_count", 0)),
            get("rebound_of"),
            _dt(get("closed_at")),
            get("cancel_reason"),
            _dt(get("dispatched_at")),
            _dt(get("handled_at")),
            _dt(get("suspended_at")),
            bool(get("overdue", False)),
        )


def _member(members: Mapping[Any, E], value: Any) -> E:
    """``Kind(value)`` from ``members`` (:func:`~schemas.enums.by_value`), ValueError likewise."""
    try:
        return members[value]
    except (KeyError, TypeError):
        raise ValueError(f"{value!r} is not one of {sorted(map(str, members))}") from None


_STATUSES = by_value(Status)
_DOMAINS = by_value(Domain)
_PRIORITIES = by_value(Priority)
_SOURCES = by_value(Source)

_FIELDS = tuple(f.name for f in fields(Task))
_values = attrgetter(*_FIELDS)
"""A task's field values in constructor order."""
_POSITION = {name: i for i, name in enumerate(_FIELDS)}


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """One transition of one task, in the order citygrid applied them.

    ``id`` is deterministic (task id and sequence number), so a replay writes the same ids and
    consumers can drop repeats; it is also the CloudEvents ``ce_id``.
    """

    id: str
    task_id: str
    seq: int
    type: TaskEventType
    at: datetime
    status: Status
    priority: Priority
    actor_id: str | None = None
    event_id: str | None = None
    detail: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """The task event as a JSON object: :meth:`wire_fields` as JSON decodes them."""
        wire: dict[str, Any] = loads(dumps(self.wire_fields()))
        return wire

    def wire_fields(self) -> dict[str, Any]:
        """The event's fields, for :func:`schemas.json.dumps` (see :meth:`Task.wire_fields`)."""
        return {
            "id": self.id,
            "task_id": self.task_id,
            "seq": self.seq,
            "type": self.type,
            "at": self.at,
            "status": self.status,
            "priority": self.priority,
            "actor_id": self.actor_id,
            "event_id": self.event_id,
            "detail": self.detail,
        }
