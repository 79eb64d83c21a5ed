"""The ingest and merge handlers on hand-made batches (no broker; the stages that fetch, flush and
commit are tested on real brokers in tests/integration): accepted events are routed unchanged to
their slot, refused ones go to the DLQ with their original bytes, and merge publishes a task."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord, TopicPartition

from agents.ingest import Ingest
from agents.merge import Merge
from schemas.json import loads
from schemas.road import Road
from schemas.task import Task
from streams import metrics
from streams.domain.merge import MergeConfig
from streams.engine import SlotStore
from streams.hop import PLACE_HEADER
from streams.registry_feed import RegistryFeed
from streams.settings import Settings
from tests.factories import event_bytes

SETTINGS = Settings(topic_prefix="t.", app_id="unit")


class RecordingSink:
    """Stands in for :class:`streams.engine.Sink`: keeps what the handler sends."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, topic: str, value: bytes | None, **kwargs: Any) -> None:
        self.sent.append({"topic": topic, "value": value, **kwargs})

    async def flush(self) -> None:
        pass


def _batch(topic: str, *values: bytes, key: bytes = b"dev-1", headers: Sequence[Any] = ()) -> Any:
    tp = TopicPartition(topic, 0)
    records = [
        ConsumerRecord(
            topic, 0, offset, 0, 0, key, value, None, len(key), len(value), list(headers)
        )
        for offset, value in enumerate(values)
    ]
    return {tp: records}


@pytest.fixture
def registry() -> RegistryFeed:
    feed = RegistryFeed(SETTINGS)
    feed.index.put(
        Road(
            "yulong-st", "宇龙街", "jinlong", "chief-yulong", (((113.78, 34.72), (113.79, 34.72)),)
        )
    )
    return feed


def _total(counter: Any) -> float:
    return sum(s.value for m in counter.collect() for s in m.samples if s.name.endswith("_total"))


async def test_valid_event_is_routed_to_its_slot_unchanged(registry: RegistryFeed) -> None:
    sink = RecordingSink()
    raw = event_bytes(domain="sanitation", category="3001", location={"road_id": "yulong-st"})
    await Ingest(SETTINGS, registry, sink)(_batch("t.city.events.sanitation", raw))  # type: ignore[arg-type]
    [sent] = sink.sent
    assert sent["topic"] == "unit-placed"
    assert sent["key"] == b"yulong-st~3001"
    assert sent["value"] == raw
    place = loads(dict(sent["headers"])[PLACE_HEADER])
    assert place == {
        "key": "yulong-st",
        "road_id": "yulong-st",
        "community": "jinlong",
        "chief_id": "chief-yulong",
    }


async def test_refused_message_goes_to_the_dlq_unchanged(registry: RegistryFeed) -> None:
    rejected_before = _total(metrics.EVENTS_REJECTED)
    consumed_before = _total(metrics.EVENTS_CONSUMED)
    sink = RecordingSink()
    raw = b'{"event_id": 1}'
    await Ingest(SETTINGS, registry, sink)(  # type: ignore[arg-type]
        _batch("t.city.events.sanitation", raw, key=b"dev-2")
    )
    [sent] = sink.sent
    assert sent["topic"] == "t.city.events.dlq"
    assert (sent["key"], sent["value"]) == (b"dev-2", raw)
    headers = dict(sent["headers"])
    assert headers["citygrid.error.reason"] == b"schema"
    assert headers["citygrid.error.topic"] == b"t.city.events.sanitation"
    assert _total(metrics.EVENTS_REJECTED) == rejected_before + 1
    assert _total(metrics.EVENTS_CONSUMED) == consumed_before + 1


