"""The task book's bookkeeping, without a broker (following the topic is tested in
tests/integration)."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from schemas.enums import Status
from schemas.json import dumps_kept
from schemas.task import Task
from streams import taskbook
from streams.settings import Settings
from streams.taskbook import TaskBook
from tests.unit.streams.test_api import T0, make_task


async def test_prune_drops_only_finished_tasks_older_than_the_window(tmp_path: Path) -> None:
    book = TaskBook(Settings(app_id="unit", data_dir=tmp_path, kpi_window=86_400))
    old_closed = make_task("a~4001~000000000001", status=Status.CLOSED)
    old_cancelled = make_task("a~4001~000000000002", status=Status.CANCELLED)
    old_open = make_task("a~4001~000000000003", status=Status.DISPATCHED)
    recent_closed = make_task("a~4001~000000000004", status=Status.CLOSED, minutes=60 * 24)
    for task in (old_closed, old_cancelled, old_open, recent_closed):
        book.tasks[task.task_id] = task
    # The window (a day) plus a day after T0's tasks, and a minute.
    now = T0 + timedelta(days=2, minutes=1)
    assert await book.prune(now) == 2
    assert set(book.tasks) == {old_open.task_id, recent_closed.task_id}


async def test_prune_keeps_a_task_that_changed_while_the_snapshot_was_scanned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = TaskBook(Settings(app_id="unit", data_dir=tmp_path, kpi_window=86_400))
    closed = make_task("a~4001~000000000001", status=Status.CLOSED)
    book.tasks[closed.task_id] = closed
    changed = threading.Event()
    scan = taskbook._stale

    def scan_after_the_change(tasks: list[Task], floor: datetime) -> list[Task]:
        assert changed.wait(timeout=10)
        return scan(tasks, floor)

    monkeypatch.setattr(taskbook, "_stale", scan_after_the_change)
    pruning = asyncio.create_task(book.prune(T0 + timedelta(days=3)))
    await asyncio.sleep(0.05)  # the snapshot is taken, the scan waits in its thread
    # A late report merged into the closed task: its new state arrives during the scan.
    book.tasks[closed.task_id] = fresh = make_task(closed.task_id, status=Status.CLOSED, minutes=1)
    changed.set()
    assert await pruning == 0
    assert book.tasks[closed.task_id] is fresh


def test_a_state_this_worker_sent_comes_back_as_the_task_it_encodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = TaskBook(Settings(app_id="unit", data_dir=tmp_path))
    task = make_task("a~4001~000000000001", status=Status.DISPATCHED)
    value = dumps_kept(task.wire_fields())
    book.sent(value, task)
    decoded: list[object] = []
    real = Task.from_wire
    monkeypatch.setattr(Task, "from_wire", lambda obj: decoded.append(obj) or real(obj))
    assert book.apply(task.task_id.encode(), bytes(bytearray(value))) is task
    assert decoded == []
    # Read back once: the same bytes again (a replay) are decoded.
    again = book.apply(task.task_id.encode(), value)
    assert again == task
    assert again is not task
    assert len(decoded) == 1


def test_a_state_other_than_the_one_sent_is_decoded(tmp_path: Path) -> None:
    book = TaskBook(Settings(app_id="unit", data_dir=tmp_path))
    earlier = make_task("a~4001~000000000001", status=Status.DISPATCHED)
    later = make_task("a~4001~000000000001", status=Status.ACCEPTED)
    book.sent(dumps_kept(later.wire_fields()), later)
    # Another worker's state, or an earlier one of this worker a fetch did not pass over.
    taken = book.apply(earlier.task_id.encode(), dumps_kept(earlier.wire_fields()))
    assert taken == earlier
    assert book.tasks[earlier.task_id] == earlier
    assert book.apply(later.task_id.encode(), dumps_kept(later.wire_fields())) is later
    assert book.tasks[later.task_id] is later


def test_the_states_sent_and_not_read_back_are_bounded(tmp_path: Path) -> None:
    book = TaskBook(Settings(app_id="unit", data_dir=tmp_path))
    for n in range(taskbook.SENT_MAX + 10):
        task = make_task(f"a~4001~{n:012x}", status=Status.DISPATCHED)
        book.sent(dumps_kept(task.wire_fields()), task)
        # A task's newer state replaces its older one.
        book.sent(dumps_kept(task.wire_fields()), task)
    assert len(book._sent) <= taskbook.SENT_MAX
