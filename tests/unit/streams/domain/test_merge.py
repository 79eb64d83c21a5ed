"""Merging events into tasks (CONTRACT.md, "Merging events into tasks" and "Task").

Each test feeds :func:`decide` the events one slot (place and category) receives and checks what a
dispatcher would see: which tasks exist, what they list, their priority, status and TaskEvents.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.categories import CATEGORIES
from schemas.codec import decode_event
from schemas.enums import Domain, Priority, Severity, Source, Status, TaskEventType
from schemas.event import Event, Location
from schemas.event import Reading as SensorReading
from schemas.json import dumps, loads
from schemas.task import Task
from streams.domain.merge import (
    MergeConfig,
    Outcome,
    Result,
    SlotState,
    _prune,
    decide,
    forgettable,
    slot_key,
    slot_of_task,
    task_id_for,
)
from streams.domain.places import Place
from streams.domain.priority import higher, priority_of
from tests.factories import NOW, ROAD_ID, event_bytes

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 29, 9, 0, tzinfo=CST)
CONFIG = MergeConfig()

YULONG = Place(ROAD_ID, ROAD_ID, "jinlong", "chief-yulong")
JINSHUI = Place("jinshui-rd", "jinshui-rd", "fengqing", None)
CELL = Place("cell:1:2", None, None, None)

_DEVICES = {
    Source.TERMINAL: "term-01",
    Source.CAMERA: "cam-01",
    Source.DRONE: "drone-01",
    Source.HOTLINE: "hotline-01",
    Source.SENSOR: "sensor-01",
}


def _minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def report(
    event_id: str,
    *,
    category: str = "4001",
    source: Source = Source.TERMINAL,
    device_id: str | None = None,
    at: datetime = T0,
    severity: Severity | None = None,
    place: Place = YULONG,
    reading: SensorReading | None = None,
) -> Event:
    """An accepted event of ``category`` at ``place`` (a road, or the point of a grid cell)."""
    location = (
        Location(place.road_id, None, None)
        if place.road_id is not None
        else Location(None, 0.0009, 0.0018)
    )
    return Event(
        event_id=event_id,
        domain=CATEGORIES[category].domain,
        source=source,
        device_id=device_id or _DEVICES[source],
        category=category,
        occurred_at=at,
        location=location,
        officer_id="officer-0042" if source is Source.TERMINAL else None,
        severity=severity,
        reading=reading,
    )


def pm25(event_id: str, value: float, *, at: datetime = T0, device_id: str = "aq-01") -> Event:
    """An air-quality sensor reading (category 2001, ``pm25`` > 150)."""
    return report(
        event_id,
        category="2001",
        source=Source.SENSOR,
        device_id=device_id,
        at=at,
        reading=SensorReading("pm25", value, "ug/m3"),
    )


def fold(
    events: Iterable[Event],
    place: Place = YULONG,
    state: SlotState | None = None,
    config: MergeConfig = CONFIG,
) -> tuple[SlotState, list[Outcome]]:
    """Feed one slot's events to ``decide`` in order."""
    state = state or SlotState()
    outcomes = []
    for event in events:
        outcome = decide(state, event, place, config)
        state = outcome.state
        outcomes.append(outcome)
    return state, outcomes


def _task(state: SlotState) -> Task:
    assert state.task is not None
    return state.task


# --- a first report -------------------------------------------------------------------------


def test_a_first_report_opens_a_task_dispatched_to_the_road_chief() -> None:
    event = decode_event(event_bytes(source="camera", category="4001"), now=NOW)
    assert isinstance(event, Event)
    outcome = decide(SlotState(), event, YULONG, CONFIG)

    assert outcome.result is Result.CREATED
    task = _task(outcome.state)
    assert task.task_id == task_id_for(slot_key(ROAD_ID, "4001"), event.device_id, event.event_id)
    assert task.status is Status.DISPATCHED
    assert task.assignee == "chief-yulong"
    assert task.event_ids == (event.event_id,)
    assert task.sources == (Source.CAMERA,)
    assert (task.category, task.domain) == ("4001", Domain.CITYMGMT)
    assert (task.place, task.road_id, task.community) == (ROAD_ID, ROAD_ID, "jinlong")
    assert task.created_at == task.updated_at == event.occurred_at
    assert task.due_at == event.occurred_at + _minutes(CATEGORIES["4001"].time_limit_minutes)
    assert task.priority is Priority.P4
    assert (task.rework_count, task.rebound_of, task.closed_at) == (0, None, None)

    created, dispatched = outcome.changes
    assert created.event.type is TaskEventType.CREATED
    assert created.task.status is Status.REGISTERED
    assert created.task.assignee is None
    assert dispatched.event.type is TaskEventType.DISPATCHED
    assert dispatched.task == task
    assert [c.event.seq for c in outcome.changes] == [1, 2]
    assert [c.event.id for c in outcome.changes] == [f"{task.task_id}:1", f"{task.task_id}:2"]
    assert {c.event.task_id for c in outcome.changes} == {task.task_id}
    assert {c.event.event_id for c in outcome.changes} == {event.event_id}
    assert dispatched.event.status is Status.DISPATCHED
    assert outcome.state.seq == 2


