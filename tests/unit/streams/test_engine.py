"""The slot store's bookkeeping, without a broker (restore and the stages run on real brokers in
tests/integration)."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafkas
from aiokafka.structs import ConsumerRecord, TopicPartition

from schemas.enums import Status
from streams import metrics
from streams.domain.merge import MergeConfig, Result, SlotState, decide, forgettable
from streams.engine import Batch, Sink, SlotStore, Stage, murmur2
from streams.settings import Settings
from tests.unit.streams.domain.test_merge import T0, YULONG, fold, report

SETTINGS = Settings(app_id="unit")


class RecordingSink:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, int | None]] = []

    async def send(self, topic: str, value: bytes | None, **kwargs: Any) -> None:
        self.sent.append((topic, value, kwargs.get("key"), kwargs.get("partition")))


async def test_forget_drops_the_current_state_with_a_tombstone_on_its_partition() -> None:
    sink = RecordingSink()
    store = SlotStore(SETTINGS, sink)  # type: ignore[arg-type]
    state = SlotState(seq=3)
    store.hold(2, {b"road~4001": state})
    assert await store.forget(2, b"road~4001", state, sink)  # type: ignore[arg-type]
    assert store.lookup(b"road~4001") is None
    assert sink.sent == [("unit-slots-changelog", None, b"road~4001", 2)]


async def test_forget_leaves_a_slot_that_changed_or_moved_away() -> None:
    sink = RecordingSink()
    store = SlotStore(SETTINGS, sink)  # type: ignore[arg-type]
    old, new = SlotState(seq=1), SlotState(seq=2)
    store.hold(0, {b"a~4001": old})
    store.put(0, b"a~4001", new)  # changed since the caller looked, and not yet written
    assert not await store.forget(0, b"a~4001", old, sink)  # type: ignore[arg-type]
    assert not await store.forget(0, b"a~4001", new, sink)  # type: ignore[arg-type]  # dirty
    store.drop([0])
    assert not await store.forget(0, b"a~4001", new, sink)  # type: ignore[arg-type]
    assert sink.sent == []


class RebalancingConsumer:
    """Answers fetches from a script; a step may run a rebalance before its records return."""

    def __init__(self, stage: Stage, script: list[tuple[bool, Batch]]) -> None:
        self.stage, self.script = stage, script
        self.committed: list[dict[TopicPartition, int]] = []

    async def getmany(self, **_: Any) -> Batch:
        if not self.script:
            self.stage._stopping = True
            return {}
        rebalance, batch = self.script.pop(0)
        if rebalance:
            # Eager rebalancing: everything is revoked, then the same partition comes back.
            tps = list(batch)
            await self.stage._revoked(tps)
            await self.stage._assigned(tps)
        return batch

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed.append(offsets)


class DoneSink:
    async def submit(self) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def _records(tp: TopicPartition, *offsets: int) -> list[ConsumerRecord[bytes, bytes]]:
    return [
        ConsumerRecord(tp.topic, tp.partition, o, 0, 0, b"k", b"v", None, 1, 1, ()) for o in offsets
    ]


async def test_a_batch_fetched_before_a_rebalance_is_not_handled() -> None:
    # The partition came back, but its position was reset to the committed offset: the records
    # of the stale batch are fetched again, and handling both copies would apply them twice.
    tp = TopicPartition("unit-placed", 0)
    handled: list[list[int]] = []

    async def handler(batch: Batch) -> None:
        handled.append([r.offset for records in batch.values() for r in records])

    stage = Stage("merge", SETTINGS, ["unit-placed"], handler, DoneSink())  # type: ignore[arg-type]
    await stage._assigned([tp])
    consumer = RebalancingConsumer(
        stage, [(False, {tp: _records(tp, 0, 1)}), (True, {tp: _records(tp, 2, 3)})]
    )
    consumer.script.append((False, {tp: _records(tp, 2, 3)}))
    stage._consumer = consumer  # type: ignore[assignment]
    await stage._run()
    assert handled == [[0, 1], [2, 3]]
    assert consumer.committed == [{tp: 2}, {tp: 4}]


class ManualSink:
    """Outputs acknowledged when the test says so: one future per batch."""

    def __init__(self) -> None:
        self.acks: list[asyncio.Future[None]] = []

    async def submit(self) -> asyncio.Future[None]:
        self.acks.append(asyncio.get_running_loop().create_future())
        return self.acks[-1]


class GatedConsumer:
    """Hands out its batches one fetch at a time; each commit waits for the test's gate."""

    def __init__(self, batches: list[Batch]) -> None:
        self.batches = batches
        self.committed: list[dict[TopicPartition, int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def getmany(self, **_: Any) -> Batch:
        await asyncio.sleep(0)
        return self.batches.pop(0) if self.batches else {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        await self.gate.wait()
        self.committed.append(offsets)


async def _until(condition: Any) -> None:
    async with asyncio.timeout(5):
        while not condition():  # noqa: ASYNC110 - the stage's state has no event to wait on
            await asyncio.sleep(0)


def _gated_stage(batches: int) -> tuple[Stage, GatedConsumer, ManualSink, list[int]]:
    tp = TopicPartition("unit-placed", 0)
    decided: list[int] = []

    async def handler(batch: Batch) -> None:
        decided.append(batch[tp][-1].offset)

    sink = ManualSink()
    stage = Stage("ingest", SETTINGS, ["unit-placed"], handler, sink)
    consumer = GatedConsumer([{tp: _records(tp, 2 * n, 2 * n + 1)} for n in range(batches)])
    stage._consumer = consumer  # type: ignore[assignment]
    return stage, consumer, sink, decided


async def test_a_batch_is_decided_while_the_one_before_waits_and_commits_once_acked() -> None:
    tp = TopicPartition("unit-placed", 0)
    stage, consumer, sink, decided = _gated_stage(3)
    run = asyncio.create_task(stage._run())
    await _until(lambda: len(sink.acks) == 2)
    await asyncio.sleep(0.01)
    assert decided == [1, 3]  # the second did not wait for the first's acknowledgements
    assert consumer.committed == []  # nor did anything commit before them
    sink.acks[0].set_result(None)
    await _until(lambda: len(sink.acks) == 3)
    assert consumer.committed == [{tp: 2}]
    sink.acks[1].set_result(None)
    sink.acks[2].set_result(None)
    stage._stopping = True
    await run
    assert consumer.committed == [{tp: 2}, {tp: 4}, {tp: 6}]


async def test_an_undelivered_batch_ends_the_stage_uncommitted() -> None:
    stage, consumer, sink, _ = _gated_stage(3)
    run = asyncio.create_task(stage._run())
    await _until(lambda: len(sink.acks) == 2)
    sink.acks[0].set_exception(KafkaTimeoutError("no leader"))
    sink.acks[1].set_result(None)
    with pytest.raises(KafkaTimeoutError):
        await run
    assert consumer.committed == []


async def test_a_batchs_phases_are_timed() -> None:
    def counts() -> list[float]:
        return [
            metrics.REGISTRY.get_sample_value(
                "citygrid_batch_phase_seconds_count", {"stage": "ingest", "phase": phase}
            )
            or 0.0
            for phase in ("decide", "acks", "commit")
        ]

    before = counts()
    stage, _, sink, _ = _gated_stage(2)
    run = asyncio.create_task(stage._run())
    await _until(lambda: len(sink.acks) == 2)
    for ack in sink.acks:
        ack.set_result(None)
    stage._stopping = True
    await run
    assert [after - was for after, was in zip(counts(), before, strict=True)] == [2, 2, 2]


# --- closed tasks' slots on disk ------------------------------------------------------------------


def _slots(tmp_path: Path) -> tuple[SlotStore, RecordingSink]:
    sink = RecordingSink()
    settings = Settings(app_id="unit", data_dir=tmp_path)
    return SlotStore(settings, sink, MergeConfig()), sink  # type: ignore[arg-type]


def _closed(state: SlotState, at: datetime) -> SlotState:
    assert state.task is not None
    return replace(state, task=replace(state.task, status=Status.CLOSED, closed_at=at))


async def test_a_closed_tasks_slot_moves_to_disk_and_reads_back_the_same(tmp_path: Path) -> None:
    store, sink = _slots(tmp_path)
    store.hold(0)
    opened, _ = fold([report("e1")])
    closed = _closed(opened, T0 + timedelta(hours=1))
    store.put(0, b"open", opened)
    store.put(0, b"closed", closed)
    await store.write_changes()
    assert store.counts() == (1, 1)
    assert [key for _, key, _ in store.items()] == [b"open"]
    assert store.get(0, b"closed") == closed
    assert store.lookup(b"closed") == closed
    # Both were written to the changelog, whatever their place.
    assert sorted(key for _, _, key, _ in sink.sent if key) == [b"closed", b"open"]
    store.close()


async def test_a_cold_slot_that_reopens_comes_back_to_memory_and_leaves_the_disk(
    tmp_path: Path,
) -> None:
    store, _ = _slots(tmp_path)
    closed = _closed(fold([report("e1")])[0], T0 + timedelta(hours=1))
    store.hold(0, {b"slot": closed})
    assert store.counts() == (0, 1)
    state = store.get(0, b"slot")
    rebound = decide(state, report("e2", at=T0 + timedelta(days=1)), YULONG, MergeConfig())
    assert rebound.result is Result.CREATED
    store.put(0, b"slot", rebound.state)
    await store.write_changes()
    assert store.counts() == (1, 0)
    # Nothing on disk can expire it later under the open task.
    assert await store.expire(T0 + timedelta(days=365), RecordingSink()) == 0  # type: ignore[arg-type]
    assert store.get(0, b"slot") == rebound.state
    store.close()


async def test_cold_slots_expire_past_their_horizons_with_a_tombstone(tmp_path: Path) -> None:
    store, _ = _slots(tmp_path)
    closed_at = T0 + timedelta(hours=1)
    closed = _closed(fold([report("e1")])[0], closed_at)
    store.hold(3, {b"slot": closed})
    sink = RecordingSink()
    horizon = MergeConfig().rebound_horizon
    assert await store.expire(closed_at + horizon, sink) == 0  # type: ignore[arg-type]
    assert not forgettable(closed, closed_at + horizon, MergeConfig())
    later = closed_at + horizon + timedelta(seconds=1)
    assert forgettable(closed, later, MergeConfig())
    assert await store.expire(later, sink) == 1  # type: ignore[arg-type]
    assert sink.sent == [("unit-slots-changelog", None, b"slot", 3)]
    assert store.counts() == (0, 0)
    assert store.get(3, b"slot") == SlotState()
    store.close()


def test_dropping_a_partition_forgets_its_cold_slots(tmp_path: Path) -> None:
    store, _ = _slots(tmp_path)
    closed = _closed(fold([report("e1")])[0], T0)
    store.hold(0, {b"a": closed})
    store.hold(1, {b"b": closed})
    store.drop([0])
    assert store.lookup(b"a") is None
    assert store.lookup(b"b") == closed
    assert store.counts() == (0, 1)
    # SQLite unlinked its temporary file at once: nothing is left behind, even by a crash.
    assert list(tmp_path.rglob("*")) == [tmp_path / "slots"]
    store.close()


class _Partitions:
    """A producer's view of the topics' partitions, for a sink's partitioning."""

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.counts[topic]))


async def test_a_sink_partitions_keys_as_aiokafka_does_on_every_topic() -> None:
    counts = {"state": 8, "events": 8, "odd": 3}
    sink = Sink(SimpleNamespace(producer=_Partitions(counts)))  # type: ignore[arg-type]
    partitioner = DefaultPartitioner()
    keys = [f"cell:{n}~4001~{n:012x}".encode() for n in range(300)] + [b"", b"\xff" * 7]
    for _ in range(2):  # computed, then from the cache
        for key in keys:
            for topic, count in counts.items():
                expected = partitioner(key, list(range(count)), [])
                assert await sink._partition_of(topic, key) == expected


def test_murmur2_is_aiokafkas_on_keys_of_every_length() -> None:
    rng = random.Random(5)
    for size in range(70):
        for _ in range(20):
            key = bytes(rng.randrange(256) for _ in range(size))
            assert murmur2(key) == aiokafkas(key)


@pytest.mark.parametrize(
    ("key", "java"),
    [
        # Kafka's own cases for Utils.murmur2 (clients/.../common/utils/UtilsTest.java).
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ],
)
def test_murmur2_is_the_java_clients(key: bytes, java: int) -> None:
    assert murmur2(key) == java & 0xFFFFFFFF
