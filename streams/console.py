"""The dispatch console in a terminal: every task on ``city.tasks.state`` (read whole, every
partition, group-less) joined with its transitions from ``city.tasks.events``, first as the tasks
stand, then live; shown as a rich table, or written as JSON lines for scripts.

The parts are pure and tested directly: :class:`TaskFilter` (which tasks a view shows),
:class:`Board` (task states and their transitions, whichever of the two topics delivers first),
:func:`rows` and :func:`render` (a view of the board at one moment, in one language) and
:func:`json_line`. :func:`watch_table` and :func:`watch_lines` run them on a Kafka consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final, NamedTuple, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from schemas.enums import Domain, Priority, Status, TaskEventType
from schemas.i18n import Language, label
from schemas.json import JSONDecodeError, dumps, loads
from schemas.task import Task
from streams.settings import Settings
from streams.topics import kafka_client_options, topic_name

__all__ = [
    "EVENTS_TOPIC",
    "GRACE_SECONDS",
    "OPEN_STATUSES",
    "STATE_TOPIC",
    "Board",
    "Change",
    "Entry",
    "Row",
    "TaskFilter",
    "filter_from_options",
    "json_line",
    "parse_choices",
    "parse_statuses",
    "render",
    "rows",
    "select",
    "short_id",
    "span",
    "split_values",
    "watch_lines",
    "watch_table",
]

logger = logging.getLogger(__name__)

STATE_TOPIC: Final = "city.tasks.state"
EVENTS_TOPIC: Final = "city.tasks.events"

OPEN_STATUSES: Final = frozenset(s for s in Status if s.is_open)
"""What a console shows unless told otherwise: the tasks that are still someone's work."""

GRACE_SECONDS: Final = 2.0
"""How long a new task state waits for its transition from the other topic before it is reported
without one (the transition may have left the topic's retention)."""

_STATE_ID = re.compile(r":(\d+):state$")
"""The state record's ``ce_id`` is ``<task_id>:<seq>:state``: the seq of its last TaskEvent."""

_PRIORITY_STYLE: Final = {
    Priority.P1: "bold red",
    Priority.P2: "dark_orange",
    Priority.P3: "yellow",
    Priority.P4: "dim",
}
_PRIORITY_ORDER: Final = {p: i for i, p in enumerate(Priority)}
_CLOCK_RUNS: Final = frozenset({Status.REGISTERED, Status.DISPATCHED, Status.ACCEPTED})
"""Statuses in which the deadline still counts: not yet handled, not parked, not finished."""

_COLUMNS: Final = (
    "col_task", "col_category", "col_place", "col_status", "col_priority", "col_assignee",
    "col_age", "col_due", "col_rework", "col_rebound", "col_last",
)  # fmt: skip
_SHRINKS: Final = frozenset({"col_category", "col_place", "col_assignee", "col_last"})
"""Columns of names, cut short on a narrow terminal; the others keep their width."""

_E = TypeVar("_E", bound=StrEnum)


def split_values(raw: Iterable[str]) -> frozenset[str]:
    """Values of a repeatable option that also takes comma lists: ``("a,b", "c")`` → a, b, c."""
    return frozenset(v.strip() for item in raw for v in item.split(",") if v.strip())


def parse_choices(raw: Iterable[str], vocabulary: type[_E]) -> frozenset[_E]:
    """:func:`split_values` checked against a closed vocabulary; ValueError names the choices."""
    values = split_values(raw)
    known = {member.value: member for member in vocabulary}
    unknown = sorted(values - set(known))
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not one of {', '.join(known)}")
    return frozenset(known[v] for v in values)