@pytest.mark.parametrize("place", [JINSHUI, CELL], ids=["road-without-chief", "grid-cell"])
def test_with_no_road_chief_a_task_waits_registered(place: Place) -> None:
    outcome = decide(SlotState(), report("e1", place=place), place, CONFIG)
    task = _task(outcome.state)
    assert task.status is Status.REGISTERED
    assert task.assignee is None
    assert (task.place, task.road_id, task.community) == (place.key, place.road_id, place.community)
    assert [c.event.type for c in outcome.changes] == [TaskEventType.CREATED]
    assert outcome.changes[0].event.id == f"{task.task_id}:1"
    assert outcome.state.seq == 1


@pytest.mark.parametrize("code", ["1002", "2004", "3001", "4004"])
def test_due_at_is_the_category_time_limit_after_creation(code: str) -> None:
    outcome = decide(SlotState(), report("e1", category=code), YULONG, CONFIG)
    task = _task(outcome.state)
    assert task.due_at - task.created_at == _minutes(CATEGORIES[code].time_limit_minutes)


@pytest.mark.parametrize(
    ("code", "severity", "expected"),
    [
        ("1002", None, Priority.P1),  # fire on site defaults to extreme
        ("1003", None, Priority.P2),
        ("1003", Severity.SEVERE, Priority.P1),
        ("4005", None, Priority.P3),  # a damaged manhole cover defaults to severe
        ("4001", Severity.EXTREME, Priority.P2),
        ("3001", None, Priority.P4),
    ],
    ids=["1002-default", "1003-default", "1003-severe", "4005-default", "4001-extreme", "3001"],
)
def test_a_new_task_takes_the_priority_of_its_report(
    code: str, severity: Severity | None, expected: Priority
) -> None:
    outcome = decide(SlotState(), report("e1", category=code, severity=severity), YULONG, CONFIG)
    assert _task(outcome.state).priority is expected
    assert {c.event.priority for c in outcome.changes} == {expected}


# --- merging --------------------------------------------------------------------------------


def test_camera_and_officer_reporting_the_same_stall_make_one_task() -> None:
    camera = report("cam-evt-1", source=Source.CAMERA)
    terminal = report("term-evt-7", source=Source.TERMINAL, at=T0 + _minutes(4))
    state, (first, second) = fold([camera, terminal])

    assert second.result is Result.MERGED
    task = _task(state)
    assert task.task_id == _task(first.state).task_id
    assert task.event_ids == ("cam-evt-1", "term-evt-7")
    assert task.sources == (Source.CAMERA, Source.TERMINAL)
    assert task.updated_at == T0 + _minutes(4)
    assert task.status is Status.DISPATCHED
    [change] = second.changes
    assert change.event.type is TaskEventType.MERGED
    assert change.event.seq == 3
    assert change.event.id == f"{task.task_id}:3"
    assert change.event.event_id == "term-evt-7"
    assert change.event.actor_id == "officer-0042"
    assert change.task == task
    assert state.seq == 3


def test_a_second_report_from_the_same_kind_of_source_lists_the_source_once() -> None:
    state, _ = fold(
        [
            report("e1", device_id="cam-a", source=Source.CAMERA),
            report("e2", device_id="cam-b", source=Source.CAMERA, at=T0 + _minutes(1)),
        ]
    )
    assert _task(state).event_ids == ("e1", "e2")
    assert _task(state).sources == (Source.CAMERA,)


def test_same_category_at_another_place_is_another_task() -> None:
    here = decide(SlotState(), report("e1", place=YULONG), YULONG, CONFIG)
    there = decide(SlotState(), report("e2", place=JINSHUI), JINSHUI, CONFIG)
    assert slot_key(YULONG.key, "4001") != slot_key(JINSHUI.key, "4001")
    assert _task(here.state).task_id != _task(there.state).task_id
    assert slot_of_task(_task(there.state).task_id) == slot_key(JINSHUI.key, "4001")


def test_another_category_at_the_same_place_is_another_task() -> None:
    vending = decide(SlotState(), report("e1", category="4001"), YULONG, CONFIG)
    parking = decide(SlotState(), report("e2", category="4002"), YULONG, CONFIG)
    assert slot_key(YULONG.key, "4001") != slot_key(YULONG.key, "4002")
    assert _task(vending.state).task_id != _task(parking.state).task_id
    assert slot_of_task(_task(parking.state).task_id) == slot_key(YULONG.key, "4002")


