"""Task and TaskEvent on the wire: the contract's fields, JSON round trips, no Faust metadata."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.enums import Domain, Priority, Source, Status, TaskEventType
from schemas.json import dumps, loads
from schemas.task import Task, TaskEvent

CONTRACT_TASK_FIELDS = {
    "task_id",
    "status",
    "domain",
    "category",
    "priority",
    "road_id",
    "community",
    "assignee",
    "created_at",
    "updated_at",
    "due_at",
    "event_ids",
    "sources",
    "rework_count",
    "rebound_of",
}

_CST = timezone(timedelta(hours=8))
_CREATED = datetime(2026, 11, 29, 9, 30, tzinfo=_CST)


def _task(**overrides: Any) -> Task:
    task = Task(
        task_id="t-1003-yulong-st-20261129-0001",
        status=Status.DISPATCHED,
        domain=Domain.FIRE,
        category="1003",
        priority=Priority.P2,
        place="yulong-st",
        road_id="yulong-st",
        community="jinlong",
        assignee="chief-yulong",
        created_at=_CREATED,
        updated_at=_CREATED + timedelta(minutes=2),
        due_at=_CREATED + timedelta(hours=4),
        event_ids=("evt-000001", "evt-000002"),
        sources=(Source.TERMINAL, Source.CAMERA),
    )
    return replace(task, **overrides)


def _keys(value: Any) -> set[str]:
    """Every object key at any depth of a JSON value."""
    if isinstance(value, dict):
        return set(value).union(*(_keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_keys(v) for v in value))
    return set()


def test_task_wire_form_has_every_contract_field() -> None:
    wire = _task().to_wire()
    assert set(wire) >= CONTRACT_TASK_FIELDS
    assert wire["status"] == "dispatched"
    assert wire["priority"] == "P2"
    assert wire["sources"] == ["terminal", "camera"]
    assert wire["event_ids"] == ["evt-000001", "evt-000002"]
    assert wire["rework_count"] == 0
    assert wire["rebound_of"] is None
    assert wire["created_at"] == "2026-11-29T09:30:00+08:00"


def test_task_without_a_road_keeps_the_fields_as_null() -> None:
    wire = _task(road_id=None, community=None, assignee=None, status=Status.REGISTERED).to_wire()
    assert set(wire) >= CONTRACT_TASK_FIELDS
    assert (wire["road_id"], wire["community"], wire["assignee"]) == (None, None, None)


def test_task_round_trips_through_json() -> None:
    task = _task(
        status=Status.CLOSED,
        rework_count=2,
        rebound_of="t-1003-yulong-st-20261120-0007",
        closed_at=_CREATED + timedelta(hours=3),
    )
    again = Task.from_wire(loads(dumps(task.to_wire())))
    assert again == task
    assert again.created_at.utcoffset() == timedelta(hours=8)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status", "nope"),
        ("status", ["open"]),
        ("domain", "weather"),
        ("priority", 7),
        ("sources", ["terminal", "pigeon"]),
    ],
)
def test_a_task_with_a_value_outside_its_enum_is_refused(field: str, value: Any) -> None:
    wire = _task().to_wire()
    wire[field] = value
    with pytest.raises(ValueError, match="is not one of"):
        Task.from_wire(wire)


def test_enum_fields_come_back_as_members() -> None:
    again = Task.from_wire(_task(sources=(Source.TERMINAL, Source.CAMERA)).to_wire())
    assert type(again.status) is Status
    assert type(again.priority) is Priority
    assert [type(s) for s in again.sources] == [Source, Source]


def test_cancelled_task_round_trips_with_its_reason() -> None:
    task = _task(status=Status.CANCELLED, cancel_reason="duplicate")
    assert Task.from_wire(loads(dumps(task.to_wire()))) == task


def test_no_faust_metadata_on_the_wire() -> None:
    event = TaskEvent(
        id="t-1:3",
        task_id="t-1",
        seq=3,
        type=TaskEventType.DISPATCHED,
        at=_CREATED,
        status=Status.DISPATCHED,
        priority=Priority.P1,
        actor_id="dispatcher-2",
    )
    for wire in (_task().to_wire(), event.to_wire()):
        assert not any(key.startswith("__faust") for key in _keys(wire))
        assert b"__faust" not in dumps(wire)


def test_task_event_wire_form() -> None:
    event = TaskEvent(
        id="t-1:1",
        task_id="t-1",
        seq=1,
        type=TaskEventType.CREATED,
        at=_CREATED,
        status=Status.REGISTERED,
        priority=Priority.P4,
        event_id="evt-000001",
    )
    wire = loads(dumps(event.to_wire()))
    assert wire == {
        "id": "t-1:1",
        "task_id": "t-1",
        "seq": 1,
        "type": "created",
        "at": "2026-11-29T09:30:00+08:00",
        "status": "registered",
        "priority": "P4",
        "actor_id": None,
        "event_id": "evt-000001",
        "detail": None,
    }


_instants = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - naive bounds, made aware by timezones
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.sampled_from([UTC, _CST, timezone(timedelta(hours=-5, minutes=-30))]),
)
_ids = st.text(min_size=1, max_size=20)


@settings(max_examples=100, deadline=None)
@given(
    status=st.sampled_from(Status),
    domain=st.sampled_from(Domain),
    priority=st.sampled_from(Priority),
    road_id=st.none() | _ids,
    assignee=st.none() | _ids,
    created_at=_instants,
    due_at=_instants,
    closed_at=st.none() | _instants,
    event_ids=st.lists(_ids, min_size=1, max_size=5).map(tuple),
    sources=st.lists(st.sampled_from(Source), min_size=1, max_size=5, unique=True).map(tuple),
    rework_count=st.integers(0, 10),
    rebound_of=st.none() | _ids,
)
def test_any_task_round_trips_through_json(**fields: Any) -> None:
    task = _task(updated_at=fields["created_at"], **fields)
    wire = task.to_wire()
    assert set(wire) >= CONTRACT_TASK_FIELDS
    assert Task.from_wire(loads(dumps(wire))) == task


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _spelled_out(task: Task) -> dict[str, Any]:
    """The contract's task object, every value converted by hand."""
    return {
        "task_id": task.task_id,
        "status": task.status.value,
        "domain": task.domain.value,
        "category": task.category,
        "priority": task.priority.value,
        "place": task.place,
        "road_id": task.road_id,
        "community": task.community,
        "assignee": task.assignee,
        "created_at": _iso(task.created_at),
        "updated_at": _iso(task.updated_at),
        "due_at": _iso(task.due_at),
        "event_ids": list(task.event_ids),
        "sources": [s.value for s in task.sources],
        "rework_count": task.rework_count,
        "rebound_of": task.rebound_of,
        "closed_at": _iso(task.closed_at),
        "cancel_reason": task.cancel_reason,
        "dispatched_at": _iso(task.dispatched_at),
        "handled_at": _iso(task.handled_at),
        "suspended_at": _iso(task.suspended_at),
        "overdue": task.overdue,
    }


