"""The task book's bookkeeping, without a broker (following the topic is tested in
tests/integration)."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from schemas.enums import Status
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