# --- duplicates -----------------------------------------------------------------------------


@pytest.mark.parametrize("later", [_minutes(0), _minutes(5), timedelta(days=3)])
def test_the_same_device_and_event_again_changes_nothing(later: timedelta) -> None:
    first = report("e1", source=Source.CAMERA)
    state, _ = fold([first, report("e2", at=T0 + _minutes(1))])
    again = decide(state, first._replace(occurred_at=T0 + later), YULONG, CONFIG)
    assert again.result is Result.DUPLICATE
    assert again.changes == ()
    assert again.state == state


def test_a_replayed_first_report_does_not_open_a_second_task() -> None:
    state, (_, again) = fold([report("e1"), report("e1")])
    assert again.result is Result.DUPLICATE
    assert again.changes == ()
    assert _task(state).event_ids == ("e1",)


def test_the_same_event_id_from_another_device_is_not_a_duplicate() -> None:
    camera = report("evt-1", source=Source.CAMERA, device_id="cam-01")
    terminal = report("evt-1", source=Source.TERMINAL, device_id="term-01", at=T0 + _minutes(1))
    state, (_, second) = fold([camera, terminal])
    assert second.result is Result.MERGED
    assert [c.event.type for c in second.changes] == [TaskEventType.MERGED]
    assert _task(state).sources == (Source.CAMERA, Source.TERMINAL)


def test_a_report_of_the_open_task_is_a_duplicate_past_the_dedup_horizon() -> None:
    first = report("e1", source=Source.CAMERA)
    # The second report, days later, moves the slot's dedup horizon past the first one.
    state, _ = fold([first, report("e2", at=T0 + timedelta(days=3))])
    again = decide(state, first, YULONG, CONFIG)
    assert again.result is Result.DUPLICATE
    assert again.changes == ()
    assert _task(state).event_ids == ("e1", "e2")


# --- priority ------------------------------------------------------------------------------


def test_a_more_severe_report_raises_priority_and_a_milder_one_never_lowers_it() -> None:
    state, (_, raised, milder) = fold(
        [
            report("e1", severity=Severity.MINOR),
            report("e2", severity=Severity.EXTREME, at=T0 + _minutes(1)),
            report("e3", severity=Severity.MINOR, at=T0 + _minutes(2)),
        ]
    )
    task = _task(state)
    assert task.priority is Priority.P2
    assert [c.event.type for c in raised.changes] == [
        TaskEventType.MERGED,
        TaskEventType.PRIORITY_RAISED,
    ]
    assert [c.event.seq for c in raised.changes] == [3, 4]
    bump = raised.changes[-1]
    assert bump.task.priority is Priority.P2
    assert bump.event.priority is Priority.P2
    assert bump.event.detail == "P4 -> P2"
    assert [c.event.type for c in milder.changes] == [TaskEventType.MERGED]
    assert milder.changes[0].task.priority is Priority.P2
    assert task.event_ids == ("e1", "e2", "e3")
    assert state.seq == 5


# --- sensors -------------------------------------------------------------------------------


def test_readings_under_the_threshold_make_no_task() -> None:
    state, outcomes = fold([pm25(f"r{i}", 80.0, at=T0 + _minutes(i)) for i in range(5)])
    assert {o.result for o in outcomes} == {Result.BELOW}
    assert all(o.changes == () for o in outcomes)
    assert state.task is None


def test_a_single_spike_is_pending_and_makes_no_task() -> None:
    state, [outcome] = fold([pm25("r1", 400.0)])
    assert outcome.result is Result.PENDING
    assert outcome.changes == ()
    assert state.task is None
    track = state.track("aq-01")
    assert track is not None
    assert track.pending == ("r1",)


def test_a_sustained_crossing_opens_a_task_listing_every_reading_of_the_run() -> None:
    state, outcomes = fold([pm25(f"r{i}", 180.0, at=T0 + _minutes(i)) for i in range(1, 4)])
    assert [o.result for o in outcomes] == [Result.PENDING, Result.PENDING, Result.CREATED]
    task = _task(state)
    assert task.event_ids == ("r1", "r2", "r3")
    assert task.sources == (Source.SENSOR,)
    assert task.category == "2001"
    # A reading of the run sent again is a duplicate, not a new run.
    again = decide(state, pm25("r2", 180.0, at=T0 + _minutes(2)), YULONG, CONFIG)
    assert again.result is Result.DUPLICATE
    assert again.changes == ()


def test_a_second_sustained_run_joins_the_open_task() -> None:
    state, outcomes = fold([pm25(f"r{i}", 180.0, at=T0 + _minutes(i)) for i in range(1, 7)])
    assert outcomes[-1].result is Result.MERGED
    assert _task(state).event_ids == ("r1", "r2", "r3", "r4", "r5", "r6")


