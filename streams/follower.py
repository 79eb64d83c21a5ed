"""Read a whole topic, every partition, from the beginning and keep following it: what a Faust
``GlobalTable`` does, with a plain group-less aiokafka consumer.

Faust documents that a GlobalTable shared by several workers can loop in recovery forever; the
topics citygrid reads whole (the road registry, the task states for the KPIs) are compacted and
small enough for this. :attr:`TopicFollower.ready` is set once the follower has read up to the
end offsets it found when its partitions were assigned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from streams.settings import Settings
from streams.topics import kafka_client_options

__all__ = ["Apply", "TopicFollower"]

logger = logging.getLogger(__name__)

Apply = Callable[[bytes | None, bytes | None], object]
"""What to do with one record: ``(key, value)``, value None for a tombstone (result ignored)."""


class TopicFollower:
    """Feeds every record of ``topic`` to ``apply``, in offset order per partition."""

    def __init__(
        self, settings: Settings, topic: str, apply: Apply, *, latest_only: bool = False
    ) -> None:
        self.settings = settings
        self.topic = topic
        self._apply = apply
        self._latest_only = latest_only
        """Apply only the last record of each key in a fetch: for a reader that keeps only the
        latest value of a compacted topic, the earlier ones are decoded for nothing."""
        self.ready = asyncio.Event()

    def take(self, fetched: Iterable[Sequence[ConsumerRecord[bytes, bytes]]]) -> None:
        """Apply one fetch: each partition's records, in offset order."""
        for records in fetched:
            if self._latest_only:
                # A key's records all sit in one partition, in order: the last wins.
                latest = {record.key: record.value for record in records}
                for key, value in latest.items():
                    self._apply(key, value)
            else:
                for record in records:
                    self._apply(record.key, record.value)

    async def run(self) -> None:
        """Follow the topic until cancelled."""
        # Without a group, aiokafka assigns every partition of the subscribed topic to this
        # consumer, and follows new ones.
        consumer = AIOKafkaConsumer(
            self.topic,
            **kafka_client_options(self.settings),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        end: dict[TopicPartition, int] = {}
        polls = 0
        try:
            while True:
                self.take((await consumer.getmany(timeout_ms=500)).values())
                if self.ready.is_set():
                    continue
                assigned = consumer.assignment()
                if not assigned:
                    polls += 1
                    if polls % 60 == 0:
                        logger.warning(
                            "waiting for topic %s; does it exist? (citygrid topics create)",
                            self.topic,
                        )
                    continue
                if set(end) != assigned:
                    end = await consumer.end_offsets(list(assigned))
                caught_up = [await consumer.position(tp) >= end[tp] for tp in assigned]
                if all(caught_up):
                    logger.info("%s loaded", self.topic)
                    self.ready.set()
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
