"""The README's first command, as a newcomer runs it: the demo starts everything, shows events
being accepted and dead-lettered, tasks closed by the simulated people and the scripted rebound
within the first minute, and Ctrl-C stops it all with nothing left running."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams.brokers import free_port

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
_COUNTS = re.compile(
    r"consumed (\d+)\s+accepted (\d+)\s+dead-lettered (\d+).*tasks (\d+)"
    r".*closed (\d+).*rebounds (\d+)"
)


def _port_open(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, int(port))) == 0


def test_demo_runs_until_ctrl_c_and_leaves_nothing_behind(tmp_path: Path) -> None:
    web_port = free_port()
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streams",
            "demo",
            "--web-port",
            str(web_port),
            "--rate",
            "50",
            "--state-dir",
            str(tmp_path),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert demo.stdout is not None
    started = time.monotonic()
    lines: list[str] = []
    counts = (0, 0, 0, 0, 0, 0)
    deadline = started + 120
    while time.monotonic() < deadline:
        line = demo.stdout.readline()
        if not line:
            break
        lines.append(line)
        match = _COUNTS.search(line)
        if match:
            counts = tuple(int(g) for g in match.groups())  # type: ignore[assignment]
            # The story closes one task; a second is the simulated people's work.
            if all(counts) and counts[4] >= 2:
                break
    elapsed = time.monotonic() - started
    output = "".join(lines)
    consumed, accepted, dead_lettered, tasks, closed, rebounds = counts
    assert accepted > 0, output
    assert dead_lettered > 0, output
    assert tasks > 0, output
    # Accepted is counted one hop later (after the repartition), so it may trail.
    assert consumed >= accepted + dead_lettered, output
    # The people close tasks and the bin-rebound story flags its rebound within about a minute
    # (a few seconds more for the broker and the worker to start), and every action they take
    # is one the task's status allows.
    assert closed >= 2, output
    assert rebounds > 0, output
    assert elapsed < 90, f"closed tasks and rebound after {elapsed:.0f} s\n{output}"
    assert "invalid_transition" not in output and "unknown_task" not in output, output
    assert re.search(r"story .*overflow-again .*REBOUND of longshan-st~3002~", output), output
    assert f"board      http://127.0.0.1:{web_port}/\n" in output
    assert f"http://127.0.0.1:{web_port}/metrics" in output
    assert re.search(r"CITYGRID_BROKER_URL=kafka://127\.0\.0\.1:\d+ \S*citygrid console", output)

    broker = re.search(r"on (127\.0\.0\.1:\d+)", output)
    worker = re.search(r"worker\s+pid (\d+)", output)
    assert broker and worker, output

    demo.send_signal(signal.SIGINT)
    rest, _ = demo.communicate(timeout=60)
    assert demo.returncode == 0, output + rest
    assert "worker stopped" in rest
    with pytest.raises(ProcessLookupError):
        os.kill(int(worker.group(1)), 0)
    assert not _port_open(broker.group(1)), "the broker outlived the demo"
    assert not _port_open(f"127.0.0.1:{web_port}"), "the worker's web server outlived the demo"
