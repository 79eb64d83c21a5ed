"""The hot path's machinery: batch stages on plain aiokafka, an outbox, and the slots' own store.

Faust hands an agent one message at a time through several queues and callbacks; measured here,
that framework path, not citygrid's logic, was the limit (about 800 events/s per worker, under
10% of the time in citygrid's own code). The two stages that see every event, ingest and merge,
therefore run as :class:`Stage` loops on their own consumers: fetch a batch, decide every message
synchronously, send the outputs without waiting for each one, wait once for the whole batch to be
acknowledged, then commit the batch's offsets. The rest of the worker (HTTP API, timers, leader
election, the followers) stays on Faust.

Delivery is at-least-once, as before: outputs are acknowledged before their input is committed,
so a crash replays at most one uncommitted batch, and the merge decisions are idempotent (task ids
are deterministic, each slot remembers the reports it has seen).

Merge state lives in :class:`SlotStore`: decoded :class:`~streams.domain.merge.SlotState` values in
memory, per partition of the repartition topic, backed by a compacted changelog topic with the
same partitioning (what Kafka Streams calls a state store). Each batch writes every slot it
changed once, whatever the number of events that touched it. When a partition is assigned its
slots are read back from the changelog before any message of it is processed; when it is revoked
the batch in progress finishes and commits first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    CommitFailedError,
    KafkaError,
    MessageSizeTooLargeError,
    TopicAlreadyExistsError,
)
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import ConsumerRecord, TopicPartition

from schemas.json import dumps, loads
from streams import metrics
from streams.coldslots import ColdSlots
from streams.domain.merge import MergeConfig, SlotState, forgettable_after
from streams.exceptions import TopicError
from streams.settings import Settings
from streams.topics import ENVELOPE_BYTES, MAX_INPUT_BYTES, kafka_client_options

__all__ = [
    "SLOT_RECORD_BYTES",
    "Batch",
    "Outbox",
    "Sink",
    "SlotStore",
    "Stage",
    "changelog_topic_name",
    "ensure_internal_topics",
    "placed_topic_name",
]

logger = logging.getLogger(__name__)

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
_WORDS = struct.Struct("<I").iter_unpack


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 of ``data`` (``org.apache.kafka.common.utils.Utils.murmur2``), unsigned.

    The same as aiokafka's, which reads the key byte by byte, in 60-70% of its time (4.5 us
    against 6.5 for a 33-byte key, 5.7 against 9.9 for 27 bytes, timeit): four bytes a step
    from ``struct``, masks only where a product can pass 32 bits. A native hash was tried (the
    murmurhash2 wheel): it lets go of the GIL for every key and then waits for any busy thread
    to give it back.
    """
    length = len(data)
    h = 0x9747B28C ^ length
    whole = length & ~3
    for (word,) in _WORDS(data[:whole] if length & 3 else data):
        k = (word * _M) & _MASK
        h = ((h * _M) & _MASK) ^ (((k ^ (k >> 24)) * _M) & _MASK)
    extra = length & 3
    if extra:
        if extra == 3:  # noqa: PLR2004 - the bytes left after the last whole word
            h ^= data[whole + 2] << 16
        if extra >= 2:  # noqa: PLR2004
            h ^= data[whole + 1] << 8
        h = ((h ^ data[whole]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


_FETCH_WAIT_MS = 20

Batch = Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]]
Headers = Sequence[tuple[str, bytes]]


SLOT_RECORD_BYTES = 16 * 1024 * 1024
"""Largest slot record the changelog takes (its ``max.message.bytes``). A slot keeps its task,
the task's report keys and every key of the dedup horizon: at ``CITYGRID_MAX_TASK_REPORTS``
(5,000) of the longest ids it is 2.8 MB, past the 1 MiB a broker takes by default."""


def placed_topic_name(settings: Settings) -> str:
    """The one repartition hop, keyed by slot (see :mod:`streams.hop`)."""
    return f"{settings.app_id}-placed"


def changelog_topic_name(settings: Settings) -> str:
    """The slots' changelog: one record per slot, compacted, partitioned like the hop."""
    return f"{settings.app_id}-slots-changelog"


