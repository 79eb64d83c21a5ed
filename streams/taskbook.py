"""The latest state of every recent task, read whole from ``city.tasks.state``: the input of the
KPIs, which span every partition (a road's categories live in different slots)."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from schemas.json import JSONDecodeError, loads
from schemas.task import Task
from streams.domain.kpi import FinishedTally, KpiReport, kpi_report, report_bounds
from streams.finished import FinishedTasks
from streams.follower import TopicFollower
from streams.settings import Settings
from streams.topics import topic_name

__all__ = ["RECENT", "RECENT_MAX", "KpiSource", "TaskBook", "report_of"]

logger = logging.getLogger(__name__)


RECENT = timedelta(hours=1)
"""How long a finished task stays in memory too, once on disk: the live feed (the SSE stream,
the board's closed and cancelled columns) shows the last hour's..."""
RECENT_MAX = 2_000
"""...at most this many of them, the latest: a burst of closes does not fill the memory."""
SENT_MAX = 8_192
"""Tasks whose last state sent by this worker is remembered until read back, at most (the
states of a batch or two are in flight)."""


class TaskBook:
    """Task id to latest Task; forgets finished tasks that left the KPI window.

    With ``on_disk`` (a worker's book), a finished task also goes to :class:`FinishedTasks` on
    local disk as it arrives, and leaves memory :data:`RECENT` later (at the next prune), or as
    soon as :data:`RECENT_MAX` later ones came: :attr:`tasks` then holds the open tasks and the
    recently finished ones, and :meth:`get`, :meth:`listed` and :meth:`kpi_inputs` reach the
    rest. Without it, :attr:`tasks` holds them all.

    With ``latest_only``, each fetch from the topic applies only the last state of each task in
    it: the book keeps no other, and a busy task's earlier states are not decoded for nothing
    (:class:`streams.simulator.TaskView` reacts to every state, so it does not set it).
    """

    def __init__(
        self, settings: Settings, *, on_disk: bool = False, latest_only: bool = False
    ) -> None:
        self.tasks: dict[str, Task] = {}
        self.keep = timedelta(seconds=settings.kpi_window) + timedelta(days=1)
        self._directory = settings.data_dir / "tasks" if on_disk else None
        self._finished: FinishedTasks | None = None
        self._recent: OrderedDict[str, None] = OrderedDict()
        """The ids of the finished tasks in memory, the latest last (with ``on_disk``)."""
        self._sent: dict[str, tuple[bytes, Task]] = {}
        """Task id to the last state this worker's merge stage sent of it: its encoding, and the
        task it encodes."""
        self._follower = TopicFollower(
            settings,
            topic_name(settings, "city.tasks.state"),
            self.apply,
            latest_only=latest_only,
        )

    @property
    def ready(self) -> asyncio.Event:
        """Set once the task states have been read to the end."""
        return self._follower.ready

    @property
    def finished(self) -> FinishedTasks | None:
        """The finished tasks on disk; None without ``on_disk``, or before the first."""
        return self._finished

    def sent(self, value: bytes, task: Task) -> None:
        """``value``, the encoding of ``task``, is on its way to the topic from this worker:
        when it comes back byte for byte, :meth:`apply` takes ``task`` instead of decoding it
        again (``Task.from_wire`` costs about 10 us; one worker reads back only its own).
        ``value`` is kept until then: it should hold only its bytes (``dumps_kept``)."""
        if len(self._sent) >= SENT_MAX and task.task_id not in self._sent:
            self._sent.clear()
        self._sent[task.task_id] = (value, task)

    def apply(self, key: bytes | None, value: bytes | None) -> Task | None:
        """Apply one task state record (a tombstone forgets the task); returns the task taken in."""
        if key is None:
            return None
        task_id = key.decode("utf-8", "replace")
        if value is None:
            self._forget(task_id)
            if self._finished is not None:
                self._finished.delete(task_id)
            return None
        mine = self._sent.get(task_id)
        if mine is not None and mine[0] == value:
            del self._sent[task_id]
            task = mine[1]
        else:
            try:
                task = Task.from_wire(loads(value))
            except (JSONDecodeError, KeyError, ValueError, TypeError) as exc:
                logger.warning("ignoring task state %s: %s", task_id, exc)
                return None
        if self._directory is not None and not task.status.is_open:
            now = datetime.now(UTC)
            if task.updated_at < now - self.keep:
                # The compacted topic keeps every task ever: a worker reading it from the start
                # skips those prune would drop at once.
                self.tasks.pop(task_id, None)
                return task
            if self._finished is None:
                self._finished = FinishedTasks(self._directory)
            self._finished.put(task, value)
            if task.updated_at < now - RECENT:
                # Long finished (a worker reading the states from the start): disk only, or a
                # restart would hold the whole month in memory until the first prune.
                self._forget(task_id)
                return task
            self._recent[task_id] = None
            self._recent.move_to_end(task_id)
            if len(self._recent) > RECENT_MAX:
                self._forget(next(iter(self._recent)))
        self.tasks[task_id] = task
        return task

    def _forget(self, task_id: str) -> None:
        """Let go of the memory copy of finished task ``task_id``."""
        self._recent.pop(task_id, None)
        self.tasks.pop(task_id, None)

    def get(self, task_id: str) -> Task | None:
        """Task ``task_id``, from memory or disk."""
        task = self.tasks.get(task_id)
        if task is None and self._finished is not None:
            task = self._finished.get(task_id)
        return task

    def listed(self) -> Iterable[Task]:
        """The tasks a list takes from memory: with the finished ones on disk, the open ones
        (the finished copies still in memory are on disk too)."""
        if self._finished is None:
            return self.tasks.values()
        return [task for task in self.tasks.values() if task.status.is_open]

    async def kpi_inputs(self) -> tuple[list[Task], KpiSource | None]:
        """A consistent snapshot for a KPI report: the tasks to count from memory, and the
        finished tasks on disk at this instant (their tally is blocking work for a thread)."""
        if self._finished is None:
            return list(self.tasks.values()), None
        tasks = [task for task in self.tasks.values() if task.status.is_open]
        # In the same step as the snapshot: the cut's mark takes every task finished before it
        # and none after, so no task counts twice or not at all.
        mark = await self._finished.cut()
        return tasks, KpiSource(self._finished, mark)

    async def prune(self, now: datetime) -> int:
        """Drop closed and cancelled tasks last changed before the KPI window; returns how many.
        With the finished tasks on disk, also let go of the memory copies older than
        :data:`RECENT`.

        The scan (a second per million tasks) runs in a thread on a snapshot, so the loop keeps
        serving the stages; a task that changed meanwhile stays.
        """
        floor = now - self.keep
        dropped = 0
        if self._finished is not None:
            dropped = await self._finished.prune(floor)
            floor = now - RECENT
        stale = await asyncio.to_thread(_stale, list(self.tasks.values()), floor)
        for task in stale:
            if self.tasks.get(task.task_id) is task:
                self._forget(task.task_id)
                if self._finished is None:
                    dropped += 1
        return dropped

    async def run(self) -> None:
        """Follow the task states until cancelled."""
        await self._follower.run()

    def close(self) -> None:
        """Let go of the finished tasks on disk (and of their directory)."""
        if self._finished is not None:
            self._finished.close()
            self._finished = None


class KpiSource(NamedTuple):
    """The finished tasks on disk as of one instant."""

    finished: FinishedTasks
    mark: int

    def tally(self, bounds: Sequence[tuple[int, int]]) -> FinishedTally:
        """Blocking: call it in a thread."""
        return self.finished.tally(bounds, self.mark)


def report_of(
    tasks: Iterable[Task],
    finished: KpiSource | None,
    *,
    now: datetime,
    window: timedelta,
    red_flags: int,
    roads: Mapping[str, str | None],
) -> KpiReport:
    """The KPI report of :meth:`TaskBook.kpi_inputs`. Blocking (seconds at a million tasks, most
    of it in SQLite, which lets go of the GIL): call it in a thread."""
    tally = None if finished is None else finished.tally(report_bounds(now, window))
    return kpi_report(
        tasks, now=now, window=window, red_flags=red_flags, roads=roads, finished=tally
    )


def _stale(tasks: list[Task], floor: datetime) -> list[Task]:
    return [task for task in tasks if not task.status.is_open and task.updated_at < floor]
