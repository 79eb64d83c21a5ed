"""CPU cost per event of the two batch-stage handlers, ingest and merge, in one process, no broker.

Simulated events (``streams.simulator``, about 1% malformed, seeded, on a fixed simulated clock
that advances ``1 / --rate`` seconds per message, with the ``+08:00`` offset of the pilot's
devices unless ``--offset`` says otherwise) are cut into batches of ``--batch`` messages as
a consumer would fetch them (each input topic's partition chosen by key, as a producer would). The
real :class:`~agents.ingest.Ingest` handler runs over them with the demo road registry; its hop
output is read back from the record batches it built and becomes the merge stage's batches (one
merge batch per ingest batch), which the real :class:`~agents.merge.Merge` handler runs over on a
fresh :class:`~streams.engine.SlotStore` each pass. Both stages send through a real
:class:`~streams.engine.Sink` whose producer is a stand-in: aiokafka's own ``BatchBuilder`` for the
record batches, sending resolves at once.

A pass is the whole stream through one handler, from its first batch to the last
``Sink.submit``, timed in CPU seconds of this process (so other load on the machine counts less
than on a wall clock); the first pass warms up, the median of ``--repeats`` passes is reported as
CPU microseconds per message the stage consumed. The digest of every record each stage produced
(topic, partition, key, value, headers) is printed too: with the simulated clock fixed, it changes
only when the handlers' output does. ``--profile`` adds one pass of each under cProfile.

``--workload far`` runs the pipeline bench's latency workload instead (every report a fresh event
on a far-off grid cell, four a cell: one opens a task, three merge), where every report is a task
state, a transition and a changelog record of its own. ``--workload hot`` sends every report to
one grid cell instead: one task that every report joins, the slot a camera reporting the same
spot all day makes (its cost per report grows with the reports the task lists).

Usage: ``.venv/bin/python bench/handlers.py [--events N] [--batch B] [--repeats R] [--rate R]
[--offset HOURS] [--seed K] [--workload simulated|far|hot] [--profile]
[--sort tottime|cumulative]``
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import hashlib
import io
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch
from aiokafka.structs import ConsumerRecord, TopicPartition
from pipeline import REPORTS_PER_PLACE, far_report  # bench/, beside this script

from agents.ingest import Ingest
from agents.merge import Merge
from schemas.enums import Domain
from streams.domain.merge import MergeConfig
from streams.engine import (
    Batch,
    Outbox,
    Sink,
    SlotStore,
    changelog_topic_name,
    placed_topic_name,
)
from streams.registry import DEMO_REGISTRY, load_registry_file
from streams.registry_feed import RegistryFeed
from streams.settings import Settings
from streams.simulator import SimulatorConfig, messages
from streams.topics import EVENT_TOPICS, topic_name

__all__ = ["main"]

_START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
"""The simulated clock's start: in the past of any real clock, so no event is in the future."""
_BAD_RATIO = 0.01
_BATCH_BYTES = 512 * 1024
"""As the worker's producer (``Outbox.start``)."""


class _Producer:
    """The part of AIOKafkaProducer a Sink uses: real record batches, sends that resolve at once,
    and optionally the batches it was handed, to read back."""

    def __init__(self, partitions: int) -> None:
        self.partitions = set(range(partitions))
        self.kept: list[tuple[str, int, BatchBuilder]] | None = None
        self._done: asyncio.Future[None] | None = None

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(_BATCH_BYTES, 0)

    async def partitions_for(self, topic: str) -> set[int]:
        return self.partitions

    async def send_batch(
        self, batch: BatchBuilder, topic: str, *, partition: int
    ) -> asyncio.Future[None]:
        if self.kept is not None:
            self.kept.append((topic, partition, batch))
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
            self._done.set_result(None)
        return self._done


class _Outbox:
    def __init__(self, producer: _Producer) -> None:
        self.producer = producer


def _sink(producer: _Producer) -> Sink:
    return Sink(cast(Outbox, _Outbox(producer)))


def _records(kept: Sequence[tuple[str, int, BatchBuilder]]) -> Iterator[tuple[str, int, Any]]:
    for topic, partition, builder in kept:
        yield from ((topic, partition, r) for r in DefaultRecordBatch(bytes(builder._build())))