async def ensure_internal_topics(settings: Settings) -> None:
    """Create the hop and the changelog when missing; refuse to run if their partition counts
    differ (a slot's changelog partition must be its hop partition).

    Raises:
        TopicError: the cluster refused, could not be reached, or the counts differ.
    """
    wanted = {
        # The hop carries any input message with a place or origin header.
        placed_topic_name(settings): {
            "max.message.bytes": str(MAX_INPUT_BYTES + ENVELOPE_BYTES),
        },
        changelog_topic_name(settings): {
            "cleanup.policy": "compact",
            "max.message.bytes": str(SLOT_RECORD_BYTES),
        },
    }
    admin = AIOKafkaAdminClient(**kafka_client_options(settings), client_id="citygrid-engine")
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name=name,
                num_partitions=settings.partitions,
                replication_factor=settings.replication_factor,
                topic_configs=config,
            )
            for name, config in wanted.items()
            if name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
        described = await admin.describe_topics(list(wanted))
    except KafkaError as exc:
        raise TopicError(f"could not declare the internal topics: {exc}") from exc
    finally:
        await admin.close()
    counts = {m["topic"]: len(m.get("partitions") or ()) for m in described}
    if len(set(counts.values())) != 1:
        raise TopicError(
            f"the hop and the changelog must have the same partition count, found {counts}; "
            "recreate the changelog with the hop's count"
        )


class Outbox:
    """One producer for a worker's stages and timers; each sends through its own :class:`Sink`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("the outbox is not started")
        return self._producer

    def sink(self) -> Sink:
        """A sender whose :meth:`Sink.flush` waits for its own records only."""
        return Sink(self)

    async def start(self) -> None:
        # aiokafka clients must be built inside the running loop, hence here and not in __init__.
        self._producer = AIOKafkaProducer(
            **kafka_client_options(self.settings),
            client_id=f"{self.settings.app_id}-engine",
            acks="all",
            # No linger: a batch's records are queued without yielding to the event loop, so
            # they form full produce requests anyway, and the flush does not wait out a timer.
            linger_ms=0,
            max_batch_size=512 * 1024,
            # A dead letter or hop record of the largest input, with its headers, must fit, and
            # the largest slot (in a batch of its own).
            max_request_size=max(
                2 * (MAX_INPUT_BYTES + ENVELOPE_BYTES),
                2 * self.settings.max_message_bytes,
                SLOT_RECORD_BYTES + ENVELOPE_BYTES,
            ),
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()


class Sink:
    """Collects a batch's records per topic partition, then hands each partition's records to the
    producer as one record batch and waits once for all of them (a batch's outputs).

    ``AIOKafkaProducer.send`` costs about 15 us per record here (a future, the partitioner, the
    accumulator); appending to a record batch costs a few. Keys are partitioned exactly as the
    producer's default partitioner does (murmur2, as the Java client), so keyed records land
    where any other Kafka client would put them.
    """

    _HASH_CACHE = 32_768
    """Keys whose hash is remembered: the tasks in flight and the devices reporting (a clear when
    full keeps memory flat, about 100 B an entry with the key it keeps alive). A hash serves
    every topic: a task's state and its transitions go to two."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._open: dict[tuple[str, int], Any] = {}
        self._queued: list[tuple[Any, str, int]] = []
        self._partitions: dict[str, list[int]] = {}
        self._hashes: dict[bytes, int] = {}
        self._partitioner = DefaultPartitioner()

    async def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Headers = (),
        partition: int | None = None,
    ) -> None:
        """Queue one record; :meth:`flush` sends and waits for it."""
        if partition is None:
            partition = await self._partition_of(topic, key)
        builder = self._open.get((topic, partition))
        if builder is None:
            builder = self._open[(topic, partition)] = self.outbox.producer.create_batch()
        if builder.append(key=key, value=value, timestamp=None, headers=list(headers)) is None:
            # Full: queue it and start another; the partition's order is kept.
            self._queued.append((builder, topic, partition))
            builder = self._open[(topic, partition)] = self.outbox.producer.create_batch()
            if builder.append(key=key, value=value, timestamp=None, headers=list(headers)) is None:
                raise MessageSizeTooLargeError(f"a record for {topic} is larger than a batch")

    async def _partition_of(self, topic: str, key: bytes | None) -> int:
        partitions = self._partitions.get(topic)
        if partitions is None:
            known = await self.outbox.producer.partitions_for(topic)
            partitions = self._partitions[topic] = sorted(known)
        if key is None:
            return int(self._partitioner(None, partitions, partitions))
        # What aiokafka's DefaultPartitioner does, with murmur2 (about 5 µs a key here)
        # computed once per key.
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= self._HASH_CACHE:
                self._hashes.clear()
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return partitions[hashed % len(partitions)]

    async def submit(self) -> asyncio.Future[Any]:
        """Hand everything queued to the producer now; the returned future completes when the
        broker has acknowledged all of it (or fails with the first KafkaError)."""
        queued = [*self._queued, *((b, t, p) for (t, p), b in self._open.items())]
        self._queued, self._open = [], {}
        producer = self.outbox.producer
        return asyncio.gather(*[await producer.send_batch(b, t, partition=p) for b, t, p in queued])

    async def flush(self) -> None:
        """Send everything queued and wait until the broker acknowledged all of it.

        Raises:
            KafkaError: a record could not be delivered (after the producer's own retries).
        """
        await (await self.submit())


