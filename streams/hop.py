"""The one repartition hop's message format.

Everything a slot must see goes through ``<app_id>-placed`` keyed by slot, in order: accepted
events (the original bytes, the resolved place in a header, and where they came from in one
packed header), feedback (the original bytes, with where it came from), and deadline ticks (an
ISO timestamp). Where a message came from lets the merge stage dead-letter a refusal with the
original's coordinates and key, as ingest would have.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NamedTuple

__all__ = ["KIND_HEADER", "ORIGIN_HEADER", "ORIGIN_PREFIX", "PLACE_HEADER", "Kind", "Origin"]

KIND_HEADER = "citygrid.kind"
PLACE_HEADER = "citygrid.place"
ORIGIN_PREFIX = "citygrid.origin."
ORIGIN_HEADER = "citygrid.origin"
"""An event's origin packed in one header (:meth:`Origin.packed`): one per event costs less than
four."""


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

    @staticmethod
    def packed_prefix(topic: str, partition: int) -> bytes:
        """What :meth:`packed` starts with for every message of one topic partition."""
        return b"%s\0%d\0" % (topic.encode(), partition)

    @staticmethod
    def packed(prefix: bytes, offset: int, key: bytes | None) -> bytes:
        """The origin as :data:`ORIGIN_HEADER`'s value: ``topic NUL partition NUL offset``, then
        ``NUL key`` unless the key is null (a key may hold NULs: it is the rest)."""
        return prefix + b"%d" % offset if key is None else b"%s%d\0%s" % (prefix, offset, key)

    @classmethod
    def unpack(cls, value: bytes) -> Origin:
        """Read an origin written by :meth:`packed`."""
        parts = bytes(value).split(b"\0", 3)
        return cls(
            topic=parts[0].decode(),
            partition=int(parts[1]),
            offset=int(parts[2]),
            key=parts[3] if len(parts) > 3 else None,  # noqa: PLR2004 - topic, partition, offset
        )

    @classmethod
    def from_headers(cls, headers: dict[str, Any]) -> Origin:
        """Read an origin written by :meth:`headers`."""
        return cls(
            topic=bytes(headers[ORIGIN_PREFIX + "topic"]).decode(),
            partition=int(headers[ORIGIN_PREFIX + "partition"]),
            offset=int(headers[ORIGIN_PREFIX + "offset"]),
            key=headers.get(ORIGIN_PREFIX + "key"),
        )
