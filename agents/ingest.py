"""Ingest: read the four domain topics, validate each event, dead-letter what is refused.

The agent is thin: the codec decides, this module only counts and sends. Every message read ends
up counted as accepted or dead-lettered (``consumed = accepted + dead-lettered``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from schemas.codec import Rejection, decode_event
from schemas.enums import Domain
from schemas.event import Event
from streams import metrics
from streams.app import app, dlq_topic, event_topics, settings
from streams.dlq import dead_letter
from streams.topics import domain_of_topic

__all__ = ["ingest"]

logger = logging.getLogger(__name__)


async def _send_to_dlq(rejection: Rejection, message: Any) -> None:
    record = dead_letter(
        rejection,
        key=message.key,
        value=message.value,
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
    )
    await dlq_topic.send(key=record.key, value=record.value, headers=record.headers)
    logger.info(
        "dead-lettered %s[%d]@%d: %s: %s",
        message.topic,
        message.partition,
        message.offset,
        rejection.reason.value,
        rejection.detail,
        extra={"reason": rejection.reason.value, "topic": message.topic},
    )


def _accepted(event: Event, now: datetime) -> None:
    metrics.EVENTS_CONSUMED.labels(event.domain.value, event.source.value).inc()
    metrics.EVENTS_ACCEPTED.labels(event.domain.value, event.source.value).inc()
    metrics.EVENT_LAG.observe(max(0.0, (now - event.occurred_at).total_seconds()))


@app.agent(event_topics, name="citygrid.ingest", concurrency=1)
async def ingest(stream: Any) -> AsyncIterator[Event | Rejection]:
    """Validate every event on the domain topics; yield what became of each message."""
    async for item in stream.events():
        message = item.message
        domain: Domain | None = domain_of_topic(settings, message.topic)
        now = datetime.now(UTC)
        result = decode_event(
            item.value, now=now, topic_domain=domain, max_bytes=settings.max_message_bytes
        )
        if isinstance(result, Rejection):
            metrics.EVENTS_CONSUMED.labels(
                domain.value if domain else "unknown", metrics.UNKNOWN_SOURCE
            ).inc()
            metrics.EVENTS_REJECTED.labels(result.reason.value).inc()
            await _send_to_dlq(result, message)
        else:
            _accepted(result, now)
        yield result