Handler = Callable[[Batch], Awaitable[None]]
PartitionHook = Callable[[Sequence[TopicPartition]], Awaitable[None]]


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, stage: Stage) -> None:
        self.stage = stage

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.stage._revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.stage._assigned(assigned)


class Stage:
    """A consumer-group member that handles its records a batch at a time.

    ``handler`` decides a batch and queues its outputs on ``sink``; the stage then waits for the
    outputs and commits. ``on_assigned`` runs before any record of newly assigned partitions is
    handled (state restore); ``on_revoked`` after the last batch of revoked ones has committed.
    """

    def __init__(
        self,
        name: str,
        settings: Settings,
        topics: Sequence[str],
        handler: Handler,
        sink: Sink,
        *,
        on_assigned: PartitionHook | None = None,
        on_revoked: PartitionHook | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.topics = tuple(topics)
        self.group_id = f"{settings.app_id}.{name}"
        self.handler = handler
        self.sink = sink
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked
        self._lock = asyncio.Lock()
        self._owned: set[TopicPartition] = set()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._inflight: asyncio.Task[None] | None = None
        self._stopping = False
        self._generation = 0
        """Bumped by every rebalance: a batch fetched under an older generation is stale."""
        self._phases = {
            phase: metrics.BATCH_PHASE_SECONDS.labels(name, phase)
            for phase in ("decide", "acks", "commit")
        }

    @property
    def ready(self) -> bool:
        """Running, and past its first assignment."""
        return self._task is not None and not self._task.done() and bool(self._owned)

    async def start(self) -> None:
        session_ms = int(self.settings.session_timeout * 1000)
        self._consumer = AIOKafkaConsumer(
            **kafka_client_options(self.settings),
            group_id=self.group_id,
            client_id=f"{self.group_id}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=min(3000, session_ms // 4),
            # The broker answers a fetch as soon as there is data (min bytes 1), but some brokers
            # (tansu) hold it for the whole wait: keep the wait short, it bounds a stage's latency.
            fetch_max_wait_ms=_FETCH_WAIT_MS,
            max_partition_fetch_bytes=max(1024 * 1024, 2 * self.settings.max_message_bytes),
            fetch_max_bytes=max(16 * 1024 * 1024, 2 * self.settings.max_message_bytes),
        )
        self._consumer.subscribe(list(self.topics), listener=_Listener(self))
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name=f"citygrid.{self.name}")

    async def stop(self) -> None:
        """Finish the batch in progress, commit it, and leave the group."""
        self._stopping = True
        if self._task is not None:
            try:
                async with asyncio.timeout(max(5.0, self.settings.session_timeout)):
                    await asyncio.shield(self._task)
            except TimeoutError:
                logger.warning("%s: the last batch did not finish in time", self.name)
                self._task.cancel()
            except Exception as exc:  # noqa: BLE001 - we are stopping; say why it ended
                logger.warning("%s ended with %r", self.name, exc)
        if self._consumer is not None:
            await self._consumer.stop()

    async def wait(self) -> None:
        """Until the loop ends; re-raises what ended it."""
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError(f"{self.name} is not started")
        while not self._stopping:
            generation = self._generation
            batch = await consumer.getmany(timeout_ms=100, max_records=self.settings.batch_size)
            if not batch:
                await self._settle()
                continue
            async with self._lock:
                # A rebalance between the fetch and now makes the batch stale, even for
                # partitions that came back to this worker: their positions were reset to the
                # committed offsets, so the consumer fetches these records again, and handling
                # them now too would apply them twice.
                if generation == self._generation:
                    await self._handle(consumer, batch)
        await self._settle()

    async def _handle(self, consumer: AIOKafkaConsumer, batch: Batch) -> None:
        started = time.perf_counter()
        await self.handler(batch)
        decided = time.perf_counter()
        self._phases["decide"].observe(decided - started)
        # The producer may hold the hand-over until the partition's previous batch is sent:
        # that wait is the broker's, so it counts with the acks.
        acks = await self.sink.submit()
        acks.add_done_callback(self._acked(decided))
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
        count = sum(len(records) for records in batch.values())
        # Batches overlap: this one was decided while the previous one's outputs were in flight.
        # The previous one commits first, so commits stay in order, and a batch commits only
        # once its own outputs are acknowledged.
        await self._settle()
        self._inflight = asyncio.create_task(
            self._complete(consumer, acks, offsets, started, count)
        )

    async def _complete(
        self,
        consumer: AIOKafkaConsumer,
        acks: asyncio.Future[Any],
        offsets: dict[TopicPartition, int],
        started: float,
        count: int,
    ) -> None:
        await acks
        acked = time.perf_counter()
        try:
            await consumer.commit(offsets)
        except CommitFailedError as exc:
            # The group moved on; the new owner replays the batch and finds it already done.
            logger.warning("%s: commit refused after a rebalance: %s", self.name, exc)
        self._phases["commit"].observe(time.perf_counter() - acked)
        metrics.BATCH_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        metrics.BATCH_RECORDS.labels(self.name).observe(count)

    def _acked(self, decided: float) -> Callable[[asyncio.Future[Any]], None]:
        """A callback timing a batch's acknowledgements from when it was decided (the batch
        after it is decided meanwhile)."""
        histogram = self._phases["acks"]

        def observe(_: asyncio.Future[Any]) -> None:
            histogram.observe(time.perf_counter() - decided)

        return observe

    async def _settle(self) -> None:
        """Wait until the batch in flight is acknowledged and committed; raise its failure."""
        if self._inflight is not None:
            await self._inflight
            self._inflight = None

    async def _revoked(self, revoked: list[TopicPartition]) -> None:
        # Waits for the batch in progress: it commits before the partitions change hands.
        async with self._lock:
            with contextlib.suppress(KafkaError):
                await self._settle()
            self._generation += 1
            gone = [tp for tp in revoked if tp in self._owned]
            self._owned.difference_update(revoked)
            if gone and self._on_revoked is not None:
                await self._on_revoked(gone)
        metrics.REBALANCES.inc()

    async def _assigned(self, assigned: list[TopicPartition]) -> None:
        async with self._lock:
            self._generation += 1
            new = [tp for tp in assigned if tp not in self._owned]
            if new and self._on_assigned is not None:
                await self._on_assigned(new)
            self._owned = set(assigned)
        logger.info(
            "%s: %d partition(s) assigned",
            self.name,
            len(assigned),
            extra={"stage": self.name, "partitions": len(assigned)},
        )


