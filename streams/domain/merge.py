"""Merging events into tasks (CONTRACT.md, "Merging events into tasks").

State is kept per *slot*: one place and one category. :func:`decide` takes a slot's state and one
accepted event and returns the new state and the task changes to publish. It is a pure function of
its inputs: the same events in the same order give the same tasks, ids included, which is what
makes at-least-once delivery safe (a replay changes nothing).

Rules, in order:

1. The same ``(device_id, event_id)`` again changes nothing (a *duplicate*).
2. A sensor reading counts only once its crossing is sustained (:mod:`streams.domain.sensors`);
   then every reading of the run joins the task.
3. A report merges into the slot's task while that task is open; into a closed task when it
   happened before the close, or within the merge window of the task's first report (late
   copies of a quickly closed incident). A cancelled task takes nothing. A task that lists
   ``max_task_reports`` reports takes no more: the report is refused (``Result.FULL``).
4. Otherwise a new task opens. When the slot's last task was *closed* within the rebound horizon,
   the new task is a rebound of it (``rebound_of``).
5. Priority comes from domain and severity and is raised, never lowered, by later reports.
6. A new task is dispatched at once to the road's chief; with no chief it stays ``registered``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any, NamedTuple

from schemas.categories import CATEGORIES, Category
from schemas.codec import parse_timestamp
from schemas.enums import Source, Status, TaskEventType
from schemas.event import Event
from schemas.task import Task, TaskEvent
from streams.domain.calendar import WALL_CLOCK, Calendar
from streams.domain.places import Place
from streams.domain.priority import higher, priority_of
from streams.domain.sensors import Reading, SensorTrack, Verdict, observe

__all__ = [
    "Change",
    "MergeConfig",
    "Outcome",
    "Result",
    "SlotState",
    "decide",
    "forgettable",
    "forgettable_after",
    "slot_key",
    "slot_of_task",
    "task_event",
    "task_id_for",
]

_SEP = "~"


def slot_key(place_key: str, category: str) -> str:
    """The key of a slot: where events meet (the repartition key) and its state is kept."""
    return f"{place_key}{_SEP}{category}"


def task_id_for(slot: str, device_id: str, event_id: str) -> str:
    """A task's id: its slot plus a digest of the report that opened it.

    Deterministic, so a replay recreates the same id, and routable: :func:`slot_of_task` recovers
    the slot, so feedback for a task reaches the partition that holds it without a lookup table.
    """
    digest = hashlib.sha256(f"{slot}\x1f{device_id}\x1f{event_id}".encode()).hexdigest()[:12]
    return f"{slot}{_SEP}{digest}"


def slot_of_task(task_id: str) -> str | None:
    """The slot a task id belongs to, or None when it is not a citygrid task id."""
    parts = task_id.rsplit(_SEP, 2)
    if len(parts) != 3 or not all(parts):  # noqa: PLR2004 - place, category, digest
        return None
    return slot_key(parts[0], parts[1])


@dataclass(frozen=True, slots=True)
class MergeConfig:
    """The tunable windows of the merge rules."""

    merge_window: timedelta = timedelta(minutes=30)
    """Default window; a category's ``merge_window_minutes`` overrides it."""
    rebound_horizon: timedelta = timedelta(days=7)
    dedup_horizon: timedelta = timedelta(hours=48)
    """How long a slot remembers event keys that are not in its current task."""
    time_limits: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    """Handling time limits in minutes by category code, overriding the category table."""
    calendar: Calendar = WALL_CLOCK
    """The working-time calendar the limits are counted on."""
    max_task_reports: int = 5000
    """Most event ids a task lists; a report that would join a task listing this many is
    refused (:attr:`Result.FULL`). A task's state and its slot are single Kafka records: without
    a bound, a device reporting one spot all day would grow them past what a topic takes."""

    def clock_for(self, category: Category) -> Calendar:
        """The clock a category's time limit runs on: the wall clock for emergencies."""
        return WALL_CLOCK if category.wall_clock else self.calendar

    def due_at(self, created_at: datetime, category: Category) -> datetime:
        """When a task of ``category`` opened at ``created_at`` must be handled."""
        minutes = self.time_limits.get(category.code, category.time_limit_minutes)
        return self.clock_for(category).add(created_at, minutes)

    def window_for(self, category: Category) -> timedelta:
        if category.merge_window_minutes is not None:
            return timedelta(minutes=category.merge_window_minutes)
        return self.merge_window


