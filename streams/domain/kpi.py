"""Assessment KPIs per road, community, domain and the whole district (DOMAIN.md, "Assessment and
red flags"; CONTRACT.md, "Rebound" and "Overdue"), with the per-road scores, ranks and red flags.

Pure arithmetic over the latest state of tasks: no clock reads (``now`` is an argument), no faust.
The indicators follow the eGova formulas of GB/T 30428, adapted to what a Task records.

Periods
    A period is the half-open interval ``[start, end)`` with ``end`` no later than ``now``. The
    rolling *window* is ``[now - window, now)`` (30 days by default); *today* is
    ``[local midnight of now, now)`` in ``tz`` (UTC+8 by default). Because ``end <= now``, a task
    due exactly at ``now`` is not due yet: it may still be handled on time.

Who is assessed
    Cancelled tasks (duplicates, invalid reports) count nowhere. A task parked now (status
    ``suspended``, 挂账) counts nowhere but in ``rebounds``: eGova leaves parked cases out of the
    assessment, yet a problem that came back did come back. The latest state has no history, so a
    task parked earlier and since resumed counts like any other, judged by the ``due_at`` it
    carries now (the lifecycle moves ``due_at`` on resume; a Task has no other extension).

Counts (over the assessed tasks; *handling time* = ``handled_at``, or ``closed_at`` for a closed
task without ``handled_at``)
    due                  = tasks whose due_at lies in the period
    handled              = due tasks handled (handled_at set, or status handled/closed)
    handled_on_time      = handled tasks whose handling time <= due_at
    due_for_closure      = tasks whose handling time lies in the period
    closed               = due_for_closure tasks with status closed
    closed_on_time       = closed tasks with closed_at <= due_at (the handling deadline: a Task
                           has no separate closure deadline, so verification is due by then too)
    reworked             = due_for_closure tasks with rework_count > 0
    rebounds             = tasks created in the period with rebound_of set (parked ones included)
    overdue              = due tasks flagged overdue (so overdue <= due)
    avg_handling_seconds = mean(handling time - created_at) over the due_for_closure tasks, that
                           is over the tasks handled in the period; None when there are none.
                           Summed exactly, in whole microseconds, so it does not depend on the
                           order the tasks come in

Rates (None when the denominator is 0; every numerator counts a subset of its denominator, so
each rate lies within 0..1, and :class:`Counts` refuses numbers that break this)
    handling_rate         = handled / due
    on_time_handling_rate = handled_on_time / due
    closure_rate          = closed / due_for_closure
    on_time_closure_rate  = closed_on_time / due_for_closure
    rework_rate           = reworked / due_for_closure
    rebound_rate          = rebounds / (closed + rebounds): of the problems this scope closed or
                            saw come back in the period, the share that came back
    overdue_rate          = overdue / due (eGova's overdue rate; not part of the score)

Score (of a road's window counts)
    score = 100 * Σ wᵢ·qᵢ / Σ wᵢ, with q = (on_time_handling_rate, on_time_closure_rate,
    1 - rework_rate, 1 - rebound_rate) and :data:`DEFAULT_WEIGHTS` w = (40, 30, 15, 15).
    A missing rate (no data) counts as perfect, q = 1: a road is not marked down for work it was
    never given. Dividing by Σ wᵢ keeps any non-negative weights within 0..100.

Ranking and red flags (红旗)
    Roads rank by score (highest first), ties by fewer overdue tasks in the window, then by
    road_id, so ranks are always 1..n without gaps. The best ``red_flags`` (default 5) *eligible*
    roads in rank order hold a red flag; a road is eligible when it had at least one due task in
    the window. No credit for no data: a road with nothing due scores 100 but takes no flag, and
    its place among the flag holders goes to the next eligible road. The roads ranked are those
    any task names, plus those the caller lists (from the registry), so a road with no tasks
    still ranks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, time, timedelta, timezone, tzinfo
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar

from schemas.enums import Domain, Status
from schemas.task import Task

__all__ = [
    "DEFAULT_RED_FLAGS",
    "DEFAULT_TZ",
    "DEFAULT_WEIGHTS",
    "DEFAULT_WINDOW",
    "FLAG_WIDTH",
    "Counts",
    "FinishedGroup",
    "FinishedParts",
    "FinishedTally",
    "KpiReport",
    "Period",
    "RoadKpi",
    "ScopeKpi",
    "Weights",
    "counts",
    "finished_parts",
    "kpi_report",
    "report_bounds",
    "road_kpis",
    "scope_counts",
    "score",
    "today_period",
    "window_period",
]

DEFAULT_WINDOW = timedelta(days=30)
DEFAULT_TZ: tzinfo = timezone(timedelta(hours=8))
"""China Standard Time, where the district's calendar day begins and ends."""
DEFAULT_RED_FLAGS = 5

