"""Merge: apply each placed event, feedback and deadline tick to its slot's state, and publish what
changed.

Runs on the repartition topic, so a slot's messages and its state share a partition. The decision
is :func:`streams.domain.merge.decide` (events), :func:`streams.domain.tasks.on_feedback` and
:func:`streams.domain.tasks.on_tick`; this stage loads and stores state in the
:class:`~streams.engine.SlotStore`, publishes task states and task events with CloudEvents
headers, and counts. A batch's changed slots are written to the changelog once each, after its
outputs are queued and before its offsets are committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from aiokafka.structs import ConsumerRecord

from agents.dead_letters import send_to_dlq
from schemas.codec import Rejection, decode_accepted_event, decode_event, decode_feedback
from schemas.enums import Domain, RejectReason, Source, TaskEventType
from schemas.event import Event
from schemas.json import dumps, dumps_kept, loads
from schemas.task import Task
from streams import metrics
from streams.cloudevents import binary_headers
from streams.domain.merge import MergeConfig, Outcome, Result, SlotState, decide
from streams.domain.places import Place
from streams.domain.tasks import Refused, on_feedback, on_tick
from streams.engine import Batch, Sink, SlotStore
from streams.hop import KIND_HEADER, ORIGIN_HEADER, PLACE_HEADER, Kind, Origin
from streams.settings import Settings
from streams.tally import Tally
from streams.topics import topic_name

__all__ = ["Merge"]

logger = logging.getLogger(__name__)

_PLACE_CACHE = 32_768
"""Decoded place headers kept (places repeat: see agents/ingest.py); a bound keeps memory flat,
about 180 B an entry (tracemalloc)."""
_FEEDBACK = Kind.FEEDBACK.value.encode()
_TICK = Kind.TICK.value.encode()
_STATE_TYPE = "city.task.state"
_EVENT_TYPES = {kind: f"city.task.{kind.value}" for kind in TaskEventType}
"""The CloudEvents ``type`` of each TaskEvent type."""


def _kind_and_place(headers: Sequence[tuple[str, bytes]] | None) -> tuple[bytes, bytes | None]:
    """A hop record's kind (an event when unmarked) and place headers, without a dict of them."""
    kind, place = b"event", None
    for name, value in headers or ():
        if name == KIND_HEADER:
            kind = value
        elif name == PLACE_HEADER:
            place = value
    return kind, place