class Result(StrEnum):
    """What one event did to its slot."""

    CREATED = "created"
    MERGED = "merged"
    DUPLICATE = "duplicate"
    PENDING = "pending"
    """A sensor reading over the threshold, not sustained yet."""
    BELOW = "below"
    """A sensor reading under the threshold."""
    CHANGED = "changed"
    """Feedback or the deadline clock moved the task (see :mod:`streams.domain.tasks`)."""
    FULL = "full"
    """A report that would join a task already listing ``max_task_reports`` reports: refused,
    the slot unchanged (the merge stage dead-letters it)."""


_EMPTY_KEYS: MappingProxyType[str, datetime] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class SlotState:
    """Everything citygrid remembers about one place and category."""

    task: Task | None = None
    seq: int = 0
    """TaskEvents emitted for ``task`` so far; the next one gets ``seq + 1``."""
    keys: MappingProxyType[str, datetime] = field(default_factory=lambda: _EMPTY_KEYS)
    """Event keys seen here within the dedup horizon, with their occurred_at."""
    task_keys: frozenset[str] = frozenset()
    """Event keys merged into ``task``: remembered as long as the task is, whatever their age."""
    sensors: tuple[SensorTrack, ...] = ()
    feedback: frozenset[str] = frozenset()
    """Feedback applied to ``task`` (:func:`feedback_key`): a replay of one changes nothing."""
    keys_span: tuple[datetime, datetime] | None = field(default=None, compare=False, repr=False)
    """The oldest and newest time in ``keys`` when known (None: find them when needed). Derived,
    never written to the changelog: :func:`decide` keeps it so that a slot with many reports
    costs no pass over its keys per event. Whoever builds a state with other ``keys`` must leave
    it out."""

    def in_task(self, event: Event) -> bool:
        """Whether ``event`` is one of the reports merged into the slot's current task."""
        return _key(event) in self.task_keys

    def track(self, device_id: str) -> SensorTrack | None:
        return next((t for t in self.sensors if t.device_id == device_id), None)

    def to_wire(self) -> dict[str, Any]:
        return {
            "task": None if self.task is None else self.task.wire_fields(),
            "seq": self.seq,
            # datetimes as they are: the JSON encoder writes them in the same ISO 8601 form,
            # several times faster than isoformat() per key.
            "keys": self.keys.copy(),
            "task_keys": sorted(self.task_keys),
            "sensors": [t.to_wire() for t in self.sensors],
            "feedback": sorted(self.feedback),
        }

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> SlotState:
        task = obj.get("task")
        return cls(
            task=None if task is None else Task.from_wire(task),
            seq=int(obj.get("seq", 0)),
            keys=MappingProxyType({k: _datetime(v) for k, v in obj.get("keys", {}).items()}),
            task_keys=frozenset(obj.get("task_keys", ())),
            sensors=tuple(SensorTrack.from_wire(t) for t in obj.get("sensors", ())),
            feedback=frozenset(obj.get("feedback", ())),
        )


class Change(NamedTuple):
    """One published change: the task's full new state and the transition that led to it."""

    task: Task
    event: TaskEvent


class Outcome(NamedTuple):
    """The slot after one event, what to publish, and what the event did."""

    state: SlotState
    changes: tuple[Change, ...]
    result: Result


def _datetime(value: datetime | str) -> datetime:
    return value if isinstance(value, datetime) else parse_timestamp(value)


def _key(event: Event) -> str:
    return f"{event.device_id}\x1f{event.event_id}"


def _span(keys: Mapping[str, datetime]) -> tuple[datetime, datetime] | None:
    if not keys:
        return None
    times = keys.values()
    return min(times), max(times)