_any_offset = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
_any_instant = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - naive bounds, made aware by timezones
    max_value=datetime(9999, 1, 1),  # noqa: DTZ001
    timezones=_any_offset | st.just(UTC),
)


@settings(max_examples=200, deadline=None)
@given(
    status=st.sampled_from(Status),
    created_at=_any_instant,
    updated_at=_any_instant,
    closed_at=st.none() | _any_instant,
    dispatched_at=st.none() | _any_instant,
    handled_at=st.none() | _any_instant,
    suspended_at=st.none() | _any_instant,
    cancel_reason=st.none() | _ids,
    overdue=st.booleans(),
)
def test_the_encoded_task_spells_times_and_enums_as_the_contract_does(**fields: Any) -> None:
    # The encoder writes datetimes and enums itself; the bytes must be the hand-spelled ones.
    task = _task(**fields)
    assert dumps(task.wire_fields()) == dumps(_spelled_out(task))
    assert task.to_wire() == _spelled_out(task)


@settings(max_examples=100, deadline=None)
@given(at=_any_instant, kind=st.sampled_from(TaskEventType), detail=st.none() | _ids)
def test_the_encoded_task_event_spells_times_and_enums_as_the_contract_does(
    at: datetime, kind: TaskEventType, detail: str | None
) -> None:
    event = TaskEvent("t-1:2", "t-1", 2, kind, at, Status.ACCEPTED, Priority.P3, None, "e", detail)
    spelled = {
        "id": "t-1:2",
        "task_id": "t-1",
        "seq": 2,
        "type": kind.value,
        "at": at.isoformat(),
        "status": "accepted",
        "priority": "P3",
        "actor_id": None,
        "event_id": "e",
        "detail": detail,
    }
    assert dumps(event.wire_fields()) == dumps(spelled)
    assert event.to_wire() == spelled


_changes = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from(Status),
        "priority": st.sampled_from(Priority),
        "assignee": st.none() | _ids,
        "updated_at": _any_instant,
        "event_ids": st.lists(_ids, max_size=3).map(tuple),
        "sources": st.lists(st.sampled_from(Source), max_size=3).map(tuple),
        "rework_count": st.integers(0, 5),
        "closed_at": st.none() | _any_instant,
        "overdue": st.booleans(),
    },
)


@settings(max_examples=100, deadline=None)
@given(_changes)
def test_task_replace_is_dataclasses_replace(changes: dict[str, Any]) -> None:
    task = _task(rebound_of="t-0", cancel_reason="x", handled_at=_CREATED, suspended_at=_CREATED)
    assert task.replace(**changes) == replace(task, **changes)
