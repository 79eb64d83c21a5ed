"""The one-command demo: embedded broker, topics, a worker and simulated terminals, all on loopback.

Everything it starts it stops again on Ctrl-C or SIGTERM, the worker first (so it commits), the
broker last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from streams.brokers import LocalBroker, free_port
from streams.exceptions import CitygridError
from streams.registry import DEMO_REGISTRY, load_registry_file, publish_roads
from streams.settings import Settings
from streams.simulator import SimulatorConfig, publish
from streams.topics import create_topics, topic_name

__all__ = ["DemoConfig", "run_demo", "scrape"]

logger = logging.getLogger(__name__)

_SAMPLE = re.compile(r"^(citygrid_\w+_total)\{([^}]*)\} ([0-9.e+]+)$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class DemoConfig:
    """What the demo runs."""

    workdir: Path = Path("var/demo")
    web_port: int = 6066
    rate: float = 20.0
    duration: float | None = None
    bad_ratio: float = 0.05
    seed: int = 7


def scrape(url: str, timeout: float = 2.0) -> dict[str, float]:
    """Sum the ``citygrid_*_total`` counters at ``url`` by metric and by reason."""
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback URL
        text = response.read().decode()
    totals: dict[str, float] = {}
    for name, labels, value in _SAMPLE.findall(text):
        totals[name] = totals.get(name, 0.0) + float(value)
        reason = re.search(r'reason="([^"]+)"', labels)
        if reason and float(value):
            totals[f"{name}:{reason.group(1)}"] = float(value)
    return totals


def _wait_for_worker(url: str, worker: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise CitygridError(f"the worker exited with code {worker.returncode}; see its log")
        with contextlib.suppress(OSError):
            urllib.request.urlopen(url, timeout=1).close()  # noqa: S310 - loopback URL
            return
        time.sleep(0.5)
    raise CitygridError(f"the worker did not answer on {url} within {timeout:.0f} s")


def _stop_worker(worker: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    if worker.poll() is not None:
        return
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout)
    except subprocess.TimeoutExpired:
        logger.warning("worker did not stop within %.0f s; killing it", timeout)
        worker.kill()
        worker.wait()


def run_demo(config: DemoConfig, say: Callable[[str], None]) -> int:
    """Run the demo until the duration ends or a signal arrives; returns the exit code."""
    config.workdir.mkdir(parents=True, exist_ok=True)
    web_port = config.web_port or free_port()
    with LocalBroker("tansu", workdir=config.workdir / "broker") as broker:
        say(f"broker     tansu (in memory) on {broker.bootstrap}")
        settings = Settings.from_env(
            {},
            broker_url=f"kafka://{broker.bootstrap}",
            store="memory://",
            data_dir=config.workdir / "worker",
            web_port=web_port,
            partitions=4,
        )
        reports = asyncio.run(create_topics(settings))
        say(
            f"topics     {sum(r.created for r in reports)} created, {len(reports)} in the catalogue"
        )
        roads = load_registry_file(DEMO_REGISTRY)
        asyncio.run(publish_roads(settings, roads))
        say(f"registry   {len(roads)} roads of the Jiulong sub-district ({DEMO_REGISTRY.name})")
        env = {
            **os.environ,
            "CITYGRID_BROKER_URL": settings.broker_url,
            "CITYGRID_STORE": settings.store,
            "CITYGRID_DATA_DIR": str(settings.data_dir),
            "CITYGRID_WEB_PORT": str(web_port),
            "CITYGRID_PARTITIONS": str(settings.partitions),
        }
        log_path = config.workdir / "worker.log"
        with log_path.open("wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "streams", "worker", "-l", "info"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        metrics_url = f"http://127.0.0.1:{web_port}/metrics"
        try:
            _wait_for_worker(metrics_url, worker, timeout=90)
            say(f"worker     pid {worker.pid}, log {log_path}")
            say(f"metrics    {metrics_url}")
            say(
                "dead letters  kcat -b "
                f"{broker.bootstrap} -C -t {topic_name(settings, 'city.events.dlq')} "
                "-f '%h\\n%s\\n\\n'"
            )
            say(
                f"tasks      kcat -b {broker.bootstrap} -C -t "
                f"{topic_name(settings, 'city.tasks.state')} -f '%k %s\\n'"
            )
            say("Ctrl-C stops everything.")
            return _simulate(settings, config, metrics_url, say)
        finally:
            _stop_worker(worker)
            say("worker stopped; stopping the broker")


def _simulate(
    settings: Settings, config: DemoConfig, metrics_url: str, say: Callable[[str], None]
) -> int:
    stop = asyncio.Event()

    async def report() -> None:
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=5)
            with contextlib.suppress(OSError):
                totals = await asyncio.to_thread(scrape, metrics_url)
                reasons = ", ".join(
                    f"{k.split(':')[1]} {v:.0f}"
                    for k, v in sorted(totals.items())
                    if k.startswith("citygrid_events_rejected_total:")
                )
                say(
                    f"consumed {totals.get('citygrid_events_consumed_total', 0):.0f}  "
                    f"accepted {totals.get('citygrid_events_accepted_total', 0):.0f}  "
                    f"dead-lettered {totals.get('citygrid_events_rejected_total', 0):.0f}"
                    + (f" ({reasons})" if reasons else "")
                    + f"  tasks {totals.get('citygrid_tasks_created_total', 0):.0f}"
                    f" (merged reports {totals.get('citygrid_task_merges_total', 0):.0f})"
                )

    async def main() -> int:
        loop = asyncio.get_running_loop()
        simulator = asyncio.create_task(
            publish(
                settings,
                SimulatorConfig(
                    rate=config.rate,
                    duration=config.duration,
                    seed=config.seed,
                    bad_ratio=config.bad_ratio,
                ),
            )
        )
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, simulator.cancel)
        reporter = asyncio.create_task(report())
        try:
            sent = await simulator
            say(f"simulator  sent {sent} messages")
            await asyncio.sleep(3)  # let the worker drain before the last report
        except asyncio.CancelledError:
            say("stopping")
        finally:
            stop.set()
            await reporter
        return 0

    return asyncio.run(main())