def _prune(
    state: SlotState, at: datetime, horizon: timedelta
) -> tuple[dict[str, datetime], tuple[datetime, datetime] | None]:
    """A copy of the state's keys without those older than ``horizon`` before the newest of them
    and ``at``, and the oldest and newest time of what is left."""
    keys = state.keys
    span = state.keys_span or _span(keys)
    if span is None:
        return {}, None
    oldest, newest = span
    floor = max(at, newest) - horizon
    if oldest >= floor:
        # Nothing to forget, as for almost every event: a plain copy costs half the filter.
        return keys.copy(), span
    kept = {k: t for k, t in keys.items() if t >= floor}
    return kept, _span(kept)


def task_event(
    task: Task,
    seq: int,
    kind: TaskEventType,
    *,
    at: datetime,
    actor_id: str | None = None,
    event_id: str | None = None,
    detail: str | None = None,
) -> TaskEvent:
    """The TaskEvent for transition number ``seq`` of ``task`` (its state after the transition)."""
    return TaskEvent(
        id=f"{task.task_id}:{seq}",
        task_id=task.task_id,
        seq=seq,
        type=kind,
        at=at,
        status=task.status,
        priority=task.priority,
        actor_id=actor_id,
        event_id=event_id,
        detail=detail,
    )


def _transition(
    task: Task,
    seq: int,
    kind: TaskEventType,
    *,
    at: datetime,
    event: Event,
    detail: str | None = None,
) -> TaskEvent:
    return task_event(
        task, seq, kind, at=at, actor_id=event.officer_id, event_id=event.event_id, detail=detail
    )


def _open(
    state: SlotState,
    event: Event,
    event_ids: tuple[str, ...],
    *,
    place: Place,
    category: Category,
    config: MergeConfig,
) -> tuple[Task, tuple[Change, ...], int]:
    previous = state.task
    rebound_of = None
    if (
        previous is not None
        and previous.status is Status.CLOSED
        and previous.closed_at is not None
        and timedelta(0) < event.occurred_at - previous.closed_at <= config.rebound_horizon
    ):
        rebound_of = previous.task_id
    at = event.occurred_at
    registered = Task(
        task_id=task_id_for(slot_key(place.key, event.category), event.device_id, event.event_id),
        status=Status.REGISTERED,
        domain=event.domain,
        category=event.category,
        priority=priority_of(event.domain, event.effective_severity),
        place=place.key,
        road_id=place.road_id,
        community=place.community,
        assignee=None,
        created_at=at,
        updated_at=at,
        due_at=config.due_at(at, category),
        event_ids=event_ids,
        sources=(event.source,),
        rebound_of=rebound_of,
    )
    detail = f"rebound of {rebound_of}" if rebound_of else None
    changes = [
        Change(
            registered,
            _transition(registered, 1, TaskEventType.CREATED, at=at, event=event, detail=detail),
        )
    ]
    task = registered
    if place.chief_id is not None:
        task = registered.replace(
            status=Status.DISPATCHED, assignee=place.chief_id, dispatched_at=at
        )
        changes.append(
            Change(
                task,
                _transition(
                    task, 2, TaskEventType.DISPATCHED, at=at, event=event, detail=place.chief_id
                ),
            )
        )
    return task, tuple(changes), len(changes)


def _merge(
    state: SlotState, task: Task, event: Event, event_ids: tuple[str, ...]
) -> tuple[Task, tuple[Change, ...], int]:
    new_ids = tuple(i for i in event_ids if i not in task.event_ids)
    sources: tuple[Source, ...] = task.sources
    if event.source not in sources:
        sources = (*sources, event.source)
    priority = higher(task.priority, priority_of(event.domain, event.effective_severity))
    at = max(task.updated_at, event.occurred_at)
    merged = task.replace(event_ids=task.event_ids + new_ids, sources=sources, updated_at=at)
    seq = state.seq + 1
    changes = [Change(merged, _transition(merged, seq, TaskEventType.MERGED, at=at, event=event))]
    if priority != task.priority:
        merged = merged.replace(priority=priority)
        seq += 1
        changes.append(
            Change(
                merged,
                _transition(
                    merged,
                    seq,
                    TaskEventType.PRIORITY_RAISED,
                    at=at,
                    event=event,
                    detail=f"{task.priority.value} -> {priority.value}",
                ),
            )
        )
    return merged, tuple(changes), seq


def _with_track(state: SlotState, track: SensorTrack) -> tuple[SensorTrack, ...]:
    others = tuple(t for t in state.sensors if t.device_id != track.device_id)
    return tuple(sorted((*others, track), key=lambda t: t.device_id))


