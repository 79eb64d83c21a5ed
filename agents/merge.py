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

from agents.dead_letters import send_to_dlq
from schemas.codec import Rejection, decode_event, decode_feedback
from schemas.enums import TaskEventType
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
from streams.domain.tasks import Refused, on_feedback, on_tick
from streams.hop import KIND_HEADER, PLACE_HEADER, Kind, Origin

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


def _load(key: bytes) -> SlotState:
    stored = slots.get(key)
    return SlotState() if stored is None else SlotState.from_wire(loads(stored))


def _observe_transitions(outcome: Outcome) -> None:
    for change in outcome.changes:
        task, kind = change.task, change.event.type
        domain = task.domain.value
        metrics.TASK_TRANSITIONS.labels(domain, kind.value).inc()
        if kind is TaskEventType.DISPATCHED and task.dispatched_at is not None:
            seconds = (task.dispatched_at - task.created_at).total_seconds()
            metrics.TASK_DISPATCH_SECONDS.labels(domain).observe(max(0.0, seconds))
        elif kind is TaskEventType.VERIFY_FAILED:
            metrics.TASK_REWORKS.labels(domain).inc()
        elif kind is TaskEventType.VERIFY_PASSED and task.closed_at is not None:
            seconds = (task.closed_at - task.created_at).total_seconds()
            metrics.TASK_RESOLUTION_SECONDS.labels(domain).observe(max(0.0, seconds))
        elif kind is TaskEventType.OVERDUE:
            metrics.TASKS_OVERDUE_TOTAL.labels(domain).inc()


async def _store_and_publish(key: bytes, outcome: Outcome) -> None:
    slots[key] = dumps(outcome.state.to_wire())
    await _publish(outcome)
    _observe_transitions(outcome)
    for change in outcome.changes:
        event = change.event
        # Merges are the bulk of the traffic: kept out of the info log.
        level = logging.DEBUG if event.type is TaskEventType.MERGED else logging.INFO
        logger.log(
            level,
            "task %s %s (%s)",
            event.task_id,
            event.type.value,
            event.status.value,
            extra={
                "task_id": event.task_id,
                "event_id": event.event_id,
                "type": event.type.value,
                "status": event.status.value,
                "actor_id": event.actor_id,
            },
        )


async def _on_event(message: Any, raw: bytes, headers: dict[str, Any]) -> Outcome | Rejection:
    now = datetime.now(UTC)
    event = decode_event(raw, now=now, max_bytes=settings.max_message_bytes)
    if isinstance(event, Rejection):
        # Ingest validated it already; only a codec change between the two could do this.
        logger.error("placed event no longer decodes: %s", event.detail)
        return event
    place = Place(**loads(headers[PLACE_HEADER]))
    state = _load(message.key)
    outcome = decide(state, event, place, merge_config)
    if outcome.result is Result.DUPLICATE:
        # A replay after a crash finds its effects already in the table, but the outputs of
        # that moment may not have reached the broker: write the task's state again (the topic
        # is compacted, consumers see the same task). Repeats that never joined the task, such
        # as a sensor's older readings, have nothing to restore.
        if state.task is not None and state.in_task(event):
            await publish_task(state.task, state.seq)
    else:
        await _store_and_publish(message.key, outcome)
    lag = (now - event.occurred_at).total_seconds()
    _count(outcome, event.domain.value, lag, event.source.value)
    return outcome


async def _on_feedback(message: Any, raw: bytes, headers: dict[str, Any]) -> Outcome | Rejection:
    origin = Origin.from_headers(headers)
    feedback = decode_feedback(raw, max_bytes=settings.max_message_bytes)
    if isinstance(feedback, Rejection):
        logger.error("routed feedback no longer decodes: %s", feedback.detail)
        return feedback
    result = on_feedback(_load(message.key), feedback, merge_config)
    if isinstance(result, Refused):
        rejection = Rejection(result.reason, result.detail)
        metrics.FEEDBACK_CONSUMED.labels("dead_lettered").inc()
        metrics.EVENTS_REJECTED.labels(rejection.reason.value).inc()
        await send_to_dlq(rejection, origin, raw)
        return rejection
    metrics.FEEDBACK_CONSUMED.labels("applied").inc()
    await _store_and_publish(message.key, result)
    return result


async def _on_tick(message: Any, raw: bytes) -> Outcome | None:
    outcome = on_tick(_load(message.key), datetime.fromisoformat(raw.decode()))
    if outcome is not None:
        await _store_and_publish(message.key, outcome)
    return outcome


@app.agent(placed_topic, name="citygrid.merge", concurrency=1)
async def merge(stream: Any) -> AsyncIterator[Outcome | Rejection | None]:
    """Apply every event, feedback and deadline tick to its slot, in order; yield the outcome."""
    async for item in stream.events():
        message = item.message
        headers = dict(message.headers or ())
        kind = bytes(headers.get(KIND_HEADER, b"event")).decode()
        if kind == Kind.FEEDBACK:
            yield await _on_feedback(message, item.value, headers)
        elif kind == Kind.TICK:
            yield await _on_tick(message, item.value)
        else:
            yield await _on_event(message, item.value, headers)
