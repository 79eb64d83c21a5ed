"""Scenario files: the shipped stories resolve to the tasks they tell of, with the ids the worker
will give them; a broken file or story is refused with a message naming the step."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas.codec import Rejection, decode_event, decode_feedback
from schemas.enums import Action, Source, Status
from schemas.json import loads
from streams.domain.merge import slot_key, task_id_for
from streams.scenario import (
    SCENARIO_DIR,
    FeedbackSpec,
    ScenarioError,
    find_scenario,
    load_scenario,
    outline,
    parse_duration,
    parse_scenario,
    resolve,
    script_for,
)
from streams.settings import Settings

ORIGIN = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)
BACKDATE = timedelta(days=2, hours=1)


def _vending() -> dict[str, Any]:
    return {
        "name": "stall",
        "steps": [
            {
                "id": "camera",
                "at": "0s",
                "event": {"source": "camera", "category": "4001", "road": "yulong-st"},
            },
            {
                "id": "officer",
                "at": "10s",
                "event": {"source": "terminal", "category": "4001", "road": "yulong-st"},
            },
            {"id": "accept", "at": "20s", "feedback": {"task": "camera", "action": "accept"}},
            {"id": "handle", "at": "30s", "feedback": {"task": "camera", "action": "handle"}},
            {"id": "verify", "at": "40s", "feedback": {"task": "camera", "action": "verify_pass"}},
        ],
        "expect": [{"task": "camera", "status": "closed", "sources": ["camera", "terminal"]}],
    }


def _resolve(data: dict[str, Any], run: str = "r1") -> Any:
    return resolve(parse_scenario(data, source="test.yaml"), origin=ORIGIN, run=run)


def test_the_shipped_vending_stall_is_one_task_closed_with_both_sources() -> None:
    script = resolve(load_scenario(SCENARIO_DIR / "vending-stall.yaml"), origin=ORIGIN, run="r1")
    (task_id,) = set(script.opened.values())
    device = "cam-yulong-st-03"
    assert task_id == task_id_for(slot_key("yulong-st", "4001"), device, "vending-stall.r1.camera")
    task = script.final[task_id]
    assert task.status is Status.CLOSED
    assert set(task.sources) == {Source.CAMERA, Source.TERMINAL}
    assert task.assignee == "chief-yulong"
    assert script.slots == {"yulong-st~4001"}


def test_the_shipped_bin_rebound_is_a_real_rebound_in_event_time() -> None:
    script = resolve(load_scenario(SCENARIO_DIR / "bin-rebound.yaml"), origin=ORIGIN, run="r1")
    first, again = script.opened["overflow"], script.opened["overflow-again"]
    # The third reading in a row makes the crossing sustained: it opens the task.
    slot = slot_key("longshan-st", "3002")
    assert first == task_id_for(slot, "sen-longshan-st-02", "bin-rebound.r1.overflow.3")
    assert script.final[first].status is Status.CLOSED
    assert script.final[again].rebound_of == first
    closed_at = script.final[first].closed_at
    assert closed_at is not None
    assert timedelta(days=2) < script.final[again].created_at - closed_at < timedelta(days=7)
    first_reading = loads(script.sends[0].value)
    assert datetime.fromisoformat(first_reading["occurred_at"]) == ORIGIN - BACKDATE
    assert "road_id" not in first_reading["location"], "a fixed sensor gives only its point"


@pytest.mark.parametrize("path", sorted(SCENARIO_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_message_is_one_the_worker_accepts(path: Path) -> None:
    script = resolve(load_scenario(path), origin=ORIGIN, run="r1")
    for send in script.sends:
        if send.topic == "city.feedback":
            feedback = decode_feedback(send.value)
            assert not isinstance(feedback, Rejection), feedback
            assert send.key == feedback.task_id.encode()
        else:
            event = decode_event(send.value, now=ORIGIN + timedelta(hours=1))
            assert not isinstance(event, Rejection), event
            assert send.topic == f"city.events.{event.domain.value}"
            assert send.key == event.device_id.encode()
    assert [s.offset for s in script.sends] == sorted(s.offset for s in script.sends)


def test_task_ids_depend_on_the_run_tag_only() -> None:
    one, same, other = (
        _resolve(_vending(), "r1"),
        _resolve(_vending(), "r1"),
        _resolve(_vending(), "r2"),
    )
    assert one.opened == same.opened
    assert one.sends == same.sends
    assert one.opened["camera"] != other.opened["camera"]


def test_fast_playback_puts_the_whole_story_in_the_past() -> None:
    scenario = load_scenario(SCENARIO_DIR / "vending-stall.yaml")
    now = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)
    fast = script_for(scenario, Settings.from_env({}), fast=True, run="r", now=now)
    paced = script_for(scenario, Settings.from_env({}), run="r", now=now)
    assert fast.origin == now - scenario.span
    assert paced.origin == now
    stamps = [
        datetime.fromisoformat(loads(s.value).get("occurred_at") or loads(s.value)["at"])
        for s in fast.sends
    ]
    assert max(stamps) == now


def test_feedback_defaults_its_actor_from_the_task() -> None:
    script = _resolve(_vending())
    actors = {
        loads(s.value)["action"]: loads(s.value)["actor_id"]
        for s in script.sends
        if s.topic == "city.feedback"
    }
    assert actors == {
        "accept": "chief-yulong",
        "handle": "chief-yulong",
        "verify_pass": "supervisor-01",
    }


def test_the_outline_says_what_each_step_does() -> None:
    lines = outline(_resolve(_vending()))
    assert "new task yulong-st~4001~" in lines[1]
    assert "merged into" in lines[2] and "camera+terminal" in lines[2]
    assert lines[-1].endswith("✓ as expected")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(0, 0), (90, 90), (2.5, 2.5), ("30s", 30), ("2m", 120), ("1h30m", 5400), ("2d1h", 176400)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["soon", "-5s", -5, "1x", "", True, None, "5s3"])
def test_bad_durations_are_refused(text: object) -> None:
    with pytest.raises(ScenarioError, match="at"):
        parse_duration(text, "at")


def _set(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``data`` with ``path`` (dots; numbers index lists) set, or removed for ...."""
    data = copy.deepcopy(data)
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    key: Any = int(last) if last.isdigit() else last
    if value is ...:
        del node[key]
    else:
        node[key] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("steps.1.evnt", {}, r"step 2 \('officer'\): unknown key 'evnt'"),
        ("steps.1.at", ..., r"step 2 \('officer'\): at: required"),
        ("steps.1.at", "ten", r"step 2 \('officer'\): at: must be a duration"),
        ("steps.1.at", "1h", r"step 3 \('accept'\): at 20s is before the end of step 2"),
        ("steps.1.id", "camera", r"step 2 \('camera'\): id: already used"),
        ("steps.1.id", "Officer 1", r"step 2: id: must be 1 to 40 of a-z"),
        ("steps.1.event.category", "9999", r"step 2 \('officer'\): event.category: '9999'"),
        ("steps.1.event.road", "main-st", r"step 2 \('officer'\): event.road: 'main-st' is not"),
        ("steps.1.event.source", "pigeon", r"step 2 \('officer'\): event: source: must be one"),
        ("steps.1.event.reading", 0.5, r"step 2 \('officer'\): event.reading: only a sensor"),
        ("steps.1.event.road", ..., r"step 2 \('officer'\): event: needs road or location"),
        ("steps.1.feedback", {}, r"step 2 \('officer'\): needs exactly one of event or feedback"),
        ("steps.2.feedback.task", "verify", r"step 3 \('accept'\): feedback.task: 'verify' is not"),
        ("steps.2.feedback.action", "approve", r"step 3 \('accept'\): feedback: action: must be"),
        (
            "steps.2.feedback.action",
            "handle",
            r"step 3 \('accept'\): the worker would refuse handle",
        ),
        (
            "steps.2.feedback.task",
            "officer",
            r"step 3 \('accept'\): feedback.task: step 'officer' opens no task",
        ),
        ("expect.0.status", "cancelled", r"expect 1 .* ends with status closed, not cancelled"),
        ("expect.0.task", "nobody", r"expect 1: task: 'nobody' is not a step"),
        ("name", "Stall!", r"the scenario: name: must be"),
        ("steps", [], r"the scenario: steps: required"),
    ],
)
def test_a_broken_scenario_is_refused_naming_the_step(path: str, value: Any, message: str) -> None:
    with pytest.raises(ScenarioError, match=message) as refused:
        _resolve(_set(_vending(), path, value))
    assert str(refused.value).startswith("test.yaml: ")


