"""Dead-lettering from any agent: the refused message unchanged, its coordinates in headers."""

from __future__ import annotations

import logging
from typing import Any

from schemas.codec import Rejection
from streams.app import dlq_topic
from streams.dlq import dead_letter
from streams.hop import Origin

__all__ = ["origin_of", "send_to_dlq"]

logger = logging.getLogger(__name__)


async def send_to_dlq(rejection: Rejection, origin: Origin, value: bytes | None) -> None:
    """Dead-letter a refused input message, unchanged, with the contract's headers."""
    record = dead_letter(
        rejection,
        key=origin.key,
        value=value,
        topic=origin.topic,
        partition=origin.partition,
        offset=origin.offset,
    )
    await dlq_topic.send(key=record.key, value=record.value, headers=record.headers)
    logger.info(
        "dead-lettered %s[%d]@%d: %s: %s",
        origin.topic,
        origin.partition,
        origin.offset,
        rejection.reason.value,
        rejection.detail,
        extra={"reason": rejection.reason.value, "topic": origin.topic},
    )


def origin_of(message: Any) -> Origin:
    """Where a Faust message was read."""
    return Origin(message.topic, message.partition, message.offset, message.key)
