"""Consumer lag of the worker group on citygrid's input topics, measured from the broker: the
group's committed offsets against each partition's end, summed per topic. Every worker reports
the same group-wide figure; dashboards and alerts take the max."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from streams.settings import Settings
from streams.topics import kafka_client_options

__all__ = ["LagProbe"]

logger = logging.getLogger(__name__)


class LagProbe:
    """Asks the cluster for the group's lag on ``topics``.

    A group-less consumer subscribed to the topics is assigned every partition (and new ones)
    by aiokafka; its partitions stay paused, so it reads end offsets and never fetches records.
    A second consumer in the workers' group, never subscribed (so it never joins), reads the
    group's committed offsets: the admin client's OffsetFetch is not understood by tansu.
    """

    def __init__(self, settings: Settings, topics: Sequence[str], group_id: str) -> None:
        self.settings = settings
        self.topics = tuple(topics)
        self.group_id = group_id
        self._group: AIOKafkaConsumer | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def _clients(self) -> tuple[AIOKafkaConsumer, AIOKafkaConsumer]:
        if self._group is None or self._consumer is None:
            options = kafka_client_options(self.settings)
            self._group = AIOKafkaConsumer(
                **options,
                group_id=self.group_id,
                enable_auto_commit=False,
                client_id="citygrid-lag",
            )
            self._consumer = AIOKafkaConsumer(
                *self.topics,
                **options,
                group_id=None,
                enable_auto_commit=False,
                client_id="citygrid-lag",
            )
            await self._group.start()
            await self._consumer.start()
        return self._group, self._consumer

    async def measure(self) -> dict[str, int]:
        """Lag in messages per topic (empty until the probe has its partitions)."""
        try:
            group, consumer = await self._clients()
            assigned = consumer.assignment()
            if not assigned:
                return {}
            consumer.pause(*assigned)
            ends = await consumer.end_offsets(list(assigned))
            starts = await consumer.beginning_offsets(list(assigned))
            committed = {tp: await group.committed(tp) for tp in assigned}
        except KafkaError as exc:
            logger.warning("could not measure consumer lag: %s", exc)
            return {}
        lag = dict.fromkeys(self.topics, 0)
        for tp, end in ends.items():
            # Uncommitted (or expired) partitions lag from the oldest record still kept.
            done = max(committed.get(tp) or 0, starts[tp])
            lag[tp.topic] += max(0, end - done)
        return lag

    async def close(self) -> None:
        """Stop the clients."""
        for client in (self._consumer, self._group):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()
        self._group = self._consumer = None