def test_a_sensor_story_checks_the_sustained_rule() -> None:
    data = {
        "name": "bins",
        "steps": [
            {
                "id": "spike",
                "at": 0,
                "event": {
                    "source": "sensor",
                    "device": "sen-longshan-st-02",
                    "category": "3002",
                    "reading": [0.95, 0.97],
                },
            },
            {"id": "accept", "at": 10, "feedback": {"task": "spike", "action": "accept"}},
        ],
    }
    with pytest.raises(ScenarioError, match=r"step 2 \('accept'\).*not sustained: 3 in a row"):
        _resolve(data)
    data["steps"][0]["event"]["reading"] = [0.95, 0.97, 0.99]
    assert _resolve(data).opened["spike"].startswith("longshan-st~3002~")


def test_readings_that_go_back_in_time_are_refused() -> None:
    data = {
        "name": "bins",
        "steps": [
            {
                "id": "now",
                "at": 0,
                "event": {
                    "source": "sensor",
                    "device": "sen-longshan-st-02",
                    "category": "3002",
                    "reading": 0.2,
                },
            },
            {
                "id": "before",
                "at": 5,
                "backdate": "1h",
                "event": {
                    "source": "sensor",
                    "device": "sen-longshan-st-02",
                    "category": "3002",
                    "reading": 0.3,
                },
            },
        ],
    }
    with pytest.raises(
        ScenarioError, match=r"step 2 \('before'\): the worker would drop the event as a repeat"
    ):
        _resolve(data)


def test_a_file_that_is_not_yaml_or_not_there_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(ScenarioError, match=r"broken\.yaml: not valid YAML"):
        load_scenario(broken)
    with pytest.raises(ScenarioError, match=r"no such file, nor a shipped scenario \(bin-rebound"):
        find_scenario("no-such-story")
    assert find_scenario("bin-rebound") == SCENARIO_DIR / "bin-rebound.yaml"


def test_a_file_round_trips_through_yaml(tmp_path: Path) -> None:
    path = tmp_path / "stall.yaml"
    path.write_text(yaml.safe_dump(_vending()))
    scenario = load_scenario(path)
    assert scenario.source == str(path)
    assert [s.id for s in scenario.steps] == ["camera", "officer", "accept", "handle", "verify"]
    accept = scenario.step("accept").action
    assert isinstance(accept, FeedbackSpec) and accept.action is Action.ACCEPT
    assert scenario.span == timedelta(seconds=40)