_HANDLED_STATUSES = frozenset({Status.HANDLED, Status.CLOSED})
_Scope = TypeVar("_Scope", bound=str)


def _rate(numerator: int, denominator: int) -> float | None:
    return None if denominator == 0 else numerator / denominator


@dataclass(frozen=True, slots=True)
class Counts:
    """The indicators of one scope over one period; formulas in the module docstring."""

    due: int
    handled: int
    handled_on_time: int
    due_for_closure: int
    closed: int
    closed_on_time: int
    reworked: int
    rebounds: int
    overdue: int
    avg_handling_seconds: float | None

    def __post_init__(self) -> None:
        # Each pair is (subset, set): a rate built from them then always lies within 0..1.
        pairs = (
            (self.handled, self.due),
            (self.handled_on_time, self.handled),
            (self.overdue, self.due),
            (self.closed, self.due_for_closure),
            (self.closed_on_time, self.closed),
            (self.reworked, self.due_for_closure),
        )
        if self.rebounds < 0 or any(not 0 <= part <= whole for part, whole in pairs):
            raise ValueError(f"inconsistent counts: {self}")
        if self.avg_handling_seconds is not None and not self.avg_handling_seconds >= 0:
            raise ValueError(f"average handling time must be >= 0: {self.avg_handling_seconds}")

    @property
    def handling_rate(self) -> float | None:
        """handled / due."""
        return _rate(self.handled, self.due)

    @property
    def on_time_handling_rate(self) -> float | None:
        """handled_on_time / due."""
        return _rate(self.handled_on_time, self.due)

    @property
    def closure_rate(self) -> float | None:
        """closed / due_for_closure."""
        return _rate(self.closed, self.due_for_closure)

    @property
    def on_time_closure_rate(self) -> float | None:
        """closed_on_time / due_for_closure."""
        return _rate(self.closed_on_time, self.due_for_closure)

    @property
    def rework_rate(self) -> float | None:
        """reworked / due_for_closure."""
        return _rate(self.reworked, self.due_for_closure)

    @property
    def rebound_rate(self) -> float | None:
        """rebounds / (closed + rebounds)."""
        return _rate(self.rebounds, self.closed + self.rebounds)

    @property
    def overdue_rate(self) -> float | None:
        """overdue / due."""
        return _rate(self.overdue, self.due)

    def to_wire(self) -> dict[str, Any]:
        """Every count and every rate (null when there is no denominator) as a JSON object."""
        wire: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        wire.update(
            handling_rate=self.handling_rate,
            on_time_handling_rate=self.on_time_handling_rate,
            closure_rate=self.closure_rate,
            on_time_closure_rate=self.on_time_closure_rate,
            rework_rate=self.rework_rate,
            rebound_rate=self.rebound_rate,
            overdue_rate=self.overdue_rate,
        )
        return wire


@dataclass(frozen=True, slots=True)
class Weights:
    """How much each quality counts in a road's score; only their proportions matter."""

    on_time_handling: float = 40.0
    on_time_closure: float = 30.0
    rework: float = 15.0
    """Weight of ``1 - rework_rate``."""
    rebound: float = 15.0
    """Weight of ``1 - rebound_rate``."""

    def __post_init__(self) -> None:
        values = (self.on_time_handling, self.on_time_closure, self.rework, self.rebound)
        if not all(math.isfinite(v) and v >= 0 for v in values) or sum(values) <= 0:
            raise ValueError(f"weights must be finite, >= 0 and not all 0: {self}")


DEFAULT_WEIGHTS = Weights()