def parse_statuses(raw: Iterable[str]) -> frozenset[Status]:
    """:func:`parse_choices` for statuses, with ``open`` (every open status) and ``all``; nothing
    given means ``open``."""
    values = split_values(raw)
    shortcuts = {"open": OPEN_STATUSES, "all": frozenset(Status)}
    chosen = parse_choices(values - shortcuts.keys(), Status)
    for name in values & shortcuts.keys():
        chosen |= shortcuts[name]
    return chosen or OPEN_STATUSES


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """Which tasks a console shows; an empty set lets every value through."""

    communities: frozenset[str] = frozenset()
    roads: frozenset[str] = frozenset()
    """Road ids; a grid cell (``cell:<row>:<col>``) matches by its place."""
    domains: frozenset[Domain] = frozenset()
    statuses: frozenset[Status] = OPEN_STATUSES
    priorities: frozenset[Priority] = frozenset()
    assignees: frozenset[str] = frozenset()

    def matches(self, task: Task) -> bool:
        """Whether ``task`` passes every filter."""
        return (
            _admits(self.communities, task.community)
            and (not self.roads or task.road_id in self.roads or task.place in self.roads)
            and _admits(self.domains, task.domain)
            and _admits(self.statuses, task.status)
            and _admits(self.priorities, task.priority)
            and _admits(self.assignees, task.assignee)
        )

    def describe(self, language: Language) -> str:
        """The filters in words, for the console's caption."""
        domains = [label("domain", d, language) for d in Domain if d in self.domains]
        parts: list[tuple[str, list[str]]] = [
            (label("ui", "f_community", language), sorted(self.communities)),
            (label("ui", "f_road", language), sorted(self.roads)),
            (label("ui", "f_domain", language), domains),
            (label("ui", "f_priority", language), sorted(self.priorities)),
            (label("ui", "f_assignee", language), sorted(self.assignees)),
        ]
        if self.statuses == frozenset(Status):
            parts.append((label("ui", "f_status", language), [label("ui", "all", language)]))
        elif self.statuses != OPEN_STATUSES:
            statuses = [label("status", s, language) for s in Status if s in self.statuses]
            parts.append((label("ui", "f_status", language), statuses))
        words = [f"{name} {','.join(values)}" for name, values in parts if values]
        if self.statuses == OPEN_STATUSES:
            words.insert(0, label("ui", "open_tasks", language))
        return " · ".join(words)


def filter_from_options(
    *,
    community: Iterable[str] = (),
    road: Iterable[str] = (),
    domain: Iterable[str] = (),
    status: Iterable[str] = (),
    priority: Iterable[str] = (),
    assignee: Iterable[str] = (),
) -> TaskFilter:
    """The filter ``citygrid console``'s options ask for (each repeatable, each taking comma
    lists); ValueError names the option and the values it takes."""
    try:
        domains = parse_choices(domain, Domain)
    except ValueError as exc:
        raise ValueError(f"--domain: {exc}") from None
    try:
        statuses = parse_statuses(status)
    except ValueError as exc:
        raise ValueError(f"--status: {exc} (or open, all)") from None
    try:
        priorities = parse_choices(priority, Priority)
    except ValueError as exc:
        raise ValueError(f"--priority: {exc}") from None
    return TaskFilter(
        communities=split_values(community),
        roads=split_values(road),
        domains=domains,
        statuses=statuses,
        priorities=priorities,
        assignees=split_values(assignee),
    )


def _admits(allowed: frozenset[str], value: str | None) -> bool:
    return not allowed or value in allowed


@dataclass(frozen=True, slots=True)
class Entry:
    """One task as the console knows it."""

    task: Task
    seq: int | None
    """The number of the last transition in this state; None when the record did not say."""
    last_event: TaskEventType | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """A new state of a task and the transitions that led to it, oldest first."""

    task: Task
    previous: Task | None
    events: tuple[TaskEventType, ...]


@dataclass(slots=True)
class _Pending:
    previous: Task | None
    previous_seq: int
    since: float