class Merge:
    """The merge stage's batch handler."""

    def __init__(
        self,
        settings: Settings,
        config: MergeConfig,
        store: SlotStore,
        sink: Sink,
        *,
        on_state: Callable[[bytes, Task], None] | None = None,
    ) -> None:
        self.settings = settings
        self.on_state = on_state
        """Told of every task state sent, with its encoding (the worker's task book)."""
        self.config = config
        self.store = store
        self.sink = sink
        self.source = f"/citygrid/{settings.app_id}"
        self.state_topic = topic_name(settings, "city.tasks.state")
        self.events_topic = topic_name(settings, "city.tasks.events")
        self.dlq = topic_name(settings, "city.events.dlq")
        self.max_bytes = settings.max_message_bytes
        self.tally = Tally()
        self.lags: list[float] = []
        self._places: dict[bytes, Place] = {}
        self._states: dict[str, tuple[Task, int]] = {}
        """Task id to its latest state and seq in this batch: written once, at the batch's end."""

    async def __call__(self, batch: Batch) -> None:
        now = datetime.now(UTC)
        for tp, records in batch.items():
            partition = tp.partition
            for record in records:
                kind, place = _kind_and_place(record.headers)
                if kind == _FEEDBACK:
                    await self._on_feedback(partition, record)
                elif kind == _TICK:
                    await self._on_tick(partition, record)
                else:
                    await self._on_event(partition, record, place, now)
        for task, seq in self._states.values():
            await self._send_state(task, seq)
        self._states.clear()
        await self.store.write_changes()
        self.tally.apply()
        for lag in self.lags:
            metrics.EVENT_LAG.observe(lag)
        self.lags.clear()

    def publish_task(self, task: Task, seq: int) -> None:
        """Write a task's full state to ``city.tasks.state`` at the end of the batch.

        ``city.tasks.state`` is compacted: a consumer keeps the latest state of each task. A
        batch (milliseconds of traffic) writes each task it changed once, its last state, as a
        Kafka Streams record cache does; every transition is on ``city.tasks.events``.
        """
        self._states[task.task_id] = (task, seq)

    async def _send_state(self, task: Task, seq: int) -> None:
        if self.on_state is None:
            value = dumps(task.wire_fields())
        else:
            # Kept until the task book reads it back: only its bytes, not orjson's buffer.
            value = dumps_kept(task.wire_fields())
            self.on_state(value, task)
        await self.sink.send(
            self.state_topic,
            value,
            key=task.task_id.encode(),
            headers=binary_headers(
                id=f"{task.task_id}:{seq}:state",
                type=_STATE_TYPE,
                source=self.source,
                time=task.updated_at,
                subject=task.task_id,
            ),
        )

    async def _publish(self, outcome: Outcome) -> None:
        for change in outcome.changes:
            event = change.event
            await self.sink.send(
                self.events_topic,
                dumps(event.wire_fields()),
                key=event.task_id.encode(),
                headers=binary_headers(
                    id=event.id,
                    type=_EVENT_TYPES[event.type],
                    source=self.source,
                    time=event.at,
                    subject=event.task_id,
                ),
            )
        if outcome.changes:
            self.publish_task(outcome.changes[-1].task, outcome.state.seq)

    def _count(self, outcome: Outcome, domain: Domain, lag: float, source: Source) -> None:
        # Enum members as label values: each is its value (StrEnum), without a lookup per event.
        result, tally = outcome.result, self.tally
        if result is Result.DUPLICATE:
            tally.add(metrics.EVENTS_DUPLICATE, domain)
            return
        tally.add(metrics.EVENTS_ACCEPTED, domain, source)
        self.lags.append(max(0.0, lag))
        if result in (Result.BELOW, Result.PENDING):
            tally.add(metrics.SENSOR_READINGS, domain, result.value)
        elif result is Result.CREATED:
            tally.add(metrics.TASKS_CREATED, domain)
            if outcome.state.task is not None and outcome.state.task.rebound_of:
                tally.add(metrics.TASK_REBOUNDS, domain)
        elif result is Result.MERGED:
            tally.add(metrics.TASKS_MERGED, domain)

    def _observe_transitions(self, outcome: Outcome) -> None:
        for change in outcome.changes:
            task, kind = change.task, change.event.type
            domain = task.domain
            self.tally.add(metrics.TASK_TRANSITIONS, domain, kind)
            if kind is TaskEventType.DISPATCHED and task.dispatched_at is not None:
                seconds = (task.dispatched_at - task.created_at).total_seconds()
                metrics.TASK_DISPATCH_SECONDS.labels(domain).observe(max(0.0, seconds))
            elif kind is TaskEventType.VERIFY_FAILED:
                self.tally.add(metrics.TASK_REWORKS, domain)
            elif kind is TaskEventType.VERIFY_PASSED and task.closed_at is not None:
                seconds = (task.closed_at - task.created_at).total_seconds()
                metrics.TASK_RESOLUTION_SECONDS.labels(domain).observe(max(0.0, seconds))
            elif kind is TaskEventType.OVERDUE:
                self.tally.add(metrics.TASKS_OVERDUE_TOTAL, domain)

    async def _store_and_publish(self, partition: int, key: bytes, outcome: Outcome) -> None:
        self.store.put(partition, key, outcome.state)
        await self._publish(outcome)
        self._observe_transitions(outcome)
        if not logger.isEnabledFor(logging.INFO):
            return
        for change in outcome.changes:
            event = change.event
            if event.type is TaskEventType.MERGED:
                # Merges are the bulk of the traffic: kept out of the info log.
                continue
            logger.info(
                "task %s %s (%s)",
                event.task_id,
                event.type.value,
                event.status.value,
                extra={
                    "task_id": event.task_id,
                    "event_id": event.event_id,
                    "type": event.type.value,
                    "status": event.status.value,
                    "actor_id": event.actor_id,
                },
            )

    async def _on_event(
        self,
        partition: int,
        record: ConsumerRecord[bytes, bytes],
        place_header: bytes | None,
        now: datetime,
    ) -> None:
        event = self._decode(record.value, now)
        if event is None:
            return
        if place_header is None:
            raise ValueError(f"a placed event without its {PLACE_HEADER} header: {record!r}")
        place = self._place(bytes(place_header))
        key = record.key
        state = self.store.get(partition, key)
        outcome = decide(state, event, place, self.config)
        if outcome.result is Result.FULL:
            await self._refuse_full(record, state)
            return
        if outcome.result is Result.DUPLICATE:
            # A replay after a crash finds its effects already in the store, but the outputs of
            # that moment may not have reached the broker: write the task's state again (the
            # topic is compacted, consumers see the same task). Repeats that never joined the
            # task, such as a sensor's older readings, have nothing to restore.
            if state.task is not None and state.in_task(event):
                self.publish_task(state.task, state.seq)
        else:
            await self._store_and_publish(partition, key, outcome)
        lag = (now - event.occurred_at).total_seconds()
        self._count(outcome, event.domain, lag, event.source)

    async def _refuse_full(self, record: ConsumerRecord[bytes, bytes], state: SlotState) -> None:
        """Dead-letter a report its task has no room for, as ingest would have (the original's
        topic, partition and offset come with the hop record)."""
        task_id = state.task.task_id if state.task is not None else "?"
        rejection = Rejection(
            RejectReason.TASK_FULL,
            f"task {task_id} lists {self.config.max_task_reports} reports, the most a task takes "
            "(CITYGRID_MAX_TASK_REPORTS)",
        )
        self.tally.add(metrics.EVENTS_REJECTED, rejection.reason.value)
        packed = dict(record.headers or ()).get(ORIGIN_HEADER)
        # Hop records of a worker before the origin header: the hop's own coordinates.
        origin = (
            Origin(record.topic, record.partition, record.offset, record.key)
            if packed is None
            else Origin.unpack(packed)
        )
        await send_to_dlq(self.sink, self.dlq, rejection, origin, record.value)

    def _decode(self, raw: bytes, now: datetime) -> Event | None:
        try:
            # Ingest validated these bytes already.
            return decode_accepted_event(raw)
        except (AttributeError, KeyError, TypeError, ValueError):
            pass
        # Only a codec change between the two stages could bring bytes ingest did not accept.
        event = decode_event(raw, now=now, max_bytes=self.max_bytes)
        if isinstance(event, Rejection):
            logger.error("placed event no longer decodes: %s", event.detail)
            return None
        return event

    def _place(self, header: bytes) -> Place:
        place = self._places.get(header)
        if place is None:
            if len(self._places) >= _PLACE_CACHE:
                self._places.clear()
            place = self._places[header] = Place(**loads(header))
        return place

    async def _on_feedback(self, partition: int, record: ConsumerRecord[bytes, bytes]) -> None:
        feedback = decode_feedback(record.value, max_bytes=self.max_bytes)
        if isinstance(feedback, Rejection):
            logger.error("routed feedback no longer decodes: %s", feedback.detail)
            return
        key = record.key
        result = on_feedback(self.store.get(partition, key), feedback, self.config)
        if isinstance(result, Refused):
            rejection = Rejection(result.reason, result.detail)
            self.tally.add(metrics.FEEDBACK_CONSUMED, "dead_lettered")
            self.tally.add(metrics.EVENTS_REJECTED, rejection.reason.value)
            origin = Origin.from_headers(dict(record.headers or ()))
            await send_to_dlq(self.sink, self.dlq, rejection, origin, record.value)
            return
        if result.result is Result.DUPLICATE:
            # Applied before (a retry, or a replay after a crash): as for a repeated report, the
            # task's state is written again in case that moment's outputs were lost.
            self.tally.add(metrics.FEEDBACK_CONSUMED, "duplicate")
            if result.state.task is not None:
                self.publish_task(result.state.task, result.state.seq)
            return
        self.tally.add(metrics.FEEDBACK_CONSUMED, "applied")
        await self._store_and_publish(partition, key, result)

    async def _on_tick(self, partition: int, record: ConsumerRecord[bytes, bytes]) -> None:
        at = datetime.fromisoformat(record.value.decode())
        outcome = on_tick(self.store.get(partition, record.key), at)
        if outcome is not None:
            await self._store_and_publish(partition, record.key, outcome)
