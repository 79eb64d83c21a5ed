"""The crash-safety scenario's parts: the seeded input, a deployment of its own whose inputs keep a
deterministic order, its progress read from committed offsets, and its outcome read back from the
output topics."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord, TopicPartition

from schemas.categories import CATEGORIES
from schemas.json import loads
from streams.dlq import HEADER_PREFIX
from streams.engine import placed_topic_name
from streams.settings import Settings
from streams.simulator import Message, SimulatorConfig, messages
from streams.topics import CATALOGUE, EVENT_TOPICS
from tests.harness import WorkerProcess, deploy, run, sample

__all__ = [
    "EVENTS_ENV",
    "SEED_ENV",
    "TIME_LIMITS",
    "Deployment",
    "Outcome",
    "Progress",
    "WorkerExited",
    "differences",
    "events_wanted",
    "scenario_input",
    "seed_wanted",
    "shifted",
]

EVENTS_ENV = "CITYGRID_RELIABILITY_EVENTS"
"""How many simulated events the scenario sends (default 50,000; CI's short form 5,000)."""
SEED_ENV = "CITYGRID_RELIABILITY_SEED"
"""Seeds the simulator and the moments of the kills (default 7)."""

# As `citygrid simulate` sends them at its default rate: 20 a second, the last one about now.
_STEP = timedelta(seconds=0.05)
_BAD_RATIO = 0.01
# The events reach back 50 ms per event (42 minutes for 50,000), and the default time limits start
# at 30 minutes (fire, on the wall clock): tasks would pass due_at during a session. The deadline
# clock then ticks their slot at a moment of the wall clock, and the overdue transition lands at
# a different place in each run's slot history. A week keeps every deadline out of reach: what
# is compared is what crashes do to events, not the clock.
TIME_LIMITS = ",".join(f"{code}=7d" for code in sorted(CATEGORIES))
_POLL_S = 0.2
_INTAKE_POLL_S = 0.02
_BROKER_AWAY_S = 120.0


def scenario_input(count: int, seed: int) -> list[Message]:
    """``count`` simulated events (about 1% malformed, no feedback), fixed bytes for the session.

    Their ``occurred_at`` come from a stepping clock ending now, not from the wall clock as they
    are generated, so every run of the session sends the very same bytes.
    """
    start = datetime.now(UTC) - count * _STEP
    steps = itertools.count()

    def clock() -> datetime:
        return start + next(steps) * _STEP

    config = SimulatorConfig(count=count, seed=seed, bad_ratio=_BAD_RATIO, feedback=False)
    return list(messages(config, clock=clock))


class Progress(NamedTuple):
    """How far a deployment got, from its groups' committed offsets (what survives a crash)."""

    ingested: int
    """Committed offsets of ``<app_id>.ingest`` on the input topics, summed."""
    inputs: int
    """End offsets of the input topics, summed."""
    merged: int
    """Committed offsets of ``<app_id>.merge`` on the hop, summed."""
    hopped: int
    """End offsets of the hop, summed."""

    @property
    def drained(self) -> bool:
        """Every input and every hop record handled and committed."""
        return self.ingested == self.inputs and self.merged == self.hopped

    def share(self, events: int, accepted: int) -> float:
        """The share of the work done, when ``accepted`` of ``events`` inputs reach the hop."""
        return min(1.0, (self.ingested + self.merged) / max(1, events + accepted))


class WorkerExited(AssertionError):
    """The worker ended while a test waited for it to get somewhere."""

    def __init__(self, code: int, what: str, progress: Progress, log_tail: str) -> None:
        super().__init__(f"the worker exited (code {code}) before {what}; {progress}\n{log_tail}")
        self.code = code


class Outcome(NamedTuple):
    """What a deployment published, as a consumer sees it."""

    tasks: dict[str, dict[str, Any]]
    """``city.tasks.state``: the latest value of each key."""
    dead_letters: dict[tuple[str, int, int], str]
    """``city.events.dlq``: the reason for each distinct origin (topic without the deployment's
    prefix, partition, offset)."""
    dead_letter_records: int
    task_events: dict[str, dict[str, dict[str, Any]]]
    """``city.tasks.events``: each task's TaskEvents by id."""
    task_event_records: int
    conflicts: list[str]
    """TaskEvent ids or dead-letter origins written twice with different contents."""

    def summary(self) -> str:
        reports = sum(len(task["event_ids"]) for task in self.tasks.values())
        distinct = sum(len(events) for events in self.task_events.values())
        return (
            f"{len(self.tasks):,} tasks holding {reports:,} reports; "
            f"{len(self.dead_letters):,} dead letters ({self.dead_letter_records:,} records); "
            f"{distinct:,} task events ({self.task_event_records:,} records)"
        )


def differences(got: Outcome, want: Outcome, limit: int = 10) -> list[str]:
    """How ``got`` differs from ``want``, the first ``limit`` differences of each kind.

    Dead letters may repeat (a replayed batch is dead-lettered again, at the same origin) but none
    may be missing; TaskEvents may repeat under the same id, with the same contents.
    """
    found = list(got.conflicts[:limit])
    missing = sorted(want.tasks.keys() - got.tasks.keys())
    extra = sorted(got.tasks.keys() - want.tasks.keys())
    found += [f"task {task_id} missing" for task_id in missing[:limit]]
    found += [f"task {task_id} not in the undisturbed run" for task_id in extra[:limit]]
    changed = [
        t for t in sorted(want.tasks.keys() & got.tasks.keys()) if got.tasks[t] != want.tasks[t]
    ]
    for task_id in changed[:limit]:
        fields = {
            k: (got.tasks[task_id].get(k), want.tasks[task_id].get(k))
            for k in got.tasks[task_id].keys() | want.tasks[task_id].keys()
            if got.tasks[task_id].get(k) != want.tasks[task_id].get(k)
        }
        found.append(f"task {task_id} differs (got, want): {fields}")
    if got.dead_letters != want.dead_letters:
        lost = sorted(want.dead_letters.keys() - got.dead_letters.keys())
        more = sorted(got.dead_letters.keys() - want.dead_letters.keys())
        other = [
            o for o in want.dead_letters.keys() & got.dead_letters.keys()
            if got.dead_letters[o] != want.dead_letters[o]
        ]  # fmt: skip
        found += [f"dead letter of {origin} missing" for origin in lost[:limit]]
        found += [f"dead letter of {origin} not in the undisturbed run" for origin in more[:limit]]
        found += [f"dead letter of {origin} has another reason" for origin in other[:limit]]
    event_diffs = [
        task_id
        for task_id in sorted(want.task_events.keys() | got.task_events.keys())
        if got.task_events.get(task_id, {}) != want.task_events.get(task_id, {})
    ]
    for task_id in event_diffs[:limit]:
        mine, theirs = got.task_events.get(task_id, {}), want.task_events.get(task_id, {})
        found.append(
            f"task events of {task_id}: missing {sorted(theirs.keys() - mine.keys())}, "
            f"extra {sorted(mine.keys() - theirs.keys())}, "
            f"different {sorted(i for i in mine.keys() & theirs.keys() if mine[i] != theirs[i])}"
        )
    if len(changed) > limit or len(event_diffs) > limit:
        found.append(f"{len(changed)} tasks and {len(event_diffs)} task event logs differ in all")
    return found


@dataclass
class Deployment:
    """One citygrid deployment on the shared broker: its topics, registry and worker."""

    settings: Settings
    worker: WorkerProcess

    @classmethod
    def create(cls, bootstrap: str, name: str, workdir: Path, *, partitions: int = 4) -> Deployment:
        """Topics under the prefix ``<name>.`` and a worker (not started) for them.

        The four input topics get one partition each, created before :func:`deploy` declares the
        rest (it leaves existing topics alone). A task's id comes from its slot's first report,
        and one slot hears from several devices: with several input partitions per domain the
        order in which their reports reach the hop, and so which one is first, could differ
        between two runs even without a crash. The hop and the changelog keep ``partitions``.
        """
        prefix = f"{name}."
        run(_create_single_partition_inputs(bootstrap, prefix))
        settings, worker = deploy(
            bootstrap,
            prefix,
            workdir,
            {
                "CITYGRID_PARTITIONS": str(partitions),
                "CITYGRID_TIME_LIMITS": TIME_LIMITS,
                # Kafka's smallest: a killed worker's partitions move on after 6 s, not 10.
                "CITYGRID_SESSION_TIMEOUT": "6",
            },
        )
        return cls(settings, worker)

    @property
    def bootstrap(self) -> str:
        return self.settings.bootstrap_servers

    @property
    def prefix(self) -> str:
        return self.settings.topic_prefix

    @property
    def app_id(self) -> str:
        return self.worker.env["CITYGRID_APP_ID"]

    def produce(self, batch: Sequence[Message]) -> float:
        """Send the events to their domain topics; returns the seconds it took."""
        started = time.monotonic()
        run(_produce(self.bootstrap, self.prefix, batch))
        return time.monotonic() - started

    def progress(self) -> Progress:
        """One reading of the committed and end offsets (retried while the broker is away)."""
        hop = placed_topic_name(Settings.from_env({}, app_id=self.app_id))
        inputs = [f"{self.prefix}{topic}" for topic in EVENT_TOPICS.values()]
        deadline = time.monotonic() + _BROKER_AWAY_S
        while True:
            try:
                return run(_progress(self.bootstrap, self.app_id, inputs, hop))
            except (KafkaError, OSError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(_POLL_S)

    def wait_for(self, check: Callable[[Progress], bool], within: float, what: str) -> Progress:
        """Poll :meth:`progress` until ``check`` holds; fail if the worker died or time ran out."""
        deadline = time.monotonic() + within
        while True:
            progress = self.progress()
            if check(progress):
                return progress
            process = self.worker.process
            if process is not None and process.poll() is not None:
                raise WorkerExited(process.returncode, what, progress, self.worker.log_tail())
            if time.monotonic() > deadline:
                raise AssertionError(f"not {what} within {within:.0f} s: {progress}")
            time.sleep(_POLL_S)

    def wait_drained(self, within: float) -> Progress:
        """Until every input is ingested and every hop record merged, all of it committed."""
        return self.wait_for(lambda p: p.drained, within, "drained")

    def intake(self) -> int | None:
        """The records the running worker's stages took in since it started, from its /metrics
        (events read by ingest; events merged, or found duplicate, by merge); ``None`` while it
        does not answer. Counted as a batch is decided, before it commits, and quick to read."""
        try:
            text = self.worker.metrics()
        except OSError:
            return None
        names = ("consumed", "accepted", "duplicate")
        return int(sum(sample(text, f"citygrid_events_{name}_total") for name in names))

    def wait_intake(self, target: float, within: float) -> int:
        """Poll :meth:`intake` (every 20 ms) until it reaches ``target``; returns it."""
        deadline = time.monotonic() + within
        while True:
            intake = self.intake()
            if intake is not None and intake >= target:
                return intake
            process = self.worker.process
            if process is not None and process.poll() is not None:
                raise WorkerExited(
                    process.returncode, "its intake grew", self.progress(), self.worker.log_tail()
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"intake {intake} did not reach {target:.0f} in {within} s")
            time.sleep(_INTAKE_POLL_S)

    def outcome(self) -> Outcome:
        """Read the output topics whole, to their end offsets."""
        return run(_outcome(self.bootstrap, self.prefix))


def shifted(
    dead_letters: dict[tuple[str, int, int], str], batch: Sequence[Message]
) -> dict[tuple[str, int, int], str]:
    """``dead_letters`` as they would be for ``batch`` sent again behind itself (each input topic
    has one partition, so the copies sit one topic's count further)."""
    counts = Counter(EVENT_TOPICS[m.domain] for m in batch)
    return {(t, p, o + counts[t]): reason for (t, p, o), reason in dead_letters.items()}


async def _create_single_partition_inputs(bootstrap: str, prefix: str) -> None:
    """The four input topics as the catalogue declares them, but with one partition each."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        inputs = set(EVENT_TOPICS.values())
        await admin.create_topics(
            [
                NewTopic(
                    f"{prefix}{spec.name}",
                    num_partitions=1,
                    replication_factor=1,
                    topic_configs=spec.config,
                )
                for spec in CATALOGUE
                if spec.name in inputs
            ]
        )
    finally:
        await admin.close()


async def _produce(bootstrap: str, prefix: str, batch: Sequence[Message]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=256 * 1024
    )
    await producer.start()
    try:
        pending = []
        for m in batch:
            topic = f"{prefix}{EVENT_TOPICS[m.domain]}"
            pending.append(await producer.send(topic, m.value, key=m.key, headers=list(m.headers)))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def _progress(bootstrap: str, app_id: str, inputs: Sequence[str], hop: str) -> Progress:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, request_timeout_ms=5000, fetch_max_wait_ms=100
    )
    await admin.start()
    await consumer.start()
    try:
        async with asyncio.timeout(10):
            input_tps = [TopicPartition(t, 0) for t in inputs]
            hop_tps = [TopicPartition(hop, p) for p in await _partitions(consumer, hop)]
            # Named partitions: tansu answers a request for all of a group's offsets with a
            # response aiokafka cannot decode.
            ingest = await admin.list_consumer_group_offsets(
                f"{app_id}.ingest", partitions=input_tps
            )
            merge = await admin.list_consumer_group_offsets(f"{app_id}.merge", partitions=hop_tps)
            ends = await _end_offsets(consumer, input_tps + hop_tps)
    finally:
        await consumer.stop()
        await admin.close()

    def committed(offsets: dict[TopicPartition, Any], topics: Sequence[str]) -> int:
        return sum(max(0, meta.offset) for tp, meta in offsets.items() if tp.topic in topics)

    return Progress(
        ingested=committed(ingest, inputs),
        inputs=sum(end for tp, end in ends.items() if tp.topic in inputs),
        merged=committed(merge, [hop]),
        hopped=sum(end for tp, end in ends.items() if tp.topic == hop),
    )


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[int]:
    """The partitions of ``topic`` (none while it does not exist)."""
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        # Created after the consumer started: its metadata is older than the topic.
        # aiokafka has no public way to refresh it.
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic)
    return sorted(partitions or ())


async def _end_offsets(
    consumer: AIOKafkaConsumer, tps: Sequence[TopicPartition]
) -> dict[TopicPartition, int]:
    """The high watermarks of ``tps``, from a fetch: tansu (0.6) answers ListOffsets for the
    latest offset with the last batch's base offset plus one, short of the end by that batch."""
    listed: dict[TopicPartition, int] = await consumer.end_offsets(list(tps))
    consumer.assign(list(tps))
    for tp in tps:
        consumer.seek(tp, max(0, listed[tp] - 1))
    async with asyncio.timeout(10):
        while any(consumer.highwater(tp) is None for tp in tps):
            await consumer.getmany(timeout_ms=100)
    return {tp: max(listed[tp], consumer.highwater(tp)) for tp in tps}


async def _read_whole(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic`` up to its end offsets at the time of the call."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        tps = [TopicPartition(topic, p) for p in await _partitions(consumer, topic)]
        end = await _end_offsets(consumer, tps)
        await consumer.seek_to_beginning(*tps)
        remaining = {tp for tp in tps if end[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for chunk in batch.values():
                records.extend(chunk)
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return records


def _headers(record: ConsumerRecord[bytes, bytes]) -> dict[str, bytes]:
    return {key: bytes(value) for key, value in record.headers or ()}


async def _outcome(bootstrap: str, prefix: str) -> Outcome:
    conflicts: list[str] = []
    tasks: dict[str, dict[str, Any]] = {}
    for record in _in_order(await _read_whole(bootstrap, f"{prefix}city.tasks.state")):
        if record.value is None:
            tasks.pop(record.key.decode(), None)
        else:
            tasks[record.key.decode()] = loads(record.value)

    dead_letters: dict[tuple[str, int, int], str] = {}
    dlq = await _read_whole(bootstrap, f"{prefix}city.events.dlq")
    for record in dlq:
        headers = _headers(record)
        origin = (
            headers[HEADER_PREFIX + "topic"].decode().removeprefix(prefix),
            int(headers[HEADER_PREFIX + "partition"]),
            int(headers[HEADER_PREFIX + "offset"]),
        )
        reason = headers[HEADER_PREFIX + "reason"].decode()
        if dead_letters.setdefault(origin, reason) != reason:
            conflicts.append(f"dead letter of {origin}: {dead_letters[origin]} and {reason}")

    task_events: dict[str, dict[str, dict[str, Any]]] = {}
    events = await _read_whole(bootstrap, f"{prefix}city.tasks.events")
    for record in events:
        event = loads(record.value)
        seen = task_events.setdefault(event["task_id"], {})
        if seen.setdefault(event["id"], event) != event:
            conflicts.append(f"task event {event['id']} written twice, differently")
    return Outcome(tasks, dead_letters, len(dlq), task_events, len(events), conflicts)


def _in_order(
    records: list[ConsumerRecord[bytes, bytes]],
) -> Iterator[ConsumerRecord[bytes, bytes]]:
    return iter(sorted(records, key=lambda r: (r.partition, r.offset)))


def events_wanted() -> int:
    """``$CITYGRID_RELIABILITY_EVENTS``, 50,000 when unset."""
    return int(os.environ.get(EVENTS_ENV, "").strip() or 50_000)


def seed_wanted() -> int:
    """``$CITYGRID_RELIABILITY_SEED``, 7 when unset."""
    return int(os.environ.get(SEED_ENV, "").strip() or 7)
