"""The one repartition hop's message format.

Everything a slot must see goes through ``<app_id>-placed`` keyed by slot, in order: accepted
events (the original bytes, the resolved place in a header), feedback (the original bytes, with
where it came from, so a refusal can still be dead-lettered with its own coordinates), and
deadline ticks (an ISO timestamp).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NamedTuple

__all__ = ["KIND_HEADER", "ORIGIN_PREFIX", "PLACE_HEADER", "Kind", "Origin"]

KIND_HEADER = "citygrid.kind"
PLACE_HEADER = "citygrid.place"
ORIGIN_PREFIX = "citygrid.origin."


class Kind(StrEnum):
    """What a message on the hop carries."""

    EVENT = "event"
    FEEDBACK = "feedback"
    TICK = "tick"


class Origin(NamedTuple):
    """Where a hopped message was first read, and its original key."""

    topic: str
    partition: int
    offset: int
    key: bytes | None

    def headers(self) -> list[tuple[str, bytes]]:
        """The origin as hop headers (the key header is left out for a null key)."""
        headers = [
            (ORIGIN_PREFIX + "topic", self.topic.encode()),
            (ORIGIN_PREFIX + "partition", str(self.partition).encode()),
            (ORIGIN_PREFIX + "offset", str(self.offset).encode()),
        ]
        if self.key is not None:
            headers.append((ORIGIN_PREFIX + "key", self.key))
        return headers

    @classmethod
    def from_headers(cls, headers: dict[str, Any]) -> Origin:
        """Read an origin written by :meth:`headers`."""
        return cls(
            topic=bytes(headers[ORIGIN_PREFIX + "topic"]).decode(),
            partition=int(headers[ORIGIN_PREFIX + "partition"]),
            offset=int(headers[ORIGIN_PREFIX + "offset"]),
            key=headers.get(ORIGIN_PREFIX + "key"),
        )