@dataclass(frozen=True, slots=True)
class Period:
    """The half-open interval ``[start, end)``."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("period bounds must carry a time zone")
        if self.end < self.start:
            raise ValueError(f"period ends before it starts: {self.start} .. {self.end}")

    def holds(self, at: datetime | None) -> bool:
        return at is not None and self.start <= at < self.end


def window_period(now: datetime, window: timedelta = DEFAULT_WINDOW) -> Period:
    """The rolling window ``[now - window, now)``."""
    if window <= timedelta(0):
        raise ValueError(f"the window must be positive: {window}")
    return Period(now - window, now)


def today_period(now: datetime, tz: tzinfo = DEFAULT_TZ) -> Period:
    """``[midnight, now)`` of the calendar day ``now`` falls on in ``tz``."""
    if now.tzinfo is None:
        raise ValueError("now must carry a time zone")
    midnight = datetime.combine(now.astimezone(tz).date(), time(), tzinfo=tz)
    return Period(midnight, now)


def _handling_time(task: Task) -> datetime | None:
    if task.handled_at is not None:
        return task.handled_at
    return task.closed_at if task.status is Status.CLOSED else None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _micros(at: datetime) -> int:
    """``at`` (as :func:`_utc`) in whole microseconds since the Unix epoch: exact."""
    return (at - _EPOCH) // _MICROSECOND


def _utc(at: datetime) -> datetime:
    """``at`` in UTC. Comparing two of these is exact, as comparing any aware datetimes is, and
    far cheaper: every time read from the wire carries a tzinfo object of its own, and comparing
    two datetimes with different tzinfo objects asks both for their offsets."""
    if at.tzinfo is None:
        # astimezone would take it for the machine's local time; comparing it would fail.
        raise TypeError(f"can't compare offset-naive and offset-aware datetimes: {at}")
    return at.astimezone(UTC)


# What one task adds to one period's counts, as bit flags: each count but the average gains 0 or 1
# per task. A task's contribution to several periods is one int, period i's flags shifted by
# i * _WIDTH; a scope then counts how many of its tasks had each contribution (a few dozen occur)
# instead of adding every task to nine counters per period.
_COUNTED = (
    "due",
    "handled",
    "handled_on_time",
    "due_for_closure",
    "closed",
    "closed_on_time",
    "reworked",
    "rebounds",
    "overdue",
)
_WIDTH = len(_COUNTED)
FLAG_WIDTH = _WIDTH
"""How many bits one period's flags take in a contribution (see :class:`FinishedGroup`)."""
(
    _DUE,
    _HANDLED,
    _HANDLED_ON_TIME,
    _DUE_FOR_CLOSURE,
    _CLOSED,
    _CLOSED_ON_TIME,
    _REWORKED,
    _REBOUND,
    _OVERDUE,
) = (1 << i for i in range(_WIDTH))

_Bounds = tuple[tuple[datetime, datetime], ...]
"""Each period's ``(start, end)`` as :func:`_utc`."""


def _bounds(periods: Iterable[Period]) -> _Bounds:
    return tuple((_utc(p.start), _utc(p.end)) for p in periods)


class _Contribution(NamedTuple):
    """What one task adds to the counts of each period."""

    flags: int
    """Period i's flags shifted by i * _WIDTH."""
    handled_in: Sequence[int]
    """The periods the task was handled in, which add ``micros`` to their handling time."""
    micros: int = 0
    """Handling time in whole microseconds (summed over the tasks, for a group of them)."""


_NOTHING = _Contribution(0, ())