@dataclass(slots=True)
class Board:
    """Task id to its latest :class:`Entry`, fed records of both task topics in any order.

    Each state record names the seq of its last transition, and TaskEvents carry their seq:
    a change is reported once both halves are in (or after ``grace`` seconds without the
    transition). A state written again after a worker's replay (same seq) is no change.
    """

    grace: float = GRACE_SECONDS
    entries: dict[str, Entry] = field(default_factory=dict)
    _events: dict[str, dict[int, TaskEventType]] = field(default_factory=dict)
    _pending: dict[str, _Pending] = field(default_factory=dict)

    def apply_state(
        self,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        now: float,
    ) -> list[Change]:
        """Apply one ``city.tasks.state`` record; ``now`` is a monotonic clock in seconds."""
        if key is None:
            return []
        task_id = key.decode("utf-8", "replace")
        if value is None:
            self.entries.pop(task_id, None)
            self._events.pop(task_id, None)
            self._pending.pop(task_id, None)
            return []
        try:
            task = Task.from_wire(loads(value))
        except (JSONDecodeError, KeyError, ValueError, TypeError) as exc:
            logger.warning("ignoring task state %s: %s", task_id, exc)
            return []
        seq = _state_seq(headers)
        old = self.entries.get(task_id)
        if old is not None and old.task == task and old.seq == seq:
            return []
        known = self._events.get(task_id, {})
        last = known.get(seq) if seq is not None else None
        self.entries[task_id] = Entry(task, seq, last)
        pending = self._pending.pop(task_id, None)
        if pending is None:
            pending = _Pending(
                previous=None if old is None else old.task,
                previous_seq=0 if old is None or old.seq is None else old.seq,
                since=now,
            )
        if seq is not None and last is None:
            self._pending[task_id] = pending
            return []
        return [self._change(task_id, pending)]

    def apply_event(self, key: bytes | None, value: bytes | None) -> list[Change]:
        """Apply one ``city.tasks.events`` record."""
        if value is None:
            return []
        try:
            wire = loads(value)
            task_id, seq, kind = str(wire["task_id"]), int(wire["seq"]), TaskEventType(wire["type"])
        except (JSONDecodeError, KeyError, ValueError, TypeError) as exc:
            logger.warning("ignoring task event %r: %s", key, exc)
            return []
        self._events.setdefault(task_id, {})[seq] = kind
        entry = self.entries.get(task_id)
        if entry is None or entry.seq != seq:
            return []
        self.entries[task_id] = Entry(entry.task, entry.seq, kind)
        pending = self._pending.pop(task_id, None)
        return [] if pending is None else [self._change(task_id, pending)]

    def expire(self, now: float) -> list[Change]:
        """Report the states that waited ``grace`` seconds for their transition without it."""
        due = [tid for tid, p in self._pending.items() if now - p.since >= self.grace]
        return [self._change(tid, self._pending.pop(tid)) for tid in due]

    def _change(self, task_id: str, pending: _Pending) -> Change:
        entry = self.entries[task_id]
        known = self._events.get(task_id, {})
        upto = entry.seq if entry.seq is not None else pending.previous_seq
        events = tuple(known[s] for s in sorted(known) if pending.previous_seq < s <= upto)
        # Transitions up to this state are reported; later ones wait for their state.
        self._events[task_id] = {s: k for s, k in known.items() if s > upto}
        return Change(entry.task, pending.previous, events)


def _state_seq(headers: Sequence[tuple[str, bytes]]) -> int | None:
    for name, raw in headers:
        if name == "ce_id":
            match = _STATE_ID.search(raw.decode("utf-8", "replace"))
            return None if match is None else int(match.group(1))
    return None


def select(entries: Iterable[Entry], view: TaskFilter) -> list[Entry]:
    """The entries ``view`` shows, most urgent first: by priority, then oldest first."""
    shown = [e for e in entries if view.matches(e.task)]
    shown.sort(key=lambda e: (_PRIORITY_ORDER[e.task.priority], e.task.created_at, e.task.task_id))
    return shown


class Row(NamedTuple):
    """One task as the table shows it, every cell already in the chosen language."""

    task: str
    category: str
    place: str
    status: str
    priority: str
    assignee: str
    age: str
    due: str
    rework: str
    rebound: str
    last: str
    level: Priority
    late: bool
    """Past its deadline while that still counts, or flagged overdue."""


def short_id(task_id: str) -> str:
    """The part of a task id people tell tasks apart by: the first 8 of its digest."""
    return task_id.rsplit("~", 1)[-1][:8]


