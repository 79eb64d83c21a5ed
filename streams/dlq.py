"""The dead-letter record: the original key and value unchanged, the why in headers.

Follows Kafka Connect's dead-letter convention, with the contract's ``citygrid.error.*`` names.
"""

from __future__ import annotations

from typing import NamedTuple

from schemas.codec import Rejection

__all__ = ["HEADER_PREFIX", "DeadLetter", "dead_letter"]

HEADER_PREFIX = "citygrid.error."
_DETAIL_MAX = 1000


class DeadLetter(NamedTuple):
    """What to produce to ``city.events.dlq`` for one refused input message."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def dead_letter(
    rejection: Rejection,
    *,
    key: bytes | None,
    value: bytes | None,
    topic: str,
    partition: int,
    offset: int,
) -> DeadLetter:
    """Build the DLQ record for a message refused with ``rejection``.

    The detail is cut to 1,000 characters: it quotes input, and a header is no place for a
    hostile megabyte.
    """
    detail = rejection.detail
    if len(detail) > _DETAIL_MAX:
        detail = detail[: _DETAIL_MAX - 3] + "..."
    headers = [
        (HEADER_PREFIX + "reason", rejection.reason.value.encode()),
        (HEADER_PREFIX + "detail", detail.encode("utf-8", "backslashreplace")),
        (HEADER_PREFIX + "topic", topic.encode()),
        (HEADER_PREFIX + "partition", str(partition).encode()),
        (HEADER_PREFIX + "offset", str(offset).encode()),
    ]
    return DeadLetter(key, value, headers)