def test_a_spike_between_readings_under_never_becomes_a_task() -> None:
    values = [80.0, 400.0, 80.0, 400.0, 80.0, 400.0]
    state, outcomes = fold([pm25(f"r{i}", v, at=T0 + _minutes(i)) for i, v in enumerate(values)])
    assert state.task is None
    assert {o.result for o in outcomes} == {Result.BELOW, Result.PENDING}


@pytest.mark.parametrize(
    ("category", "reading"),
    [
        ("2001", SensorReading("pm10", 10.0, "ug/m3")),
        ("4005", SensorReading("tilt_deg", 12.5, "deg")),
    ],
    ids=["metric-differs-from-the-rule", "category-without-a-rule"],
)
def test_a_reading_the_category_rule_does_not_cover_is_a_plain_report(
    category: str, reading: SensorReading
) -> None:
    event = report("r1", category=category, source=Source.SENSOR, reading=reading)
    outcome = decide(SlotState(), event, YULONG, CONFIG)
    assert outcome.result is Result.CREATED
    assert _task(outcome.state).event_ids == ("r1",)
    assert outcome.state.sensors == ()


# --- the merge window and rebounds ----------------------------------------------------------


_CLOSED_AFTER = timedelta(minutes=20)


def _ended(
    status: Status = Status.CLOSED, closed_after: timedelta = _CLOSED_AFTER
) -> tuple[SlotState, Task]:
    """A slot whose task, opened at T0, ended ``closed_after`` later."""
    state, _ = fold([report("first")])
    task = replace(_task(state), status=status, closed_at=T0 + closed_after)
    return replace(state, task=task), task


@pytest.mark.parametrize("after", [_minutes(25), _minutes(30)], ids=["25m", "30m"])
def test_a_report_within_the_window_merges_into_a_closed_task(after: timedelta) -> None:
    state, closed = _ended()
    outcome = decide(state, report("late", at=T0 + after), YULONG, CONFIG)
    assert outcome.result is Result.MERGED
    task = _task(outcome.state)
    assert task.task_id == closed.task_id
    assert task.event_ids == ("first", "late")


def test_an_open_task_takes_reports_long_after_the_window() -> None:
    state, _ = fold([report("first")])
    outcome = decide(state, report("days-later", at=T0 + timedelta(days=3)), YULONG, CONFIG)
    assert outcome.result is Result.MERGED
    assert _task(outcome.state).event_ids == ("first", "days-later")


@pytest.mark.parametrize(
    "after_close",
    [_minutes(11), timedelta(days=2), timedelta(days=7)],
    ids=["11m", "2d", "7d-exactly"],
)
def test_a_report_after_the_window_within_seven_days_of_closing_is_a_rebound(
    after_close: timedelta,
) -> None:
    state, closed = _ended()  # closed at T0 + 20 min; the window ends at T0 + 30 min
    assert closed.closed_at is not None
    outcome = decide(state, report("again", at=closed.closed_at + after_close), YULONG, CONFIG)
    assert outcome.result is Result.CREATED
    task = _task(outcome.state)
    assert task.task_id != closed.task_id
    assert task.rebound_of == closed.task_id
    assert task.event_ids == ("again",)
    assert task.status is Status.DISPATCHED
    created = outcome.changes[0].event
    assert created.type is TaskEventType.CREATED
    assert created.seq == 1
    assert created.id == f"{task.task_id}:1"
    assert created.detail is not None
    assert "rebound" in created.detail
    assert closed.task_id in created.detail
    assert outcome.state.seq == 2


def test_a_replayed_report_of_the_closed_task_does_not_join_its_rebound() -> None:
    state, closed = _ended()
    state, _ = fold([report("again", at=T0 + timedelta(hours=2))], state=state)
    rebound = _task(state)
    assert rebound.rebound_of == closed.task_id
    replayed = decide(state, report("first"), YULONG, CONFIG)
    assert replayed.result is Result.DUPLICATE
    assert replayed.changes == ()
    assert replayed.state == state


def test_a_report_more_than_seven_days_after_closing_is_no_rebound() -> None:
    state, closed = _ended()
    assert closed.closed_at is not None
    at = closed.closed_at + timedelta(days=7, seconds=1)
    outcome = decide(state, report("again", at=at), YULONG, CONFIG)
    assert outcome.result is Result.CREATED
    assert _task(outcome.state).rebound_of is None
    assert outcome.changes[0].event.detail is None


@pytest.mark.parametrize("after", [_minutes(45), timedelta(days=2)])
def test_a_cancelled_task_never_yields_a_rebound(after: timedelta) -> None:
    state, cancelled = _ended(Status.CANCELLED)
    outcome = decide(state, report("again", at=T0 + after), YULONG, CONFIG)
    assert outcome.result is Result.CREATED
    task = _task(outcome.state)
    assert task.task_id != cancelled.task_id
    assert task.rebound_of is None


