"""Drive citygrid as a user does, for integration and e2e tests: a real worker process, real
Kafka clients, and the worker's own /metrics page."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from prometheus_client.parser import text_string_to_metric_families

from schemas.json import loads
from streams.brokers import free_port
from streams.registry import DEMO_REGISTRY, load_registry_file, publish_roads
from streams.settings import Settings
from streams.topics import create_topics

__all__ = ["WorkerProcess", "consume", "deploy", "produce", "sample"]

REPO = Path(__file__).resolve().parent.parent


class WorkerProcess:
    """``citygrid worker`` in a child process, configured only through ``CITYGRID_*``."""

    def __init__(self, env: Mapping[str, str], workdir: Path) -> None:
        self.web_port = free_port()
        self.workdir = workdir
        self.log_path = workdir / "worker.log"
        self.env = {
            **os.environ,
            "CITYGRID_STORE": "memory://",
            "CITYGRID_DATA_DIR": str(workdir / "data"),
            "CITYGRID_WEB_PORT": str(self.web_port),
            "CITYGRID_PARTITIONS": "2",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start(self, timeout: float = 90.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # A restart appends to the same log: only what this process writes tells it is ready.
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streams", "worker", "-l", "info"],
                env=self.env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log_tail()}")
            with self.log_path.open("rb") as log:
                log.seek(offset)
                if b"Worker]: Ready" in log.read():
                    return
            time.sleep(0.25)
        raise RuntimeError(f"worker not ready within {timeout} s:\n{self.log_tail()}")

    def stop(self, timeout: float = 30.0) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def kill(self) -> int:
        """SIGKILL the worker, as a crash or the OOM killer would; returns its exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.kill()
        return self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def metrics(self) -> str:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as response:
            return str(response.read().decode())


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` in exposition ``text`` whose labels include ``labels``."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


async def produce(
    bootstrap: str, messages: list[tuple[str, bytes | None, bytes | None]]
) -> list[tuple[int, int]]:
    """Send ``(topic, key, value)`` messages; returns their ``(partition, offset)``."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        placed = []
        for topic, key, value in messages:
            meta = await producer.send_and_wait(topic, value, key=key)
            placed.append((meta.partition, meta.offset))
        return placed
    finally:
        await producer.stop()


async def consume(
    bootstrap: str, topic: str, *, expect: int, within: float = 30.0
) -> list[ConsumerRecord[Any, Any]]:
    """Read ``topic`` from the start until ``expect`` records arrived or ``within`` s passed."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[ConsumerRecord[Any, Any]] = []
    deadline = time.monotonic() + within
    try:
        while len(records) < expect and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for partition_records in batch.values():
                records.extend(partition_records)
        # Anything beyond what was expected is a defect the caller should see, so linger briefly.
        extra = await consumer.getmany(timeout_ms=1000)
        for partition_records in extra.values():
            records.extend(partition_records)
    finally:
        await consumer.stop()
    return records


def latest_states(settings: Settings, within: float = 2.0) -> dict[str, dict[str, Any]]:
    """Every task's latest state on ``city.tasks.state``, by task id (what a console keeps)."""
    records = run(
        consume(
            settings.bootstrap_servers,
            f"{settings.topic_prefix}city.tasks.state",
            expect=10_000,
            within=within,
        )
    )
    latest: dict[str, dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        latest[record.key.decode()] = loads(record.value)
    return latest


def run(coro: Any) -> Any:
    """Run a coroutine from synchronous test code."""
    return asyncio.run(coro)


def deploy(
    bootstrap: str,
    prefix: str,
    workdir: Path,
    env: Mapping[str, str] | None = None,
    *,
    registry: bool = True,
) -> tuple[Settings, WorkerProcess]:
    """A deployment of its own on a shared broker: the contract topics under ``prefix``, the demo
    registry (unless ``registry`` is False) and a worker configured for them, not yet started."""
    settings = Settings.from_env(
        {}, broker_url=f"kafka://{bootstrap}", topic_prefix=prefix, partitions=2
    )
    run(create_topics(settings))
    if registry:
        run(publish_roads(settings, load_registry_file(DEMO_REGISTRY)))
    worker = WorkerProcess(
        {
            "CITYGRID_BROKER_URL": settings.broker_url,
            "CITYGRID_TOPIC_PREFIX": prefix,
            "CITYGRID_APP_ID": f"{prefix}citygrid",
            **(env or {}),
        },
        workdir,
    )
    return settings, worker