def _digest(per_batch: Sequence[Sequence[tuple[str, int, BatchBuilder]]], unordered: str) -> str:
    """A digest of the records, in order, except that the records ``unordered`` got in one batch
    count in key order: the slot store writes a batch's changed slots in set order, which
    differs from one process to the next (string hashing is salted)."""
    digest = hashlib.sha256()
    for kept in per_batch:
        records = [r for r in _records(kept) if r[0] != unordered]
        records += sorted(
            (r for r in _records(kept) if r[0] == unordered),
            key=lambda r: (r[1], bytes(r[2].key or b"")),
        )
        for topic, partition, record in records:
            digest.update(f"{topic}\0{partition}\0".encode())
            for part in (record.key, record.value):
                digest.update(b"\1" if part is None else b"\0" + bytes(part) + b"\0")
            for name, value in record.headers:
                digest.update(name.encode() + b"\0" + bytes(value) + b"\0")
    return digest.hexdigest()[:16]


def _consumer_record(topic: str, partition: int, offset: int, record: Any) -> Any:
    key, value = record.key, record.value
    return ConsumerRecord(
        topic,
        partition,
        offset,
        record.timestamp,
        0,
        key,
        value,
        None,
        -1 if key is None else len(key),
        -1 if value is None else len(value),
        list(record.headers),
    )


def _input_batches(settings: Settings, args: argparse.Namespace) -> list[Batch]:
    ticks = iter(range(sys.maxsize))
    step = timedelta(seconds=1 / args.rate)
    # The devices' clocks: their offset is what occurred_at carries.
    start = _START.astimezone(timezone(timedelta(hours=args.offset)))

    def clock() -> datetime:
        return start + next(ticks) * step

    config = SimulatorConfig(count=args.events, bad_ratio=_BAD_RATIO, seed=args.seed)
    return _fetched(
        settings,
        args.batch,
        ((m.domain, m.key, m.value, list(m.headers)) for m in messages(config, clock)),
    )


