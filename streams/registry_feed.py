"""Every worker's copy of the road registry: ``city.registry.roads`` followed whole into a
:class:`~streams.domain.places.RoadIndex`, so ingest never places an event against a
half-loaded registry (it waits for :attr:`RegistryFeed.ready`)."""

from __future__ import annotations

import asyncio
import logging

from schemas.codec import Rejection, decode_road
from streams.domain.places import RoadIndex
from streams.follower import TopicFollower
from streams.settings import Settings
from streams.topics import topic_name

__all__ = ["RegistryFeed"]

logger = logging.getLogger(__name__)


class RegistryFeed:
    """Keeps :attr:`index` equal to the compacted registry topic."""

    def __init__(self, settings: Settings, index: RoadIndex | None = None) -> None:
        self.index = index if index is not None else RoadIndex()
        self.applied = 0
        self.refused = 0
        self._follower = TopicFollower(
            settings, topic_name(settings, "city.registry.roads"), self.apply
        )

    @property
    def ready(self) -> asyncio.Event:
        """Set once the registry has been read to the end."""
        return self._follower.ready

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Apply one registry record: a road, or a tombstone (null value) deleting ``key``."""
        if value is None:
            if key is not None:
                self.index.remove(key.decode("utf-8", "replace"))
                self.applied += 1
            return
        road = decode_road(value)
        if isinstance(road, Rejection):
            self.refused += 1
            logger.warning("ignoring registry record %r: %s", key, road.detail)
            return
        self.index.put(road)
        self.applied += 1

    async def run(self) -> None:
        """Follow the registry until cancelled."""
        await self._follower.run()