class SlotStore:
    """The merge state of the slots on this worker's partitions, backed by a changelog topic.

    Slots with an open task, or with no task yet (sensor runs, remembered keys), are kept decoded
    in memory: they are the ones reports and deadlines touch. A slot whose task is closed or
    cancelled moves, when its batch is written, to :class:`~streams.coldslots.ColdSlots` on local
    disk, encoded as on the changelog, and is decoded again only when a report, feedback or the
    API asks for it. Memory then follows the open tasks, not the tasks of the last week.
    """

    def __init__(self, settings: Settings, sink: Sink, config: MergeConfig | None = None) -> None:
        self.settings = settings
        self.sink = sink
        self.config = config or MergeConfig()
        self.changelog = changelog_topic_name(settings)
        self._slots: dict[int, dict[bytes, SlotState]] = {}
        self._dirty: dict[int, set[bytes]] = {}
        self._cold: ColdSlots | None = None
        """Created with the first closed slot, in ``settings.data_dir``."""
        self._thawed: dict[int, set[bytes]] = {}
        """Keys read from the cold store since the last write: their cold copy goes if they stay
        in memory."""

    def get(self, partition: int, key: bytes) -> SlotState:
        """A slot's state (an empty one for a slot never seen)."""
        state = self._slots[partition].get(key)
        if state is not None:
            return state
        value = None if self._cold is None else self._cold.get(partition, key)
        if value is None:
            return _EMPTY
        self._thawed[partition].add(key)
        return SlotState.from_wire(loads(value))

    def lookup(self, key: bytes) -> SlotState | None:
        """A slot's state if this worker holds it."""
        for slots in self._slots.values():
            state = slots.get(key)
            if state is not None:
                return state
        value = None if self._cold is None else self._cold.find(key)
        return None if value is None else SlotState.from_wire(loads(value))

    def put(self, partition: int, key: bytes, state: SlotState) -> None:
        self._slots[partition][key] = state
        self._dirty[partition].add(key)

    async def forget(self, partition: int, key: bytes, state: SlotState, sink: Sink) -> bool:
        """Drop a slot whose ``state`` is still current, with a tombstone on the changelog (sent
        through ``sink``); False when the slot changed since, or is no longer held here."""
        slots = self._slots.get(partition)
        if slots is None or slots.get(key) is not state or key in self._dirty[partition]:
            return False
        del slots[key]
        await sink.send(self.changelog, None, key=key, partition=partition)
        return True

    async def expire(self, now: datetime, sink: Sink) -> int:
        """Drop the cold slots nothing can depend on any more at ``now``
        (:func:`~streams.domain.merge.forgettable`), with tombstones sent through ``sink``."""
        if self._cold is None:
            return 0
        expired = 0
        for partition, key in self._cold.expired(now.timestamp()):
            slots = self._slots.get(partition)
            if slots is None or key in slots:
                # Back in memory since (a batch in progress read it): that copy is the slot.
                continue
            await sink.send(self.changelog, None, key=key, partition=partition)
            expired += 1
        return expired

    def items(self) -> Iterator[tuple[int, bytes, SlotState]]:
        """The slots held in memory: every open task's among them."""
        for partition, slots in list(self._slots.items()):
            for key, state in list(slots.items()):
                yield partition, key, state

    def counts(self) -> tuple[int, int]:
        """Slots held in memory, and on disk."""
        in_memory = sum(len(slots) for slots in self._slots.values())
        return in_memory, 0 if self._cold is None else self._cold.count()

    async def write_changes(self) -> None:
        """Queue every slot changed since the last call on the changelog, once each; move those
        whose task is closed to the cold store."""
        chilled: list[tuple[int, bytes, bytes, float]] = []
        warm: list[tuple[int, bytes]] = []
        for partition, keys in self._dirty.items():
            slots = self._slots[partition]
            thawed = self._thawed[partition]
            for key in keys:
                state = slots[key]
                value = dumps(state.to_wire())
                await self.sink.send(self.changelog, value, key=key, partition=partition)
                expires = _cold_until(state, self.config)
                if expires is not None:
                    chilled.append((partition, key, value, expires))
                    del slots[key]
                elif key in thawed:
                    warm.append((partition, key))
            keys.clear()
            thawed.clear()
        if warm and self._cold is not None:
            self._cold.delete(warm)
        if chilled:
            self._cold_store().put(chilled)

    def _cold_store(self) -> ColdSlots:
        if self._cold is None:
            self._cold = ColdSlots(self.settings.data_dir / "slots")
        return self._cold

    async def restore(self, partitions: Sequence[int]) -> None:
        """Read the slots of ``partitions`` back from the changelog, to its end."""
        started = time.perf_counter()
        tps = [TopicPartition(self.changelog, p) for p in partitions]
        restored: dict[int, dict[bytes, bytes]] = {p: {} for p in partitions}
        consumer = AIOKafkaConsumer(
            **kafka_client_options(self.settings),
            group_id=None,
            enable_auto_commit=False,
            client_id=f"{self.settings.app_id}-restore",
            max_partition_fetch_bytes=SLOT_RECORD_BYTES + ENVELOPE_BYTES,
        )
        await consumer.start()
        records = 0
        try:
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            end = await consumer.end_offsets(tps)
            remaining = {tp for tp in tps if end[tp] > await consumer.position(tp)}
            while remaining:
                batch = await consumer.getmany(*remaining, timeout_ms=500)
                for tp, chunk in batch.items():
                    slots = restored[tp.partition]
                    for record in chunk:
                        records += 1
                        if record.key is None:
                            continue
                        if record.value is None:
                            slots.pop(record.key, None)
                        else:
                            slots[record.key] = record.value
                for tp in list(remaining):
                    if await consumer.position(tp) >= end[tp]:
                        remaining.discard(tp)
        finally:
            await consumer.stop()
        for partition, slots in restored.items():
            # Only the last record of each slot is decoded.
            self._take(
                partition,
                {key: (SlotState.from_wire(loads(value)), value) for key, value in slots.items()},
            )
        in_memory, on_disk = self.counts()
        logger.info(
            "restored %d slot(s) of %d partition(s) from %d changelog record(s) in %.2fs "
            "(%d in memory, %d on disk in all)",
            sum(len(s) for s in restored.values()),
            len(partitions),
            records,
            time.perf_counter() - started,
            in_memory,
            on_disk,
        )

    def hold(self, partition: int, slots: Mapping[bytes, SlotState] | None = None) -> None:
        """Take charge of ``partition`` with these slots (restored ones, or none)."""
        self._take(
            partition,
            {key: (state, dumps(state.to_wire())) for key, state in (slots or {}).items()},
        )

    def _take(self, partition: int, slots: Mapping[bytes, tuple[SlotState, bytes]]) -> None:
        held = self._slots[partition] = {}
        self._dirty[partition] = set()
        self._thawed[partition] = set()
        chilled: list[tuple[int, bytes, bytes, float]] = []
        for key, (state, value) in slots.items():
            expires = _cold_until(state, self.config)
            if expires is None:
                held[key] = state
            else:
                chilled.append((partition, key, value, expires))
        if self._cold is not None:
            self._cold.drop([partition])
        if chilled:
            self._cold_store().put(chilled)

    def drop(self, partitions: Sequence[int]) -> None:
        """Forget partitions this worker no longer owns (their changes are written already)."""
        for partition in partitions:
            self._slots.pop(partition, None)
            self._dirty.pop(partition, None)
            self._thawed.pop(partition, None)
        if self._cold is not None:
            self._cold.drop(partitions)

    def close(self) -> None:
        """Release the cold store (its file goes with it)."""
        if self._cold is not None:
            self._cold.close()
            self._cold = None


def _cold_until(state: SlotState, config: MergeConfig) -> float | None:
    """When a slot belongs on disk: its Unix time of :func:`forgettable_after`; None while it
    has an open task, or no task (sensor runs are read at every reading)."""
    if state.task is None:
        return None
    after = forgettable_after(state, config)
    return None if after is None else after.timestamp()


_EMPTY = SlotState()