def _contribution(task: Task, created: datetime, bounds: _Bounds) -> _Contribution:
    """What ``task``, created at ``created`` (as :func:`_utc`), adds to the counts of each period,
    whatever scope it is counted in."""
    if task.status is Status.CANCELLED:
        return _NOTHING
    flags = 0 if task.rebound_of is None else _in_periods(_REBOUND, created, bounds)
    if task.status is Status.SUSPENDED:
        return _Contribution(flags, ())
    due = _utc(task.due_at)
    handled_at = _handling_time(task)
    if handled_at is None:
        return _Contribution(flags | _in_periods(_due_flags(task, None), due, bounds), ())
    handled = _utc(handled_at)
    flags |= _in_periods(_due_flags(task, handled <= due), due, bounds)
    handled_in = [i for i, (start, end) in enumerate(bounds) if start <= handled < end]
    if not handled_in:
        return _Contribution(flags, ())
    closure_flags = _closure_flags(task, due)
    for i in handled_in:
        flags |= closure_flags << i * _WIDTH
    # Clamped so a clock-skewed terminal cannot make the average negative.
    return _Contribution(flags, handled_in, max(0, (handled - created) // _MICROSECOND))


def _in_periods(flags: int, at: datetime, bounds: _Bounds) -> int:
    """``flags`` shifted to each period that holds ``at``."""
    shifted = 0
    for i, (start, end) in enumerate(bounds):
        if start <= at < end:
            shifted |= flags << i * _WIDTH
    return shifted


def _due_flags(task: Task, on_time: bool | None) -> int:
    """The flags of a task due in the period; ``on_time`` is None without a handling time."""
    flags = _DUE
    if task.overdue:
        flags |= _OVERDUE
    if on_time is not None or task.status in _HANDLED_STATUSES:
        flags |= _HANDLED
        if on_time:
            flags |= _HANDLED_ON_TIME
    return flags


def _closure_flags(task: Task, due: datetime) -> int:
    """The flags of a task handled in the period."""
    flags = _DUE_FOR_CLOSURE
    if task.rework_count > 0:
        flags |= _REWORKED
    if task.status is Status.CLOSED:
        flags |= _CLOSED
        if task.closed_at is not None and _utc(task.closed_at) <= due:
            flags |= _CLOSED_ON_TIME
    return flags


class FinishedParts(NamedTuple):
    """What a closed or cancelled task adds to the counts of any periods, in parts a database can
    store and add up (:mod:`streams.finished`): a finished task changes no more, so each of its
    flags hangs on one instant, and a period gains the flags of the instants it holds.

    Period i's contribution is ``rebound_flags`` if it holds ``created``, ``due_flags`` if it holds
    ``due``, and ``closure_flags`` with ``micros`` of handling time if it holds ``handled``; put
    together as :func:`_contribution` does, shifted by ``i * FLAG_WIDTH``. A cancelled task's
    flags are 0: it counts nowhere, but still names its road, community and domain.
    """

    created: int
    """Instants in whole microseconds since the Unix epoch."""
    due: int
    handled: int | None
    rebound_flags: int
    due_flags: int
    closure_flags: int
    micros: int


def finished_parts(task: Task) -> FinishedParts:
    """The parts of a closed or cancelled ``task``; raises ValueError for an open one."""
    if task.status.is_open:
        raise ValueError(f"task {task.task_id} is {task.status.value}, not finished")
    created, due = _utc(task.created_at), _utc(task.due_at)
    handling = _handling_time(task)
    if task.status is Status.CANCELLED or handling is None:
        return FinishedParts(_micros(created), _micros(due), None, 0, 0, 0, 0)
    handled = _utc(handling)
    return FinishedParts(
        created=_micros(created),
        due=_micros(due),
        handled=_micros(handled),
        rebound_flags=_REBOUND if task.rebound_of is not None else 0,
        due_flags=_due_flags(task, handled <= due),
        closure_flags=_closure_flags(task, due),
        micros=max(0, (handled - created) // _MICROSECOND),
    )


class FinishedGroup(NamedTuple):
    """Finished tasks of one road, community and domain that made the same contribution to a
    report's periods (window, then today): what a database adds up from :class:`FinishedParts`."""

    road_id: str | None
    community: str | None
    domain: str
    """The domain's wire value."""
    flags: int
    """Period i's flags shifted by ``i * FLAG_WIDTH``."""
    handled_in: tuple[int, ...]
    """The periods that hold the tasks' handling time."""
    tasks: int
    micros: int
    """Their handling time in the ``handled_in`` periods, summed."""


class FinishedTally(NamedTuple):
    """Finished tasks, added up for one report (:func:`kpi_report`'s ``finished``)."""

    groups: Sequence[FinishedGroup]
    latest: Sequence[tuple[str, str, int]]
    """``(road_id, community, created)``: for each road and community the finished tasks name
    together, the latest creation (whole microseconds since the epoch)."""


def report_bounds(
    now: datetime, window: timedelta = DEFAULT_WINDOW, tz: tzinfo = DEFAULT_TZ
) -> tuple[tuple[int, int], ...]:
    """A report's periods (window, then today) as ``(start, end)`` in whole microseconds since
    the epoch: what :class:`FinishedGroup` flags refer to."""
    periods = (window_period(now, window), today_period(now, tz))
    return tuple((_micros(_utc(p.start)), _micros(_utc(p.end))) for p in periods)


class _Tally:
    """Running totals of one scope over some periods while one pass visits each task once."""

    __slots__ = ("_micros", "_tasks")

    def __init__(self, periods: int) -> None:
        self._tasks: dict[int, int] = {}
        """How many tasks made each contribution (its flags)."""
        self._micros = [0] * periods
        """Each period's handling time in whole microseconds: integers add up exactly in any
        order, so an average does not depend on the order the tasks come in, nor on whether they
        come one by one or grouped (:class:`FinishedGroup`)."""

    def add(self, contribution: _Contribution, tasks: int = 1) -> None:
        """Count ``tasks`` tasks that made ``contribution`` (its ``micros`` their total)."""
        flags = contribution.flags
        self._tasks[flags] = self._tasks.get(flags, 0) + tasks
        for i in contribution.handled_in:
            self._micros[i] += contribution.micros

    def counts(self, period: int) -> Counts:
        """The counts of the ``period``-th period."""
        totals = dict.fromkeys(_COUNTED, 0)
        for flags, tasks in self._tasks.items():
            own = flags >> period * _WIDTH
            for i, name in enumerate(_COUNTED):
                if own >> i & 1:
                    totals[name] += tasks
        due_for_closure = totals["due_for_closure"]
        return Counts(
            **totals,
            # One correctly rounded division of two integers.
            avg_handling_seconds=(
                self._micros[period] / (due_for_closure * 1_000_000) if due_for_closure else None
            ),
        )


def counts(tasks: Iterable[Task], *, start: datetime, end: datetime) -> Counts:
    """The indicators of ``tasks`` over ``[start, end)``; pass ``end <= now``."""
    bounds = _bounds([Period(start, end)])
    tally = _Tally(periods=1)
    for task in tasks:
        tally.add(_contribution(task, _utc(task.created_at), bounds))
    return tally.counts(0)


def scope_counts(
    tasks: Iterable[Task],
    key: Callable[[Task], str | None],
    *,
    start: datetime,
    end: datetime,
) -> dict[str, Counts]:
    """The indicators per scope, ``key(task)`` naming a task's scope; None leaves a task out.

    Per community: ``key=lambda t: t.community``; per domain: ``key=lambda t: t.domain.value``.
    A scope appears once any task names it, even when all its counts are 0.
    """
    bounds = _bounds([Period(start, end)])
    tallies: dict[str, _Tally] = {}
    for task in tasks:
        scope = key(task)
        if scope is not None:
            if scope not in tallies:
                tallies[scope] = _Tally(periods=1)
            tallies[scope].add(_contribution(task, _utc(task.created_at), bounds))
    return {scope: tallies[scope].counts(0) for scope in sorted(tallies)}


def score(c: Counts, weights: Weights = DEFAULT_WEIGHTS) -> float:
    """The weighted quality of ``c`` within 0..100; a missing rate counts as perfect."""

    def quality(rate: float | None, *, inverse: bool = False) -> float:
        if rate is None:
            return 1.0
        return 1.0 - rate if inverse else rate

    weighted = (
        weights.on_time_handling * quality(c.on_time_handling_rate)
        + weights.on_time_closure * quality(c.on_time_closure_rate)
        + weights.rework * quality(c.rework_rate, inverse=True)
        + weights.rebound * quality(c.rebound_rate, inverse=True)
    )
    total = weights.on_time_handling + weights.on_time_closure + weights.rework + weights.rebound
    # Divided before scaling: weighted <= total, so the ratio is at most 1.0 even in floating
    # point, where (100 * weighted) / total can come out a hair above 100.
    return 100.0 * (weighted / total)


@dataclass(frozen=True, slots=True)
class RoadKpi:
    """One road's assessment: its counts, score (of the window), rank and red flag.

    Published to the compacted topic ``city.kpi.roads`` keyed by ``road_id``.
    """

    road_id: str
    community: str | None
    window: Counts
    today: Counts
    score: float
    rank: int
    """1 is the best road."""
    red_flag: bool
    as_of: datetime
    """The ``now`` the KPIs were computed for: both periods end here."""
    window_start: datetime
    today_start: datetime
    """Local midnight in the assessment's time zone."""

    def to_wire(self) -> dict[str, Any]:
        """The road's KPIs as a JSON object (``schemas.json.dumps``-able)."""
        return {
            "road_id": self.road_id,
            "community": self.community,
            "score": self.score,
            "rank": self.rank,
            "red_flag": self.red_flag,
            "as_of": self.as_of.isoformat(),
            "window_start": self.window_start.isoformat(),
            "today_start": self.today_start.isoformat(),
            "window": self.window.to_wire(),
            "today": self.today.to_wire(),
        }


@dataclass(frozen=True, slots=True)
class ScopeKpi:
    """One scope's counts over the rolling window and over today."""

    window: Counts
    today: Counts

    def to_wire(self) -> dict[str, Any]:
        return {"window": self.window.to_wire(), "today": self.today.to_wire()}


@dataclass(frozen=True, slots=True)
class KpiReport:
    """Everything district leaders read: roads ranked, and counts per community, domain and for
    the whole district."""

    as_of: datetime
    window_start: datetime
    today_start: datetime
    roads: tuple[RoadKpi, ...]
    """Best first."""
    communities: Mapping[str, ScopeKpi]
    domains: Mapping[str, ScopeKpi]
    """Keyed by the domain's wire value."""
    district: ScopeKpi

    def to_wire(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "window_start": self.window_start.isoformat(),
            "today_start": self.today_start.isoformat(),
            "roads": [road.to_wire() for road in self.roads],
            "communities": {name: kpi.to_wire() for name, kpi in self.communities.items()},
            "domains": {name: kpi.to_wire() for name, kpi in self.domains.items()},
            "district": self.district.to_wire(),
        }


_WINDOW, _TODAY = 0, 1
"""Where a report's two periods sit in its bounds and its tallies."""


def _scope_kpi(tally: _Tally) -> ScopeKpi:
    return ScopeKpi(tally.counts(_WINDOW), tally.counts(_TODAY))


class _Scored(NamedTuple):
    road_id: str
    window: Counts
    today: Counts
    score: float


def _ranked(
    by_road: Mapping[str, _Tally],
    community: Mapping[str, str],
    *,
    red_flags: int,
    weights: Weights,
    as_of: datetime,
    window: Period,
    today: Period,
) -> tuple[RoadKpi, ...]:
    """Each road's score, rank and red flag, best first."""
    scored = []
    for road_id, tally in by_road.items():
        kpi = _scope_kpi(tally)
        scored.append(_Scored(road_id, kpi.window, kpi.today, score(kpi.window, weights)))
    scored.sort(key=lambda row: (-row.score, row.window.overdue, row.road_id))

    result: list[RoadKpi] = []
    flags_left = red_flags
    for rank, row in enumerate(scored, start=1):
        # No credit for no data: a road with nothing due cannot hold a flag, nor use one up.
        flag = flags_left > 0 and row.window.due > 0
        if flag:
            flags_left -= 1
        result.append(
            RoadKpi(
                road_id=row.road_id,
                community=community.get(row.road_id),
                window=row.window,
                today=row.today,
                score=row.score,
                rank=rank,
                red_flag=flag,
                as_of=as_of,
                window_start=window.start,
                today_start=today.start,
            )
        )
    return tuple(result)


def _scopes(tallies: Mapping[str, _Tally]) -> Mapping[str, ScopeKpi]:
    return MappingProxyType({scope: _scope_kpi(tallies[scope]) for scope in sorted(tallies)})


def _tally(tallies: dict[_Scope, _Tally], scope: _Scope) -> _Tally:
    tally = tallies.get(scope)
    if tally is None:
        tally = tallies[scope] = _Tally(periods=2)
    return tally


def kpi_report(
    tasks: Iterable[Task],
    *,
    now: datetime,
    window: timedelta = DEFAULT_WINDOW,
    tz: tzinfo = DEFAULT_TZ,
    red_flags: int = DEFAULT_RED_FLAGS,
    weights: Weights = DEFAULT_WEIGHTS,
    roads: Mapping[str, str | None] | None = None,
    finished: FinishedTally | None = None,
) -> KpiReport:
    """Every scope at once: roads (as :func:`road_kpis`), communities, domains, the district.

    One pass over the tasks: what a task adds to the window and to today is worked out once, then
    added to its road, its community, its domain and the district. ``finished`` adds tasks
    already added up elsewhere for these periods (:func:`report_bounds`); a task must come in
    ``tasks`` or in ``finished``, not both.
    """
    if red_flags < 0:
        raise ValueError(f"red_flags must be >= 0: {red_flags}")
    in_window = window_period(now, window)
    in_today = today_period(now, tz)
    bounds = _bounds((in_window, in_today))  # in the order of _WINDOW and _TODAY
    by_road = {road_id: _Tally(periods=2) for road_id in roads or {}}
    by_community: dict[str, _Tally] = {}
    by_domain: dict[Domain, _Tally] = {}
    district = _Tally(periods=2)
    latest: dict[str, tuple[int, str]] = {}
    """Each road's most recent task's creation (as :func:`_micros`) and community."""

    def named(road_id: str, community: str, created: int) -> None:
        # A road takes the community its most recent task records (roads may be re-assigned);
        # ties on created_at go to the greater name, so the result never depends on task order.
        candidate = (created, community)
        if road_id not in latest or candidate > latest[road_id]:
            latest[road_id] = candidate

    for task in tasks:
        created = _utc(task.created_at)
        contribution = _contribution(task, created, bounds)
        district.add(contribution)
        _tally(by_domain, task.domain).add(contribution)
        if task.community is not None:
            _tally(by_community, task.community).add(contribution)
        if task.road_id is not None:
            _tally(by_road, task.road_id).add(contribution)
            if task.community is not None:
                named(task.road_id, task.community, _micros(created))
    for group in finished.groups if finished is not None else ():
        contribution = _Contribution(group.flags, group.handled_in, group.micros)
        district.add(contribution, group.tasks)
        _tally(by_domain, Domain(group.domain)).add(contribution, group.tasks)
        if group.community is not None:
            _tally(by_community, group.community).add(contribution, group.tasks)
        if group.road_id is not None:
            _tally(by_road, group.road_id).add(contribution, group.tasks)
    for road_id, named_community, created_micros in finished.latest if finished else ():
        named(road_id, named_community, created_micros)
    community = {road_id: c for road_id, (_, c) in latest.items()} | {
        road_id: c for road_id, c in (roads or {}).items() if c is not None
    }
    return KpiReport(
        as_of=now,
        window_start=in_window.start,
        today_start=in_today.start,
        roads=_ranked(
            by_road,
            community,
            red_flags=red_flags,
            weights=weights,
            as_of=now,
            window=in_window,
            today=in_today,
        ),
        communities=_scopes(by_community),
        domains=_scopes({domain.value: tally for domain, tally in by_domain.items()}),
        district=_scope_kpi(district),
    )


def road_kpis(
    tasks: Iterable[Task],
    *,
    now: datetime,
    window: timedelta = DEFAULT_WINDOW,
    tz: tzinfo = DEFAULT_TZ,
    red_flags: int = DEFAULT_RED_FLAGS,
    weights: Weights = DEFAULT_WEIGHTS,
    roads: Mapping[str, str | None] | None = None,
) -> list[RoadKpi]:
    """Every road's KPIs, score, rank and red flag, best first.

    The roads are those any task names, plus ``roads`` (road id to community, e.g. from the
    registry) so that a road with no tasks is still ranked; its community there wins over the
    tasks'.
    """
    report = kpi_report(
        tasks, now=now, window=window, tz=tz, red_flags=red_flags, weights=weights, roads=roads
    )
    return list(report.roads)
