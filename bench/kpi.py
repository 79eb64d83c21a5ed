"""Seconds per ``kpi_report`` over a synthetic task book, as the KPI leader computes it every
``CITYGRID_KPI_INTERVAL``.

The book is what a worker holds after a busy month: tasks on 500 roads of 7 communities in the 4
domains, created over the last 31 days with microsecond timestamps in +08:00 and read back from
their wire form as the task book reads them; mostly closed, some open, parked, cancelled,
reworked, overdue or rebounds. Each size is timed ``--repeat`` times; the best and the median run
are reported, with the cost of the snapshot the agent takes on the event loop
(``list(tasks.values())``) and a digest of the report's wire form, so two versions of the code can
be shown to give the same report.

A second line times the report as a worker computes it: the finished tasks in the task book's
SQLite store (:mod:`streams.finished`, in a temporary directory), added up there, and the open
ones counted in Python (``streams.taskbook.report_of``), with the digest of that report, which
must equal the first.

Usage: ``.venv/bin/python bench/kpi.py [--tasks N [N ...]] [--repeat R] [--seed K]``
(e.g. ``--tasks 100000 1000000``).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from schemas.enums import Domain, Priority, Source, Status
from schemas.json import dumps
from schemas.task import Task
from streams.domain.kpi import DEFAULT_RED_FLAGS, DEFAULT_WINDOW, kpi_report
from streams.finished import FinishedTasks
from streams.taskbook import KpiSource, report_of

__all__ = ["main", "task_book"]

CST = timezone(timedelta(hours=8))
NOW = datetime(2026, 11, 29, 4, 0, tzinfo=UTC)  # noon in the district
ROADS = 500
COMMUNITIES = 7
_STATUSES = (
    Status.CLOSED,
    Status.REGISTERED,
    Status.DISPATCHED,
    Status.ACCEPTED,
    Status.HANDLED,
    Status.SUSPENDED,
    Status.CANCELLED,
)
_STATUS_WEIGHTS = (85, 2, 2, 2, 2, 3, 4)
_UNREPORTED = 0.1
"""The share of closed tasks closed without a handling report."""
_REWORKED = 0.1
_REBOUNDS = 0.05


def _task(rng: random.Random, i: int) -> Task:
    road = rng.randrange(ROADS)
    created = NOW.astimezone(CST) - timedelta(microseconds=rng.randrange(31 * 24 * 3600 * 10**6))
    due = created + timedelta(seconds=rng.randrange(3600, 3 * 24 * 3600))
    (status,) = rng.choices(_STATUSES, _STATUS_WEIGHTS)
    handled = closed = suspended = None
    if status in (Status.HANDLED, Status.CLOSED):
        handled = created + timedelta(microseconds=rng.randrange(4 * 24 * 3600 * 10**6))
    if status is Status.CLOSED:
        closed = handled + timedelta(microseconds=rng.randrange(6 * 3600 * 10**6))  # type: ignore[operator]
        if rng.random() < _UNREPORTED:
            handled = None  # closed straight away, without a handling report
    if status is Status.SUSPENDED:
        suspended = created + timedelta(hours=1)
    finished = closed or handled or suspended
    task = Task(
        task_id=f"task-{i:07d}",
        status=status,
        domain=rng.choice(tuple(Domain)),
        category="0301",
        priority=rng.choice(tuple(Priority)),
        place=f"road-{road:03d}",
        road_id=f"road-{road:03d}",
        community=f"community-{road % COMMUNITIES}",
        assignee=f"chief-{road:03d}",
        created_at=created,
        updated_at=finished or created,
        due_at=due,
        event_ids=(f"event-{i:07d}",),
        sources=(rng.choice(tuple(Source)),),
        rework_count=1 if rng.random() < _REWORKED else 0,
        rebound_of=f"task-{i - 1:07d}" if i and rng.random() < _REBOUNDS else None,
        closed_at=closed,
        cancel_reason="duplicate" if status is Status.CANCELLED else None,
        handled_at=handled,
        suspended_at=suspended,
        overdue=(handled or closed or NOW) > due,
    )
    # Through the wire form, as the task book reads it: terminals stamp times in +08:00, and
    # each parsed time then carries its own tzinfo, which makes comparing them dearer.
    return Task.from_wire(task.to_wire())


def task_book(n: int, seed: int) -> dict[str, Task]:
    """``n`` synthetic tasks by task id, the shape of ``TaskBook.tasks``."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data
    return {task.task_id: task for task in (_task(rng, i) for i in range(n))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[100_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    roads = {f"road-{r:03d}": f"community-{r % COMMUNITIES}" for r in range(ROADS)}
    for n in args.tasks:
        book = task_book(n, args.seed)
        started = time.perf_counter()
        snapshot = list(book.values())
        copied = time.perf_counter() - started
        runs = []
        for _ in range(args.repeat):
            gc.collect()
            started = time.perf_counter()
            report = kpi_report(snapshot, now=NOW, roads=roads)
            runs.append(time.perf_counter() - started)
        digest = hashlib.sha256(dumps(report.to_wire())).hexdigest()[:16]
        print(  # noqa: T201
            f"{n:>9,} tasks  kpi_report best {min(runs):7.3f} s  median "
            f"{statistics.median(runs):7.3f} s  snapshot {copied * 1000:6.1f} ms  report {digest}"
        )
        _on_disk(snapshot, roads, args.repeat)


def _on_disk(tasks: list[Task], roads: dict[str, str], repeat: int) -> None:
    """The worker's way: finished tasks in SQLite, open ones in memory."""
    with tempfile.TemporaryDirectory() as directory:
        store = FinishedTasks(Path(directory))
        try:
            started = time.perf_counter()
            for task in tasks:
                if not task.status.is_open:
                    store.put(task, dumps(task.wire_fields()))
            source = KpiSource(store, store.mark())
            stored = time.perf_counter() - started
            open_tasks = [task for task in tasks if task.status.is_open]
            runs = []
            for _ in range(repeat):
                gc.collect()
                started = time.perf_counter()
                report = report_of(
                    open_tasks,
                    source,
                    now=NOW,
                    window=DEFAULT_WINDOW,
                    red_flags=DEFAULT_RED_FLAGS,
                    roads=roads,
                )
                runs.append(time.perf_counter() - started)
        finally:
            store.close()
    digest = hashlib.sha256(dumps(report.to_wire())).hexdigest()[:16]
    print(  # noqa: T201
        f"{len(open_tasks):>9,} open + {len(tasks) - len(open_tasks):,} on disk  report_of best "
        f"{min(runs):7.3f} s  median {statistics.median(runs):7.3f} s  (writing them "
        f"{stored:.1f} s)  report {digest}"
    )


if __name__ == "__main__":
    main()
