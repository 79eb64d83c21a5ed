"""The task book's closed and cancelled tasks, on local disk instead of in memory.

A worker follows every task state to answer the API and compute the KPIs, which span every
partition. Most of those tasks are finished: a district keeps a month of them for the KPI window,
and decoded in memory they made a worker's memory grow with every task closed in the window (about
0.85 KB each, 850 MB at a million). Here they wait in a SQLite database, as they came off
``city.tasks.state``, beside the columns the API filters and sorts on and the parts of their KPI
contribution (:class:`streams.domain.kpi.FinishedParts`), which SQLite adds up for a report
without a task decoded.

Finished states arrive on the event loop and are written a thousand at a time by a writer thread
of this store's own (about 50 µs a row here, most of it in SQLite, which releases the GIL): the
loop is not held up by the disk. The two slow reads, a KPI tally and a page of the task list, run
in a thread on a second connection: the database is in WAL mode, so they read a consistent
snapshot while the writer goes on.

The database is a cache of ``city.tasks.state``, which stays the record: it lives in a directory
of its own under the data directory, removed on close, and by the next worker to start there if a
crash left it behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from schemas.json import loads
from schemas.task import Task
from streams.domain.kpi import (
    FLAG_WIDTH,
    FinishedGroup,
    FinishedTally,
    finished_parts,
)

__all__ = ["FinishedTasks", "SortKey"]

logger = logging.getLogger(__name__)

SortKey = tuple[str, int, str]
"""The order of task lists: priority, creation (microseconds since the epoch), task id."""

_FLUSH_AT = 1000
"""Pending task states that make :meth:`FinishedTasks.put` write them at once."""
_CACHE_KIB = 8 * 1024
"""SQLite's page cache per connection (its own memory): what stays resident of the tasks."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

_SCHEMA = (
    # seq orders the rows by first arrival and never goes back (AUTOINCREMENT), so a report can
    # take exactly the tasks that were finished when it took its snapshot of the open ones.
    """CREATE TABLE finished (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id TEXT NOT NULL UNIQUE,
        value BLOB NOT NULL,
        status TEXT NOT NULL,
        domain TEXT NOT NULL,
        priority TEXT NOT NULL,
        road_id TEXT,
        community TEXT,
        assignee TEXT,
        overdue INTEGER NOT NULL,
        rebound INTEGER NOT NULL,
        created INTEGER NOT NULL,
        updated INTEGER NOT NULL,
        due INTEGER NOT NULL,
        handled INTEGER,
        rebound_flags INTEGER NOT NULL,
        due_flags INTEGER NOT NULL,
        closure_flags INTEGER NOT NULL,
        micros INTEGER NOT NULL
    )""",
    "CREATE INDEX finished_by_update ON finished (updated)",
    "CREATE INDEX finished_in_order ON finished (priority, created, task_id)",
)

_COLUMNS = (
    "task_id, value, status, domain, priority, road_id, community, assignee, overdue, rebound, "
    "created, updated, due, handled, rebound_flags, due_flags, closure_flags, micros"
)
_PLACES = ", ".join("?" * len(_COLUMNS.split(", ")))
_UPDATES = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS.split(", ")[1:])
# Every SQL text here is put together from constant names; values are always bound parameters.
_UPSERT = (
    f"INSERT INTO finished ({_COLUMNS}) VALUES ({_PLACES}) "  # noqa: S608 - see above
    f"ON CONFLICT (task_id) DO UPDATE SET {_UPDATES}"
)


def _period_flags(period: int) -> str:
    """SQL for a row's flags in period ``period`` (bounds named :s<period>, :e<period>), as
    :func:`streams.domain.kpi._contribution` makes them from the row's parts."""
    s, e = f":s{period}", f":e{period}"
    return (
        f"((CASE WHEN created >= {s} AND created < {e} THEN rebound_flags ELSE 0 END"
        f" | CASE WHEN due >= {s} AND due < {e} THEN due_flags ELSE 0 END"
        f" | CASE WHEN handled >= {s} AND handled < {e} THEN closure_flags ELSE 0 END)"
        f" << {period * FLAG_WIDTH})"
    )


def _handled_in(period: int) -> str:
    s, e = f":s{period}", f":e{period}"
    return f"coalesce(closure_flags != 0 AND handled >= {s} AND handled < {e}, 0)"


