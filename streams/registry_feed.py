"""Every worker's copy of the road registry: follows all partitions of ``city.registry.roads``
from the beginning into a :class:`~streams.domain.places.RoadIndex`.

This is what a Faust ``GlobalTable`` would do, done with a plain group-less aiokafka consumer:
Faust documents that a GlobalTable shared by several workers can loop in recovery forever, and
the registry is small enough to read whole. :attr:`RegistryFeed.ready` is set once the feed has
read up to the end offsets it found at start, so ingest never places an event against a
half-loaded registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.codec import Rejection, decode_road
from streams.domain.places import RoadIndex
from streams.settings import Settings
from streams.topics import kafka_client_options, topic_name

__all__ = ["RegistryFeed"]

logger = logging.getLogger(__name__)


class RegistryFeed:
    """Keeps :attr:`index` equal to the compacted registry topic."""

    def __init__(self, settings: Settings, index: RoadIndex | None = None) -> None:
        self.settings = settings
        self.topic = topic_name(settings, "city.registry.roads")
        self.index = index if index is not None else RoadIndex()
        self.ready = asyncio.Event()
        self.applied = 0
        self.refused = 0

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
        """Follow the topic until cancelled."""
        # Without a group, aiokafka assigns every partition of the subscribed topic to this
        # consumer, and follows new ones: exactly a global table's reading.
        consumer = AIOKafkaConsumer(
            self.topic,
            **kafka_client_options(self.settings),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        end: dict[TopicPartition, int] = {}
        waited = 0.0
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        self.apply(record.key, record.value)
                if self.ready.is_set():
                    continue
                assigned = consumer.assignment()
                if not assigned:
                    waited += 0.5
                    if waited % 30 == 0:
                        logger.warning(
                            "waiting for topic %s; does it exist? (citygrid topics create)",
                            self.topic,
                        )
                    continue
                if set(end) != assigned:
                    end = await consumer.end_offsets(list(assigned))
                caught_up = [await consumer.position(tp) >= end[tp] for tp in assigned]
                if all(caught_up):
                    logger.info("road registry loaded: %d roads", len(self.index))
                    self.ready.set()
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
