"""The ingest agent, run in Faust's test context (no broker): accepted events are routed unchanged
to their slot on the repartition topic, refused ones go to the DLQ with their original bytes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from unittest.mock import AsyncMock, patch

import pytest

from agents.ingest import ingest
from schemas.codec import Rejection
from schemas.enums import RejectReason
from schemas.event import Event
from schemas.json import loads
from schemas.road import Road
from streams import metrics
from streams.app import app, dlq_topic, placed_topic, registry
from streams.hop import PLACE_HEADER
from tests.factories import event_bytes


@pytest.fixture
async def agent_app() -> AsyncIterator[Any]:
    app.loop = asyncio.get_running_loop()
    app.finalize()
    app.conf.store = "memory://"
    app.flow_control.resume()
    registry.index.put(
        Road(
            "yulong-st", "宇龙街", "jinlong", "chief-yulong", (((113.78, 34.72), (113.79, 34.72)),)
        )
    )
    registry.ready.set()
    yield app


def _total(counter: Any) -> float:
    return sum(s.value for m in counter.collect() for s in m.samples if s.name.endswith("_total"))


async def test_valid_event_is_routed_to_its_slot_unchanged(agent_app: Any) -> None:
    raw = event_bytes(domain="sanitation", category="3001", location={"road_id": "yulong-st"})
    with patch.object(placed_topic, "send", new=AsyncMock()) as send:
        async with ingest.test_context() as agent:
            sent = await agent.put(raw, key=b"dev-1")
            result = agent.results[sent.message.offset]
    assert isinstance(result, Event)
    kwargs = send.await_args.kwargs
    assert kwargs["key"] == b"yulong-st~3001"
    assert kwargs["value"] == raw
    place = loads(dict(kwargs["headers"])[PLACE_HEADER])
    assert place == {
        "key": "yulong-st",
        "road_id": "yulong-st",
        "community": "jinlong",
        "chief_id": "chief-yulong",
    }


async def test_refused_message_goes_to_the_dlq_unchanged(agent_app: Any) -> None:
    rejected_before = _total(metrics.EVENTS_REJECTED)
    consumed_before = _total(metrics.EVENTS_CONSUMED)
    raw = b'{"event_id": 1}'
    with patch.object(dlq_topic, "send", new=AsyncMock()) as send:
        async with ingest.test_context() as agent:
            sent = await agent.put(raw, key=b"dev-2")
            result = agent.results[sent.message.offset]
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.SCHEMA
    send.assert_awaited_once()
    kwargs = send.await_args.kwargs
    assert (kwargs["key"], kwargs["value"]) == (b"dev-2", raw)
    assert dict(kwargs["headers"])["citygrid.error.reason"] == b"schema"
    assert _total(metrics.EVENTS_REJECTED) == rejected_before + 1
    assert _total(metrics.EVENTS_CONSUMED) == consumed_before + 1
