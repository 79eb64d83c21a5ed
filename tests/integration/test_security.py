"""citygrid on a secured cluster: SASL/SCRAM over TLS, configured only through ``CITYGRID_*``.

The module starts an Apache Kafka broker of its own whose client listener takes SASL_SSL only
(SCRAM-SHA-512, a certificate from a CA the broker makes in this run's temporary directory), so it
runs only with ``CITYGRID_TEST_BROKER=apache``: tansu has no SASL_SSL listener.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas.json import dumps, loads
from streams.brokers import LocalBroker, RunningBroker, ScramUser
from streams.registry import DEMO_REGISTRY, load_registry_file, publish_roads
from streams.settings import Settings
from streams.tls import write_test_pki
from streams.topics import CATALOGUE, create_topics, kafka_client_options
from tests.factories import ROAD_ID, event_dict
from tests.harness import REPO, WorkerProcess, run
from tests.integration.conftest import BROKER_ENV


@pytest.fixture(scope="module")
def secured(
    broker_choice: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningBroker]:
    """An Apache Kafka broker that takes SASL_SSL clients only, with one SCRAM-SHA-512 user."""
    if broker_choice != "apache":
        pytest.skip(
            f"the SASL_SSL broker is Apache Kafka: run with {BROKER_ENV}=apache "
            f"(this run uses {broker_choice!r})"
        )
    user = ScramUser("citygrid-test", secrets.token_urlsafe(16))
    workdir = tmp_path_factory.mktemp("secured-broker")
    with LocalBroker("apache", workdir=workdir, scram=user, ready_timeout=120.0) as running:
        yield running


def _env(secured: RunningBroker, prefix: str, **changes: str) -> dict[str, str]:
    """The settings a user would export for this broker, with ``changes`` (``CITYGRID_`` + key)."""
    env = {**secured.client_env, "CITYGRID_TOPIC_PREFIX": prefix, "CITYGRID_PARTITIONS": "2"}
    return env | {f"CITYGRID_{name.upper()}": value for name, value in changes.items()}


def _citygrid(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams", *args],
        env={**os.environ, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_topics_create_declares_every_topic_over_sasl_ssl(
    secured: RunningBroker, unique_name: str
) -> None:
    done = _citygrid(_env(secured, f"{unique_name}."), "topics", "create")

    assert done.returncode == 0, done.stderr
    created = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("created")]
    assert created == [f"{unique_name}.{spec.name}" for spec in CATALOGUE]


def test_wrong_password_is_refused_with_the_reason(
    secured: RunningBroker, unique_name: str
) -> None:
    wrong = secrets.token_urlsafe(12)
    done = _citygrid(_env(secured, f"{unique_name}.", sasl_password=wrong), "topics", "create")

    assert done.returncode != 0
    last_line = done.stderr.strip().splitlines()[-1]
    assert "could not declare topics" in last_line
    assert "SASL authentication failed" in last_line
    assert "CITYGRID_SASL_PASSWORD" in last_line
    assert wrong not in done.stderr


def test_client_not_trusting_the_brokers_ca_is_refused_with_the_reason(
    secured: RunningBroker, unique_name: str, tmp_path: Path
) -> None:
    # A CA of its own: the client verifies certificates, just not against the broker's CA.
    other_ca = write_test_pki(tmp_path / "other-ca").ca_file
    done = _citygrid(_env(secured, f"{unique_name}.", ssl_cafile=str(other_ca)), "topics", "create")

    assert done.returncode != 0
    last_line = done.stderr.strip().splitlines()[-1]
    assert "could not declare topics" in last_line
    assert "TLS certificate is not trusted" in last_line
    assert "CITYGRID_SSL_CAFILE" in last_line


def test_worker_turns_an_event_into_a_task_over_sasl_ssl(
    secured: RunningBroker, unique_name: str, tmp_path: Path
) -> None:
    env = _env(secured, f"{unique_name}.", app_id=f"{unique_name}-citygrid")
    settings = Settings.from_env(env)
    run(create_topics(settings))
    run(publish_roads(settings, load_registry_file(DEMO_REGISTRY)))
    worker = WorkerProcess(env, tmp_path / "worker")
    event = event_dict(domain="fire", device_id=f"term-{unique_name}")
    worker.start()
    try:
        run(_produce(settings, "city.events.fire", event["device_id"], dumps(event)))
        task = run(_task_with_event(settings, event["event_id"], within=90.0))
    finally:
        code = worker.stop()

    assert code == 0, worker.log_tail()
    assert task is not None, worker.log_tail()
    assert (task["road_id"], task["status"]) == (ROAD_ID, "dispatched")
    assert settings.sasl_password not in worker.log_path.read_text(errors="replace")


async def _produce(settings: Settings, topic: str, key: str, value: bytes) -> None:
    producer = AIOKafkaProducer(**kafka_client_options(settings), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic_prefix + topic, value, key=key.encode())
    finally:
        await producer.stop()


async def _task_with_event(settings: Settings, event_id: str, within: float) -> Any:
    """The first state on city.tasks.state whose task holds ``event_id``, read over SASL_SSL."""
    consumer = AIOKafkaConsumer(
        settings.topic_prefix + "city.tasks.state",
        **kafka_client_options(settings),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for record in (r for batch in batches.values() for r in batch):
                task = loads(record.value)
                if event_id in task["event_ids"]:
                    return task
    finally:
        await consumer.stop()
    return None