def span(delta: timedelta) -> str:
    """A duration in at most two units: ``45s``, ``12m``, ``2h05m``, ``3d04h``."""
    seconds = max(int(delta.total_seconds()), 0)
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 60:  # noqa: PLR2004 - units of time
        return f"{seconds}s"
    if hours == 0:
        return f"{minutes}m"
    if days == 0:
        return f"{hours}h{minutes % 60:02d}m"
    return f"{days}d{hours % 24:02d}h"


def _due(task: Task, language: Language, now: datetime) -> tuple[str, bool]:
    if task.status in _CLOCK_RUNS:
        left = task.due_at - now
        if left > timedelta(0) and not task.overdue:
            return label("ui", "due_in", language).format(span(left)), False
        if left <= timedelta(0):
            return label("ui", "overdue_by", language).format(span(-left)), True
    if task.overdue:
        return label("ui", "overdue", language), True
    return label("ui", "none", language), False


def rows(
    entries: Iterable[Entry], view: TaskFilter, language: Language, now: datetime
) -> list[Row]:
    """The table's rows: the tasks ``view`` shows at ``now``, in order, in ``language``."""
    none = label("ui", "none", language)
    out = []
    for entry in select(entries, view):
        task = entry.task
        due, late = _due(task, language, now)
        place = task.road_id or task.place
        out.append(
            Row(
                task=short_id(task.task_id),
                category=label("category", task.category, language),
                place=f"{place} / {task.community}" if task.community else place,
                status=label("status", task.status, language),
                priority=label("priority", task.priority, language),
                assignee=task.assignee or label("ui", "unassigned", language),
                age=span(now - task.created_at),
                due=due,
                rework=str(task.rework_count) if task.rework_count else "",
                rebound=(
                    label("ui", "rebound_of", language).format(short_id(task.rebound_of))
                    if task.rebound_of
                    else ""
                ),
                last=none
                if entry.last_event is None
                else label("event", entry.last_event, language),
                level=task.priority,
                late=late,
            )
        )
    return out


def render(
    entries: Iterable[Entry],
    view: TaskFilter,
    language: Language,
    now: datetime,
    *,
    limit: int | None = None,
    loading: bool = False,
    source: str = "",
) -> Table:
    """The console's table: a title with the counts, one row per task (at most ``limit``, then
    how many more), and a caption with the filters and where the tasks come from."""
    shown = rows(entries, view, language, now)
    title = [label("ui", "title", language)]
    if loading:
        title.append(label("ui", "loading", language))
    else:
        title.append(label("ui", "live", language))
        title.append(label("ui", "tasks_matching", language).format(len(shown)))
        late = sum(r.late for r in shown)
        if late:
            title.append(label("ui", "tasks_overdue", language).format(late))
    hidden = len(shown) - (len(shown) if limit is None else min(max(limit, 0), len(shown)))
    caption = [
        *([label("ui", "more", language).format(hidden)] if hidden else []),
        *([label("ui", "empty", language)] if not shown and not loading else []),
        f"{label('ui', 'filters', language)}: {view.describe(language)}",
        *([source] if source else []),
        label("ui", "quit", language),
    ]
    table = Table(
        title=" · ".join(title),
        caption=" · ".join(caption),
        box=box.SIMPLE_HEAD,
        title_justify="left",
        caption_justify="left",
        expand=True,
    )
    # One line per task, whatever the width: the row limit is the terminal's height. The columns
    # of names give way (cut short with …) and the short, essential ones keep their width.
    for key in _COLUMNS:
        table.add_column(
            label("ui", key, language),
            no_wrap=key not in _SHRINKS,
            overflow="ellipsis",
            justify="right" if key in ("col_age", "col_rework") else "left",
        )
    visible = shown if limit is None else shown[: max(limit, 0)]
    for row in visible:
        table.add_row(
            Text(row.task, style="cyan"),
            _cut(row.category),
            _cut(row.place),
            row.status,
            Text(row.priority, style=_PRIORITY_STYLE[row.level]),
            _cut(row.assignee),
            row.age,
            Text(row.due, style="bold red" if row.late else ""),
            row.rework,
            Text(row.rebound, style="magenta"),
            _cut(row.last),
        )
    return table


def _cut(text: str, style: str = "") -> Text:
    # A column that may shrink wraps as rich measures it; its cells stay on one line.
    return Text(text, style=style, no_wrap=True, overflow="ellipsis")


