"""A worker told to stop after its broker went away still stops promptly: a Kubernetes pod gets
30 s between SIGTERM and SIGKILL. Its own broker (tansu, started here), since this test stops it.
The leader's KPIs come due during the outage, so Faust's producer holds a batch it cannot send."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from schemas.json import dumps
from streams.brokers import LocalBroker
from tests.factories import event_dict
from tests.harness import deploy, latest_states, produce, run

LIMIT = 25.0
"""Under the 30 s a pod gets. Before the worker bounded its waits for Faust's Kafka clients
(``streams.app.STOP_SECONDS``) it took 62 s, or never ended while a KPI batch was unsent."""


def test_sigterm_with_the_broker_gone_ends_the_worker_within_the_limit(tmp_path: Path) -> None:
    with LocalBroker("tansu", workdir=tmp_path / "broker", ready_timeout=60.0) as broker:
        settings, worker = deploy(
            broker.bootstrap, "gone.", tmp_path / "worker", {"CITYGRID_KPI_INTERVAL": "3s"}
        )
        worker.start()
        # A task, so the next KPIs differ from the last published and must be sent.
        report = event_dict(source="camera", domain="citymgmt", location={"road_id": "yulong-st"})
        topic = f"{settings.topic_prefix}city.events.citymgmt"
        run(produce(settings.bootstrap_servers, [(topic, b"cam-gone", dumps(report))]))
        deadline = time.monotonic() + 30
        while not latest_states(settings, within=0.5) and time.monotonic() < deadline:
            pass
    assert worker.process is not None
    time.sleep(8)  # the clients notice the broker is gone; the KPIs come due
    started = time.monotonic()
    worker.process.send_signal(signal.SIGTERM)
    try:
        code = worker.process.wait(LIMIT)
    except subprocess.TimeoutExpired:
        worker.process.kill()
        worker.process.wait()
        raise AssertionError(
            f"still running {LIMIT} s after SIGTERM:\n{worker.log_tail()}"
        ) from None
    assert code == 0, worker.log_tail()
    assert time.monotonic() - started < LIMIT