def _far_batches(settings: Settings, args: argparse.Namespace) -> list[Batch]:
    """The pipeline bench's latency workload: every report a fresh event on a far-off grid cell
    (no road), ``REPORTS_PER_PLACE`` reports a cell, so one in four opens a task and each batch
    touches as many tasks as it has reports (the worst case for the merge stage's outputs).
    The hot workload puts them all on one cell."""
    places = 1 if args.workload == "hot" else max(1, args.events // REPORTS_PER_PLACE)
    step = timedelta(seconds=1 / args.rate)
    start = _START.astimezone(timezone(timedelta(hours=args.offset)))
    reports = (
        far_report(n, n % places, f"far-{n:08d}", start + n * step) for n in range(args.events)
    )
    return _fetched(
        settings, args.batch, ((r.domain, r.device_id.encode(), r.value, []) for r in reports)
    )


def _fetched(
    settings: Settings,
    size: int,
    stream: Iterable[tuple[Domain, bytes, bytes, list[tuple[str, bytes]]]],
) -> list[Batch]:
    """A stream of ``(domain, key, value, headers)`` messages as a consumer fetches them: on
    their domain's topic, in the partition their key picks, ``size`` messages a batch."""
    partitioner = DefaultPartitioner()
    partitions = list(range(settings.partitions))
    offsets: dict[TopicPartition, int] = {}
    batches: list[Batch] = []
    batch: dict[TopicPartition, list[Any]] = {}
    for n, (domain, key, value, headers) in enumerate(stream, 1):
        topic = topic_name(settings, EVENT_TOPICS[domain])
        tp = TopicPartition(topic, partitioner(key, partitions, partitions))
        offset = offsets[tp] = offsets.get(tp, -1) + 1
        batch.setdefault(tp, []).append(
            ConsumerRecord(
                topic, tp.partition, offset, 0, 0, key, value, None, len(key), len(value), headers
            )
        )
        if n % size == 0:
            batches.append(batch)
            batch = {}
    if batch:
        batches.append(batch)
    return batches


def _hop_batches(
    settings: Settings, per_batch: Sequence[Sequence[tuple[str, int, BatchBuilder]]]
) -> list[Batch]:
    """What the merge stage fetches: each ingest batch's hop records, by hop partition."""
    hop = placed_topic_name(settings)
    offsets: dict[int, int] = {}
    batches: list[Batch] = []
    for kept in per_batch:
        batch: dict[TopicPartition, list[Any]] = {}
        for topic, partition, record in _records(kept):
            if topic != hop:
                continue
            offset = offsets[partition] = offsets.get(partition, -1) + 1
            batch.setdefault(TopicPartition(hop, partition), []).append(
                _consumer_record(topic, partition, offset, record)
            )
        batches.append(batch)
    return batches


def _count(batches: Sequence[Batch]) -> int:
    return sum(len(records) for batch in batches for records in batch.values())


class _Stage:
    """One handler over the whole stream, as many passes as asked."""

    def __init__(
        self,
        batches: Sequence[Batch],
        make: Callable[[Sink], Callable[[Batch], Awaitable[None]]],
        partitions: int,
    ) -> None:
        self.batches = batches
        self.make = make
        self.partitions = partitions

    async def run(self, kept_per_batch: list[list[Any]] | None = None) -> float:
        producer = _Producer(self.partitions)
        sink = _sink(producer)
        handler = self.make(sink)
        gc.collect()
        started = time.process_time()
        for batch in self.batches:
            if kept_per_batch is not None:
                producer.kept = []
                kept_per_batch.append(producer.kept)
            await handler(batch)
            await sink.submit()
        return time.process_time() - started


def _profile(stage: _Stage, sort: str) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(stage.run())
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats(sort).print_stats(25)
    return out.getvalue()


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="simulated messages")
    parser.add_argument("--batch", type=int, default=2000, help="messages per fetched batch")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes after the warm-up")
    parser.add_argument(
        "--rate", type=float, default=1000.0, help="simulated messages per second of event time"
    )
    parser.add_argument("--seed", type=int, default=7, help="simulator seed")
    parser.add_argument(
        "--offset", type=float, default=8.0, help="UTC offset of occurred_at, hours (China: 8)"
    )
    parser.add_argument(
        "--workload",
        default="simulated",
        choices=["simulated", "far", "hot"],
        help="simulated: the field simulator's mix; far: the pipeline bench's latency workload "
        "(fresh reports on far-off grid cells, four a cell); hot: the same reports, all on one "
        "cell (one task)",
    )
    parser.add_argument("--profile", action="store_true", help="add a cProfile top-25 per stage")
    parser.add_argument("--sort", default="tottime", choices=["tottime", "cumulative"])
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    args = _parse(argv)
    settings = Settings(app_id="bench")
    registry = RegistryFeed(settings)
    for road in load_registry_file(DEMO_REGISTRY):
        registry.index.put(road)
    config = MergeConfig()

    inputs = (_input_batches if args.workload == "simulated" else _far_batches)(settings, args)
    ingest = Ingest(settings, registry, _sink(_Producer(settings.partitions)))

    def make_ingest(sink: Sink) -> Callable[[Batch], Awaitable[None]]:
        ingest.sink = sink  # one handler throughout, so its caches stay warm as in a worker
        return ingest

    def make_merge(sink: Sink) -> Callable[[Batch], Awaitable[None]]:
        store = SlotStore(settings, sink)
        for partition in range(settings.partitions):
            store.hold(partition)
        return Merge(settings, config, store, sink)

    ingest_stage = _Stage(inputs, make_ingest, settings.partitions)
    ingest_out: list[list[Any]] = []
    asyncio.run(ingest_stage.run(ingest_out))
    hops = _hop_batches(settings, ingest_out)
    merge_stage = _Stage(hops, make_merge, settings.partitions)
    merge_out: list[list[Any]] = []
    asyncio.run(merge_stage.run(merge_out))

    rows = []
    for name, stage, count in (
        ("ingest", ingest_stage, _count(inputs)),
        ("merge", merge_stage, _count(hops)),
    ):
        passes = [asyncio.run(stage.run()) for _ in range(args.repeats)]
        rows.append((name, count, passes))

    what = {
        "far": f"{args.events:,} far-off reports ({REPORTS_PER_PLACE} a grid cell, none malformed",
        "hot": f"{args.events:,} far-off reports (all on one grid cell, none malformed",
    }.get(
        args.workload,
        f"{args.events:,} simulated messages ({_BAD_RATIO:.0%} malformed, seed {args.seed}",
    )
    lines = [
        f"{what}, {args.rate:g}/s of event time, UTC{args.offset:+g}) in batches of "
        f"{args.batch}; {args.repeats} passes after a warm-up",
        f"python {platform.python_version()}, {platform.machine()}",
        "",
        f"{'stage':<8}{'messages':>10}{'median cpu us/msg':>19}{'best':>8}{'output digest':>19}",
    ]
    changelog = changelog_topic_name(settings)
    digests = {
        "ingest": _digest(ingest_out, changelog),
        "merge": _digest(merge_out, changelog),
    }
    for name, count, passes in rows:
        lines.append(
            f"{name:<8}{count:>10,}{statistics.median(passes) / count * 1e6:>19.1f}"
            f"{min(passes) / count * 1e6:>8.1f}{digests[name]:>19}"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    if args.profile:
        for name, stage in (("ingest", ingest_stage), ("merge", merge_stage)):
            sys.stdout.write(f"\n== {name}, one pass under cProfile ==\n")
            sys.stdout.write(_profile(stage, args.sort))
    return 0


if __name__ == "__main__":
    sys.exit(main())