def test_a_report_of_before_the_close_arriving_late_joins_the_closed_task_not_a_rebound() -> None:
    state, closed = _ended(closed_after=timedelta(days=3))
    outcome = decide(state, report("seen-on-day-1", at=T0 + timedelta(days=1)), YULONG, CONFIG)
    assert outcome.result is Result.MERGED
    task = _task(outcome.state)
    assert task.task_id == closed.task_id
    assert task.status is Status.CLOSED
    assert task.rebound_of is None


def test_a_cancelled_task_takes_no_reports_even_inside_the_window() -> None:
    state, cancelled = _ended(Status.CANCELLED, closed_after=_minutes(5))
    outcome = decide(state, report("ten-minutes-in", at=T0 + _minutes(10)), YULONG, CONFIG)
    assert outcome.result is Result.CREATED
    assert _task(outcome.state).task_id != cancelled.task_id


def test_merge_config_defaults_follow_the_contract() -> None:
    assert CONFIG.merge_window == _minutes(30)
    assert CONFIG.rebound_horizon == timedelta(days=7)
    assert CONFIG.window_for(CATEGORIES["4001"]) == _minutes(30)
    assert MergeConfig(merge_window=_minutes(10)).window_for(CATEGORIES["4001"]) == _minutes(10)
    overridden = replace(CATEGORIES["4001"], merge_window_minutes=5)
    assert MergeConfig(merge_window=_minutes(10)).window_for(overridden) == _minutes(5)


def test_a_shorter_configured_window_opens_a_new_task_sooner() -> None:
    state, closed = _ended(closed_after=_minutes(5))
    late = report("late", at=T0 + _minutes(15))
    assert decide(state, late, YULONG, CONFIG).result is Result.MERGED
    short = decide(state, late, YULONG, MergeConfig(merge_window=_minutes(10)))
    assert short.result is Result.CREATED
    assert _task(short.state).rebound_of == closed.task_id


def test_a_category_window_overrides_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    table = dict(CATEGORIES)
    table["4001"] = replace(CATEGORIES["4001"], merge_window_minutes=5)
    monkeypatch.setattr("streams.domain.merge.CATEGORIES", table)
    state, closed = _ended(closed_after=_minutes(3))
    assert decide(state, report("soon", at=T0 + _minutes(5)), YULONG, CONFIG).result is (
        Result.MERGED
    )
    outcome = decide(state, report("late", at=T0 + _minutes(10)), YULONG, CONFIG)
    assert outcome.result is Result.CREATED
    assert _task(outcome.state).rebound_of == closed.task_id


# --- a full task ----------------------------------------------------------------------------


def test_a_task_listing_the_most_reports_refuses_another_and_keeps_its_slot() -> None:
    config = MergeConfig(max_task_reports=3)
    state, outcomes = fold([report(f"e{n}", at=T0 + _minutes(n)) for n in range(4)], config=config)
    assert [o.result for o in outcomes] == [Result.CREATED] + [Result.MERGED] * 2 + [Result.FULL]
    full = outcomes[-1]
    assert full.changes == ()
    assert full.state is outcomes[-2].state
    assert _task(state).event_ids == ("e0", "e1", "e2")
    # A repeat of a listed report is still a duplicate, not refused.
    assert decide(state, report("e1"), YULONG, config).result is Result.DUPLICATE


def test_a_full_task_refuses_late_reports_but_a_new_incident_opens_a_task() -> None:
    config = MergeConfig(max_task_reports=2)
    state, _ = fold([report("e0"), report("e1", at=T0 + _minutes(1))], config=config)
    closed_at = T0 + _minutes(5)
    state = replace(state, task=replace(_task(state), status=Status.CLOSED, closed_at=closed_at))
    # Before the close: it would join the closed task, which has no room.
    assert decide(state, report("late", at=T0 + _minutes(2)), YULONG, config).result is Result.FULL
    # After the close and past the merge window: a rebound, a task of its own.
    later = T0 + config.window_for(CATEGORIES["4001"]) + _minutes(1)
    outcome = decide(state, report("next", at=later), YULONG, config)
    assert outcome.result is Result.CREATED
    assert _task(outcome.state).rebound_of == _task(state).task_id


# --- task ids -------------------------------------------------------------------------------


def test_task_ids_are_deterministic() -> None:
    event = report("e1", source=Source.CAMERA)
    first = decide(SlotState(), event, YULONG, CONFIG)
    again = decide(SlotState(), event, YULONG, CONFIG)
    assert first == again
    slot = slot_key(YULONG.key, "4001")
    assert task_id_for(slot, "cam-01", "e1") == task_id_for(slot, "cam-01", "e1")
    assert task_id_for(slot, "cam-01", "e1") != task_id_for(slot, "cam-02", "e1")
    assert task_id_for(slot, "cam-01", "e1") != task_id_for(slot, "cam-01", "e2")


