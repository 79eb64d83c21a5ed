"""Ingest: validate every message on the domain topics and ``city.feedback``, and route it to its
slot on the repartition hop.

The stage is thin: the codec decides validity, a registered device's key whether its signature
holds (:mod:`streams.domain.signatures`), the road index decides an event's place, a task id
names its slot. Refused messages go to the DLQ byte for byte; accepted ones go, unchanged, to the
one repartition topic keyed by slot (place and category), where the merge stage owns their state.
Feedback for ids citygrid never issued is refused here; refusals that need the task
(``invalid_transition``, ``unknown_task`` for a superseded task) are the merge stage's.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from aiokafka.structs import ConsumerRecord

from agents.dead_letters import send_to_dlq
from schemas.codec import Rejection, decode_event, decode_feedback
from schemas.enums import Domain, RejectReason
from schemas.event import Event
from schemas.json import dumps_kept
from streams import metrics
from streams.domain.merge import slot_key, slot_of_task
from streams.domain.places import Place
from streams.domain.signatures import DeviceKeys, signature_from_headers
from streams.engine import Batch, Sink, placed_topic_name
from streams.hop import KIND_HEADER, ORIGIN_HEADER, PLACE_HEADER, Kind, Origin
from streams.registry_feed import RegistryFeed
from streams.settings import Settings
from streams.tally import Tally
from streams.topics import domain_of_topic, topic_name

__all__ = ["Ingest"]

logger = logging.getLogger(__name__)

_EVENT_KIND = (KIND_HEADER, Kind.EVENT.value.encode())
_FEEDBACK_KIND = (KIND_HEADER, Kind.FEEDBACK.value.encode())
_PLACE_CACHE = 32_768
"""Encoded place headers kept: places repeat (a district's roads and grid cells number in the
thousands); a bound keeps memory flat, about 190 B an entry (tracemalloc)."""


def _origin(record: ConsumerRecord[bytes, bytes]) -> Origin:
    return Origin(record.topic, record.partition, record.offset, record.key)


class Ingest:
    """The ingest stage's batch handler."""

    def __init__(
        self,
        settings: Settings,
        registry: RegistryFeed,
        sink: Sink,
        keys: DeviceKeys | None = None,
    ) -> None:
        self.settings = settings
        self.keys = DeviceKeys() if keys is None else keys
        self.registry = registry
        self.sink = sink
        self.placed = placed_topic_name(settings)
        self.dlq = topic_name(settings, "city.events.dlq")
        self.feedback_topic = topic_name(settings, "city.feedback")
        self.max_bytes = settings.max_message_bytes
        self.tally = Tally()
        self._place_headers: dict[Place, tuple[str, bytes]] = {}

    async def __call__(self, batch: Batch) -> None:
        now = datetime.now(UTC)
        latest: set[str] = set()
        for tp, records in batch.items():
            if tp.topic == self.feedback_topic:
                for record in records:
                    await self._feedback(record, now)
                continue
            domain = domain_of_topic(self.settings, tp.topic)
            label = domain.value if domain else "unknown"
            accepted = False
            origin = Origin.packed_prefix(tp.topic, tp.partition)
            for record in records:
                accepted = await self._event(record, domain, label, now, origin) or accepted
            if accepted:
                latest.add(label)
        self.tally.apply()
        stamp = now.timestamp()
        for label in latest:
            metrics.LAST_EVENT.labels(label).set(stamp)

    async def _event(
        self,
        record: ConsumerRecord[bytes, bytes],
        domain: Domain | None,
        label: str,
        now: datetime,
        origin: bytes,
    ) -> bool:
        """Route one event to its slot, or dead-letter it; ``origin``: its topic partition's
        :meth:`Origin.packed_prefix`."""
        raw = record.value
        result: Event | Rejection = decode_event(
            raw, now=now, topic_domain=domain, max_bytes=self.max_bytes
        )
        if isinstance(result, Event):
            # A registered device's event must carry its signature over these exact bytes.
            result = (
                self.keys.verify(result.device_id, raw, signature_from_headers(record.headers))
                or result
            )
        if isinstance(result, Rejection):
            self.tally.add(metrics.EVENTS_CONSUMED, label, metrics.UNKNOWN_SOURCE)
            self.tally.add(metrics.EVENTS_REJECTED, result.reason.value)
            await send_to_dlq(self.sink, self.dlq, result, _origin(record), raw)
            return False
        # Enum members as label values: each is its value (StrEnum), without a lookup per event.
        self.tally.add(metrics.EVENTS_CONSUMED, result.domain, result.source)
        place = self.registry.index.place_of(result.location)
        header = self._place_headers.get(place)
        if header is None:
            if len(self._place_headers) >= _PLACE_CACHE:
                self._place_headers.clear()
            header = self._place_headers[place] = (PLACE_HEADER, dumps_kept(place._asdict()))
        await self.sink.send(
            self.placed,
            raw,
            key=slot_key(place.key, result.category).encode(),
            headers=(
                _EVENT_KIND,
                header,
                (ORIGIN_HEADER, Origin.packed(origin, record.offset, record.key)),
            ),
        )
        return True

    async def _feedback(self, record: ConsumerRecord[bytes, bytes], now: datetime) -> None:
        origin = _origin(record)
        result = decode_feedback(record.value, max_bytes=self.max_bytes, now=now)
        if not isinstance(result, Rejection):
            slot = slot_of_task(result.task_id)
            if slot is not None:
                await self.sink.send(
                    self.placed,
                    record.value,
                    key=slot.encode(),
                    headers=(_FEEDBACK_KIND, *origin.headers()),
                )
                return
            result = Rejection(
                RejectReason.UNKNOWN_TASK, f"{result.task_id} is not a citygrid task id"
            )
        self.tally.add(metrics.FEEDBACK_CONSUMED, "dead_lettered")
        self.tally.add(metrics.EVENTS_REJECTED, result.reason.value)
        await send_to_dlq(self.sink, self.dlq, result, origin, record.value)
