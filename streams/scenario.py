"""Scripted stories for demos and tests: a YAML file of timed steps (reports from devices, feedback
from people) that :func:`resolve` turns into exact messages and :func:`play` sends to Kafka.

A scenario file (``deploy/scenarios/*.yaml``)::

    name: vending-stall                  # [a-z0-9-], part of every event id
    description: A stall on Yulong St, seen twice, handled once.
    steps:
      - id: camera                       # [a-z0-9-], unique; feedback and expect refer to it
        at: 0s                           # when to send, from the start: 90, 30s, 2m, 1h30m
        backdate: 2d1h                   # optional: timestamps this much before the send time
        event:
          source: camera                 # terminal, sensor, camera, drone or hotline
          category: "4001"               # the category table's code; the domain follows from it
          road: yulong-st                # a road of the demo registry (its id and a point on it)
          # or location: {lat: 34.72, lon: 113.78, road_id: ...}, or, for a fixed demo sensor
          # (device: sen-<road>-01..03), nothing: the sensor's installed point
          device: cam-yulong-st-03       # optional: <source>-<scenario name>
          officer: officer-012           # terminal only; optional: officer-001
          severity: severe               # optional
          description: ...               # optional
          reading: [0.92, 0.95, 0.98]    # sensor only: one value or a series (metric and unit
          every: 4s                      #   from the category), a series spaced by every (4s)
          evidence: true                 # optional; default: terminals, cameras and drones
      - id: accept
        at: 20s
        feedback:
          task: camera                   # the task that step 'camera' opened
          action: accept                 # accept, handle, verify_pass, verify_fail, suspend, ...
          actor: chief-yulong            # optional: the assignee for accept and handle,
                                         #   supervisor-01 for verify_*, dispatcher-01 otherwise
          note: ...                      # optional; assignee (dispatch), reason (cancel)
    expect:                              # optional: how the story must end
      - {task: camera, status: closed, sources: [camera, terminal], reports: 2}
      - {task: again, status: dispatched, rebound_of: camera, rework_count: 0}

Task ids are deterministic (:func:`~streams.domain.merge.task_id_for`), and event ids are
``<name>.<run>.<step>`` (``.1``, ``.2``, ... for a series), so :func:`resolve` knows every task id
before anything is sent: it plays the story through the worker's own pure rules (placing, merging,
sensor runs, the task state machine) on the demo registry. That also checks the story: a feedback
action the task's status would refuse, a step that opens no task, or an ``expect`` the story does
not meet is an error naming the step, before a message leaves. The prediction holds at places
where nothing was reported before and nothing else reports meanwhile (:func:`play` refuses places
that already have tasks; the simulator leaves a story's places, :attr:`Script.slots`, alone), on
a worker with the merge windows given (:func:`merge_config_of`).

:func:`play` sends each step at its time (``origin + at``) and waits for the worker to show the
step's effect on ``city.tasks.state`` before the next one, so a story played as fast as possible
(an origin in the past) still reaches the worker in its order.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, NamedTuple, NoReturn

from aiokafka import AIOKafkaProducer

from schemas.categories import CATEGORIES
from schemas.codec import Rejection, decode_event, decode_feedback
from schemas.enums import Action, Domain, Severity, Source, Status
from schemas.json import dumps
from schemas.task import Task
from streams.domain.merge import MergeConfig, Result, SlotState, decide, slot_key, slot_of_task
from streams.domain.tasks import Refused, on_feedback
from streams.exceptions import CitygridError
from streams.settings import Settings
from streams.simulator import (
    FEEDBACK_TOPIC,
    TaskView,
    demo_district,
    point_on_road,
)
from streams.topics import EVENT_TOPICS, kafka_client_options, topic_name

__all__ = [
    "SCENARIO_DIR",
    "EventSpec",
    "Expectation",
    "FeedbackSpec",
    "Scenario",
    "ScenarioError",
    "Script",
    "Send",
    "Step",
    "StepReport",
    "find_scenario",
    "load_scenario",
    "merge_config_of",
    "outline",
    "parse_duration",
    "parse_scenario",
    "play",
    "resolve",
    "run_tag",
    "script_for",
    "tell",
]

logger = logging.getLogger(__name__)

SCENARIO_DIR: Final = Path(__file__).resolve().parent.parent / "deploy" / "scenarios"
"""The scenarios shipped with the project."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?[dhms])+$")
_UNITS: Final = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_DEFAULT_EVERY: Final = timedelta(seconds=4)
_DEFAULT_OFFICER: Final = "officer-001"
_SUPERVISOR: Final = "supervisor-01"
_DISPATCHER: Final = "dispatcher-01"
_WITH_EVIDENCE: Final = frozenset({Source.TERMINAL, Source.CAMERA, Source.DRONE})

