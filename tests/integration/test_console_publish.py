"""``citygrid publish`` and ``citygrid console --jsonl`` as an operator runs them, against a worker
on a real broker: a published event becomes a task, a refused file sends nothing, and the
console prints the tasks of the road it was asked for, then their changes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from schemas.json import dumps, loads
from streams.settings import Settings
from tests.factories import ABSENT, event_dict, feedback_dict
from tests.harness import REPO, consume, deploy, run


class Deployment:
    """Topics under a fresh prefix, the demo registry, a worker, and the ``citygrid`` command."""

    def __init__(self, settings: Settings, workdir: Path) -> None:
        self.settings = settings
        self.workdir = workdir
        self.env = {
            **os.environ,
            "CITYGRID_BROKER_URL": settings.broker_url,
            "CITYGRID_TOPIC_PREFIX": settings.topic_prefix,
            "PYTHONUNBUFFERED": "1",
        }

    def citygrid(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
        completed = subprocess.run(
            [sys.executable, "-m", "streams", *args],
            env=self.env,
            cwd=REPO,
            input=None if stdin is None else stdin,
            capture_output=True,
            timeout=60,
            check=False,
        )
        return subprocess.CompletedProcess(
            completed.args,
            completed.returncode,
            completed.stdout.decode(),
            completed.stderr.decode(),
        )

    def write(self, name: str, message: dict[str, Any]) -> Path:
        path = self.workdir / name
        path.write_bytes(dumps(message))
        return path

    def records(self, topic: str) -> list[Any]:
        return list(
            run(
                consume(
                    self.settings.bootstrap_servers,
                    f"{self.settings.topic_prefix}{topic}",
                    expect=10_000,
                    within=1,
                )
            )
        )

    def tasks_until(
        self, check: Callable[[dict[str, dict[str, Any]]], bool], within: float = 60
    ) -> dict[str, dict[str, Any]]:
        deadline = time.monotonic() + within
        states: dict[str, dict[str, Any]] = {}
        while time.monotonic() < deadline:
            records = sorted(
                self.records("city.tasks.state"), key=lambda r: (r.partition, r.offset)
            )
            states = {r.key.decode(): loads(r.value) for r in records}
            if check(states):
                return states
        raise AssertionError(f"not reached within {within} s; tasks: {states}")


@pytest.fixture
def deployment(kafka_bootstrap: str, unique_name: str, tmp_path: Path) -> Iterator[Deployment]:
    prefix = f"{unique_name}."
    settings, worker = deploy(
        kafka_bootstrap,
        prefix,
        tmp_path / "worker",
    )
    worker.start()
    yield Deployment(settings, tmp_path)
    assert worker.stop() == 0, worker.log_tail()


def _report(event_id: str, road: str, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "event_id": event_id,
        "device_id": f"cam-{road}",
        "occurred_at": datetime.now(UTC),
        "location": {"road_id": road},
        **overrides,
    }
    return event_dict(source="camera", domain="citymgmt", category="4001", **fields)


def test_publish_sends_a_valid_event_and_nothing_of_an_invalid_one(
    deployment: Deployment,
) -> None:
    valid = deployment.write("stall.json", _report("stall-1", "yulong-st"))
    published = deployment.citygrid("publish", str(valid))
    assert published.returncode == 0, published.stderr
    assert "city.events.citymgmt" in published.stdout

    states = deployment.tasks_until(lambda s: len(s) == 1)
    (task,) = states.values()
    assert task["road_id"] == "yulong-st"
    assert task["category"] == "4001"
    assert task["status"] == "dispatched"

    invalid = deployment.write("no-place.json", _report("stall-2", "yulong-st", location=ABSENT))
    refused = deployment.citygrid("publish", str(invalid))
    assert refused.returncode != 0
    assert "location: required" in refused.stderr
    dry = deployment.citygrid("publish", "--dry-run", str(valid))
    assert dry.returncode == 0, dry.stderr

    (sent,) = deployment.records("city.events.citymgmt")
    assert sent.key == b"cam-yulong-st"
    assert sent.value == valid.read_bytes()
    assert deployment.records("city.events.dlq") == []


def test_console_prints_the_tasks_of_a_road_as_json_lines_then_their_changes(
    deployment: Deployment,
) -> None:
    for event_id, road in (("stall-y", "yulong-st"), ("stall-l", "longshan-st")):
        path = deployment.write(f"{event_id}.json", _report(event_id, road))
        assert deployment.citygrid("publish", str(path)).returncode == 0
    states = deployment.tasks_until(lambda s: len(s) == 2)
    (yulong,) = (t for t in states.values() if t["road_id"] == "yulong-st")

    out = deployment.workdir / "console.jsonl"
    with out.open("wb") as stdout:
        console = subprocess.Popen(
            [sys.executable, "-m", "streams", "console", "--jsonl", "--road", "yulong-st"],
            env=deployment.env,
            cwd=REPO,
            stdout=stdout,
            stderr=subprocess.PIPE,
        )
    try:

        def lines() -> list[dict[str, Any]]:
            return [loads(line) for line in out.read_bytes().splitlines()]

        def wait_for(check: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if check(lines()):
                    return lines()
                assert console.poll() is None, console.stderr.read() if console.stderr else ""
                time.sleep(0.2)
            raise AssertionError(f"console printed: {lines()}")

        (snapshot,) = wait_for(lambda got: len(got) >= 1)
        assert snapshot["task_id"] == yulong["task_id"]
        assert snapshot["snapshot"] is True
        assert snapshot["event"] == "dispatched"
        assert snapshot["status"] == "dispatched"

        # A dispatcher's terminal accepts the task; the console reports the change.
        feedback = feedback_dict(
            "accept",
            task_id=yulong["task_id"],
            actor_id="chief-yulong",
            at=datetime.now(UTC),
        )
        accepted = deployment.citygrid("publish", "-", stdin=dumps(feedback))
        assert accepted.returncode == 0, accepted.stderr
        got = wait_for(lambda got: len(got) >= 2)
        change = got[1]
        assert change["task_id"] == yulong["task_id"]
        assert change["snapshot"] is False
        assert change["status"] == "accepted"
        assert change["event"] == "accepted"
        assert change["events"] == ["accepted"]
        assert all(line["road_id"] == "yulong-st" for line in got)
    finally:
        console.send_signal(signal.SIGTERM)
        code = console.wait(15)
    assert code == 0
