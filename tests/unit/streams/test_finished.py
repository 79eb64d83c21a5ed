"""The finished tasks on disk: the KPIs SQLite adds up and the task lists it pages equal those of
the same tasks in memory, and the task book moves finished tasks there and back."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.enums import Domain, Priority, Status
from schemas.json import dumps
from schemas.task import Task
from streams import taskbook
from streams.api import Page, Selection, TaskFilter, encode_cursor, select, sort_key, stored_page
from streams.domain.kpi import kpi_report, report_bounds
from streams.finished import FinishedTasks
from streams.settings import Settings
from streams.taskbook import RECENT, TaskBook, report_of
from tests.unit.streams.domain.test_kpi import (
    _PROPERTY,
    _ROADS,
    CST,
    MIDNIGHT,
    REPORT_CASES,
    read_tasks,
)
from tests.unit.streams.test_api import make_task


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FinishedTasks]:
    finished = FinishedTasks(tmp_path / "tasks")
    yield finished
    finished.close()


def _stored(tasks: list[Task]) -> FinishedTasks:
    finished = FinishedTasks(Path(tempfile.mkdtemp()))
    for task in tasks:
        if not task.status.is_open:
            finished.put(task, dumps(task.wire_fields()))
    finished.flush()
    return finished


def _unique(sample: list[Task]) -> list[Task]:
    return list({task.task_id: task for task in sample}.values())


@_PROPERTY
@given(*REPORT_CASES)
def test_the_kpis_of_finished_tasks_added_up_on_disk_equal_those_counted_in_memory(
    sample: list[Task], minute_of_day: int, days: int, tz: object, registry: dict[str, str | None]
) -> None:
    now = MIDNIGHT + minute_of_day * timedelta(minutes=1)
    window = timedelta(days=days)
    assert tz in (CST, UTC)
    zone = CST if tz is CST else UTC
    finished = _stored(sample)
    try:
        tally = finished.tally(report_bounds(now, window, zone), finished.mark())
        on_disk = kpi_report(
            [t for t in sample if t.status.is_open],
            now=now,
            window=window,
            tz=zone,
            roads=registry,
            finished=tally,
        )
    finally:
        finished.close()
    # Exact equality, averages included.
    assert on_disk == kpi_report(sample, now=now, window=window, tz=zone, roads=registry)


def _closed(task_id: str, minutes: int = 0) -> Task:
    return make_task(
        task_id,
        status=Status.CLOSED,
        minutes=minutes,
        handled_at=make_task().created_at + timedelta(minutes=minutes + 30),
        closed_at=make_task().created_at + timedelta(minutes=minutes + 40),
    )


def test_a_tally_takes_the_tasks_finished_by_its_mark_and_a_new_state_keeps_its_place(
    store: FinishedTasks,
) -> None:
    first, second = _closed("a~4001~000000000001"), _closed("a~4001~000000000002")
    store.put(first, dumps(first.wire_fields()))
    mark = store.mark()
    store.put(second, dumps(second.wire_fields()))
    # A late report merged into the first task after the mark: it is still the mark's.
    later = replace(first, event_ids=(*first.event_ids, "e-late"))
    store.put(later, dumps(later.wire_fields()))
    now = first.created_at + timedelta(days=1)
    bounds = report_bounds(now)
    assert sum(g.tasks for g in store.tally(bounds, mark).groups) == 1
    assert sum(g.tasks for g in store.tally(bounds, store.mark()).groups) == 2
    assert store.get(first.task_id) == later
    assert len(store) == 2


_ANY = st.sampled_from
_FILTERS = st.one_of(
    st.just(TaskFilter()),
    st.builds(
        TaskFilter,
        community=_ANY((None, None, "community-0", "community-1")),
        road=_ANY((None, None, *_ROADS[:2])),
        domains=st.one_of(st.just(frozenset()), st.frozensets(_ANY(Domain), max_size=3)),
        statuses=st.one_of(
            st.just(frozenset()),
            st.just(frozenset({Status.CLOSED, Status.CANCELLED})),
            st.frozensets(_ANY(Status), max_size=4),
        ),
        priorities=st.one_of(st.just(frozenset()), st.frozensets(_ANY(Priority), max_size=2)),
        assignee=_ANY((None, None, "chief-1")),
        overdue=_ANY((None, None, True, False)),
        rebound=_ANY((None, None, True, False)),
    ),
)
"""Filters that select nothing in particular often enough for pages of several tasks."""


@st.composite
def listed_tasks(draw: st.DrawFn) -> list[Task]:
    """Tasks as :func:`read_tasks`, with priorities, assignees and creations that tie."""
    sample = _unique(draw(st.lists(read_tasks(), min_size=1, max_size=30)))
    return [
        replace(
            t,
            priority=draw(st.sampled_from(Priority)),
            assignee=draw(st.sampled_from((None, "chief-1", "chief-2"))),
            created_at=draw(st.sampled_from((t.created_at, sample[0].created_at))),
        )
        for t in sample
    ]


@_PROPERTY
@given(listed_tasks(), _FILTERS, st.integers(1, 7), st.integers(0, 8), st.integers(-1, 29))
def test_a_page_of_tasks_in_memory_and_on_disk_equals_the_page_of_them_all_in_memory(
    sample: list[Task], task_filter: TaskFilter, limit: int, offset: int, cursor_at: int
) -> None:
    ordered = sorted(sample, key=sort_key)
    after = sort_key(ordered[cursor_at]) if 0 <= cursor_at < len(ordered) else None
    page = Page(limit=limit, offset=0 if after else offset, after=after)
    finished = _stored(sample)
    try:
        stored = stored_page(finished, task_filter, page)
    finally:
        finished.close()
    split = select([t for t in sample if t.status.is_open], task_filter, page, stored)
    whole = select(sample, task_filter, page)
    assert split == whole
    assert isinstance(whole, Selection)
    if whole.next_cursor is not None:
        assert whole.next_cursor == encode_cursor(sort_key(whole.tasks[-1]))


def _book(tmp_path: Path) -> TaskBook:
    return TaskBook(Settings(app_id="unit", data_dir=tmp_path, kpi_window=86_400), on_disk=True)


def _apply(book: TaskBook, task: Task) -> None:
    book.apply(task.task_id.encode(), dumps(task.wire_fields()))


async def test_a_finished_task_leaves_memory_after_a_while_and_is_still_found(
    tmp_path: Path,
) -> None:
    book = _book(tmp_path)
    now = datetime.now(UTC)
    opened = make_task("a~4001~000000000001", created_at=now, updated_at=now)
    _apply(book, opened)
    assert book.finished is None, "nothing on disk before a task finishes"
    closed = replace(opened, status=Status.CLOSED, closed_at=now, handled_at=now)
    _apply(book, closed)
    assert book.finished is not None and closed.task_id in book.finished
    # Recently closed: in memory too, for the live feeds; lists take it from disk only.
    assert book.tasks[closed.task_id] == closed
    assert list(book.listed()) == []
    other = make_task("a~4001~000000000002", created_at=now, updated_at=now)
    _apply(book, other)
    assert list(book.listed()) == [other]
    assert await book.prune(now + RECENT / 2) == 0
    assert closed.task_id in book.tasks
    assert await book.prune(now + RECENT * 2) == 0
    assert closed.task_id not in book.tasks
    assert book.get(closed.task_id) == closed
    # Past the KPI window and a day: gone from disk too.
    assert await book.prune(now + timedelta(days=2, minutes=1)) == 1
    assert book.get(closed.task_id) is None
    assert book.get(other.task_id) == other
    directory = book.finished.directory
    book.close()
    assert not directory.exists()


async def test_long_finished_tasks_go_to_disk_only_and_a_tombstone_forgets_them(
    tmp_path: Path,
) -> None:
    book = _book(tmp_path)
    # Closed two hours ago: long finished, yet within the KPI window and a day.
    hours = datetime.now(UTC) - timedelta(hours=3)
    old = make_task(
        "a~4001~000000000001",
        status=Status.CLOSED,
        created_at=hours,
        due_at=hours + timedelta(hours=4),
        handled_at=hours + timedelta(minutes=30),
        closed_at=hours + timedelta(hours=1),
        updated_at=hours + timedelta(hours=1),
    )
    _apply(book, old)
    assert book.tasks == {}
    assert book.get(old.task_id) == old
    tasks, source = await book.kpi_inputs()
    assert tasks == [] and source is not None
    now = old.closed_at + timedelta(hours=1) if old.closed_at else old.updated_at
    report = report_of(tasks, source, now=now, window=timedelta(days=1), red_flags=1, roads={})
    assert report.district.window.closed == 1
    book.apply(old.task_id.encode(), None)
    assert book.get(old.task_id) is None
    # Finished before the KPI window and a day (the topic keeps every task ever): not kept.
    ancient = replace(old, updated_at=datetime.now(UTC) - book.keep - timedelta(minutes=1))
    _apply(book, ancient)
    assert book.get(ancient.task_id) is None
    book.close()


def test_a_worker_removes_the_databases_its_dead_predecessors_left_behind(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "tasks"
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead = directory / f"{gone.stdout.strip()}-left"
    mine = directory / f"{os.getpid()}-earlier-life"
    alive = directory / f"{os.getppid()}-another-worker"
    for path in (dead, mine, alive):
        path.mkdir(parents=True)
        (path / "finished.sqlite").write_bytes(b"")
    finished = FinishedTasks(directory)
    try:
        assert not dead.exists() and not mine.exists()
        assert alive.exists()
        assert finished.directory.parent == directory
    finally:
        finished.close()


def test_tasks_put_are_written_together_and_read_before_they_are(store: FinishedTasks) -> None:
    first, second = _closed("a~4001~000000000001"), _closed("a~4001~000000000002")
    store.put(first, dumps(first.wire_fields()))
    store.put(second, dumps(second.wire_fields()))
    assert len(store) == 0, "not written yet"
    store.delete(second.task_id)  # a tombstone before the write
    assert store.get(first.task_id) == first  # read before it is written
    assert store.get(second.task_id) is None
    store.flush()
    assert len(store) == 1


async def test_on_a_loop_tasks_are_written_behind_and_found_all_along(
    store: FinishedTasks,
) -> None:
    tasks = [_closed(f"a~4001~{n:012x}") for n in range(2_500)]
    for task in tasks:
        store.put(task, dumps(task.wire_fields()))
    # Each thousand went to the writer thread as it was put; the last 500 wait.
    assert all(store.get(task.task_id) == task for task in tasks[::97])
    seen = set()
    for _ in range(500):
        seen.add(len(store))
        if len(store) == 2_000:
            break
        await asyncio.sleep(0.01)
    assert seen <= {0, 1_000, 2_000}, "a transaction per batch"
    assert await store.cut() > 0
    assert len(store) == len(tasks), "a cut writes the pending tasks"
    late = [_closed(f"b~4001~{n:012x}") for n in range(10)]
    for task in late:
        store.put(task, dumps(task.wire_fields()))
    assert store.mark() > 0
    assert len(store) == len(tasks) + len(late), "a mark writes the pending tasks first"


async def test_only_the_latest_finished_tasks_stay_in_memory_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(taskbook, "RECENT_MAX", 3)
    book = _book(tmp_path)
    now = datetime.now(UTC)
    closed = [
        make_task(
            f"a~4001~{n:012x}",
            status=Status.CLOSED,
            created_at=now,
            updated_at=now,
            closed_at=now,
            handled_at=now,
        )
        for n in range(6)
    ]
    for task in closed[:5]:
        _apply(book, task)
    assert set(book.tasks) == {closed[n].task_id for n in (2, 3, 4)}
    _apply(book, closed[2])  # a later state of a task still in memory: it becomes the latest
    _apply(book, closed[5])
    assert set(book.tasks) == {closed[n].task_id for n in (4, 2, 5)}
    assert all(book.get(task.task_id) == task for task in closed)
    book.close()


async def test_a_kpi_snapshot_counts_a_task_finishing_meanwhile_once(tmp_path: Path) -> None:
    book = _book(tmp_path)
    now = datetime.now(UTC)
    done = make_task("a~4001~000000000001", status=Status.CLOSED, created_at=now, updated_at=now)
    _apply(book, done)
    opened = make_task("a~4001~000000000002", created_at=now, updated_at=now)
    _apply(book, opened)
    snapshot = asyncio.ensure_future(book.kpi_inputs())
    await asyncio.sleep(0)  # the open tasks are taken, the cut is on its way to the writer
    _apply(book, replace(opened, status=Status.CLOSED, closed_at=now, handled_at=now))
    tasks, source = await snapshot
    assert tasks == [opened]
    assert source is not None
    bounds = report_bounds(now + timedelta(minutes=1))
    assert sum(group.tasks for group in source.tally(bounds).groups) == 1, "only the first"
    book.close()
