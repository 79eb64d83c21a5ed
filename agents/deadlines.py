"""The deadline clock: every ``CITYGRID_OVERDUE_CHECK`` each worker looks through its own slots,
sends a tick to every slot whose open task is past due (the merge stage flags it, in order with
the slot's other messages), drops the slots nothing can depend on any more
(:func:`streams.domain.merge.forgettable`), and refreshes the open, overdue and
waiting-for-dispatch gauges."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime

from schemas.enums import Domain, Priority, Status
from streams import metrics
from streams.app import app, merge_config, outbox, settings, slots
from streams.domain.merge import forgettable
from streams.engine import placed_topic_name
from streams.hop import KIND_HEADER, Kind

__all__ = ["deadlines"]

logger = logging.getLogger(__name__)

_NOT_RUNNING = (Status.HANDLED, Status.SUSPENDED)
"""Statuses whose clock is stopped: the work is done and awaits verification, or it is parked."""


@app.timer(interval=settings.overdue_check)  # type: ignore[untyped-decorator]  # faust is untyped
async def deadlines() -> None:
    """Tick overdue slots and refresh the task gauges."""
    now = datetime.now(UTC)
    open_tasks: Counter[tuple[str, str]] = Counter()
    overdue: Counter[str] = Counter()
    waiting: Counter[tuple[str, str]] = Counter()
    ticks = forgotten = 0
    placed = placed_topic_name(settings)
    sink = outbox.sink()
    for partition, key, state in slots.items():
        task = state.task
        if task is None or not task.status.is_open:
            # Slots whose memories no longer matter go, so memory follows the horizons, not
            # the history.
            if forgettable(state, now, merge_config) and await slots.forget(
                partition, key, state, sink
            ):
                forgotten += 1
            continue
        domain = task.domain.value
        open_tasks[(domain, task.community or "none")] += 1
        if task.status is Status.REGISTERED:
            waiting[(domain, task.priority.value)] += 1
        if task.overdue:
            overdue[domain] += 1
        elif task.status not in _NOT_RUNNING and task.due_at <= now:
            # To the slot's own partition, behind whatever the slot has queued.
            await sink.send(
                placed,
                now.isoformat().encode(),
                key=key,
                partition=partition,
                headers=[(KIND_HEADER, Kind.TICK.value.encode())],
            )
            ticks += 1
    # Closed tasks' slots wait on disk with the instant they become forgettable.
    forgotten += await slots.expire(now, sink)
    await sink.flush()
    in_memory, on_disk = slots.counts()
    metrics.SLOTS.labels("memory").set(in_memory)
    metrics.SLOTS.labels("disk").set(on_disk)
    metrics.TASKS_OPEN.clear()
    for (domain, community), count in open_tasks.items():
        metrics.TASKS_OPEN.labels(domain, community).set(count)
    for domain in Domain:
        metrics.TASKS_OVERDUE.labels(domain.value).set(overdue[domain.value])
        for priority in Priority:
            count = waiting[(domain.value, priority.value)]
            metrics.TASKS_WAITING_DISPATCH.labels(domain.value, priority.value).set(count)
    if ticks:
        logger.info("%d task(s) past their deadline", ticks)
    if forgotten:
        logger.info("forgot %d slot(s) past their horizons", forgotten)
