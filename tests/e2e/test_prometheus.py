"""Prometheus as an operator runs it, with the shipped configuration and rules, scraping a real
worker on a real broker: after a few reports, a malformed message and a feedback, the contract's
metrics have moved, the recording rules have values, and no rule fails to evaluate."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml

from schemas.enums import Domain
from schemas.json import dumps, loads
from streams.brokers import free_port
from streams.settings import Settings
from tests.factories import event_dict, feedback_dict
from tests.harness import WorkerProcess, consume, deploy, produce, run

PROMETHEUS = shutil.which("prometheus")
SHIPPED_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "prometheus.yml"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        PROMETHEUS is None,
        reason="the Prometheus server is not installed (Debian: apt-get install prometheus); "
        ".ci/run installs it",
    ),
]


@pytest.fixture
def deployment(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> Iterator[tuple[Settings, WorkerProcess]]:
    prefix = f"{unique_name}."
    settings, worker = deploy(
        kafka_bootstrap,
        prefix,
        tmp_path / "worker",
        {
            # Gauges (open, overdue, waiting tasks) are refreshed on this tick.
            "CITYGRID_OVERDUE_CHECK": "1s",
        },
    )
    worker.start()
    yield settings, worker
    assert worker.stop() == 0, worker.log_tail()


def _config_for(worker: WorkerProcess) -> dict[str, Any]:
    """The shipped prometheus.yml, scraping only ``worker`` every second."""
    config: dict[str, Any] = yaml.safe_load(SHIPPED_CONFIG.read_text())
    config["global"] = {**config["global"], "scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(SHIPPED_CONFIG.parent / name) for name in config["rule_files"]]
    # No Alertmanager here, and nothing but loopback: alerts stay on Prometheus's own page.
    config.pop("alerting", None)
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "citygrid"]
    job["scrape_interval"] = "1s"
    job["static_configs"] = [{"targets": [f"127.0.0.1:{worker.web_port}"]}]
    config["scrape_configs"] = [job]
    return config


@pytest.fixture
def prometheus(deployment: tuple[Settings, WorkerProcess], tmp_path: Path) -> Iterator[str]:
    """The base URL of a Prometheus server on a free loopback port, scraping the worker."""
    assert PROMETHEUS is not None
    _, worker = deployment
    workdir = tmp_path / "prometheus"
    workdir.mkdir()
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump(_config_for(worker)))
    port = free_port()
    log_path = workdir / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _eventually(lambda: _ready(base), "Prometheus ready", process=process, log=log_path)
        yield base
    finally:
        process.terminate()
        process.wait(30)


def _ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError):
        return False


def _api(base: str, path: str, **params: str) -> Any:
    url = f"{base}/api/v1/{path}" + (f"?{urlencode(params)}" if params else "")
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


def _values(base: str, promql: str, label: str = "") -> dict[str, float]:
    """The instant vector of ``promql`` as {value of ``label`` ("" without it): sample value}."""
    result = _api(base, "query", query=promql)["result"]
    return {s["metric"].get(label, ""): float(s["value"][1]) for s in result}


def _eventually(
    check: Callable[[], Any],
    what: str,
    within: float = 60,
    process: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            raise AssertionError(f"{what}: the process exited\n{tail}")
        outcome = check()
        if outcome:
            return outcome
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {within} s (last: {check()!r})")


def _task_of(settings: Settings, domain: Domain) -> str | None:
    records = run(
        consume(
            settings.bootstrap_servers,
            f"{settings.topic_prefix}city.tasks.state",
            expect=10_000,
            within=1,
        )
    )
    tasks = [loads(r.value) for r in records]
    return next((t["task_id"] for t in tasks if t["domain"] == domain.value), None)


def _publish_scenario(settings: Settings) -> None:
    """One terminal report per domain, a malformed message, and an accept for a new task."""
    topic = f"{settings.topic_prefix}city.events.{{}}"
    now = datetime.now(UTC)
    messages: list[tuple[str, bytes | None, bytes | None]] = [
        (
            topic.format(domain.value),
            b"term-prometheus",
            dumps(event_dict("terminal", domain, device_id="term-prometheus", occurred_at=now)),
        )
        for domain in Domain
    ]
    messages.append((topic.format("fire"), b"term-broken", b'{"event_id": "half'))
    run(produce(settings.bootstrap_servers, messages))

    task_id = _eventually(lambda: _task_of(settings, Domain.CITYMGMT), "a citymgmt task")
    accept = feedback_dict("accept", task_id=task_id, at=datetime.now(UTC), actor_id="officer-9")
    feedback_topic = f"{settings.topic_prefix}city.feedback"
    run(produce(settings.bootstrap_servers, [(feedback_topic, task_id.encode(), dumps(accept))]))


def test_prometheus_scrapes_the_worker_and_evaluates_the_shipped_rules(
    deployment: tuple[Settings, WorkerProcess], prometheus: str
) -> None:
    settings, _ = deployment
    # Scraped once before anything happens: rate() sees no rise in a series' first sample.
    _eventually(
        lambda: _values(prometheus, 'up{job="citygrid"}', "job") == {"citygrid": 1}, "scraped"
    )
    _publish_scenario(settings)

    # The malformed message counts on its topic's domain.
    _eventually(
        lambda: (
            _values(prometheus, "sum by (domain) (citygrid_events_consumed_total)", "domain")
            == {"fire": 2, "environment": 1, "sanitation": 1, "citymgmt": 1}
        ),
        "events consumed by domain",
    )
    _eventually(
        lambda: (
            _values(prometheus, "sum by (reason) (citygrid_events_rejected_total) > 0", "reason")
            == {"invalid_json": 1}
        ),
        "the malformed message dead-lettered",
    )
    _eventually(
        lambda: (
            _values(prometheus, "sum by (domain) (citygrid_tasks_created_total) > 0", "domain")
            == dict.fromkeys((d.value for d in Domain), 1.0)
        ),
        "one task per domain",
    )
    _eventually(
        lambda: (
            _values(
                prometheus, "sum by (outcome) (citygrid_feedback_consumed_total) > 0", "outcome"
            )
            == {"applied": 1}
        ),
        "the feedback applied",
    )
    _eventually(
        lambda: (
            _values(prometheus, 'citygrid_task_transitions_total{type="accepted"}', "domain")
            == {"citymgmt": 1}
        ),
        "the accept counted as a transition",
    )
    _eventually(lambda: _values(prometheus, "citygrid_worker_ready") == {"": 1}, "worker ready")
    assert set(_values(prometheus, "citygrid_build_info", "version")) == {"0.1.0"}

    # Recording rules: the rates by domain and the DLQ ratio (1 bad message of 6 read).
    _eventually(
        lambda: (
            set(_values(prometheus, "citygrid:events_consumed:rate5m > 0", "domain"))
            == {d.value for d in Domain}
        ),
        "citygrid:events_consumed:rate5m for every domain",
    )
    ratio = _eventually(
        lambda: _values(prometheus, "citygrid:dlq_ratio:rate5m > 0"), "citygrid:dlq_ratio:rate5m"
    )
    assert 0 < ratio[""] < 1
    _eventually(
        lambda: (
            _values(prometheus, "citygrid:tasks_open:sum", "domain")
            == dict.fromkeys((d.value for d in Domain), 1.0)
        ),
        "citygrid:tasks_open:sum: the four tasks, one accepted, all open",
    )
    _eventually(
        lambda: (
            _values(prometheus, "citygrid:consumer_lag_messages:max", "topic")
            == dict.fromkeys((f"city.events.{d.value}" for d in Domain), 0.0)
            | {"city.feedback": 0.0}
        ),
        "citygrid:consumer_lag_messages:max: every input topic, drained",
    )
    processed = _values(prometheus, "citygrid:last_event_processed_timestamp_seconds:max", "domain")
    assert set(processed) == {d.value for d in Domain}
    assert all(abs(at - time.time()) < 300 for at in processed.values()), processed

    # Every rule evaluated against real series without an error (a many-to-many match, say),
    # and a healthy worker sets nothing off.
    groups = _api(prometheus, "rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) > 20
    assert {r["name"]: r.get("lastError") for r in rules if r["health"] == "err"} == {}
    assert _values(prometheus, 'ALERTS{alertstate="firing"}', "alertname") == {}
