"""The ingest agent, run in Faust's test context (no broker): accepted events come out typed,
refused ones go to the DLQ topic with their original bytes, and the counters add up."""

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
from streams import metrics
from streams.app import app, dlq_topic
from tests.factories import event_bytes


@pytest.fixture
async def agent_app() -> AsyncIterator[Any]:
    app.loop = asyncio.get_running_loop()
    app.finalize()
    app.conf.store = "memory://"
    app.flow_control.resume()
    yield app


def _total(counter: Any) -> float:
    return sum(s.value for m in counter.collect() for s in m.samples if s.name.endswith("_total"))


async def test_valid_event_is_yielded_and_counted(agent_app: Any) -> None:
    accepted_before = _total(metrics.EVENTS_ACCEPTED)
    async with ingest.test_context() as agent:
        # In the test context the channel is not a domain topic, so only the codec's own rules
        # apply; the routing check is covered by the codec and integration tests.
        sent = await agent.put(event_bytes(domain="sanitation", category="3001"), key=b"dev-1")
        result = agent.results[sent.message.offset]
    assert isinstance(result, Event)
    assert result.category == "3001"
    assert _total(metrics.EVENTS_ACCEPTED) == accepted_before + 1


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
