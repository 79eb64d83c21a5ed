"""The merge scenario of issue 3 on a real broker, read back by a separate consumer: four domain
topics in, exactly the expected tasks out, malformed messages dead-lettered, and a worker killed
with SIGKILL mid-scenario changes nothing."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas.json import dumps, loads
from streams.registry import DEMO_REGISTRY, load_registry_file
from streams.settings import Settings
from tests.factories import event_dict
from tests.harness import WorkerProcess, consume, deploy, produce, run

Message = tuple[str, bytes | None, bytes | None]


@pytest.fixture
def deployment(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> Iterator[tuple[Settings, WorkerProcess]]:
    prefix = f"{unique_name}."
    settings, worker = deploy(
        kafka_bootstrap,
        prefix,
        tmp_path / "worker",
    )
    yield settings, worker
    worker.stop()


def _midpoint(segment: tuple[tuple[float, float], ...]) -> tuple[float, float]:
    # Mid-segment, away from intersections where another road is as near.
    (lon1, lat1), (lon2, lat2) = segment[0], segment[1]
    return (lon1 + lon2) / 2, (lat1 + lat2) / 2


def _scenario(settings: Settings) -> tuple[list[Message], list[Message]]:
    """Two halves of the story; the worker dies between them."""
    roads = {r.road_id: r for r in load_registry_file(DEMO_REGISTRY)}
    lon, lat = _midpoint(roads["longshan-st"].segments[0])
    near = {"lat": lat + 0.0001, "lon": lon}  # ~11 m off the middle of Longshan St
    elsewhere_lon, elsewhere_lat = _midpoint(roads["sihai-rd"].segments[0])
    start = datetime.now(UTC) - timedelta(minutes=20)

    def at(minutes: float) -> str:
        return (start + timedelta(minutes=minutes)).isoformat()

    def topic(domain: str) -> str:
        return f"{settings.topic_prefix}city.events.{domain}"

    def msg(**fields: object) -> Message:
        event = event_dict(**fields)
        return (topic(str(event["domain"])), str(event["device_id"]).encode(), dumps(event))

    def pm25(device: str, n: int, value: float, minute: float, where: dict[str, float]) -> Message:
        return msg(
            event_id=f"{device}-{n}", domain="environment", source="sensor", device_id=device,
            category="2001", occurred_at=at(minute), location=where,
            reading={"metric": "pm25", "value": value, "unit": "ug/m3"},
        )  # fmt: skip

    camera = msg(
        event_id="cam-1", domain="citymgmt", source="camera", device_id="cam-yulong-2",
        category="4001", occurred_at=at(1), location={"road_id": "yulong-st"},
    )  # fmt: skip
    officer = msg(
        event_id="t-77", domain="citymgmt", source="terminal", device_id="term-17",
        officer_id="officer-017", category="4001", occurred_at=at(3),
        location={"road_id": "yulong-st"}, description="占道经营 fruit stall",
    )  # fmt: skip
    smoke = msg(
        event_id="smoke-1", domain="fire", source="sensor", device_id="smoke-sihai-1",
        category="1001", occurred_at=at(5),
        location={"lat": elsewhere_lat, "lon": elsewhere_lon},
        reading={"metric": "smoke", "value": 1, "unit": "alarm"},
    )  # fmt: skip
    malformed: list[Message] = [
        (topic("sanitation"), b"bad-1", b"{not json"),
        (topic("fire"), b"bad-2", dumps({**event_dict(domain="fire"), "category": "1999"})),
        (topic("environment"), b"bad-3", dumps(event_dict(domain="sanitation"))),
    ]
    first = [
        camera,
        pm25("aq-1", 1, 180, 2, near),
        pm25("aq-2", 1, 400, 2, near),  # a single spike...
        pm25("aq-2", 2, 40, 4, near),  # ...that subsides
        malformed[0],
        officer,
    ]
    second = [
        pm25("aq-1", 2, 175, 6, near),
        smoke,
        malformed[1],
        camera,  # the same (device_id, event_id) again
        pm25("aq-1", 3, 190, 10, near),
        malformed[2],
    ]
    return first, second


def _latest_tasks(settings: Settings, expect: int) -> dict[str, dict[str, object]]:
    records = run(
        consume(
            settings.bootstrap_servers,
            f"{settings.topic_prefix}city.tasks.state",
            expect=expect,
            within=60,
        )
    )
    latest: dict[str, dict[str, object]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        latest[record.key.decode()] = loads(record.value)
    return latest


def _wait_for_tasks(
    settings: Settings, want: int, within: float = 90
) -> dict[str, dict[str, object]]:
    deadline = time.monotonic() + within
    tasks: dict[str, dict[str, object]] = {}
    while time.monotonic() < deadline:
        tasks = _latest_tasks(settings, want)
        if len(tasks) >= want and _complete(tasks):
            return tasks
        time.sleep(1)
    return tasks


def _complete(tasks: dict[str, dict[str, object]]) -> bool:
    # Slots live on different partitions: wait for every expected task, not just the last one.
    by_category = {str(t["category"]): t for t in tasks.values()}
    pm = by_category.get("2001")
    return (
        pm is not None
        and len(pm["event_ids"]) == 3  # type: ignore[arg-type]
        and {"1001", "4001"} <= set(by_category)
    )


def test_scenario_yields_exactly_the_expected_tasks_across_a_worker_crash(
    deployment: tuple[Settings, WorkerProcess],
) -> None:
    settings, worker = deployment
    first, second = _scenario(settings)
    worker.start()
    run(produce(settings.bootstrap_servers, first))
    # Let the worker get some of the way, then kill it without a chance to commit.
    _latest_tasks(settings, expect=1)
    assert worker.process is not None
    worker.process.send_signal(signal.SIGKILL)
    worker.process.wait()
    run(produce(settings.bootstrap_servers, second))
    worker.start()

    tasks = _wait_for_tasks(settings, want=3)
    by_category = {str(t["category"]): t for t in tasks.values()}
    assert sorted(by_category) == ["1001", "2001", "4001"], tasks
    assert len(tasks) == 3, "a task was duplicated"

    vending = by_category["4001"]
    assert vending["event_ids"] == ["cam-1", "t-77"]
    assert vending["sources"] == ["camera", "terminal"]
    assert (vending["road_id"], vending["status"], vending["assignee"]) == (
        "yulong-st", "dispatched", "chief-yulong",
    )  # fmt: skip

    air = by_category["2001"]
    assert air["event_ids"] == ["aq-1-1", "aq-1-2", "aq-1-3"]
    assert air["road_id"] == "longshan-st"

    fire = by_category["1001"]
    assert fire["priority"] == "P1"
    assert fire["road_id"] == "sihai-rd"

    dlq = run(
        consume(settings.bootstrap_servers, f"{settings.topic_prefix}city.events.dlq", expect=3)
    )
    assert sorted({r.key for r in dlq}) == [b"bad-1", b"bad-2", b"bad-3"]
    # A crash may dead-letter a message again: the same source coordinates, so ops can dedupe.
    origins = {
        r.key: tuple(v for k, v in r.headers if k.endswith((".topic", ".partition", ".offset")))
        for r in dlq
    }
    assert all(
        tuple(v for k, v in r.headers if k.endswith((".topic", ".partition", ".offset")))
        == origins[r.key]
        for r in dlq
    )

    events = run(
        consume(settings.bootstrap_servers, f"{settings.topic_prefix}city.tasks.events", expect=7)
    )
    ids = [loads(r.value)["id"] for r in events]
    kinds = sorted({loads(r.value)["type"] for r in events})
    assert {"created", "dispatched", "merged"} <= set(kinds)
    assert all(dict(r.headers)["ce_specversion"] == b"1.0" for r in events)
    # A crash may make the worker write a transition again; it is the same transition, same id.
    assert len(set(ids)) == 7, ids
