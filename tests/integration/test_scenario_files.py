"""The shipped scenario files, played with ``citygrid simulate --scenario FILE --fast`` against a
real broker and worker, end as their stories say: one vending task seen by a camera and an officer
and closed; a bin task closed and, "two days later", a rebound of it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from schemas.json import loads
from streams.domain.merge import slot_key, slot_of_task, task_id_for
from streams.scenario import SCENARIO_DIR
from streams.settings import Settings
from tests.harness import REPO, WorkerProcess, consume, deploy, latest_states, run, sample

RUN = "itest"


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
    worker.start()
    yield settings, worker
    assert worker.stop() == 0, worker.log_tail()


def _simulate(settings: Settings, scenario: str, *, code: int = 0) -> str:
    env = {
        **os.environ,
        "CITYGRID_BROKER_URL": settings.broker_url,
        "CITYGRID_TOPIC_PREFIX": settings.topic_prefix,
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "streams",
            "simulate",
            "--scenario",
            str(SCENARIO_DIR / f"{scenario}.yaml"),
            "--fast",
            "--run-id",
            RUN,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == code, output
    return output


def test_the_shipped_stories_play_out_on_a_real_worker(
    deployment: tuple[Settings, WorkerProcess],
) -> None:
    settings, worker = deployment
    vending_output = _simulate(settings, "vending-stall")
    bin_output = _simulate(settings, "bin-rebound")
    assert "✓ as expected" in vending_output
    assert bin_output.count("✓ as expected") == 2, bin_output

    states = latest_states(settings)
    by_slot: dict[str, list[dict[str, Any]]] = {}
    for task in states.values():
        by_slot.setdefault(str(slot_of_task(task["task_id"])), []).append(task)

    # The stall: the camera's report opened the task, the officer's merged into it.
    vending_slot = slot_key("yulong-st", "4001")
    (stall,) = by_slot[vending_slot]
    assert stall["task_id"] == task_id_for(
        vending_slot, "cam-yulong-st-03", f"vending-stall.{RUN}.camera"
    )
    assert stall["status"] == "closed"
    assert sorted(stall["sources"]) == ["camera", "terminal"]
    assert stall["assignee"] == "chief-yulong"
    assert stall["rebound_of"] is None

    # The bin: closed two days ago (event time), then a rebound of it.
    bin_slot = slot_key("longshan-st", "3002")
    bins = sorted(by_slot[bin_slot], key=lambda t: t["created_at"])
    assert len(bins) == 2, bins
    first, again = bins
    assert first["task_id"] == task_id_for(
        bin_slot, "sen-longshan-st-02", f"bin-rebound.{RUN}.overflow.3"
    )
    assert first["status"] == "closed"
    assert again["rebound_of"] == first["task_id"]
    assert again["status"] == "dispatched"

    events = run(
        consume(settings.bootstrap_servers, f"{settings.topic_prefix}city.tasks.events", expect=13)
    )
    kinds = [loads(r.value)["type"] for r in events if r.key == stall["task_id"].encode()]
    assert kinds == ["created", "dispatched", "merged", "accepted", "handled", "verify_passed"]
    metrics = worker.metrics()
    assert sample(metrics, "citygrid_task_rebounds_total", domain="sanitation") == 1
    assert sample(metrics, "citygrid_events_rejected_total") == 0, "nothing dead-lettered"

    # Played again, the stall would merge into the closed task: refused before anything is sent.
    again = _simulate(settings, "vending-stall", code=1)
    assert "the worker already has tasks at yulong-st~4001" in again
    assert len(latest_states(settings)) == len(states)
