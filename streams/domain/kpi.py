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
                           is over the tasks handled in the period; None when there are none

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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, time, timedelta, timezone, tzinfo
from types import MappingProxyType
from typing import Any, NamedTuple

from schemas.enums import Status
from schemas.task import Task

__all__ = [
    "DEFAULT_RED_FLAGS",
    "DEFAULT_TZ",
    "DEFAULT_WEIGHTS",
    "DEFAULT_WINDOW",
    "Counts",
    "KpiReport",
    "Period",
    "RoadKpi",
    "ScopeKpi",
    "Weights",
    "counts",
    "kpi_report",
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

_HANDLED = frozenset({Status.HANDLED, Status.CLOSED})


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


@dataclass(slots=True)
class _Tally:
    """Running totals of :class:`Counts` while one pass visits each task once."""

    period: Period
    due: int = 0
    handled: int = 0
    handled_on_time: int = 0
    due_for_closure: int = 0
    closed: int = 0
    closed_on_time: int = 0
    reworked: int = 0
    rebounds: int = 0
    overdue: int = 0
    handling_seconds: float = 0.0

    def add(self, task: Task) -> None:
        if task.status is Status.CANCELLED:
            return
        if task.rebound_of is not None and self.period.holds(task.created_at):
            self.rebounds += 1
        if task.status is Status.SUSPENDED:
            return
        handled_at = _handling_time(task)
        if self.period.holds(task.due_at):
            self._add_due(task, handled_at)
        if handled_at is not None and self.period.holds(handled_at):
            self._add_handled(task, handled_at)

    def _add_due(self, task: Task, handled_at: datetime | None) -> None:
        self.due += 1
        if task.overdue:
            self.overdue += 1
        if handled_at is not None or task.status in _HANDLED:
            self.handled += 1
            if handled_at is not None and handled_at <= task.due_at:
                self.handled_on_time += 1

    def _add_handled(self, task: Task, handled_at: datetime) -> None:
        self.due_for_closure += 1
        # Clamped so a clock-skewed terminal cannot make the average negative.
        self.handling_seconds += max(0.0, (handled_at - task.created_at).total_seconds())
        if task.rework_count > 0:
            self.reworked += 1
        if task.status is Status.CLOSED:
            self.closed += 1
            if task.closed_at is not None and task.closed_at <= task.due_at:
                self.closed_on_time += 1

    def counts(self) -> Counts:
        return Counts(
            due=self.due,
            handled=self.handled,
            handled_on_time=self.handled_on_time,
            due_for_closure=self.due_for_closure,
            closed=self.closed,
            closed_on_time=self.closed_on_time,
            reworked=self.reworked,
            rebounds=self.rebounds,
            overdue=self.overdue,
            avg_handling_seconds=(
                self.handling_seconds / self.due_for_closure if self.due_for_closure else None
            ),
        )


def counts(tasks: Iterable[Task], *, start: datetime, end: datetime) -> Counts:
    """The indicators of ``tasks`` over ``[start, end)``; pass ``end <= now``."""
    tally = _Tally(Period(start, end))
    for task in tasks:
        tally.add(task)
    return tally.counts()


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
    period = Period(start, end)
    tallies: dict[str, _Tally] = {}
    for task in tasks:
        scope = key(task)
        if scope is not None:
            tallies.setdefault(scope, _Tally(period)).add(task)
    return {scope: tallies[scope].counts() for scope in sorted(tallies)}


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


def _communities(tasks: Iterable[Task]) -> dict[str, str]:
    """Each road's community as its most recent task records it (roads may be re-assigned)."""
    latest: dict[str, tuple[datetime, str]] = {}
    for task in tasks:
        if task.road_id is None or task.community is None:
            continue
        candidate = (task.created_at, task.community)
        # Ties on created_at go to the greater name, so the result never depends on task order.
        if task.road_id not in latest or candidate > latest[task.road_id]:
            latest[task.road_id] = candidate
    return {road_id: community for road_id, (_, community) in latest.items()}


class _Scored(NamedTuple):
    road_id: str
    window: Counts
    today: Counts
    score: float


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
    if red_flags < 0:
        raise ValueError(f"red_flags must be >= 0: {red_flags}")
    all_tasks = tuple(tasks)
    in_window = window_period(now, window)
    in_today = today_period(now, tz)
    by_road: dict[str, list[Task]] = {road_id: [] for road_id in roads or {}}
    for task in all_tasks:
        if task.road_id is not None:
            by_road.setdefault(task.road_id, []).append(task)
    community = _communities(all_tasks) | {
        road_id: c for road_id, c in (roads or {}).items() if c is not None
    }

    scored: list[_Scored] = []
    for road_id, road_tasks in by_road.items():
        window_counts = counts(road_tasks, start=in_window.start, end=in_window.end)
        today_counts = counts(road_tasks, start=in_today.start, end=in_today.end)
        scored.append(_Scored(road_id, window_counts, today_counts, score(window_counts, weights)))
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
                as_of=now,
                window_start=in_window.start,
                today_start=in_today.start,
            )
        )
    return result


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


def _by_scope(
    tasks: Iterable[Task], key: Callable[[Task], str | None], window: Period, today: Period
) -> Mapping[str, ScopeKpi]:
    in_window = scope_counts(tasks, key, start=window.start, end=window.end)
    in_today = scope_counts(tasks, key, start=today.start, end=today.end)
    return MappingProxyType(
        {scope: ScopeKpi(in_window[scope], in_today[scope]) for scope in in_window}
    )


def kpi_report(
    tasks: Iterable[Task],
    *,
    now: datetime,
    window: timedelta = DEFAULT_WINDOW,
    tz: tzinfo = DEFAULT_TZ,
    red_flags: int = DEFAULT_RED_FLAGS,
    weights: Weights = DEFAULT_WEIGHTS,
    roads: Mapping[str, str | None] | None = None,
) -> KpiReport:
    """Every scope at once: roads (as :func:`road_kpis`), communities, domains, the district."""
    all_tasks = tuple(tasks)
    in_window = window_period(now, window)
    in_today = today_period(now, tz)
    return KpiReport(
        as_of=now,
        window_start=in_window.start,
        today_start=in_today.start,
        roads=tuple(
            road_kpis(
                all_tasks,
                now=now,
                window=window,
                tz=tz,
                red_flags=red_flags,
                weights=weights,
                roads=roads,
            )
        ),
        communities=_by_scope(all_tasks, lambda t: t.community, in_window, in_today),
        domains=_by_scope(all_tasks, lambda t: t.domain.value, in_window, in_today),
        district=ScopeKpi(
            counts(all_tasks, start=in_window.start, end=in_window.end),
            counts(all_tasks, start=in_today.start, end=in_today.end),
        ),
    )
