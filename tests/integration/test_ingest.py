"""Ingest through a real broker and a real worker process: valid events are accepted and counted,
everything else lands in the DLQ byte for byte, with the contract's headers."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from schemas.enums import RejectReason
from schemas.json import dumps
from streams.settings import Settings
from tests.factories import event_bytes, event_dict
from tests.harness import WorkerProcess, consume, deploy, produce, run, sample


@pytest.fixture(scope="module")
def deployment(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, WorkerProcess]]:
    """Topics under a prefix of their own and one worker, shared by this module's tests."""
    prefix = f"t{int(time.time() * 1000) % 10**8}."
    settings, worker = deploy(
        kafka_bootstrap,
        prefix,
        tmp_path_factory.mktemp("worker"),
        {
            "CITYGRID_OVERDUE_CHECK": "1s",
        },
        registry=False,
    )
    worker.start()
    yield settings, worker
    assert worker.stop() == 0, worker.log_tail()


def _metric_eventually(worker: WorkerProcess, name: str, want: float, **labels: str) -> float:
    deadline = time.monotonic() + 30
    value = 0.0
    while time.monotonic() < deadline:
        value = sample(worker.metrics(), name, **labels)
        if value >= want:
            return value
        time.sleep(0.25)
    return value


def test_valid_event_is_accepted_and_invalid_one_is_dead_lettered_unchanged(
    deployment: tuple[Settings, WorkerProcess], unique_name: str
) -> None:
    settings, worker = deployment
    bootstrap = settings.bootstrap_servers
    fire = settings.topic_prefix + "city.events.fire"
    valid = event_bytes(domain="fire", category="1002", source="camera", device_id=unique_name)
    # Garbage bytes and a key that is not UTF-8 either: both must come back untouched.
    invalid_key = b"\x00\xff" + unique_name.encode()
    invalid = b'{"event_id": "x", "domain": "fire", \xff\xfe'

    placed = run(
        produce(
            bootstrap,
            [(fire, unique_name.encode(), valid), (fire, invalid_key, invalid)],
        )
    )

    assert (
        _metric_eventually(
            worker, "citygrid_events_accepted_total", 1, domain="fire", source="camera"
        )
        == 1
    )
    dlq = run(consume(bootstrap, settings.topic_prefix + "city.events.dlq", expect=1))
    mine = [r for r in dlq if r.key == invalid_key]
    assert len(mine) == 1, [r.key for r in dlq]
    record = mine[0]
    assert record.value == invalid
    headers = dict(record.headers)
    assert headers["citygrid.error.reason"] == b"invalid_json"
    assert headers["citygrid.error.detail"]
    assert headers["citygrid.error.topic"] == fire.encode()
    partition, offset = placed[1]
    assert headers["citygrid.error.partition"] == str(partition).encode()
    assert headers["citygrid.error.offset"] == str(offset).encode()
    assert not [r for r in dlq if r.key == unique_name.encode()], "the valid event was refused"


def test_every_refused_message_is_counted_and_dead_lettered_with_its_reason(
    deployment: tuple[Settings, WorkerProcess], unique_name: str
) -> None:
    settings, worker = deployment
    prefix = settings.topic_prefix
    before = worker.metrics()
    future = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    cases: list[tuple[str, bytes, RejectReason]] = [
        ("sanitation", b"[1, 2", RejectReason.INVALID_JSON),
        (
            "sanitation",
            dumps({**event_dict(domain="sanitation"), "location": {}}),
            RejectReason.SCHEMA,
        ),
        ("environment", event_bytes(domain="fire"), RejectReason.DOMAIN_MISMATCH),
        (
            "citymgmt",
            event_bytes(domain="citymgmt", category="4999"),
            RejectReason.UNKNOWN_CATEGORY,
        ),
        (
            "citymgmt",
            event_bytes(domain="citymgmt", occurred_at=future),
            RejectReason.FUTURE_TIMESTAMP,
        ),
        ("fire", b"{" + b" " * (settings.max_message_bytes + 1) + b"}", RejectReason.TOO_LARGE),
    ]
    valid = [event_bytes(domain="environment", event_id=f"{unique_name}-{i}") for i in range(3)]
    messages = [
        (f"{prefix}city.events.{topic}", f"{unique_name}/{i}".encode(), value)
        for i, (topic, value, _) in enumerate(cases)
    ] + [(f"{prefix}city.events.environment", unique_name.encode(), v) for v in valid]
    # The first valid event again, as a device retrying would send it.
    messages.append((f"{prefix}city.events.environment", unique_name.encode(), valid[0]))
    run(produce(settings.bootstrap_servers, messages))

    def delta(text: str, name: str, **labels: str) -> float:
        return sample(text, name, **labels) - sample(before, name, **labels)

    # Accepted and duplicates are counted after the repartition hop: wait for both.
    deadline = time.monotonic() + 30
    after = worker.metrics()
    while time.monotonic() < deadline:
        after = worker.metrics()
        settled = delta(after, "citygrid_events_accepted_total") + delta(
            after, "citygrid_events_duplicate_total"
        )
        if settled >= len(valid) + 1:
            break
        time.sleep(0.25)
    assert delta(after, "citygrid_events_consumed_total") == len(messages)
    assert delta(after, "citygrid_events_rejected_total") == len(cases)
    assert delta(after, "citygrid_events_accepted_total") == len(valid)
    assert delta(after, "citygrid_events_duplicate_total", domain="environment") == 1
    # Per topic: consumed = accepted + duplicates + dead-lettered.
    for domain in ("fire", "environment", "sanitation", "citymgmt"):
        consumed = delta(after, "citygrid_events_consumed_total", domain=domain)
        accepted = delta(after, "citygrid_events_accepted_total", domain=domain)
        duplicates = delta(after, "citygrid_events_duplicate_total", domain=domain)
        refused = delta(after, "citygrid_events_consumed_total", domain=domain, source="unknown")
        assert consumed == accepted + duplicates + refused, domain

    dlq = run(
        consume(settings.bootstrap_servers, f"{prefix}city.events.dlq", expect=len(cases) + 1)
    )
    by_key = {r.key: r for r in dlq if r.key and r.key.startswith(unique_name.encode())}
    for i, (_, value, reason) in enumerate(cases):
        record = by_key[f"{unique_name}/{i}".encode()]
        assert dict(record.headers)["citygrid.error.reason"] == reason.value.encode(), i
        assert record.value == value


def test_ops_endpoints_and_pipeline_gauges(
    deployment: tuple[Settings, WorkerProcess], unique_name: str
) -> None:
    settings, worker = deployment
    for path in ("/health", "/ready"):
        with urllib.request.urlopen(worker.url + path, timeout=5) as response:
            assert response.status == 200, path
    fire = settings.topic_prefix + "city.events.fire"
    run(
        produce(
            settings.bootstrap_servers,
            [(fire, b"k", event_bytes(domain="fire", device_id=unique_name))],
        )
    )
    deadline = time.monotonic() + 30
    text = worker.metrics()
    while time.monotonic() < deadline:
        text = worker.metrics()
        measured = 'citygrid_consumer_lag_messages{topic="city.events.fire"}' in text
        if (
            measured
            and sample(text, "citygrid_consumer_lag_messages", topic="city.events.fire") == 0
        ):
            break
        time.sleep(0.5)
    assert 'citygrid_consumer_lag_messages{topic="city.events.fire"} 0.0' in text, text
    assert sample(text, "citygrid_last_event_processed_timestamp_seconds", domain="fire") > 0
    assert sample(text, "citygrid_rebalances_total") >= 1
    assert sample(text, "citygrid_worker_ready") == 1
