"""A task's whole life on a real broker, read back by a separate consumer: creation, a failed
verification and its rework, closure, a rebound at the same place, refused feedback in the DLQ,
an overdue task flagged under a short time limit, and the road KPIs published."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas.json import dumps, loads
from streams.settings import Settings
from tests.factories import event_dict, feedback_dict
from tests.harness import WorkerProcess, consume, deploy, latest_states, produce, run, sample


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
            "CITYGRID_TIME_LIMITS": "4002=1m",
            "CITYGRID_OVERDUE_CHECK": "1s",
            "CITYGRID_KPI_INTERVAL": "2s",
            "CITYGRID_LOG_FORMAT": "json",
        },
    )
    worker.start()
    yield settings, worker
    assert worker.stop() == 0, worker.log_tail()


def _states(settings: Settings) -> dict[str, dict[str, Any]]:
    return latest_states(settings, within=1)


def _until(settings: Settings, check: Any, within: float = 60) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + within
    states: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        states = _states(settings)
        if check(states):
            return states
    raise AssertionError(f"not reached within {within} s; tasks: {states}")


def _report(settings: Settings, event_id: str, category: str, road: str, at: datetime) -> None:
    event = event_dict(
        source="camera",
        domain="citymgmt",
        event_id=event_id,
        device_id="cam-lifecycle",
        category=category,
        occurred_at=at.isoformat(),
        location={"road_id": road},
    )
    topic = f"{settings.topic_prefix}city.events.citymgmt"
    run(produce(settings.bootstrap_servers, [(topic, b"cam-lifecycle", dumps(event))]))


def _feedback(
    settings: Settings, task_id: str, action: str, *, copies: int = 1, **fields: Any
) -> None:
    message = feedback_dict(
        action, task_id=task_id, at=datetime.now(UTC).isoformat(), actor_id="officer-9", **fields
    )
    topic = f"{settings.topic_prefix}city.feedback"
    sent = [(topic, task_id.encode(), dumps(message))] * copies
    run(produce(settings.bootstrap_servers, sent))


def test_a_task_lives_through_rework_closure_and_rebound(
    deployment: tuple[Settings, WorkerProcess],
) -> None:
    settings, worker = deployment
    now = datetime.now(UTC)
    # Reported 40 minutes ago: past the merge window by the time the stall comes back.
    _report(settings, "stall-1", "4001", "yulong-st", now - timedelta(minutes=40))
    states = _until(settings, lambda s: len(s) == 1)
    (task_id,) = states
    assert states[task_id]["status"] == "dispatched"

    def status_is(status: str, **fields: Any) -> Any:
        return lambda s: (
            s.get(task_id, {}).get("status") == status
            and all(s[task_id].get(k) == v for k, v in fields.items())
        )

    _feedback(settings, task_id, "verify_pass")  # not allowed while dispatched
    _feedback(settings, "yulong-st~4001~000000000000", "accept")  # a task that never existed
    _feedback(settings, "not-a-task", "accept")
    for action, status, fields in [
        ("accept", "accepted", {}),
        ("handle", "handled", {}),
        ("verify_fail", "dispatched", {"rework_count": 1}),
        ("accept", "accepted", {}),
        ("handle", "handled", {}),
        ("verify_pass", "closed", {"rework_count": 1}),
    ]:
        # Each accept arrives twice, as a terminal's retry would: applied once, no refusal.
        _feedback(settings, task_id, action, copies=2 if action == "accept" else 1)
        _until(settings, status_is(status, **fields))

    # The stall is back the next day: a rebound of the closed task.
    _report(settings, "stall-2", "4001", "yulong-st", datetime.now(UTC))
    states = _until(settings, lambda s: len(s) == 2)
    (rebound,) = (t for t in states.values() if t["task_id"] != task_id)
    assert rebound["rebound_of"] == task_id
    assert rebound["status"] == "dispatched"

    events = run(
        consume(settings.bootstrap_servers, f"{settings.topic_prefix}city.tasks.events", expect=12)
    )
    kinds = [loads(r.value)["type"] for r in events if r.key == task_id.encode()]
    assert kinds == [
        "created", "dispatched", "accepted", "handled", "verify_failed",
        "accepted", "handled", "verify_passed",
    ]  # fmt: skip

    dlq = run(
        consume(settings.bootstrap_servers, f"{settings.topic_prefix}city.events.dlq", expect=3)
    )
    reasons = sorted(dict(r.headers)["citygrid.error.reason"].decode() for r in dlq)
    assert reasons == ["invalid_transition", "unknown_task", "unknown_task"]
    assert all(dict(r.headers)["citygrid.error.topic"].endswith(b"city.feedback") for r in dlq)

    # Structured logs: the task's transitions are JSON lines carrying its id as a field.
    logged = [
        loads(line)
        for line in worker.log_path.read_text().splitlines()
        if line.startswith("{") and task_id in line
    ]
    assert {entry.get("type") for entry in logged} >= {"created", "verify_failed", "verify_passed"}
    assert all(entry["task_id"] == task_id for entry in logged if "type" in entry)

    metrics = worker.metrics()
    assert sample(metrics, "citygrid_task_reworks_total", domain="citymgmt") == 1
    assert sample(metrics, "citygrid_task_rebounds_total", domain="citymgmt") == 1
    assert sample(metrics, "citygrid_feedback_consumed_total", outcome="duplicate") == 2

    # The leader publishes the road's evaluation: the rework and the rebound count against it.
    deadline = time.monotonic() + 30
    yulong: dict[str, Any] = {}
    while time.monotonic() < deadline:
        kpis = run(
            consume(
                settings.bootstrap_servers,
                f"{settings.topic_prefix}city.kpi.roads",
                expect=10_000,
                within=1,
            )
        )
        latest = {r.key: loads(r.value) for r in kpis}
        yulong = latest.get(b"yulong-st", {})
        if yulong.get("window", {}).get("rebounds") == 1:
            break
    assert yulong["window"]["rebounds"] == 1, yulong
    assert yulong["window"]["reworked"] == 1
    assert yulong["window"]["closed"] == 1
    assert 0 <= yulong["score"] <= 100
    assert len(latest) == 20, "every road of the registry is ranked"
    ranks = sorted(k["rank"] for k in latest.values())
    assert ranks == list(range(1, 21))
    assert sample(worker.metrics(), "citygrid_kpi_ratio", level="district", kpi="rework") >= 0


def test_a_task_past_its_short_deadline_is_flagged_overdue(
    deployment: tuple[Settings, WorkerProcess],
) -> None:
    settings, worker = deployment
    # Illegal parking with a 1-minute limit (CITYGRID_TIME_LIMITS), reported 90 s ago.
    _report(settings, "parked-1", "4002", "longshan-st", datetime.now(UTC) - timedelta(seconds=90))
    states = _until(settings, lambda s: any(t.get("overdue") for t in s.values()))
    (task,) = states.values()
    assert task["status"] == "dispatched"
    events = run(
        consume(settings.bootstrap_servers, f"{settings.topic_prefix}city.tasks.events", expect=3)
    )
    assert [loads(r.value)["type"] for r in events][-1] == "overdue"
    deadline = time.monotonic() + 10
    while sample(worker.metrics(), "citygrid_tasks_overdue", domain="citymgmt") != 1:
        assert time.monotonic() < deadline, "the overdue gauge did not move"
        time.sleep(0.5)
    assert sample(worker.metrics(), "citygrid_task_deadlines_missed_total", domain="citymgmt") == 1
