"""Merge: apply each placed event to its slot's state and publish what changed.

Runs on the repartition topic, so a slot's events and its state share a partition. The decision
is :func:`streams.domain.merge.decide`; this agent loads and stores state, publishes task states
and task events with CloudEvents headers, and counts.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from schemas.codec import Rejection, decode_event
from schemas.json import dumps, loads
from schemas.task import Task
from streams import metrics
from streams.app import (
    app,
    merge_config,
    placed_topic,
    settings,
    slots,
    task_events_topic,
    task_state_topic,
)
from streams.cloudevents import binary_headers
from streams.domain.merge import Outcome, Result, SlotState, decide
from streams.domain.places import Place

__all__ = ["merge", "publish_task"]

logger = logging.getLogger(__name__)

_SOURCE = f"/citygrid/{settings.app_id}"


async def publish_task(task: Task, seq: int) -> None:
    """Write a task's full state to ``city.tasks.state``."""
    await task_state_topic.send(
        key=task.task_id.encode(),
        value=dumps(task.to_wire()),
        headers=binary_headers(
            id=f"{task.task_id}:{seq}:state",
            type="city.task.state",
            source=_SOURCE,
            time=task.updated_at,
            subject=task.task_id,
        ),
    )


async def _publish(outcome: Outcome) -> None:
    for change in outcome.changes:
        event = change.event
        await task_events_topic.send(
            key=event.task_id.encode(),
            value=dumps(event.to_wire()),
            headers=binary_headers(
                id=event.id,
                type=f"city.task.{event.type.value}",
                source=_SOURCE,
                time=event.at,
                subject=event.task_id,
            ),
        )
    if outcome.changes:
        await publish_task(outcome.changes[-1].task, outcome.state.seq)


def _count(outcome: Outcome, domain: str, event_lag: float, source: str) -> None:
    result = outcome.result
    if result is Result.DUPLICATE:
        metrics.EVENTS_DUPLICATE.labels(domain).inc()
        return
    metrics.EVENTS_ACCEPTED.labels(domain, source).inc()
    metrics.EVENT_LAG.observe(max(0.0, event_lag))
    if result in (Result.BELOW, Result.PENDING):
        metrics.SENSOR_READINGS.labels(domain, result.value).inc()
    elif result is Result.CREATED:
        metrics.TASKS_CREATED.labels(domain).inc()
        if outcome.state.task is not None and outcome.state.task.rebound_of:
            metrics.TASK_REBOUNDS.labels(domain).inc()
    elif result is Result.MERGED:
        metrics.TASKS_MERGED.labels(domain).inc()


@app.agent(placed_topic, name="citygrid.merge", concurrency=1)
async def merge(stream: Any) -> AsyncIterator[Outcome | Rejection]:
    """Merge every placed event into its slot; yield the outcome."""
    async for item in stream.events():
        message = item.message
        now = datetime.now(UTC)
        event = decode_event(item.value, now=now, max_bytes=settings.max_message_bytes)
        if isinstance(event, Rejection):
            # Ingest validated it already; only a codec change between the two could do this.
            logger.error("placed event no longer decodes: %s", event.detail)
            yield event
            continue
        headers = dict(message.headers or ())
        place = Place(**loads(headers["citygrid.place"]))
        stored = slots.get(message.key)
        state = SlotState() if stored is None else SlotState.from_wire(loads(stored))
        outcome = decide(state, event, place, merge_config)
        if outcome.result is Result.DUPLICATE:
            # A replay after a crash finds its effects already in the table, but the outputs
            # of that moment may not have reached the broker: write the state again (the topic
            # is compacted, consumers see the same task).
            if state.task is not None:
                await publish_task(state.task, state.seq)
        else:
            slots[message.key] = dumps(outcome.state.to_wire())
            await _publish(outcome)
        lag = (now - event.occurred_at).total_seconds()
        _count(outcome, event.domain.value, lag, event.source.value)
        yield outcome