def forgettable_after(state: SlotState, config: MergeConfig) -> datetime | None:
    """The instant after which nothing the slot remembers can matter any more, or None while its
    task is open (see :func:`forgettable`)."""
    task = state.task
    instants: list[datetime] = []
    if task is not None:
        if task.status.is_open:
            return None
        instants.append((task.closed_at or task.updated_at) + config.rebound_horizon)
    instants.extend(at + config.dedup_horizon for at in state.keys.values())
    instants.extend(track.last_at + config.dedup_horizon for track in state.sensors)
    return max(instants, default=None) or datetime.min.replace(tzinfo=UTC)


def forgettable(state: SlotState, now: datetime, config: MergeConfig) -> bool:
    """Whether nothing the slot remembers can matter any more at ``now``: no open task, its last
    task closed (or cancelled) longer ago than the rebound horizon, and no report key or sensor
    reading within the dedup horizon. Such a slot can be dropped: the next report there
    starts afresh, as it would have, except a report about something before the close that
    arrives more than the rebound horizon after it (it opens a task instead of joining the closed
    one; input topics keep a week, so no replay brings one)."""
    after = forgettable_after(state, config)
    return after is not None and now > after


def decide(state: SlotState, event: Event, place: Place, config: MergeConfig) -> Outcome:
    """Apply one accepted event to its slot (``place`` and ``event.category``)."""
    key = _key(event)
    if key in state.keys or key in state.task_keys:
        return Outcome(state, (), Result.DUPLICATE)
    category = CATEGORIES[event.category]

    event_ids: tuple[str, ...] = (event.event_id,)
    sensors = state.sensors
    rule = category.sensor
    if event.reading is not None and rule is not None and event.reading.metric == rule.metric:
        step = observe(
            state.track(event.device_id),
            event.device_id,
            Reading(event.event_id, event.occurred_at, event.reading.value),
            rule,
        )
        if step.verdict is Verdict.REPEAT:
            return Outcome(state, (), Result.DUPLICATE)
        sensors = _with_track(state, step.track)
        if step.verdict is not Verdict.SUSTAINED:
            result = Result.BELOW if step.verdict is Verdict.BELOW else Result.PENDING
            # Built field by field: dataclasses.replace costs several times as much.
            tracked = SlotState(
                task=state.task,
                seq=state.seq,
                keys=state.keys,
                task_keys=state.task_keys,
                sensors=sensors,
                feedback=state.feedback,
                keys_span=state.keys_span,
            )
            return Outcome(tracked, (), result)
        event_ids = step.event_ids

    task = state.task
    # A cancelled task (duplicate, invalid) absorbs nothing; a closed one takes reports of what
    # happened before its close, and late copies within the merge window.
    joins = task is not None and (
        task.status.is_open
        or (
            task.status is Status.CLOSED
            and (
                event.occurred_at - task.created_at <= config.window_for(category)
                or (task.closed_at is not None and event.occurred_at <= task.closed_at)
            )
        )
    )
    if task is not None and joins:
        if len(task.event_ids) >= config.max_task_reports:
            return Outcome(state, (), Result.FULL)
        task, changes, seq = _merge(state, task, event, event_ids)
        result = Result.MERGED
    else:
        task, changes, seq = _open(
            state, event, event_ids, place=place, category=category, config=config
        )
        result = Result.CREATED

    keys, span = _prune(state, event.occurred_at, config.dedup_horizon)
    # Every reading of a sustained run joins the task; all come from this event's device.
    joined = {f"{event.device_id}\x1f{event_id}" for event_id in event_ids}
    at = event.occurred_at
    for joined_key in joined:
        keys[joined_key] = at
    span = (at, at) if span is None else (min(span[0], at), max(span[1], at))
    merged = result is Result.MERGED
    new_state = SlotState(
        task=task,
        seq=seq,
        keys=MappingProxyType(keys),
        task_keys=state.task_keys | joined if merged else frozenset(joined),
        sensors=sensors,
        feedback=state.feedback if merged else frozenset(),
        keys_span=span,
    )
    return Outcome(new_state, changes, result)