@pytest.mark.parametrize(
    "key",
    [
        "yulong-st",
        "road.with.dots",
        "road:with:colons",
        "郑东新区-1",
        "cell:1:2",
        "cell:-3845:11870",
    ],
)
@pytest.mark.parametrize("category", ["1001", "4001"])
def test_a_task_id_leads_back_to_its_slot(key: str, category: str) -> None:
    place = Place(key, None, None, None)
    outcome = decide(SlotState(), report("e1", category=category, place=place), place, CONFIG)
    task_id = _task(outcome.state).task_id
    assert slot_of_task(task_id) == slot_key(key, category)


@pytest.mark.parametrize("task_id", ["garbage", "", "~~", "a~~b", "~4001~abc", "a~4001~"])
def test_a_foreign_task_id_has_no_slot(task_id: str) -> None:
    assert slot_of_task(task_id) is None


# --- state on the wire ----------------------------------------------------------------------


def test_slot_state_survives_a_trip_through_json() -> None:
    state, _ = fold(
        [
            report("e1", source=Source.CAMERA),
            report("e2", at=T0 + _minutes(2), severity=Severity.EXTREME),
            pm25("r1", 180.0, at=T0 + _minutes(3), device_id="aq-02"),
            pm25("r2", 60.0, at=T0 + _minutes(4), device_id="aq-01"),
        ],
        place=CELL,
    )
    closed = replace(_task(state), status=Status.CLOSED, closed_at=T0 + _minutes(40))
    state = replace(state, task=closed)
    assert state.keys
    assert len(state.sensors) == 2
    wire: Any = loads(dumps(state.to_wire()))
    assert SlotState.from_wire(wire) == state
    assert SlotState.from_wire(loads(dumps(SlotState().to_wire()))) == SlotState()


# --- forgetting ------------------------------------------------------------------------------


def _closed_slot(closed_at: datetime) -> SlotState:
    state, _ = fold([report("e1")])
    return replace(state, task=replace(_task(state), status=Status.CLOSED, closed_at=closed_at))


_WEEK = CONFIG.rebound_horizon
_DEDUP = CONFIG.dedup_horizon


@pytest.mark.parametrize(
    ("state", "now", "expected"),
    [
        pytest.param(SlotState(), T0, True, id="empty"),
        pytest.param(fold([report("e1")])[0], T0 + 30 * _WEEK, False, id="open_task_never"),
        pytest.param(_closed_slot(T0), T0 + _WEEK, False, id="closed_within_rebound_horizon"),
        pytest.param(
            _closed_slot(T0), T0 + _WEEK + _minutes(1), True, id="closed_past_rebound_horizon"
        ),
        pytest.param(
            replace(
                _closed_slot(T0),
                keys={"dev\x1fe9": T0 + _WEEK},  # a key the task never took, still fresh
            ),
            T0 + _WEEK + _minutes(1),
            False,
            id="fresh_dedup_key",
        ),
        pytest.param(
            fold([pm25("r1", 180.0)], place=CELL)[0],
            T0 + _DEDUP - _minutes(1),
            False,
            id="sensor_run_within_dedup_horizon",
        ),
        pytest.param(
            fold([pm25("r1", 180.0)], place=CELL)[0],
            T0 + _DEDUP + _minutes(1),
            True,
            id="sensor_run_past_dedup_horizon",
        ),
    ],
)
def test_a_slot_is_forgettable_only_when_nothing_it_remembers_can_matter(
    state: SlotState, now: datetime, expected: bool
) -> None:
    assert forgettable(state, now, CONFIG) is expected


def test_a_forgotten_slot_decides_the_next_report_as_the_remembered_one_would() -> None:
    closed = _closed_slot(T0 + _minutes(30))
    later = report("e2", at=T0 + _WEEK + _minutes(31))
    now = later.occurred_at
    assert forgettable(closed, now, CONFIG)
    remembered, forgotten = (
        decide(closed, later, YULONG, CONFIG),
        decide(SlotState(), later, YULONG, CONFIG),
    )
    assert remembered.result is forgotten.result is Result.CREATED
    assert remembered.state.task == forgotten.state.task


# --- properties -----------------------------------------------------------------------------

_PLACES = (YULONG, JINSHUI, CELL)
_CATEGORIES = ("1003", "2004", "4001")  # fire, environment, citymgmt
_REPORTERS = (
    (Source.TERMINAL, "term-01"),
    (Source.TERMINAL, "term-02"),
    (Source.CAMERA, "cam-01"),
    (Source.DRONE, "drone-01"),
    (Source.HOTLINE, "hotline-01"),
)