async def test_merge_publishes_each_change_and_the_task_and_slot_once_per_batch(
    registry: RegistryFeed,
) -> None:
    ingest_sink, merge_sink = RecordingSink(), RecordingSink()
    first = event_bytes(domain="sanitation", category="3001", location={"road_id": "yulong-st"})
    again = event_bytes(
        domain="sanitation", category="3001", location={"road_id": "yulong-st"}, event_id="e-2"
    )
    await Ingest(SETTINGS, registry, ingest_sink)(  # type: ignore[arg-type]
        _batch("t.city.events.sanitation", first, again)
    )
    hop = [(s["key"], s["value"], s["headers"]) for s in ingest_sink.sent]
    store = SlotStore(SETTINGS, merge_sink)  # type: ignore[arg-type]
    store.hold(0)
    config = MergeConfig(merge_window=timedelta(hours=1))
    tp = TopicPartition("unit-placed", 0)
    records = [
        ConsumerRecord("unit-placed", 0, i, 0, 0, key, value, None, 1, 1, list(headers))
        for i, (key, value, headers) in enumerate(hop)
    ]
    told: list[tuple[bytes, Task]] = []
    merge = Merge(
        SETTINGS,
        config,
        store,
        merge_sink,  # type: ignore[arg-type]
        on_state=lambda value, task: told.append((value, task)),
    )
    await merge({tp: records})  # type: ignore[arg-type]
    topics = [s["topic"] for s in merge_sink.sent]
    # created, dispatched, merged; then the task's last state and the slot, once each per batch.
    assert topics == ["t.city.tasks.events"] * 3 + ["t.city.tasks.state", "unit-slots-changelog"]
    state = store.get(0, b"yulong-st~3001")
    assert state.task is not None
    assert len(state.task_keys) == 2
    assert loads(merge_sink.sent[3]["value"]) == state.task.to_wire()
    # The task book is told of the state with the very bytes sent.
    assert told == [(merge_sink.sent[3]["value"], state.task)]


async def test_merge_skips_a_placed_event_that_no_longer_decodes(
    registry: RegistryFeed, caplog: pytest.LogCaptureFixture
) -> None:
    ingest_sink, merge_sink = RecordingSink(), RecordingSink()
    raw = event_bytes(domain="sanitation", category="3001", location={"road_id": "yulong-st"})
    await Ingest(SETTINGS, registry, ingest_sink)(  # type: ignore[arg-type]
        _batch("t.city.events.sanitation", raw)
    )
    [hop] = ingest_sink.sent
    store = SlotStore(SETTINGS, merge_sink)  # type: ignore[arg-type]
    store.hold(0)
    records = [
        ConsumerRecord("unit-placed", 0, i, 0, 0, hop["key"], value, None, 1, 1, hop["headers"])
        for i, value in enumerate([b'{"event_id": 1}', b"\xff", raw])
    ]
    merge = Merge(SETTINGS, MergeConfig(), store, merge_sink)
    await merge({TopicPartition("unit-placed", 0): records})  # type: ignore[arg-type]
    assert [s["topic"] for s in merge_sink.sent] == ["t.city.tasks.events"] * 2 + [
        "t.city.tasks.state",
        "unit-slots-changelog",
    ]
    assert caplog.text.count("placed event no longer decodes") == 2


async def test_merge_dead_letters_a_report_its_full_task_has_no_room_for(
    registry: RegistryFeed,
) -> None:
    ingest_sink, merge_sink = RecordingSink(), RecordingSink()
    reports = [
        event_bytes(
            domain="sanitation",
            category="3001",
            location={"road_id": "yulong-st"},
            event_id=f"e-{n}",
        )
        for n in range(3)
    ]
    await Ingest(SETTINGS, registry, ingest_sink)(  # type: ignore[arg-type]
        _batch("t.city.events.sanitation", *reports, key=b"cam-9")
    )
    tp = TopicPartition("unit-placed", 0)
    records = [
        ConsumerRecord("unit-placed", 0, i, 0, 0, s["key"], s["value"], None, 1, 1, s["headers"])
        for i, s in enumerate(ingest_sink.sent)
    ]
    store = SlotStore(SETTINGS, merge_sink)  # type: ignore[arg-type]
    store.hold(0)
    rejected_before = _total(metrics.EVENTS_REJECTED)
    accepted_before = _total(metrics.EVENTS_ACCEPTED)
    merge = Merge(
        SETTINGS,
        MergeConfig(merge_window=timedelta(hours=1), max_task_reports=2),
        store,
        merge_sink,  # type: ignore[arg-type]
    )
    await merge({tp: records})  # type: ignore[arg-type]
    [dead] = [s for s in merge_sink.sent if s["topic"] == "t.city.events.dlq"]
    # The original message: its bytes, its key, and where ingest read it.
    assert (dead["key"], dead["value"]) == (b"cam-9", reports[2])
    headers = dict(dead["headers"])
    assert headers["citygrid.error.reason"] == b"task_full"
    assert headers["citygrid.error.topic"] == b"t.city.events.sanitation"
    assert (headers["citygrid.error.partition"], headers["citygrid.error.offset"]) == (b"0", b"2")
    assert b"lists 2 reports" in headers["citygrid.error.detail"]
    state = store.get(0, b"yulong-st~3001")
    assert state.task is not None
    assert state.task.event_ids == ("e-0", "e-1")
    assert _total(metrics.EVENTS_REJECTED) == rejected_before + 1
    assert _total(metrics.EVENTS_ACCEPTED) == accepted_before + 2
