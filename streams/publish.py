"""Publishing one hand-made message, as a terminal or a console would: an event to its domain's
topic (keyed by device id) or feedback to ``city.feedback`` (keyed by task id), sent only once
the codec has accepted it, signed when given the device's key (:mod:`streams.domain.signatures`).

:func:`prepare` is pure (bytes in, an :class:`Outgoing` message or the codec's
:class:`~schemas.codec.Rejection` out); :func:`send` writes an accepted message to Kafka.
Feedback is checked for its shape only: whether the task exists and allows the action is the
worker's decision, and a refusal then lands in ``city.events.dlq``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal, NamedTuple

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from schemas.codec import EVENT_FIELDS, FEEDBACK_FIELDS, Rejection, decode_event, decode_feedback
from schemas.enums import RejectReason
from schemas.json import JSONDecodeError, loads
from streams.domain.signatures import SIGNATURE_HEADER, DeviceKeys, sign
from streams.exceptions import CitygridError
from streams.settings import Settings
from streams.topics import EVENT_TOPICS, kafka_client_options, topic_name

__all__ = [
    "FEEDBACK_TOPIC",
    "MessageKind",
    "Outgoing",
    "PublishError",
    "Sent",
    "detect_kind",
    "prepare",
    "send",
]

MessageKind = Literal["event", "feedback"]

FEEDBACK_TOPIC: Final = "city.feedback"
"""The contract topic of feedback (before the deployment's topic prefix)."""

# Fields only one of the two messages has; those both could carry (evidence) tell nothing.
_EVENT_ONLY: Final = EVENT_FIELDS - FEEDBACK_FIELDS
_FEEDBACK_ONLY: Final = FEEDBACK_FIELDS - EVENT_FIELDS

# A metadata wait longer than this means the topic is missing or the broker is away.
_REQUEST_TIMEOUT_MS: Final = 15_000


class PublishError(CitygridError):
    """An accepted message could not be written to its topic."""


class Outgoing(NamedTuple):
    """A message the codec accepted, addressed to its topic."""

    kind: MessageKind
    topic: str
    key: bytes
    value: bytes
    """The input bytes, unchanged: what the worker decodes is what was validated here."""
    summary: str
    """One line for people: which message, from whom or for which task."""
    headers: tuple[tuple[str, bytes], ...] = ()
    """The device's signature (``citygrid.signature``) when the event was signed; else none."""


class Sent(NamedTuple):
    """Where Kafka put a message."""

    topic: str
    partition: int
    offset: int


def detect_kind(raw: bytes) -> MessageKind | None:
    """``event`` or ``feedback`` by the fields only one of them has; None when the bytes are not
    a JSON object or its fields do not tell (as many of one as of the other)."""
    obj = _json_object(raw)
    if obj is None:
        return None
    as_event = len(_EVENT_ONLY.intersection(obj))
    as_feedback = len(_FEEDBACK_ONLY.intersection(obj))
    if as_event == as_feedback:
        return None
    return "event" if as_event > as_feedback else "feedback"


def prepare(
    raw: bytes,
    settings: Settings,
    *,
    now: datetime,
    kind: MessageKind | None = None,
    keys: DeviceKeys | None = None,
) -> Outgoing | Rejection:
    """Validate ``raw`` as ``kind`` (detected from its fields when None) and address it.

    Args:
        raw: the message exactly as it will be sent.
        settings: the topic prefix and the message size limit the workers apply.
        now: the clock for the codec's future-timestamp rule (timezone-aware).
        kind: ``event`` or ``feedback``; None detects it with :func:`detect_kind`.
        keys: sign an event with its device's current key from these; an event whose device
            has no key here is refused (``bad_signature``) rather than sent unsigned. Feedback
            is never signed.
    """
    limit = settings.max_message_bytes
    kind = kind or detect_kind(raw)
    if kind is None:
        return _undetected(raw, now, limit)
    if kind == "feedback":
        feedback = decode_feedback(raw, max_bytes=limit, now=now)
        if isinstance(feedback, Rejection):
            return feedback
        return Outgoing(
            kind="feedback",
            topic=topic_name(settings, FEEDBACK_TOPIC),
            key=feedback.task_id.encode(),
            value=raw,
            summary=f"feedback {feedback.action.value} on {feedback.task_id} "
            f"by {feedback.actor_id}",
        )
    event = decode_event(raw, now=now, max_bytes=limit)
    if isinstance(event, Rejection):
        return event
    headers: tuple[tuple[str, bytes], ...] = ()
    if keys is not None:
        key = keys.signing_key(event.device_id)
        if key is None:
            return Rejection(
                RejectReason.BAD_SIGNATURE,
                f"no key for device {event.device_id!r} in the device key file: nothing to sign "
                "with",
            )
        headers = ((SIGNATURE_HEADER, sign(key, raw)),)
    return Outgoing(
        kind="event",
        topic=topic_name(settings, EVENT_TOPICS[event.domain]),
        key=event.device_id.encode(),
        value=raw,
        summary=f"event {event.event_id} ({event.domain.value} {event.category}, "
        f"{event.source.value} {event.device_id}{', signed' if headers else ''})",
        headers=headers,
    )


def _json_object(raw: bytes) -> dict[str, object] | None:
    try:
        obj = loads(raw)
    except JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def _undetected(raw: bytes, now: datetime, limit: int) -> Rejection:
    verdict = decode_event(raw, now=now, max_bytes=limit)
    if isinstance(verdict, Rejection) and (
        verdict.reason is not RejectReason.SCHEMA or _json_object(raw) is None
    ):
        # Too large, not JSON, not an object: the codec says why, in the words of the DLQ.
        return verdict
    return Rejection(
        RejectReason.SCHEMA,
        "cannot tell an event (event_id, device_id, category, ...) from feedback "
        "(task_id, action, actor_id, ...) by its fields: pass --kind event or --kind feedback",
    )


async def send(settings: Settings, message: Outgoing) -> Sent:
    """Write ``message`` and wait until every in-sync replica has it.

    Raises:
        PublishError: the broker could not be reached, or did not take the write.
    """
    producer = AIOKafkaProducer(
        **kafka_client_options(settings),
        acks="all",
        client_id="citygrid-publish",
        request_timeout_ms=_REQUEST_TIMEOUT_MS,
    )
    try:
        await producer.start()
        meta = await producer.send_and_wait(
            message.topic, message.value, key=message.key, headers=list(message.headers)
        )
    except KafkaConnectionError as exc:
        raise PublishError(
            f"cannot reach the broker at {settings.bootstrap_servers}: {exc}"
        ) from exc
    except KafkaTimeoutError as exc:
        raise PublishError(
            f"{settings.bootstrap_servers} did not take the write to {message.topic} within "
            f"{_REQUEST_TIMEOUT_MS // 1000} s: does the topic exist? (`citygrid topics create`)"
        ) from exc
    except KafkaError as exc:
        raise PublishError(
            f"could not write to {message.topic} on {settings.bootstrap_servers}: {exc!r}"
        ) from exc
    finally:
        await producer.stop()
    return Sent(message.topic, meta.partition, meta.offset)