def json_line(task: Task, events: Sequence[TaskEventType], *, snapshot: bool) -> bytes:
    """One JSON object for scripts: the task's state as on the topic, plus ``event`` (the last
    transition, or null when unknown), ``events`` (the transitions of this change, oldest
    first) and ``snapshot`` (true for the tasks as they stood when the console started)."""
    wire = task.wire_fields()
    wire["event"] = events[-1].value if events else None
    wire["events"] = [e.value for e in events]
    wire["snapshot"] = snapshot
    return dumps(wire)


class _Update(NamedTuple):
    ready: bool
    """True once both topics were read up to where they ended when the console started."""
    loaded: bool
    """True for the one update that completes the first read."""
    changes: list[Change]


async def _updates(settings: Settings, board: Board, stop: asyncio.Event) -> AsyncIterator[_Update]:
    state_topic = topic_name(settings, STATE_TOPIC)
    events_topic = topic_name(settings, EVENTS_TOPIC)
    # Without a group, aiokafka assigns every partition of both topics to this consumer.
    consumer = AIOKafkaConsumer(
        state_topic,
        events_topic,
        **kafka_client_options(settings),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    end: dict[TopicPartition, int] = {}
    ready = False
    polls = 0
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=500)
            now = time.monotonic()
            changes: list[Change] = []
            for tp, records in batch.items():
                for record in records:
                    if tp.topic == state_topic:
                        changes += board.apply_state(record.key, record.value, record.headers, now)
                    else:
                        changes += board.apply_event(record.key, record.value)
            changes += board.expire(now)
            if ready:
                yield _Update(ready=True, loaded=False, changes=changes)
                continue
            assigned = consumer.assignment()
            if {tp.topic for tp in assigned} != {state_topic, events_topic}:
                polls += 1
                if polls % 60 == 0:
                    logger.warning(
                        "waiting for %s and %s; do they exist? (citygrid topics create)",
                        state_topic,
                        events_topic,
                    )
                yield _Update(ready=False, loaded=False, changes=[])
                continue
            if set(end) != assigned:
                end = await consumer.end_offsets(list(assigned))
            ready = all([await consumer.position(tp) >= end[tp] for tp in assigned])
            if ready:
                # What is still waiting for its transition is part of the first picture.
                board.expire(float("inf"))
            yield _Update(ready=ready, loaded=ready, changes=[])
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()


def _stop_on_sigterm() -> asyncio.Event:
    stop = asyncio.Event()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    return stop


async def watch_lines(settings: Settings, view: TaskFilter, write: Callable[[bytes], None]) -> None:
    """Write one JSON line per task ``view`` shows as the tasks stand, then one per change of a
    task that matches ``view`` before or after it, until SIGTERM or cancelled."""
    board = Board()
    async for update in _updates(settings, board, _stop_on_sigterm()):
        if update.loaded:
            for entry in select(board.entries.values(), view):
                events = () if entry.last_event is None else (entry.last_event,)
                write(json_line(entry.task, events, snapshot=True))
            continue
        for change in update.changes:
            before = change.previous is not None and view.matches(change.previous)
            if before or view.matches(change.task):
                write(json_line(change.task, change.events, snapshot=False))


async def watch_table(
    settings: Settings, view: TaskFilter, language: Language, console: Console
) -> None:
    """Show the live table on ``console`` until SIGTERM or cancelled (Ctrl-C)."""
    board = Board()
    source = f"{topic_name(settings, STATE_TOPIC)} @ {settings.bootstrap_servers}"

    def table(loading: bool) -> Table:
        # Title and a blank line, header and rule, a blank line and the caption (two lines if it
        # wraps): what is left is for tasks.
        limit = max(console.size.height - 8, 1)
        return render(
            board.entries.values(),
            view,
            language,
            datetime.now(UTC),
            limit=limit,
            loading=loading,
            source=source,
        )

    with Live(table(loading=True), console=console, screen=True, auto_refresh=False) as live:
        async for update in _updates(settings, board, _stop_on_sigterm()):
            live.update(table(loading=not update.ready), refresh=True)
