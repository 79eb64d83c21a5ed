"""Dead-lettering from any stage: the refused message unchanged, its coordinates in headers."""

from __future__ import annotations

import logging

from schemas.codec import Rejection
from streams.dlq import dead_letter
from streams.engine import Sink
from streams.hop import Origin

__all__ = ["send_to_dlq"]

logger = logging.getLogger(__name__)


async def send_to_dlq(
    sink: Sink, dlq_topic: str, rejection: Rejection, origin: Origin, value: bytes | None
) -> None:
    """Dead-letter a refused input message, unchanged, with the contract's headers."""
    record = dead_letter(
        rejection,
        key=origin.key,
        value=value,
        topic=origin.topic,
        partition=origin.partition,
        offset=origin.offset,
    )
    await sink.send(dlq_topic, record.value, key=record.key, headers=record.headers)
    logger.info(
        "dead-lettered %s[%d]@%d: %s: %s",
        origin.topic,
        origin.partition,
        origin.offset,
        rejection.reason.value,
        rejection.detail,
        extra={"reason": rejection.reason.value, "topic": origin.topic},
    )
