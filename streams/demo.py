"""The one-command demo, all on loopback: embedded broker, topics, the demo registry, a worker,
simulated terminals with the people answering their tasks, and a scripted story (bin-rebound) so
a rebound shows within the first minute.

Everything it starts it stops again on Ctrl-C or SIGTERM: the simulator first, then the worker
(SIGTERM, so it commits, and waits for it), the broker last.
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from streams.brokers import LocalBroker, free_port
from streams.exceptions import CitygridError
from streams.registry import DEMO_REGISTRY, load_registry_file, publish_roads
from streams.scenario import (
    Scenario,
    ScenarioError,
    Script,
    find_scenario,
    load_scenario,
    script_for,
    tell,
)
from streams.settings import Settings
from streams.simulator import SimulatorConfig, publish
from streams.topics import create_topics, topic_name

__all__ = ["DemoConfig", "run_demo", "scrape", "summary"]

logger = logging.getLogger(__name__)

_SAMPLE = re.compile(r"^(citygrid_\w+_total)(?:\{([^}]*)\})? ([0-9.e+]+)$", re.MULTILINE)
_BROKEN_DOWN = re.compile(r'(?:reason|type|outcome)="([^"]+)"')


@dataclass(frozen=True, slots=True)
class DemoConfig:
    """What the demo runs."""

    workdir: Path = Path("var/demo")
    web_port: int = 6066
    rate: float = 20.0
    duration: float | None = None
    bad_ratio: float = 0.05
    seed: int = 7
    feedback: bool = True
    """Simulated road chiefs and supervisors act on the tasks."""
    scenarios: tuple[str, ...] = ("bin-rebound",)
    """Scripted stories played at the start: files, or names of shipped ones."""


def scrape(url: str, timeout: float = 2.0) -> dict[str, float]:
    """Sum the ``citygrid_*_total`` counters at ``url`` by metric, and by metric and reason,
    TaskEvent type or outcome (``citygrid_task_transitions_total:verify_passed``)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback URL
        text = response.read().decode()
    totals: dict[str, float] = {}
    for name, labels, value in _SAMPLE.findall(text):
        totals[name] = totals.get(name, 0.0) + float(value)
        label = _BROKEN_DOWN.search(labels)
        if label and float(value):
            key = f"{name}:{label.group(1)}"
            totals[key] = totals.get(key, 0.0) + float(value)
    return totals


def summary(totals: dict[str, float]) -> str:
    """The demo's one-line report of the worker's counters."""

    def count(name: str) -> str:
        return f"{totals.get(name, 0):.0f}"

    reasons = ", ".join(
        f"{k.split(':')[1]} {v:.0f}"
        for k, v in sorted(totals.items())
        if k.startswith("citygrid_events_rejected_total:")
    )
    return (
        f"consumed {count('citygrid_events_consumed_total')}  "
        f"accepted {count('citygrid_events_accepted_total')}  "
        f"dead-lettered {count('citygrid_events_rejected_total')}"
        + (f" ({reasons})" if reasons else "")
        + f"  tasks {count('citygrid_tasks_created_total')}"
        f" (merged reports {count('citygrid_task_merges_total')})"
        f"  feedback {count('citygrid_feedback_consumed_total:applied')}"
        f"  closed {count('citygrid_task_transitions_total:verify_passed')}"
        f"  reworked {count('citygrid_task_reworks_total')}"
        f"  rebounds {count('citygrid_task_rebounds_total')}"
    )


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


def _citygrid_command() -> str:
    """How to run ``citygrid`` from here: the virtualenv's script when there is one."""
    script = Path(sys.executable).with_name("citygrid")
    if not script.exists():
        return "citygrid"
    with contextlib.suppress(ValueError):
        return str(script.relative_to(Path.cwd()))
    return str(script)


def run_demo(config: DemoConfig, say: Callable[[str], None]) -> int:
    """Run the demo until the duration ends or a signal arrives; returns the exit code."""
    # A broken story file should stop the demo before anything starts.
    stories = [load_scenario(find_scenario(name)) for name in config.scenarios]
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
        base_url = f"http://127.0.0.1:{web_port}"
        metrics_url = f"{base_url}/metrics"
        try:
            _wait_for_worker(metrics_url, worker, timeout=90)
            say(f"worker     pid {worker.pid}, log {log_path}")
            say(f"board      {base_url}/")
            say(f"metrics    {metrics_url}")
            say(
                "console    in another terminal: "
                f"CITYGRID_BROKER_URL={settings.broker_url} {_citygrid_command()} console"
            )
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
            return _simulate(settings, config, stories, metrics_url, say)
        finally:
            _stop_worker(worker)
            say("worker stopped; stopping the broker")


def _scripts(settings: Settings, stories: Sequence[Scenario]) -> list[Script]:
    scripts: list[Script] = []
    for story in stories:
        script = script_for(story, settings)
        for other in scripts:
            if script.slots & other.slots:
                place = sorted(script.slots & other.slots)[0]
                raise ScenarioError(
                    f"{story.source}: reports at {place}, like {other.scenario.source}; "
                    "stories played together need places of their own"
                )
        scripts.append(script)
    return scripts


def _simulate(
    settings: Settings,
    config: DemoConfig,
    stories: Sequence[Scenario],
    metrics_url: str,
    say: Callable[[str], None],
) -> int:
    stop = asyncio.Event()

    async def report() -> None:
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=5)
            with contextlib.suppress(OSError):
                say(summary(await asyncio.to_thread(scrape, metrics_url)))

    async def tell_story(script: Script) -> None:
        try:
            await tell(settings, script, lambda line: say(f"story      {line}"))
        except ScenarioError as exc:
            say(f"story      {exc}")

    async def main() -> int:
        loop = asyncio.get_running_loop()
        scripts = _scripts(settings, stories)
        reserved = frozenset().union(*(script.slots for script in scripts))
        sim_config = SimulatorConfig(
            rate=config.rate,
            duration=config.duration,
            seed=config.seed,
            bad_ratio=config.bad_ratio,
            feedback=config.feedback,
            reserved=reserved,
        )
        people = (
            "; road chiefs accept and handle tasks, supervisors verify (15% sent back)"
            if config.feedback
            else ""
        )
        say(
            f"simulator  {config.rate:g} events/s, seed {config.seed}, "
            f"{config.bad_ratio:.0%} malformed{people}"
        )
        simulator = asyncio.create_task(publish(settings, sim_config), name="demo.simulator")
        tellers = [
            asyncio.create_task(tell_story(script), name=f"demo.{script.scenario.name}")
            for script in scripts
        ]

        def stopping() -> None:
            for task in (simulator, *tellers):
                task.cancel()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping)
        reporter = asyncio.create_task(report())
        try:
            sent = await simulator
            say(f"simulator  sent {sent.events} events and {sent.feedback} feedback messages")
            await asyncio.sleep(3)  # let the worker drain before the last report
        except asyncio.CancelledError:
            say("stopping the simulator")
        finally:
            for teller in tellers:
                teller.cancel()
            await asyncio.gather(*tellers, return_exceptions=True)
            stop.set()
            await reporter
        return 0

    return asyncio.run(main())