_TOP_KEYS: Final = ("name", "description", "steps", "expect")
_STEP_KEYS: Final = ("id", "at", "backdate", "event", "feedback")
_EVENT_KEYS: Final = (
    "source", "category", "road", "location", "device", "officer", "severity", "description",
    "reading", "every", "evidence",
)  # fmt: skip
_LOCATION_KEYS: Final = ("road_id", "lat", "lon")
_FEEDBACK_KEYS: Final = ("task", "action", "actor", "note", "assignee", "reason")
_EXPECT_KEYS: Final = ("task", "status", "sources", "reports", "rework_count", "rebound_of")


class ScenarioError(CitygridError):
    """A scenario file is unreadable or invalid, or its story did not play out as written."""


def _fail(where: str, detail: str) -> NoReturn:
    raise ScenarioError(f"{where}: {detail}")


def parse_duration(value: object, where: str = "duration") -> timedelta:
    """A duration written as seconds (``90``, ``2.5``) or with units (``30s``, ``1h30m``,
    ``2d1h``); never negative."""
    if isinstance(value, bool):
        _fail(where, f"must be a duration such as 30s, 2m or 2d1h, got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            _fail(where, f"must not be negative, got {value}")
        return timedelta(seconds=value)
    text = value.replace(" ", "") if isinstance(value, str) else ""
    if not _DURATION.fullmatch(text):
        _fail(where, f"must be a duration such as 30s, 2m or 2d1h, got {value!r}")
    return timedelta(
        seconds=sum(float(n) * _UNITS[unit] for n, unit in _DURATION_PART.findall(text))
    )


def _seconds(delta: timedelta) -> str:
    return f"{delta.total_seconds():g}s"


@dataclass(frozen=True, slots=True)
class EventSpec:
    """A report as the scenario writes it; the event id and timestamps come at :func:`resolve`."""

    source: Source
    category: str
    device_id: str
    road_id: str | None
    lat: float | None
    lon: float | None
    officer_id: str | None = None
    severity: Severity | None = None
    description: str | None = None
    readings: tuple[float, ...] = ()
    """A sensor's values, one event each; empty for other sources."""
    every: timedelta = _DEFAULT_EVERY
    evidence: bool = False

    @property
    def domain(self) -> Domain:
        return CATEGORIES[self.category].domain


@dataclass(frozen=True, slots=True)
class FeedbackSpec:
    """An action on the task another step opened."""

    task: str
    """The id of the step whose report opened the task."""
    action: Action
    actor_id: str | None = None
    """None: the task's assignee for accept and handle, a supervisor or a dispatcher otherwise."""
    note: str | None = None
    assignee: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One step of the story: a report (one event, or a sensor's series) or a feedback action."""

    id: str
    number: int
    """Its position in the file, from 1."""
    at: timedelta
    backdate: timedelta
    action: EventSpec | FeedbackSpec

    @property
    def where(self) -> str:
        """How error messages name the step."""
        return f"step {self.number} ({self.id!r})"

    @property
    def offsets(self) -> tuple[timedelta, ...]:
        """When each of the step's messages is sent, from the start."""
        action = self.action
        if isinstance(action, EventSpec) and len(action.readings) > 1:
            return tuple(self.at + i * action.every for i in range(len(action.readings)))
        return (self.at,)


@dataclass(frozen=True, slots=True)
class Expectation:
    """How one of the story's tasks must end."""

    number: int
    task: str
    """The id of the step that opened it."""
    status: Status | None = None
    sources: frozenset[Source] | None = None
    reports: int | None = None
    """How many event ids the task lists."""
    rework_count: int | None = None
    rebound_of: str | None = None
    """The step that opened the task this one rebounds, when ``checks_rebound``."""
    checks_rebound: bool = False

    def mismatch(self, task: Task, task_of: Mapping[str, str]) -> str | None:
        """What in ``task`` differs from this expectation, or None."""
        problems = []
        if self.status is not None and task.status is not self.status:
            problems.append(f"status {task.status.value}, not {self.status.value}")
        if self.sources is not None and frozenset(task.sources) != self.sources:
            got = ", ".join(s.value for s in task.sources)
            want = ", ".join(sorted(s.value for s in self.sources))
            problems.append(f"sources {got}, not {want}")
        if self.reports is not None and len(task.event_ids) != self.reports:
            problems.append(f"{len(task.event_ids)} reports, not {self.reports}")
        if self.rework_count is not None and task.rework_count != self.rework_count:
            problems.append(f"rework_count {task.rework_count}, not {self.rework_count}")
        if self.checks_rebound:
            want_id = None if self.rebound_of is None else task_of.get(self.rebound_of)
            if task.rebound_of != want_id:
                want = "no rebound" if want_id is None else f"a rebound of {want_id}"
                problems.append(f"rebound_of {task.rebound_of}, not {want}")
        return "; ".join(problems) or None


@dataclass(frozen=True, slots=True)
class Scenario:
    """A validated scenario file."""

    name: str
    description: str
    source: str
    """The file it came from, for messages."""
    steps: tuple[Step, ...]
    expect: tuple[Expectation, ...] = ()

    @property
    def span(self) -> timedelta:
        """From the first step's start to the last message."""
        return max(offset for step in self.steps for offset in step.offsets)

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)


def load_scenario(path: Path) -> Scenario:
    """Read and validate scenario file ``path`` (YAML).

    Raises:
        ScenarioError: the file cannot be read, is not YAML, or breaks a rule; the message names
            the file and the step (or top-level key) at fault.
    """
    try:
        import yaml  # type: ignore[import-untyped]  # noqa: PLC0415 - PyYAML ships no types
    except ModuleNotFoundError:
        raise ScenarioError("scenario files need PyYAML (pip install pyyaml)") from None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from None
    return parse_scenario(data, source=str(path))


def _keys(obj: object, allowed: Sequence[str], where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        _fail(where, f"must be a mapping with keys {', '.join(allowed)}")
    unknown = [str(k) for k in obj if k not in allowed]
    if unknown:
        _fail(where, f"unknown key {unknown[0]!r} (expected: {', '.join(allowed)})")
    return obj


def _text(obj: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            _fail(where, f"{key}: required")
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool) or value == "":
        _fail(where, f"{key}: must be a non-empty string, got {value!r}")
    return str(value)


def _name(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = _text(obj, key, where, required=True)
    if value is None or not _NAME.fullmatch(value):
        _fail(where, f"{key}: must be 1 to 40 of a-z, 0-9 and '-', got {value!r}")
    return value


def _choice(obj: Mapping[str, Any], key: str, kind: type[Any], where: str) -> Any:
    value = obj.get(key)
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(m.value for m in kind)
        _fail(where, f"{key}: must be one of {choices}, got {value!r}")


def _category(obj: Mapping[str, Any], where: str) -> str:
    value = obj.get("category")
    if value is None:
        _fail(where, "event.category: required")
    # YAML reads an unquoted 4001 as a number.
    code = f"{value:04d}" if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(code, str) or code not in CATEGORIES:
        _fail(where, f"event.category: {value!r} is not in the category table")
    return code


def _readings(obj: Mapping[str, Any], source: Source, code: str, where: str) -> tuple[float, ...]:
    value = obj.get("reading")
    if source is not Source.SENSOR:
        if value is not None:
            _fail(where, "event.reading: only a sensor sends readings")
        return ()
    if value is None:
        _fail(where, "event.reading: required for a sensor (one value or a list)")
    if CATEGORIES[code].sensor is None:
        sensed = ", ".join(c.code for c in CATEGORIES.values() if c.sensor is not None)
        _fail(
            where, f"event.reading: category {code} has no sensor metric (those that do: {sensed})"
        )
    values = value if isinstance(value, list) else [value]
    if not values or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    ):
        _fail(
            where, f"event.reading: must be a number or a non-empty list of numbers, got {value!r}"
        )
    return tuple(float(v) for v in values)


def _location(
    obj: Mapping[str, Any], device_id: str, where: str
) -> tuple[str | None, float | None, float | None]:
    district = demo_district()
    road, location = obj.get("road"), obj.get("location")
    if road is not None and location is not None:
        _fail(where, "event: give road or location, not both")
    if road is not None:
        found = district.index.get(str(road))
        if found is None:
            known = ", ".join(r.road_id for r in district.roads)
            _fail(where, f"event.road: {road!r} is not a road of the demo registry ({known})")
        return (found.road_id, *point_on_road(found))
    if location is not None:
        fields = _keys(location, _LOCATION_KEYS, f"{where}: event.location")
        road_id = _text(fields, "road_id", f"{where}: event.location")
        point = fields.get("lat"), fields.get("lon")
        if (point[0] is None) != (point[1] is None) or (road_id is None and point[0] is None):
            _fail(where, "event.location: needs road_id, or lat and lon, or all three")
        for key, number in zip(("lat", "lon"), point, strict=True):
            if number is not None and (
                not isinstance(number, int | float) or isinstance(number, bool)
            ):
                _fail(where, f"event.location.{key}: must be a number, got {number!r}")
        return road_id, point[0], point[1]
    installed = district.sensor_point(device_id)
    if installed is None:
        _fail(
            where,
            "event: needs road or location (or device naming a fixed sensor of the demo, "
            "sen-<road>-01 to -03)",
        )
    return None, *installed


def _event(obj: object, name: str, where: str) -> EventSpec:
    fields = _keys(obj, _EVENT_KEYS, f"{where}: event")
    source: Source = _choice(fields, "source", Source, f"{where}: event")
    code = _category(fields, where)
    device_id = _text(fields, "device", where) or f"{source.value[:3]}-{name}"
    road_id, lat, lon = _location(fields, device_id, where)
    readings = _readings(fields, source, code, where)
    every = _DEFAULT_EVERY
    if fields.get("every") is not None:
        if len(readings) < 2:  # noqa: PLR2004 - a series has at least two readings
            _fail(where, "event.every: only for a series of readings (reading: [a, b, ...])")
        every = parse_duration(fields["every"], f"{where}: event.every")
    severity = fields.get("severity")
    evidence = fields.get("evidence", source in _WITH_EVIDENCE)
    if not isinstance(evidence, bool):
        _fail(where, f"event.evidence: must be true or false, got {evidence!r}")
    officer = _text(fields, "officer", where)
    return EventSpec(
        source=source,
        category=code,
        device_id=device_id,
        road_id=road_id,
        lat=lat,
        lon=lon,
        officer_id=officer or (_DEFAULT_OFFICER if source is Source.TERMINAL else None),
        severity=None if severity is None else _choice(fields, "severity", Severity, where),
        description=_text(fields, "description", where),
        readings=readings,
        every=every,
        evidence=evidence,
    )


def _feedback(obj: object, earlier: Sequence[str], where: str) -> FeedbackSpec:
    fields = _keys(obj, _FEEDBACK_KEYS, f"{where}: feedback")
    task = _text(fields, "task", f"{where}: feedback", required=True)
    if task not in earlier:
        _fail(where, f"feedback.task: {task!r} is not an earlier step")
    action: Action = _choice(fields, "action", Action, f"{where}: feedback")
    assignee = _text(fields, "assignee", where)
    if action is Action.DISPATCH and assignee is None:
        _fail(where, "feedback.assignee: required for dispatch")
    return FeedbackSpec(
        task=str(task),
        action=action,
        actor_id=_text(fields, "actor", where),
        note=_text(fields, "note", where),
        assignee=assignee,
        reason=_text(fields, "reason", where),
    )


def _step(obj: object, number: int, name: str, previous: Sequence[Step]) -> Step:
    where = f"step {number}"
    if isinstance(obj, dict) and isinstance(obj.get("id"), str):
        where = f"step {number} ({obj['id']!r})"
    fields = _keys(obj, _STEP_KEYS, where)
    step_id = _name(fields, "id", f"step {number}")
    where = f"step {number} ({step_id!r})"
    if any(s.id == step_id for s in previous):
        _fail(where, "id: already used by an earlier step")
    if "at" not in fields:
        _fail(where, "at: required (a time from the start, such as 0s or 30s)")
    at = parse_duration(fields["at"], f"{where}: at")
    backdate = parse_duration(fields.get("backdate", 0), f"{where}: backdate")
    if previous and at < previous[-1].offsets[-1]:
        last = previous[-1]
        _fail(
            where,
            f"at {_seconds(at)} is before the end of {last.where} ({_seconds(last.offsets[-1])});"
            " steps run in order",
        )
    has_event, has_feedback = fields.get("event") is not None, fields.get("feedback") is not None
    if has_event == has_feedback:
        _fail(where, "needs exactly one of event or feedback")
    action: EventSpec | FeedbackSpec = (
        _event(fields["event"], name, where)
        if has_event
        else _feedback(fields["feedback"], [s.id for s in previous], where)
    )
    return Step(step_id, number, at, backdate, action)


def _expectation(obj: object, number: int, steps: Sequence[Step]) -> Expectation:
    where = f"expect {number}"
    fields = _keys(obj, _EXPECT_KEYS, where)
    ids = [s.id for s in steps]
    task = _text(fields, "task", where, required=True)
    if task not in ids:
        _fail(where, f"task: {task!r} is not a step")
    status = fields.get("status")
    sources = fields.get("sources")
    if sources is not None and not isinstance(sources, list):
        _fail(where, f"sources: must be a list such as [camera, terminal], got {sources!r}")
    counts: dict[str, int | None] = {}
    for key in ("reports", "rework_count"):
        value = fields.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            _fail(where, f"{key}: must be a whole number, got {value!r}")
        counts[key] = value
    rebound_of = fields.get("rebound_of")
    if rebound_of is not None and rebound_of not in ids:
        _fail(where, f"rebound_of: {rebound_of!r} is not a step")
    return Expectation(
        number=number,
        task=str(task),
        status=None if status is None else _choice(fields, "status", Status, where),
        sources=None
        if sources is None
        else frozenset(_choice({"sources": s}, "sources", Source, where) for s in sources),
        reports=counts["reports"],
        rework_count=counts["rework_count"],
        rebound_of=rebound_of,
        checks_rebound="rebound_of" in fields,
    )


def parse_scenario(data: object, *, source: str = "<scenario>") -> Scenario:
    """Validate a scenario already read from YAML (``source`` names it in messages).

    The story itself (which step opens which task, whether each action is allowed) is checked by
    :func:`resolve`.
    """
    try:
        fields = _keys(data, _TOP_KEYS, "the scenario")
        name = _name(fields, "name", "the scenario")
        steps_data = fields.get("steps")
        if not isinstance(steps_data, list) or not steps_data:
            _fail("the scenario", "steps: required, a non-empty list")
        steps: list[Step] = []
        for number, raw in enumerate(steps_data, start=1):
            steps.append(_step(raw, number, name, steps))
        expect_data = fields.get("expect") or []
        if not isinstance(expect_data, list):
            _fail("the scenario", "expect: must be a list")
        expect = tuple(
            _expectation(raw, number, steps) for number, raw in enumerate(expect_data, start=1)
        )
        description = _text(fields, "description", "the scenario") or ""
    except ScenarioError as exc:
        raise ScenarioError(f"{source}: {exc}") from None
    return Scenario(name, description.strip(), source, tuple(steps), expect)


class Send(NamedTuple):
    """One message of the story."""

    step: str
    offset: timedelta
    """When to send it, from the start."""
    topic: str
    """The contract topic, before the deployment's prefix."""
    key: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class Script:
    """A scenario made exact for one run: its messages and the tasks they should make."""

    scenario: Scenario
    run: str
    origin: datetime
    """The start: a step's timestamps are ``origin + at - backdate``; it is sent at
    ``origin + at`` or as soon after as the worker has shown the steps before it."""
    sends: tuple[Send, ...]
    opened: Mapping[str, str]
    """Step id to the id of the task its report opened."""
    effects: Mapping[str, tuple[Task, ...]]
    """Step id to the tasks it changes, as they should look after it."""
    final: Mapping[str, Task]
    """Task id to the task's state at the end of the story."""
    slots: frozenset[str]
    """The slots (``place~category``) the story reports at."""

    def describe(self, step: Step) -> str:
        """One line on what ``step`` does, for people watching the story."""
        action = step.action
        tasks = self.effects[step.id]
        if isinstance(action, FeedbackSpec):
            (task,) = tasks
            text = f"{action.action.value} → {task.task_id} {task.status.value}"
            if action.action is Action.VERIFY_FAIL:
                text += f" (rework {task.rework_count})"
            return text
        rule = CATEGORIES[action.category].sensor
        if action.readings and rule is not None:
            values = ", ".join(f"{v:g}" for v in action.readings)
            text = f"{action.device_id} reads {rule.metric} {values}"
            if not tasks:
                over = any(rule.exceeded_by(v) for v in action.readings)
                return text + (" (not sustained yet)" if over else " (under the threshold)")
        else:
            where = action.road_id or f"{action.lat},{action.lon}"
            text = f"{action.source.value} {action.device_id} reports {action.category} on {where}"
        parts = []
        for task in tasks:
            if self.opened.get(step.id) == task.task_id:
                part = f"new task {task.task_id} {task.status.value}"
                if task.assignee:
                    part += f" to {task.assignee}"
                if task.rebound_of:
                    part += f", a REBOUND of {task.rebound_of}"
            else:
                sources = "+".join(s.value for s in task.sources)
                part = f"merged into {task.task_id} ({len(task.event_ids)} reports: {sources})"
            parts.append(part)
        return " → ".join([text, *parts])


def script_for(
    scenario: Scenario,
    settings: Settings,
    *,
    fast: bool = False,
    run: str | None = None,
    now: datetime | None = None,
) -> Script:
    """:func:`resolve` for a playback starting ``now``: at the scripted times, or with ``fast``
    as fast as the worker follows, as if the story had begun ``scenario.span`` ago (so no
    timestamp lies in the future)."""
    now = now or datetime.now(UTC)
    origin = now - scenario.span if fast else now
    return resolve(
        scenario, origin=origin, run=run or run_tag(now), config=merge_config_of(settings)
    )


def run_tag(now: datetime | None = None) -> str:
    """The default run tag: the start time, so each run's event ids are new to the worker."""
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


def merge_config_of(settings: Settings) -> MergeConfig:
    """The merge windows a worker with ``settings`` applies. Time limits and the calendar only
    move deadlines, which a story does not depend on, so they are left at their defaults."""
    return MergeConfig(
        merge_window=timedelta(seconds=settings.merge_window),
        rebound_horizon=timedelta(seconds=settings.rebound_horizon),
        dedup_horizon=timedelta(seconds=settings.dedup_horizon),
        max_task_reports=settings.max_task_reports,
    )


def _event_message(
    scenario: Scenario, step: Step, spec: EventSpec, *, run: str, index: int, at: datetime
) -> dict[str, Any]:
    event_id = f"{scenario.name}.{run}.{step.id}"
    if len(spec.readings) > 1:
        event_id += f".{index + 1}"
    location: dict[str, Any] = {}
    if spec.road_id is not None:
        location["road_id"] = spec.road_id
    if spec.lat is not None and spec.lon is not None:
        location["lat"], location["lon"] = spec.lat, spec.lon
    message: dict[str, Any] = {
        "event_id": event_id,
        "domain": spec.domain.value,
        "source": spec.source.value,
        "device_id": spec.device_id,
        "category": spec.category,
        "occurred_at": at.isoformat(),
        "location": location,
    }
    if spec.officer_id is not None:
        message["officer_id"] = spec.officer_id
    if spec.severity is not None:
        message["severity"] = spec.severity.value
    if spec.description is not None:
        message["description"] = spec.description
    rule = CATEGORIES[spec.category].sensor
    if spec.readings and rule is not None:
        message["reading"] = {
            "metric": rule.metric,
            "value": spec.readings[index],
            "unit": rule.unit,
        }
    if spec.evidence:
        digest = hashlib.sha256(f"{spec.device_id}/{event_id}".encode()).hexdigest()
        message["evidence"] = [{"sha256": digest, "media_type": "image/jpeg"}]
    return message


def _default_actor(action: Action, task: Task) -> str | None:
    if action in (Action.ACCEPT, Action.HANDLE):
        return task.assignee
    if action in (Action.VERIFY_PASS, Action.VERIFY_FAIL):
        return _SUPERVISOR
    return _DISPATCHER


class _Story:
    """The worker's pure rules applied to the story, step by step."""

    def __init__(self, scenario: Scenario, origin: datetime, run: str, config: MergeConfig) -> None:
        self.scenario = scenario
        self.origin = origin
        self.run = run
        self.config = config
        self.slots: dict[str, SlotState] = {}
        self.opened: dict[str, str] = {}
        self.tasks: dict[str, Task] = {}
        self.sends: list[Send] = []

    def report(self, step: Step, spec: EventSpec) -> dict[str, Task]:
        changed: dict[str, Task] = {}
        index = demo_district().index
        for i, offset in enumerate(step.offsets):
            at = self.origin + offset - step.backdate
            raw = dumps(_event_message(self.scenario, step, spec, run=self.run, index=i, at=at))
            what = f"reading {i + 1}" if len(spec.readings) > 1 else "the event"
            event = decode_event(raw, now=at, topic_domain=spec.domain)
            if isinstance(event, Rejection):
                _fail(
                    step.where,
                    f"the worker would dead-letter {what} ({event.reason}): {event.detail}",
                )
            place = index.place_of(event.location)
            slot = slot_key(place.key, event.category)
            outcome = decide(self.slots.get(slot, SlotState()), event, place, self.config)
            if outcome.result is Result.DUPLICATE:
                _fail(
                    step.where,
                    f"the worker would drop {what} as a repeat (a device's reports must move "
                    "forward in time)",
                )
            self.slots[slot] = outcome.state
            changed.update((c.task.task_id, c.task) for c in outcome.changes)
            if outcome.result is Result.CREATED and outcome.state.task is not None:
                opened = outcome.state.task.task_id
                if self.opened.get(step.id, opened) != opened:
                    _fail(step.where, "opens two tasks; feedback could not tell them apart")
                self.opened[step.id] = opened
            self.sends.append(
                Send(step.id, offset, EVENT_TOPICS[spec.domain], spec.device_id.encode(), raw)
            )
        return changed

    def act(self, step: Step, spec: FeedbackSpec) -> dict[str, Task]:
        task_id = self.opened.get(spec.task)
        if task_id is None:
            _fail(
                step.where,
                f"feedback.task: step {spec.task!r} opens no task (it merges into another, or "
                "its readings are under the threshold or not sustained: 3 in a row are needed)",
            )
        # The id was made by task_id_for, so it names the slot that opened it.
        slot = str(slot_of_task(task_id))
        state = self.slots[slot]
        current = state.task or self.tasks[task_id]
        actor = spec.actor_id or _default_actor(spec.action, current)
        if actor is None:
            _fail(step.where, "feedback.actor: required, the task has no assignee")
        at = self.origin + step.at - step.backdate
        message: dict[str, Any] = {
            "task_id": task_id,
            "action": spec.action.value,
            "actor_id": actor,
            "at": at.isoformat(),
        }
        optional = {"note": spec.note, "assignee": spec.assignee, "reason": spec.reason}
        message.update({k: v for k, v in optional.items() if v is not None})
        raw = dumps(message)
        feedback = decode_feedback(raw)
        if isinstance(feedback, Rejection):
            _fail(step.where, f"the worker would dead-letter the feedback: {feedback.detail}")
        outcome = on_feedback(state, feedback, self.config)
        if isinstance(outcome, Refused):
            _fail(step.where, f"the worker would refuse {spec.action.value}: {outcome.detail}")
        self.slots[slot] = outcome.state
        self.sends.append(Send(step.id, step.at, FEEDBACK_TOPIC, task_id.encode(), raw))
        return {c.task.task_id: c.task for c in outcome.changes}


def resolve(
    scenario: Scenario,
    *,
    origin: datetime,
    run: str,
    config: MergeConfig | None = None,
) -> Script:
    """Make ``scenario`` exact for one run starting at ``origin``, tagged ``run``.

    Raises:
        ScenarioError: the story does not work as written (the message names the step): the
            worker would refuse a message, a feedback step's task is never opened, or an
            ``expect`` entry is not met.
    """
    story = _Story(scenario, origin, run, config or MergeConfig())
    effects: dict[str, tuple[Task, ...]] = {}
    try:
        for step in scenario.steps:
            action = step.action
            changed = (
                story.report(step, action)
                if isinstance(action, EventSpec)
                else story.act(step, action)
            )
            effects[step.id] = tuple(changed.values())
            story.tasks.update(changed)
        for expectation in scenario.expect:
            where = f"expect {expectation.number} (the task of step {expectation.task!r})"
            task_id = story.opened.get(expectation.task)
            if task_id is None:
                _fail(where, f"step {expectation.task!r} opens no task")
            problem = expectation.mismatch(story.tasks[task_id], story.opened)
            if problem:
                _fail(where, f"the story as written ends with {problem}")
    except ScenarioError as exc:
        raise ScenarioError(f"{scenario.source}: {exc}") from None
    return Script(
        scenario=scenario,
        run=run,
        origin=origin,
        sends=tuple(story.sends),
        opened=MappingProxyType(dict(story.opened)),
        effects=MappingProxyType(effects),
        final=MappingProxyType(dict(story.tasks)),
        slots=frozenset(story.slots),
    )


def _shows(live: Task | None, expected: Task) -> bool:
    """Whether the worker's state of a task shows what the story expects of it so far."""
    return (
        live is not None
        and live.status is expected.status
        and live.rework_count == expected.rework_count
        and live.rebound_of == expected.rebound_of
        and set(expected.event_ids) <= set(live.event_ids)
        and set(expected.sources) <= set(live.sources)
    )


def _all_shown(expected: Sequence[Task], live: Mapping[str, Task]) -> bool:
    return all(_shows(live.get(t.task_id), t) for t in expected)


class StepReport(NamedTuple):
    """A step that was sent and whose effect the worker showed."""

    step: Step
    sent: int
    """Messages sent for it."""
    at: float
    """Seconds since playback began."""
    text: str


async def play(
    settings: Settings,
    script: Script,
    *,
    on_step: Callable[[StepReport], None] | None = None,
    within: float = 30.0,
) -> dict[str, Task]:
    """Send ``script``'s messages in order, each no earlier than ``origin + offset``, and wait
    after each step until ``city.tasks.state`` shows its effect. Returns the final state of each
    task the story opened, by step id.

    Raises:
        ScenarioError: the worker already holds tasks at the story's places (the story would not
            come out as written), or did not show a step's effect within ``within`` seconds (the
            message names the step, the task and what the worker shows instead).
    """
    view = TaskView(settings)
    follower = asyncio.create_task(view.run(), name=f"scenario.{script.scenario.name}.tasks")
    producer = AIOKafkaProducer(**kafka_client_options(settings), acks="all")
    loop = asyncio.get_running_loop()
    try:
        await producer.start()
        await _check_quiet(script, view, follower, within)
        began = loop.time()
        for step in script.scenario.steps:
            sends = [s for s in script.sends if s.step == step.id]
            for send in sends:
                wait = (script.origin + send.offset - datetime.now(UTC)).total_seconds()
                if wait > 0:
                    await asyncio.sleep(wait)
                await producer.send_and_wait(
                    topic_name(settings, send.topic), send.value, key=send.key
                )
            expected = script.effects[step.id]
            shown = await view.wait(functools.partial(_all_shown, expected), within)
            if not shown:
                if follower.done():
                    follower.result()
                raise ScenarioError(_not_shown(script, step, expected, view.tasks, within))
            if on_step is not None:
                on_step(StepReport(step, len(sends), loop.time() - began, script.describe(step)))
        return {
            step_id: view.tasks.get(task_id, script.final[task_id])
            for step_id, task_id in script.opened.items()
        }
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        await producer.stop()


async def _check_quiet(
    script: Script, view: TaskView, follower: asyncio.Task[None], within: float
) -> None:
    """Refuse to play at places that already have tasks: :func:`resolve` predicted the story
    from empty places, and an earlier task there (an earlier run of the story included) changes
    what a report does: it merges, or opens a rebound."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(view.ready.wait(), within)
    if follower.done():
        follower.result()
    if not view.ready.is_set():
        raise ScenarioError(
            f"{script.scenario.source}: could not read city.tasks.state within {within:g} s"
        )
    busy = sorted(
        {slot for task_id in view.tasks if (slot := slot_of_task(task_id)) in script.slots}
    )
    if busy:
        raise ScenarioError(
            f"{script.scenario.source}: the worker already has tasks at {', '.join(busy)}; "
            "a story comes out as written only where nothing was reported before (play it on "
            "a fresh deployment, or with a new CITYGRID_TOPIC_PREFIX)"
        )


def _not_shown(
    script: Script, step: Step, expected: Sequence[Task], live: Mapping[str, Task], within: float
) -> str:
    missing = next(t for t in expected if not _shows(live.get(t.task_id), t))
    got = live.get(missing.task_id)
    if got is None:
        shown = "no such task"
        others = [
            t for t in live.values() if slot_of_task(t.task_id) == slot_of_task(missing.task_id)
        ]
        if others:
            latest = max(others, key=lambda t: t.created_at)
            shown += (
                f" but {latest.task_id} {latest.status.value} at that place (did something "
                "else report there meanwhile?)"
            )
    else:
        shown = f"{got.status.value}, rework {got.rework_count}, {len(got.event_ids)} reports"
    return (
        f"{script.scenario.source}: {step.where}: the worker did not show task {missing.task_id} "
        f"{missing.status.value} within {within:g} s; it shows {shown}"
    )


def find_scenario(name: str | Path) -> Path:
    """The file of scenario ``name``: a path, or the name of a shipped one (``bin-rebound``).

    Raises:
        ScenarioError: neither exists (the message lists the shipped scenarios).
    """
    path = Path(name)
    if path.is_file():
        return path
    shipped = SCENARIO_DIR / f"{name}.yaml"
    if shipped.is_file():
        return shipped
    names = ", ".join(sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml")))
    raise ScenarioError(f"{name}: no such file, nor a shipped scenario ({names})")


def outline(script: Script) -> list[str]:
    """What each step of ``script`` sends and should do, for a dry run."""
    lines = _headline(script)
    for step in script.scenario.steps:
        backdated = f" (dated {_seconds(step.backdate)} earlier)" if step.backdate else ""
        lines.append(
            f"{step.at.total_seconds():6.1f}s  {step.id:<16} {script.describe(step)}{backdated}"
        )
    lines.extend(_outcome(script, script.final))
    return lines


def _headline(script: Script) -> list[str]:
    scenario = script.scenario
    lines = [
        f"{scenario.name} ({scenario.source}): {len(scenario.steps)} steps over "
        f"{_seconds(scenario.span)}, run {script.run}"
    ]
    if scenario.description:
        lines.append("  " + scenario.description.split("\n\n")[0].replace("\n", " "))
    return lines


def _outcome(script: Script, tasks: Mapping[str, Task]) -> list[str]:
    lines = []
    checked = {e.task for e in script.scenario.expect}
    for step_id, task_id in script.opened.items():
        task = tasks.get(task_id)
        if task is None:
            continue
        text = (
            f"task of step {step_id!r}: {task_id} {task.status.value}, "
            f"{len(task.event_ids)} reports ({'+'.join(s.value for s in task.sources)})"
        )
        if task.rework_count:
            text += f", reworked {task.rework_count}x"
        if task.rebound_of:
            text += f", rebound of {task.rebound_of}"
        mark = ""
        if step_id in checked:
            problems = [
                p
                for e in script.scenario.expect
                if e.task == step_id and (p := e.mismatch(task, script.opened))
            ]
            mark = "✗ " + "; ".join(problems) if problems else "✓ as expected"
        lines.append(f"outcome  {text}  {mark}".rstrip())
    return lines


async def tell(
    settings: Settings, script: Script, say: Callable[[str], None], *, within: float = 30.0
) -> dict[str, Task]:
    """:func:`play` ``script``, saying what each step did and how the story ended.

    Raises:
        ScenarioError: a step's effect did not show, or the story did not end as its ``expect``
            says (both named in the message).
    """
    for line in _headline(script):
        say(line)
    tasks = await play(
        settings,
        script,
        on_step=lambda r: say(f"{r.at:6.1f}s  {r.step.id:<16} {r.text}"),
        within=within,
    )
    by_id = {task.task_id: task for task in tasks.values()}
    lines = _outcome(script, by_id)
    for line in lines:
        say(line)
    if any("✗" in line for line in lines):
        raise ScenarioError(f"{script.scenario.source}: the story did not end as expected")
    return tasks
