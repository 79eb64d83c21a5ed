"""Feedback ingest: validate each message on ``city.feedback`` and route it to its task's slot.

A task id names its slot (:func:`streams.domain.merge.slot_of_task`), so feedback joins the slot's
events on the repartition topic without a lookup table, and the merge agent applies it in order.
Malformed feedback and ids citygrid never issued are dead-lettered here; refusals that need the
task (``invalid_transition``, ``unknown_task`` for a superseded task) are dead-lettered there.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from agents.dead_letters import origin_of, send_to_dlq
from schemas.codec import Rejection, decode_feedback
from schemas.enums import RejectReason
from schemas.feedback import Feedback
from streams import metrics
from streams.app import app, feedback_topic, placed_topic, settings
from streams.domain.merge import slot_of_task
from streams.hop import KIND_HEADER, Kind

__all__ = ["feedback"]

logger = logging.getLogger(__name__)


@app.agent(feedback_topic, name="citygrid.feedback", concurrency=1)
async def feedback(stream: Any) -> AsyncIterator[Feedback | Rejection]:
    """Validate every feedback message; route the valid ones to their task's slot."""
    async for item in stream.events():
        message = item.message
        origin = origin_of(message)
        result = decode_feedback(item.value, max_bytes=settings.max_message_bytes)
        if not isinstance(result, Rejection):
            slot = slot_of_task(result.task_id)
            if slot is None:
                result = Rejection(
                    RejectReason.UNKNOWN_TASK, f"{result.task_id} is not a citygrid task id"
                )
            else:
                await placed_topic.send(
                    key=slot.encode(),
                    value=item.value,
                    headers=[(KIND_HEADER, Kind.FEEDBACK.value.encode()), *origin.headers()],
                )
        if isinstance(result, Rejection):
            metrics.FEEDBACK_CONSUMED.labels("dead_lettered").inc()
            metrics.EVENTS_REJECTED.labels(result.reason.value).inc()
            await send_to_dlq(result, origin, message.value)
        yield result
