"""The latest state of every recent task, read whole from ``city.tasks.state``: the input of the
KPIs, which span every partition (a road's categories live in different slots)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from schemas.json import JSONDecodeError, loads
from schemas.task import Task
from streams.follower import TopicFollower
from streams.settings import Settings
from streams.topics import topic_name

__all__ = ["TaskBook"]

logger = logging.getLogger(__name__)


class TaskBook:
    """Task id to latest Task; forgets finished tasks that left the KPI window."""

    def __init__(self, settings: Settings) -> None:
        self.tasks: dict[str, Task] = {}
        self.keep = timedelta(seconds=settings.kpi_window) + timedelta(days=1)
        self._follower = TopicFollower(
            settings, topic_name(settings, "city.tasks.state"), self.apply
        )

    @property
    def ready(self) -> asyncio.Event:
        """Set once the task states have been read to the end."""
        return self._follower.ready

    def apply(self, key: bytes | None, value: bytes | None) -> Task | None:
        """Apply one task state record (a tombstone forgets the task); returns the task taken in."""
        if key is None:
            return None
        task_id = key.decode("utf-8", "replace")
        if value is None:
            self.tasks.pop(task_id, None)
            return None
        try:
            task = Task.from_wire(loads(value))
        except (JSONDecodeError, KeyError, ValueError, TypeError) as exc:
            logger.warning("ignoring task state %s: %s", task_id, exc)
            return None
        self.tasks[task_id] = task
        return task

    async def prune(self, now: datetime) -> int:
        """Drop closed and cancelled tasks last changed before the KPI window; returns how many.

        The scan (a second per million tasks) runs in a thread on a snapshot, so the loop keeps
        serving the stages; a task that changed meanwhile stays.
        """
        floor = now - self.keep
        stale = await asyncio.to_thread(_stale, list(self.tasks.values()), floor)
        dropped = 0
        for task in stale:
            if self.tasks.get(task.task_id) is task:
                del self.tasks[task.task_id]
                dropped += 1
        return dropped

    async def run(self) -> None:
        """Follow the task states until cancelled."""
        await self._follower.run()


def _stale(tasks: list[Task], floor: datetime) -> list[Task]:
    return [task for task in tasks if not task.status.is_open and task.updated_at < floor]
