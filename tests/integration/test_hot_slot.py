"""One spot reported over and over, as an AI camera re-reporting a parked car does: the slot's
changelog record grows past the 1 MiB a broker takes by default and still survives a restart, and
the reports past ``CITYGRID_MAX_TASK_REPORTS`` go to the DLQ with their original coordinates."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from schemas.json import dumps, loads
from streams.settings import Settings
from tests.factories import event_dict
from tests.harness import consume, deploy, latest_states, run

MOST = 3000
"""The task's bound here: with the longest ids below, its slot is about 1.7 MB."""
EXTRA = 20
DEVICE = "cam-" + "h" * 60
"""64 characters, the longest device id the contract allows."""


def _event_id(n: int) -> str:
    return f"{n:06d}-" + "x" * 121  # 128 characters, the longest event id


def _report(settings: Settings, n: int, at: datetime) -> tuple[str, bytes, bytes]:
    event = event_dict(
        source="camera",
        domain="citymgmt",
        category="4001",
        event_id=_event_id(n),
        device_id=DEVICE,
        occurred_at=(at + timedelta(milliseconds=n)).isoformat(),
        location={"road_id": "yulong-st"},
    )
    return f"{settings.topic_prefix}city.events.citymgmt", DEVICE.encode(), dumps(event)


async def _produce(bootstrap: str, messages: list[tuple[str, bytes, bytes]]) -> list[Any]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        sent = [await producer.send(topic, value, key=key) for topic, key, value in messages]
        return list(await asyncio.gather(*sent))
    finally:
        await producer.stop()


def _task_and_dead(settings: Settings, dead: int, within: float = 120) -> tuple[Any, list[Any]]:
    """The one task's latest state and the DLQ, once the DLQ holds ``dead`` records."""
    deadline = time.monotonic() + within
    letters: list[Any] = []
    while time.monotonic() < deadline:
        letters = run(
            consume(
                settings.bootstrap_servers,
                f"{settings.topic_prefix}city.events.dlq",
                expect=dead,
                within=5,
            )
        )
        if len(letters) >= dead:
            break
    states = latest_states(settings)
    assert len(states) == 1, sorted(states)
    (task,) = states.values()
    return task, letters


def test_a_full_slot_past_a_mebibyte_survives_a_restart_and_refuses_more(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    prefix = f"{unique_name}."
    settings, worker = deploy(
        kafka_bootstrap, prefix, tmp_path / "worker", {"CITYGRID_MAX_TASK_REPORTS": str(MOST)}
    )
    at = datetime.now(UTC) - timedelta(minutes=20)
    reports = [_report(settings, n, at) for n in range(MOST + EXTRA)]
    worker.start()
    try:
        placed = run(_produce(settings.bootstrap_servers, reports))
        task, letters = _task_and_dead(settings, EXTRA)
        assert len(task["event_ids"]) == MOST
        assert task["event_ids"][-1] == _event_id(MOST - 1)
        assert len(letters) == EXTRA
        # Each refusal is the original message, with where it was read.
        by_id = {loads(r.value)["event_id"]: r for r in letters}
        for n in range(MOST, MOST + EXTRA):
            letter = by_id[_event_id(n)]
            headers = dict(letter.headers)
            assert headers["citygrid.error.reason"] == b"task_full"
            assert headers["citygrid.error.topic"] == reports[n][0].encode()
            assert int(headers["citygrid.error.partition"]) == placed[n].partition
            assert int(headers["citygrid.error.offset"]) == placed[n].offset
            assert (letter.key, letter.value) == (reports[n][1], reports[n][2])

        # The slot is one changelog record, larger than a broker takes by default.
        changelog = run(
            consume(
                settings.bootstrap_servers,
                f"{prefix}citygrid-slots-changelog",
                expect=10_000,
                within=5,
            )
        )
        assert max(len(r.value or b"") for r in changelog) > 1024 * 1024

        # A restarted worker restores it whole: a repeat of a listed report changes nothing, a
        # new one is refused again rather than opening a second task.
        assert worker.stop() == 0, worker.log_tail()
        worker.start()
        run(_produce(settings.bootstrap_servers, [reports[0], _report(settings, MOST + EXTRA, at)]))
        task_after, letters = _task_and_dead(settings, EXTRA + 1)
        assert len(letters) == EXTRA + 1
        assert _event_id(MOST + EXTRA) in {loads(r.value)["event_id"] for r in letters}
        assert task_after == task
    finally:
        assert worker.stop() == 0, worker.log_tail()
