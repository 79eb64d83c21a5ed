"""Ingest: read the four domain topics, validate each event, place it, and route it to its slot.

The agent is thin: the codec decides validity, the road index decides the place. Refused messages
go to the DLQ; accepted ones go, unchanged, to the one repartition topic keyed by slot (place and
category), where the merge agent owns their state.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from agents.dead_letters import origin_of, send_to_dlq
from schemas.codec import Rejection, decode_event
from schemas.enums import Domain
from schemas.event import Event
from schemas.json import dumps
from streams import metrics
from streams.app import app, event_topics, placed_topic, registry, settings
from streams.domain.merge import slot_key
from streams.hop import KIND_HEADER, PLACE_HEADER, Kind
from streams.topics import domain_of_topic

__all__ = ["ingest"]

logger = logging.getLogger(__name__)


async def _route(event: Event, raw: bytes) -> None:
    place = registry.index.place_of(event.location)
    await placed_topic.send(
        key=slot_key(place.key, event.category).encode(),
        value=raw,
        headers=[(KIND_HEADER, Kind.EVENT.value.encode()), (PLACE_HEADER, dumps(place._asdict()))],
    )


@app.agent(event_topics, name="citygrid.ingest", concurrency=1)
async def ingest(stream: Any) -> AsyncIterator[Event | Rejection]:
    """Validate every event on the domain topics; yield what became of each message."""
    # Placing events against a half-loaded registry would split one road's tasks in two.
    await registry.ready.wait()
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
            await send_to_dlq(result, origin_of(message), message.value)
        else:
            metrics.EVENTS_CONSUMED.labels(result.domain.value, result.source.value).inc()
            metrics.LAST_EVENT.labels(result.domain.value).set(now.timestamp())
            await _route(result, item.value)
        yield result