_new_report = st.tuples(
    st.sampled_from(_PLACES),
    st.sampled_from(_CATEGORIES),
    st.sampled_from(_REPORTERS),
    st.none() | st.sampled_from(Severity),
    st.integers(min_value=0, max_value=30 * 60),
)


@st.composite
def report_sequences(draw: st.DrawFn) -> list[tuple[Place, Event]]:
    """Reports within one 30-minute window, some of them exact repeats of earlier ones.

    Event ids are unique across devices here; the same id from two devices is its own test.
    """
    steps = draw(
        st.lists(_new_report | st.integers(min_value=0, max_value=50), min_size=1, max_size=30)
    )
    out: list[tuple[Place, Event]] = []
    for n, step in enumerate(steps):
        if isinstance(step, int):
            if out:
                out.append(out[step % len(out)])
            continue
        place, category, (source, device_id), severity, offset = step
        event = report(
            f"{device_id}-e{n}",
            category=category,
            source=source,
            device_id=device_id,
            at=T0 + timedelta(seconds=offset),
            severity=severity,
            place=place,
        )
        out.append((place, event))
    return out


def run(
    pairs: Iterable[tuple[Place, Event]], states: dict[str, SlotState] | None = None
) -> tuple[dict[str, SlotState], list[Outcome]]:
    """Fold ``decide`` over events, keeping one state per slot as the stream processor does."""
    states = dict(states or {})
    outcomes = []
    for place, event in pairs:
        slot = slot_key(place.key, event.category)
        outcome = decide(states.get(slot, SlotState()), event, place, CONFIG)
        states[slot] = outcome.state
        outcomes.append(outcome)
    return states, outcomes


def _tasks(states: dict[str, SlotState]) -> list[Task]:
    return [s.task for s in states.values() if s.task is not None]


_PROPERTY = settings(max_examples=150, deadline=None)


@_PROPERTY
@given(report_sequences())
def test_replaying_the_whole_input_changes_nothing(pairs: list[tuple[Place, Event]]) -> None:
    states, _ = run(pairs)
    replayed, outcomes = run(pairs, states)
    assert all(o.changes == () for o in outcomes)
    assert all(o.result is Result.DUPLICATE for o in outcomes)
    assert replayed == states


@_PROPERTY
@given(st.data(), report_sequences())
def test_order_does_not_change_the_grouping_inside_a_window(
    data: st.DataObject, pairs: list[tuple[Place, Event]]
) -> None:
    shuffled = data.draw(st.permutations(pairs))

    def grouping(states: dict[str, SlotState]) -> set[Any]:
        # Task ids and created_at come from whichever report arrived first, so they may differ
        # between orders; which reports form a task, its sources and its priority may not.
        return {
            (frozenset(t.event_ids), frozenset(t.sources), t.priority, t.status)
            for t in _tasks(states)
        }

    assert grouping(run(shuffled)[0]) == grouping(run(pairs)[0])


@_PROPERTY
@given(report_sequences())
def test_every_accepted_report_is_in_exactly_one_task(pairs: list[tuple[Place, Event]]) -> None:
    states, outcomes = run(pairs)
    listed = [event_id for task in _tasks(states) for event_id in task.event_ids]
    for (_, event), outcome in zip(pairs, outcomes, strict=True):
        if outcome.result is Result.DUPLICATE:
            assert listed.count(event.event_id) <= 1
        else:
            assert outcome.result in (Result.CREATED, Result.MERGED)
            assert listed.count(event.event_id) == 1
    assert len(_tasks(states)) == len(states)


@_PROPERTY
@given(report_sequences())
def test_a_task_is_as_urgent_as_its_most_urgent_report(pairs: list[tuple[Place, Event]]) -> None:
    states, _ = run(pairs)
    by_id = {event.event_id: event for _, event in pairs}
    places = {place.key: place for place, _ in pairs}
    for task in _tasks(states):
        urgencies = [
            priority_of(by_id[i].domain, by_id[i].effective_severity) for i in task.event_ids
        ]
        most_urgent = urgencies[0]
        for priority in urgencies:
            most_urgent = higher(most_urgent, priority)
        assert higher(task.priority, most_urgent) is task.priority
        assert task.priority is most_urgent
        assert task.rework_count == 0
        assert task.rebound_of is None
        expected = Status.REGISTERED if places[task.place].chief_id is None else Status.DISPATCHED
        assert task.status is expected


_readings = st.lists(
    st.tuples(
        st.sampled_from([20.0, 150.0, 150.5, 151.0, 400.0]),
        st.integers(min_value=0, max_value=6 * 60),
    )
    | st.integers(min_value=0, max_value=50),
    min_size=1,
    max_size=40,
)


