"""The KPI timer on a hand-made task book (no broker): it computes the report in a thread while the
event loop goes on serving, publishes each road, and publishes nothing when leadership moved while
it computed."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from agents import kpi
from schemas.enums import Domain, Priority, Source, Status
from schemas.json import dumps, loads
from schemas.road import Road
from schemas.task import Task
from streams import metrics
from streams.domain.kpi import KpiReport
from streams.settings import Settings
from streams.taskbook import TaskBook, report_of

publish_kpis: Callable[[], Any] = inspect.unwrap(kpi.publish_kpis)
"""One run of the timer, without Faust's task and timer loop around it."""


class Leadership:
    def __init__(self) -> None:
        self.held = True

    def __call__(self) -> bool:
        return self.held


class RecordingTopic:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes]] = []

    async def send(self, *, key: bytes, value: bytes) -> None:
        self.sent.append((key, value))


def _ready() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


@pytest.fixture
def leadership(monkeypatch: pytest.MonkeyPatch) -> Iterator[Leadership]:
    held = Leadership()
    monkeypatch.setattr(kpi.app, "is_leader", held)
    yield held
    metrics.KPI_RATE.clear()


@pytest.fixture
def topic(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[RecordingTopic]:
    now = datetime.now(UTC)
    task = Task(
        task_id="t1",
        status=Status.CLOSED,
        domain=Domain.SANITATION,
        category="3001",
        priority=Priority.P4,
        place="yulong-st",
        road_id="yulong-st",
        community="jinlong",
        assignee="chief",
        created_at=now - timedelta(hours=3),
        updated_at=now - timedelta(hours=2),
        due_at=now - timedelta(hours=1),
        event_ids=("e1",),
        sources=(Source.TERMINAL,),
        handled_at=now - timedelta(hours=2),
        closed_at=now - timedelta(hours=2),
    )
    road = Road(
        "sihai-rd", "四海路", "jinfeng", "chief-sihai", (((113.78, 34.72), (113.79, 34.72)),)
    )
    # A worker's task book: the task, closed two hours ago, is on disk only.
    book = TaskBook(Settings(app_id="unit", data_dir=tmp_path), on_disk=True)
    book.apply(task.task_id.encode(), dumps(task.wire_fields()))
    assert book.finished is not None and not book.tasks
    book.finished.flush()
    assert len(book.finished) == 1
    book.ready.set()
    monkeypatch.setattr(kpi, "taskbook", book)
    monkeypatch.setattr(kpi, "registry", SimpleNamespace(ready=_ready(), index=[road]))
    recording = RecordingTopic()
    monkeypatch.setattr(kpi, "kpi_topic", recording)
    monkeypatch.setattr(kpi, "_published", {})
    yield recording
    book.close()


def _gauges() -> list[Any]:
    return [s for m in metrics.KPI_RATE.collect() for s in m.samples]


async def test_the_loop_keeps_serving_while_the_kpis_are_computed(
    leadership: Leadership, topic: RecordingTopic, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_served = threading.Event()

    def report_once_the_loop_served(*args: Any, **kwargs: Any) -> KpiReport:
        # Only a loop left free while this runs can set the event.
        assert loop_served.wait(timeout=10)
        return report_of(*args, **kwargs)

    monkeypatch.setattr(kpi, "report_of", report_once_the_loop_served)
    asyncio.get_running_loop().call_soon(loop_served.set)
    await publish_kpis()
    assert sorted(loads(value)["road_id"] for _, value in topic.sent) == ["sihai-rd", "yulong-st"]
    assert _gauges()
    await publish_kpis()
    assert len(topic.sent) == 2, "an unchanged road is not written again"


async def test_a_leader_that_lost_leadership_while_computing_publishes_nothing(
    leadership: Leadership, topic: RecordingTopic, monkeypatch: pytest.MonkeyPatch
) -> None:
    await publish_kpis()
    assert _gauges()

    def report_then_rebalance(*args: Any, **kwargs: Any) -> KpiReport:
        leadership.held = False
        return report_of(*args, **kwargs)

    monkeypatch.setattr(kpi, "report_of", report_then_rebalance)
    monkeypatch.setattr(kpi, "_published", {"yulong-st": b"stale"})
    sent = len(topic.sent)
    await publish_kpis()
    assert len(topic.sent) == sent
    assert kpi._published == {}
    assert _gauges() == []
