"""The simulator is reproducible, valid where it means to be, and dirty in the share asked for;
its people act on tasks in the GB/T 30428 order, at a demo's pace, seeded per task."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

import pytest

from schemas.codec import Rejection, decode_event, decode_feedback
from schemas.enums import Action, Domain, Priority, Source, Status
from schemas.json import dumps, loads
from schemas.task import Task
from streams.domain.merge import slot_key
from streams.domain.places import RoadIndex
from streams.domain.signatures import load_device_keys, signature_from_headers
from streams.registry import DEMO_REGISTRY, load_registry_file
from streams.settings import Settings
from streams.simulator import (
    Crew,
    Pace,
    Plan,
    SimulatorConfig,
    TaskView,
    demo_district,
    feedback_message,
    messages,
    plan_feedback,
    point_on_road,
)

CLOCK = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)


def _take(config: SimulatorConfig, n: int) -> list[bytes]:
    return [m.value for m in islice(messages(config, clock=lambda: CLOCK), n)]


def test_same_seed_same_traffic_and_another_seed_differs() -> None:
    assert _take(SimulatorConfig(seed=1), 200) == _take(SimulatorConfig(seed=1), 200)
    assert _take(SimulatorConfig(seed=1), 200) != _take(SimulatorConfig(seed=2), 200)


def test_clean_traffic_is_all_valid_on_its_own_topic() -> None:
    for message in islice(messages(SimulatorConfig(bad_ratio=0.0), clock=lambda: CLOCK), 2000):
        result = decode_event(message.value, now=CLOCK, topic_domain=message.domain)
        assert not isinstance(result, Rejection), result


def test_bad_ratio_is_respected_roughly() -> None:
    config = SimulatorConfig(bad_ratio=0.1, seed=3)
    results = [
        decode_event(m.value, now=CLOCK, topic_domain=m.domain)
        for m in islice(messages(config, clock=lambda: CLOCK), 5000)
    ]
    share = sum(isinstance(r, Rejection) for r in results) / len(results)
    assert 0.08 < share < 0.12


def test_count_bounds_the_stream() -> None:
    assert len(list(messages(SimulatorConfig(count=17)))) == 17


def test_simulated_reports_are_placed_on_the_demo_registry() -> None:
    index = RoadIndex(load_registry_file(DEMO_REGISTRY))
    kinds: Counter[str] = Counter()
    for message in islice(messages(SimulatorConfig(bad_ratio=0.0), clock=lambda: CLOCK), 4000):
        event = decode_event(message.value, now=CLOCK, topic_domain=message.domain)
        assert not isinstance(event, Rejection)
        location = event.location
        assert location.lat is not None and location.lon is not None
        found = index.nearest(location.lat, location.lon)
        if location.road_id is not None:
            assert event.source is not Source.SENSOR
            assert found is not None and found[1] < 1.0 and index.get(location.road_id)
            kinds["named"] += 1
        elif found is not None:
            assert event.source is Source.SENSOR and found[1] <= 30.0
            kinds["sensor"] += 1
        else:
            assert index.place_of(location).key.startswith("cell:")
            kinds["cell"] += 1
    assert 0.03 < kinds["cell"] / 4000 < 0.07
    assert kinds["named"] > kinds["sensor"] > 0


def test_reserved_slots_get_no_simulated_reports_and_the_stream_stays_seeded() -> None:
    reserved = frozenset({"yulong-st~4001", "longshan-st~3002"})
    config = SimulatorConfig(bad_ratio=0.0, reserved=reserved)
    index = RoadIndex(load_registry_file(DEMO_REGISTRY))
    for message in islice(messages(config, clock=lambda: CLOCK), 3000):
        event = decode_event(message.value, now=CLOCK, topic_domain=message.domain)
        assert not isinstance(event, Rejection)
        assert slot_key(index.place_of(event.location).key, event.category) not in reserved
    assert _take(config, 300) == _take(config, 300)


def test_a_point_on_a_road_is_on_it_and_fixed_sensors_are_where_they_report_from() -> None:
    district = demo_district()
    road = district.index.get("yulong-st")
    assert road is not None
    lat, lon = point_on_road(road)
    found = district.index.nearest(lat, lon)
    assert found is not None and found[0].road_id == "yulong-st" and found[1] < 1.0
    assert district.sensor_point("sen-longshan-st-02") is not None
    assert district.sensor_point("sen-nowhere-01") is None
    sensor_events = [
        loads(m.value)
        for m in islice(messages(SimulatorConfig(bad_ratio=0.0), clock=lambda: CLOCK), 2000)
        if m.key.startswith(b"sen-")
    ]
    for event in sensor_events[:50]:
        location = event["location"]
        assert district.sensor_point(event["device_id"]) == (location["lat"], location["lon"])


# The people: what a road chief or supervisor does with a task, and when.

SEEN = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)


def _task(status: Status = Status.DISPATCHED, **overrides: Any) -> Task:
    fields: dict[str, Any] = {
        "task_id": "yulong-st~4001~0123456789ab",
        "status": status,
        "domain": Domain.CITYMGMT,
        "category": "4001",
        "priority": Priority.P4,
        "place": "yulong-st",
        "road_id": "yulong-st",
        "community": "宇龙社区",
        "assignee": "chief-yulong",
        "created_at": SEEN,
        "updated_at": SEEN,
        "due_at": SEEN + timedelta(hours=2),
        "event_ids": ("sim-000000001",),
        "sources": (Source.CAMERA,),
    }
    return Task(**{**fields, **overrides})


def _delay(plan: Plan | None) -> float:
    assert plan is not None
    return (plan.due - SEEN).total_seconds()


def test_the_road_chief_accepts_then_handles_within_the_paced_delays() -> None:
    accept = plan_feedback(_task(Status.DISPATCHED), seen_at=SEEN)
    handle = plan_feedback(_task(Status.ACCEPTED), seen_at=SEEN)
    assert accept is not None and handle is not None
    assert (accept.action, accept.actor_id) == (Action.ACCEPT, "chief-yulong")
    assert (handle.action, handle.actor_id) == (Action.HANDLE, "chief-yulong")
    assert 5 <= _delay(accept) <= 20
    assert 10 <= _delay(handle) <= 40


def test_a_supervisor_verifies_and_sends_back_about_one_in_seven() -> None:
    plans = [
        plan_feedback(_task(Status.HANDLED, task_id=f"yulong-st~4001~{n:012x}"), seen_at=SEEN)
        for n in range(2000)
    ]
    assert all(p is not None and p.actor_id.startswith("supervisor-") for p in plans)
    assert all(5 <= _delay(p) <= 15 for p in plans)
    failed = sum(p is not None and p.action is Action.VERIFY_FAIL for p in plans)
    assert 0.12 < failed / len(plans) < 0.18


def test_after_the_last_allowed_rework_verification_passes() -> None:
    pace = Pace(verify_fail=1.0, max_reworks=2)
    first = plan_feedback(_task(Status.HANDLED), seen_at=SEEN, pace=pace)
    last = plan_feedback(_task(Status.HANDLED, rework_count=2), seen_at=SEEN, pace=pace)
    assert first is not None and first.action is Action.VERIFY_FAIL
    assert last is not None and last.action is Action.VERIFY_PASS


@pytest.mark.parametrize(
    "task",
    [
        _task(Status.REGISTERED, assignee=None),
        _task(Status.SUSPENDED),
        _task(Status.CLOSED),
        _task(Status.CANCELLED),
    ],
    ids=["registered", "suspended", "closed", "cancelled"],
)
def test_nobody_acts_on_tasks_waiting_for_a_dispatcher_parked_or_done(task: Task) -> None:
    assert plan_feedback(task, seen_at=SEEN) is None


def test_decisions_are_seeded_per_task() -> None:
    task = _task(Status.HANDLED)
    assert plan_feedback(task, seen_at=SEEN, seed=1) == plan_feedback(task, seen_at=SEEN, seed=1)
    others = {plan_feedback(task, seen_at=SEEN, seed=s) for s in range(20)}
    assert len(others) > 1


def test_the_feedback_message_is_what_the_contract_asks_for() -> None:
    plan = plan_feedback(_task(Status.ACCEPTED), seen_at=SEEN)
    assert plan is not None
    raw = feedback_message(plan, SEEN + timedelta(seconds=30))
    feedback = decode_feedback(raw)
    assert not isinstance(feedback, Rejection), feedback
    assert (feedback.task_id, feedback.action, feedback.actor_id) == (
        "yulong-st~4001~0123456789ab",
        Action.HANDLE,
        "chief-yulong",
    )
    assert feedback.at == SEEN + timedelta(seconds=30)
    assert set(loads(raw)) == {"task_id", "action", "actor_id", "at", "note"}


def test_the_crew_acts_once_per_stage_and_not_before_its_time() -> None:
    crew = Crew(seed=7)
    crew.observe(_task(Status.DISPATCHED), SEEN)
    assert crew.due(SEEN) == []
    (accept,) = crew.due(SEEN + timedelta(seconds=21))
    assert accept.action is Action.ACCEPT
    assert crew.due(SEEN + timedelta(seconds=60)) == [], "each plan is handed out once"
    # A merged report changes the task but not what the chief is doing about it.
    crew.observe(_task(Status.DISPATCHED, event_ids=("a", "b")), SEEN + timedelta(seconds=22))
    assert crew.due(SEEN + timedelta(seconds=60)) == []
    crew.observe(_task(Status.ACCEPTED), SEEN + timedelta(seconds=23))
    (handle,) = crew.due(SEEN + timedelta(seconds=64))
    assert handle.action is Action.HANDLE
    crew.observe(_task(Status.CLOSED), SEEN + timedelta(seconds=90))
    assert len(crew) == 0


def test_a_rework_or_a_reassignment_is_a_new_stage() -> None:
    crew = Crew(seed=7)
    crew.observe(_task(Status.DISPATCHED), SEEN)
    crew.due(SEEN + timedelta(seconds=21))
    crew.observe(_task(Status.DISPATCHED, rework_count=1), SEEN)
    assert [p.action for p in crew.due(SEEN + timedelta(seconds=21))] == [Action.ACCEPT]
    crew.observe(_task(Status.DISPATCHED, rework_count=1, assignee="chief-longshan"), SEEN)
    (plan,) = crew.due(SEEN + timedelta(seconds=21))
    assert plan.actor_id == "chief-longshan"


def test_the_crew_leaves_ignored_tasks_alone() -> None:
    crew = Crew(ignore=lambda task_id: task_id.startswith("yulong-st~4001~"))
    crew.observe(_task(Status.DISPATCHED), SEEN)
    assert crew.due(SEEN + timedelta(minutes=5)) == []


async def test_the_task_view_keeps_each_tasks_latest_state_and_wakes_a_waiter() -> None:
    seen: list[Status] = []
    view = TaskView(Settings.from_env({}), on_task=lambda task: seen.append(task.status))
    task_id = _task().task_id

    def accepted(tasks: Mapping[str, Task]) -> bool:
        return task_id in tasks and tasks[task_id].status is Status.ACCEPTED

    waiter = asyncio.create_task(view.wait(accepted, within=5))
    await asyncio.sleep(0)
    view.apply(task_id.encode(), dumps(_task(Status.DISPATCHED).to_wire()))
    view.apply(task_id.encode(), dumps(_task(Status.ACCEPTED).to_wire()))
    view.apply(b"broken", b"{not json")
    assert await waiter
    assert seen == [Status.DISPATCHED, Status.ACCEPTED]
    view.apply(task_id.encode(), None)
    assert view.tasks == {}
    assert not await view.wait(bool, within=0.05)


def test_devices_with_keys_sign_their_events_and_the_others_do_not() -> None:
    example = Path(__file__).resolve().parents[3] / "deploy" / "devices" / "keys.example.json"
    keys = load_device_keys(example)
    plain = list(islice(messages(SimulatorConfig(seed=5), clock=lambda: CLOCK), 5000))
    signed = list(islice(messages(SimulatorConfig(seed=5, keys=keys), clock=lambda: CLOCK), 5000))
    # Signing changes no message, only adds headers: the traffic stays seeded.
    assert [m.value for m in signed] == [m.value for m in plain]
    by_registered = [m for m in signed if m.key.decode() in keys]
    assert by_registered, "the example key file names no simulated device"
    for message in signed:
        device_id = message.key.decode()
        signature = signature_from_headers(message.headers)
        assert (signature is not None) == (device_id in keys)
        assert keys.verify(device_id, message.value, signature) is None