@_PROPERTY
@given(_readings)
def test_every_reading_over_the_threshold_is_in_a_task_pending_or_a_broken_run(
    steps: list[tuple[float, int] | int],
) -> None:
    rule = CATEGORIES["2001"].sensor
    assert rule is not None
    events: list[Event] = []
    at = T0
    for n, step in enumerate(steps):
        if isinstance(step, int):
            if events:
                events.append(events[step % len(events)])
            continue
        value, gap = step
        at += timedelta(seconds=gap)
        events.append(pm25(f"r{n:03d}", value, at=at))
    state, outcomes = fold(events)

    in_task = list(state.task.event_ids) if state.task is not None else []
    track = state.track("aq-01")
    pending = track.pending if track is not None else ()
    seen: set[str] = set()
    accepted: list[Event] = []
    for event, outcome in zip(events, outcomes, strict=True):
        if event.event_id in seen:
            assert outcome.result is Result.DUPLICATE
        else:
            seen.add(event.event_id)
            accepted.append(event)
    for n, event in enumerate(accepted):
        assert event.reading is not None
        where = in_task.count(event.event_id) + pending.count(event.event_id)
        if not rule.exceeded_by(event.reading.value):
            assert where == 0
        elif any(
            not rule.exceeded_by(later.reading.value)
            for later in accepted[n + 1 :]
            if later.reading is not None
        ):
            # A later reading under the threshold broke its run: if the run was not sustained
            # by then, it was a spike and makes no task.
            assert event.event_id not in pending
            assert where <= 1
        else:
            assert where == 1


def test_a_slot_knows_which_reports_joined_its_task() -> None:
    state, _ = fold([report("first"), report("second", source=Source.CAMERA)])
    assert state.in_task(report("first"))
    assert state.in_task(report("second", source=Source.CAMERA))
    assert not state.in_task(report("never-sent"))
    assert not state.in_task(report("first", device_id="another-device"))


def _prune_everything(
    keys: dict[str, datetime], at: datetime, horizon: timedelta
) -> dict[str, datetime]:
    """The dedup rule spelled out: keep the keys within ``horizon`` of the newest key or ``at``."""
    floor = max([at, *keys.values()]) - horizon
    return {k: t for k, t in keys.items() if t >= floor}


# Mostly a few minutes apart, so keys fall on the horizon's edge; sometimes days.
_minutes_apart = st.integers(-20, 20) | st.integers(-3 * 24 * 60, 3 * 24 * 60)


@settings(max_examples=300, deadline=None)
@given(
    ages=st.dictionaries(st.text(max_size=3), _minutes_apart, max_size=8),
    at=_minutes_apart,
    horizon_minutes=st.integers(0, 20) | st.integers(0, 3 * 24 * 60),
    zones=st.lists(st.sampled_from([0, 8 * 60, -330]), min_size=1, max_size=3),
)
def test_pruning_keeps_exactly_the_keys_within_the_dedup_horizon(
    ages: dict[str, int], at: int, horizon_minutes: int, zones: list[int]
) -> None:
    # The shortcut (nothing to forget: copy the keys) must give what the full filter gives.
    def instant(minutes: int, n: int) -> datetime:
        zone = timezone(_minutes(zones[n % len(zones)]))
        return (T0 + _minutes(minutes)).astimezone(zone)

    keys = {k: instant(m, n) for n, (k, m) in enumerate(ages.items())}
    horizon = _minutes(horizon_minutes)
    pruned, span = _prune(SlotState(keys=MappingProxyType(keys)), instant(at, 0), horizon)
    assert pruned == _prune_everything(keys, instant(at, 0), horizon)
    assert span == ((min(pruned.values()), max(pruned.values())) if pruned else None)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", "d"]), _minutes_apart),
        min_size=1,
        max_size=12,
    )
)
def test_a_slot_remembers_the_reports_of_the_dedup_horizon(reports: list[tuple[str, int]]) -> None:
    config = MergeConfig(dedup_horizon=timedelta(minutes=15))
    state = SlotState()
    remembered: dict[str, datetime] = {}
    for n, (device, minutes) in enumerate(reports):
        event = report(f"e-{n}", device_id=device, at=T0 + _minutes(minutes))
        if n % 2:
            # As restored from the changelog, which does not keep the keys' span.
            state = SlotState.from_wire(loads(dumps(state.to_wire())))
            assert state.keys_span is None
        state = decide(state, event, YULONG, config).state
        remembered[f"{device}\x1fe-{n}"] = event.occurred_at
        remembered = _prune_everything(remembered, event.occurred_at, config.dedup_horizon)
        remembered |= {f"{device}\x1fe-{n}": event.occurred_at}
        assert dict(state.keys) == remembered
        times = remembered.values()
        assert state.keys_span == (min(times), max(times))
