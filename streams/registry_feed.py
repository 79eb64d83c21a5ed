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
        consumer = AIOKafkaConsumer(
            **kafka_client_options(self.settings),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            partitions = await self._partitions(consumer)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            end = await consumer.end_offsets(partitions)
            while True:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        self.apply(record.key, record.value)
                if not self.ready.is_set() and all(
                    await asyncio.gather(
                        *(self._reached(consumer, tp, end[tp]) for tp in partitions)
                    )
                ):
                    logger.info("road registry loaded: %d roads", len(self.index))
                    self.ready.set()
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        for _ in range(60):
            # topics() refreshes the cluster metadata that partitions_for_topic() reads.
            if self.topic in await consumer.topics():
                found = consumer.partitions_for_topic(self.topic) or set()
                return [TopicPartition(self.topic, p) for p in sorted(found)]
            await asyncio.sleep(0.5)
        raise RuntimeError(f"topic {self.topic} does not exist; run `citygrid topics create`")

    @staticmethod
    async def _reached(consumer: AIOKafkaConsumer, tp: TopicPartition, end: int) -> bool:
        return bool(await consumer.position(tp) >= end)