class FinishedTasks:
    """Finished tasks by id, with what the API and the KPIs ask of them."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        _remove_left_behind(directory)
        self._directory = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=directory))
        path = self._directory / "finished.sqlite"
        self._db = _connect(path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode = WAL")
        for statement in _SCHEMA:
            self._db.execute(statement)
        self._lock = threading.Lock()
        """One thread at a time on the writer connection."""
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="citygrid-finished")
        """Runs the writes, one after the other, in the order they were submitted."""
        self._pending: dict[str, tuple[Task, bytes]] = {}
        """Tasks put since the last batch was submitted, by id."""
        self._writing: list[tuple[dict[str, tuple[Task, bytes]], Future[int]]] = []
        """The batches submitted and not yet seen written, oldest first."""
        self._closed = False
        self._reader = _connect(path, check_same_thread=False)
        self._reading = threading.Lock()
        """One thread at a time on the reader connection."""

    @property
    def directory(self) -> Path:
        return self._directory

    def put(self, task: Task, value: bytes) -> None:
        """Keep finished ``task``, ``value`` its encoded state (replaces an earlier state).

        Written by the writer thread, a thousand at a time (a transaction per task state cost
        about 80 µs on the loop); without a running event loop, at once. Every read here sees the
        tasks put, written or not; a reader in a thread (:meth:`tally`, :meth:`page`) awaits
        :meth:`cut` first."""
        self._pending[task.task_id] = (task, value)
        if len(self._pending) >= _FLUSH_AT:
            self._submit()

    def _submit(self) -> Future[int]:
        """Hand the pending tasks to the writer thread as one batch: its future gives the mark
        once they are written (every task put before now is written then, none after)."""
        batch, self._pending = self._pending, {}
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or self._closed:
            done: Future[int] = Future()
            done.set_result(self.flush(batch))
            return done
        written = self._writer.submit(self._write, list(batch.values()))
        self._writing.append((batch, written))
        # Told on the loop, where the rest of this store's state lives.
        asyncio.wrap_future(written, loop=loop).add_done_callback(self._written)
        return written

    def _written(self, _done: asyncio.Future[int]) -> None:
        while self._writing and self._writing[0][1].done():
            written = self._writing.pop(0)[1]
            if not written.cancelled() and (failure := written.exception()) is not None:
                # A cache of city.tasks.state: the tasks are missing from lists and KPIs until a
                # restarted worker reads the topic again.
                logger.error("could not keep finished tasks on disk: %r", failure)

    def _write(self, batch: Sequence[tuple[Task, bytes]]) -> int:
        """Write ``batch`` in one transaction; returns the mark after it."""
        rows = [_row(task, value) for task, value in batch]
        with self._lock:
            if rows:
                # One transaction (the connection is in autocommit mode: one per row otherwise).
                self._db.execute("BEGIN")
                try:
                    self._db.executemany(_UPSERT, rows)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            return self._max_seq_locked()

    async def cut(self) -> int:
        """Have every task put so far written; returns the mark then: every task put before the
        call is at or before it, every task put after it after it (a new state of a kept task
        keeps its place). Call it in the same step as the snapshot it goes with."""
        return await asyncio.wrap_future(self._submit())

    def flush(self, batch: Mapping[str, tuple[Task, bytes]] | None = None) -> int:
        """Write the pending tasks (or ``batch``) now, on this thread, after every batch in
        flight (they may hold earlier states of the same tasks); returns the mark then."""
        for _, written in list(self._writing):
            with contextlib.suppress(Exception):  # logged by _written
                written.result()
        if batch is None:
            batch, self._pending = self._pending, {}
        return self._write(list(batch.values()))

    def get(self, task_id: str) -> Task | None:
        entry = self._pending.get(task_id)
        if entry is None:
            # The newest batch holds the task's latest state.
            written = (batch[task_id] for batch, _ in reversed(self._writing) if task_id in batch)
            entry = next(written, None)
        if entry is not None:
            return entry[0]
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM finished WHERE task_id = ?", (task_id,)
            ).fetchone()
        return None if row is None else Task.from_wire(loads(row[0]))

    def __contains__(self, task_id: object) -> bool:
        return isinstance(task_id, str) and self.get(task_id) is not None

    def delete(self, task_id: str) -> None:
        """Forget ``task_id`` (after the batches in flight, which may hold it)."""
        self._pending.pop(task_id, None)
        for batch, _ in self._writing:
            batch.pop(task_id, None)
        if self._writing and not self._closed:
            self._writer.submit(self._delete, task_id)
        else:
            self._delete(task_id)

    def _delete(self, task_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM finished WHERE task_id = ?", (task_id,))

    async def prune(self, floor: datetime) -> int:
        """Forget the tasks last changed before ``floor``, in the writer thread, after the tasks
        put so far; returns how many."""
        self._submit()
        return await asyncio.wrap_future(
            self._writer.submit(self._prune, (floor - _EPOCH) // _MICROSECOND)
        )

    def _prune(self, floor: int) -> int:
        with self._lock:
            return self._db.execute("DELETE FROM finished WHERE updated < ?", (floor,)).rowcount

    def __len__(self) -> int:
        """How many tasks are written: a scan (tens of milliseconds at a million), safe in a
        thread."""
        with self._reading:
            row = self._reader.execute("SELECT count(*) FROM finished").fetchone()
        return int(row[0])

    def mark(self) -> int:
        """:meth:`cut`, blocking: writes the pending tasks on this thread."""
        return self.flush()

    def _max_seq_locked(self) -> int:
        row = self._db.execute("SELECT max(seq) FROM finished").fetchone()
        return int(row[0] or 0)

    def tally(self, bounds: Sequence[tuple[int, int]], upto: int) -> FinishedTally:
        """The tasks up to mark ``upto``, added up for a report's periods ``bounds`` (from
        :func:`streams.domain.kpi.report_bounds`). Blocking: call it in a thread."""
        periods = range(len(bounds))
        flags = " | ".join(_period_flags(i) for i in periods)
        handled_in = ", ".join(f"{_handled_in(i)} AS h{i}" for i in periods)
        # An empty handled_in adds no time: the sum counts only rows handled in some period.
        handled_any = " OR ".join(_handled_in(i) for i in periods)
        grouped = ", ".join(f"h{i}" for i in periods)
        groups_sql = (
            f"SELECT road_id, community, domain, {flags} AS flags, {handled_in}, "  # noqa: S608
            f"count(*), sum(CASE WHEN {handled_any} THEN micros ELSE 0 END) "
            "FROM finished WHERE seq <= :upto "
            f"GROUP BY road_id, community, domain, flags, {grouped}"
        )
        params: dict[str, int] = {"upto": upto}
        for i, (start, end) in enumerate(bounds):
            params[f"s{i}"], params[f"e{i}"] = start, end
        with self._reading:
            rows = self._reader.execute(groups_sql, params).fetchall()
            latest = self._reader.execute(
                "SELECT road_id, community, max(created) FROM finished "
                "WHERE seq <= ? AND road_id IS NOT NULL AND community IS NOT NULL "
                "GROUP BY road_id, community",
                (upto,),
            ).fetchall()
        width = len(bounds)
        groups = [
            FinishedGroup(
                road_id=row[0],
                community=row[1],
                domain=row[2],
                flags=row[3],
                handled_in=tuple(i for i in periods if row[4 + i]),
                tasks=row[4 + width],
                micros=row[5 + width],
            )
            for row in rows
        ]
        return FinishedTally(groups, [tuple(row) for row in latest])

    def page(
        self,
        *,
        community: str | None = None,
        road_id: str | None = None,
        domains: Collection[str] = (),
        statuses: Collection[str] = (),
        priorities: Collection[str] = (),
        assignee: str | None = None,
        overdue: bool | None = None,
        rebound: bool | None = None,
        after: SortKey | None = None,
        limit: int,
    ) -> tuple[list[Task], int]:
        """The first ``limit`` matching tasks in list order after ``after``, and how many match
        (cursor aside), as of the last :meth:`flush`. Empty collections select everything.
        Blocking: call it in a thread."""
        where: list[str] = []
        params: list[object] = []
        for column, value in (
            ("community", community),
            ("road_id", road_id),
            ("assignee", assignee),
            ("overdue", None if overdue is None else int(overdue)),
            ("rebound", None if rebound is None else int(rebound)),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        for column, values in (("domain", domains), ("status", statuses), ("priority", priorities)):
            if values:
                where.append(f"{column} IN ({', '.join('?' * len(values))})")
                params.extend(sorted(values))
        matching = " AND ".join(where) or "1"
        ordered = matching
        ordered_params = list(params)
        if after is not None:
            ordered += " AND (priority, created, task_id) > (?, ?, ?)"
            ordered_params.extend(after)
        with self._reading:
            total = self._reader.execute(
                f"SELECT count(*) FROM finished WHERE {matching}",  # noqa: S608 - as above
                params,
            ).fetchone()[0]
            rows = self._reader.execute(
                f"SELECT value FROM finished WHERE {ordered} "  # noqa: S608 - as above
                "ORDER BY priority, created, task_id LIMIT ?",
                [*ordered_params, limit],
            ).fetchall()
        return [Task.from_wire(loads(row[0])) for row in rows], int(total)

    def close(self) -> None:
        """Close the database and remove its directory."""
        self._closed = True
        self._writer.shutdown(wait=True)
        self._writing.clear()
        with self._reading:
            self._reader.close()
        self._db.close()
        shutil.rmtree(self._directory, ignore_errors=True)


def _row(task: Task, value: bytes) -> tuple[object, ...]:
    """``task``'s row, in the order of :data:`_COLUMNS`."""
    parts = finished_parts(task)
    return (
        task.task_id,
        value,
        task.status.value,
        task.domain.value,
        task.priority.value,
        task.road_id,
        task.community,
        task.assignee,
        int(task.overdue),
        int(task.rebound_of is not None),
        parts.created,
        (task.updated_at - _EPOCH) // _MICROSECOND,
        parts.due,
        parts.handled,
        parts.rebound_flags,
        parts.due_flags,
        parts.closure_flags,
        parts.micros,
    )


def _connect(path: Path, *, check_same_thread: bool) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=check_same_thread)
    for pragma in ("synchronous = OFF", f"cache_size = -{_CACHE_KIB}", "mmap_size = 0"):
        db.execute(f"PRAGMA {pragma}")
    return db


def _remove_left_behind(directory: Path) -> None:
    """Remove the databases of workers that are gone (a SIGKILL leaves one behind). A directory
    bearing this process's id is another life's: a container's worker is often process 1."""
    for child in directory.iterdir():
        pid_text, _, _ = child.name.partition("-")
        if not (child.is_dir() and pid_text.isdigit()):
            continue
        pid = int(pid_text)
        if pid == os.getpid() or not _alive(pid):
            shutil.rmtree(child, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
