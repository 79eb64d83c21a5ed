"""The Task (latest state on ``city.tasks.state``) and the TaskEvent (each transition on
``city.tasks.events``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from sys import intern
from typing import Any

from schemas.enums import Domain, Priority, Source, Status, TaskEventType

__all__ = ["Task", "TaskEvent"]


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _interned(value: Any) -> str | None:
    # A few hundred places, communities and people recur across every task a worker holds.
    return None if value is None else intern(str(value))


def _dt(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


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

    def to_wire(self) -> dict[str, Any]:
        """The task as the contract's JSON object."""
        return {
            "task_id": self.task_id,
            "status": self.status.value,
            "domain": self.domain.value,
            "category": self.category,
            "priority": self.priority.value,
            "place": self.place,
            "road_id": self.road_id,
            "community": self.community,
            "assignee": self.assignee,
            "created_at": _ts(self.created_at),
            "updated_at": _ts(self.updated_at),
            "due_at": _ts(self.due_at),
            "event_ids": list(self.event_ids),
            "sources": [s.value for s in self.sources],
            "rework_count": self.rework_count,
            "rebound_of": self.rebound_of,
            "closed_at": _ts(self.closed_at),
            "cancel_reason": self.cancel_reason,
            "dispatched_at": _ts(self.dispatched_at),
            "handled_at": _ts(self.handled_at),
            "suspended_at": _ts(self.suspended_at),
            "overdue": self.overdue,
        }

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> Task:
        """Rebuild a task citygrid wrote; raises KeyError or ValueError on anything else."""
        created_at = _dt(obj["created_at"])
        updated_at = _dt(obj["updated_at"])
        due_at = _dt(obj["due_at"])
        if created_at is None or updated_at is None or due_at is None:
            raise ValueError("a task needs created_at, updated_at and due_at")
        return cls(
            task_id=str(obj["task_id"]),
            status=Status(obj["status"]),
            domain=Domain(obj["domain"]),
            category=intern(str(obj["category"])),
            priority=Priority(obj["priority"]),
            place=intern(str(obj["place"])),
            road_id=_interned(obj.get("road_id")),
            community=_interned(obj.get("community")),
            assignee=_interned(obj.get("assignee")),
            created_at=created_at,
            updated_at=updated_at,
            due_at=due_at,
            event_ids=tuple(obj["event_ids"]),
            sources=tuple(Source(s) for s in obj["sources"]),
            rework_count=int(obj.get("rework_count", 0)),
            rebound_of=obj.get("rebound_of"),
            closed_at=_dt(obj.get("closed_at")),
            cancel_reason=obj.get("cancel_reason"),
            dispatched_at=_dt(obj.get("dispatched_at")),
            handled_at=_dt(obj.get("handled_at")),
            suspended_at=_dt(obj.get("suspended_at")),
            overdue=bool(obj.get("overdue", False)),
        )


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
        """The task event as a JSON object."""
        return {
            "id": self.id,
            "task_id": self.task_id,
            "seq": self.seq,
            "type": self.type.value,
            "at": _ts(self.at),
            "status": self.status.value,
            "priority": self.priority.value,
            "actor_id": self.actor_id,
            "event_id": self.event_id,
            "detail": self.detail,
        }
