"""The slot store's bookkeeping, without a broker (restore and the stages run on real brokers in
tests/integration)."""

from __future__ import annotations

from typing import Any

from streams.domain.merge import SlotState
from streams.engine import SlotStore
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
