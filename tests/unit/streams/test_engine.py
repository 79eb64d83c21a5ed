"""The slot store's bookkeeping, without a broker (restore and the stages run on real brokers in
tests/integration)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.structs import ConsumerRecord, TopicPartition

from streams.domain.merge import SlotState
from streams.engine import Batch, SlotStore, Stage
from streams.settings import Settings

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
