"""``citygrid publish`` without a broker: what a message is, where it goes, under which key, and
that whatever the codec refuses is never addressed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from schemas.codec import Rejection
from schemas.enums import RejectReason
from schemas.json import dumps
from streams.domain.signatures import (
    SIGNATURE_HEADER,
    DeviceKeys,
    sign,
    signature_from_headers,
)
from streams.publish import MessageKind, Outgoing, detect_kind, prepare
from streams.settings import Settings
from tests.factories import ABSENT, NOW, event_bytes, feedback_bytes, feedback_dict

SETTINGS = Settings.from_env({}, topic_prefix="dev.")


def _prepared(raw: bytes, kind: MessageKind | None = None) -> Outgoing:
    message = prepare(raw, SETTINGS, now=NOW, kind=kind)
    assert isinstance(message, Outgoing), message
    return message


def _refused(raw: bytes, kind: MessageKind | None = None) -> Rejection:
    message = prepare(raw, SETTINGS, now=NOW, kind=kind)
    assert isinstance(message, Rejection), message
    return message


@pytest.mark.parametrize(
    ("domain", "category"),
    [("fire", "1003"), ("environment", "2004"), ("sanitation", "3001"), ("citymgmt", "4001")],
)
def test_an_event_goes_to_its_domain_topic_keyed_by_device(domain: str, category: str) -> None:
    raw = event_bytes(source="camera", domain=domain, category=category, device_id="cam-7")
    message = _prepared(raw)
    assert message.kind == "event"
    assert message.topic == f"dev.city.events.{domain}"
    assert message.key == b"cam-7"
    assert message.value == raw
    assert "cam-7" in message.summary


def test_feedback_goes_to_the_feedback_topic_keyed_by_task() -> None:
    raw = feedback_bytes("accept", task_id="yulong-st~4001~a1b2c3d4e5f6")
    message = _prepared(raw)
    assert message.kind == "feedback"
    assert message.topic == "dev.city.feedback"
    assert message.key == b"yulong-st~4001~a1b2c3d4e5f6"
    assert message.value == raw


def test_the_bytes_are_sent_as_they_were_validated() -> None:
    raw = b'{\n  "task_id": "t~4001~1", "action": "accept",\n  "actor_id": "o-1",\n'
    raw += b'  "at": "2026-11-29T09:55:00+08:00"\n}\n'
    assert _prepared(raw).value == raw


def test_the_kind_is_told_by_the_fields_only_one_of_them_has() -> None:
    assert detect_kind(event_bytes()) == "event"
    assert detect_kind(feedback_bytes("dispatch")) == "feedback"
    # A broken event is still recognisably an event, so the codec can say what is wrong.
    assert detect_kind(event_bytes(location=ABSENT, occurred_at=ABSENT)) == "event"
    assert detect_kind(b"{}") is None
    assert detect_kind(b'{"evidence": []}') is None
    assert detect_kind(b"[1, 2]") is None
    assert detect_kind(b"not json") is None


@pytest.mark.parametrize(
    ("raw", "reason", "detail"),
    [
        (event_bytes(location=ABSENT), RejectReason.SCHEMA, "location: required"),
        (event_bytes(category="9999"), RejectReason.UNKNOWN_CATEGORY, "9999"),
        (
            event_bytes(domain="fire", category="4001"),
            RejectReason.DOMAIN_MISMATCH,
            "belongs to citymgmt",
        ),
        (
            event_bytes(occurred_at=NOW + timedelta(hours=1)),
            RejectReason.FUTURE_TIMESTAMP,
            "ahead of",
        ),
        (feedback_bytes("dispatch", assignee=ABSENT), RejectReason.SCHEMA, "assignee: required"),
        (
            dumps(feedback_dict() | {"action": "approve"}),
            RejectReason.SCHEMA,
            "action: must be one of",
        ),
        (b'{"event_id": ', RejectReason.INVALID_JSON, "not UTF-8 JSON"),
        (b"[1, 2]", RejectReason.SCHEMA, "must be a JSON object"),
        (b'{"hello": "world"}', RejectReason.SCHEMA, "pass --kind"),
    ],
)
def test_whatever_the_codec_refuses_is_not_addressed(
    raw: bytes, reason: RejectReason, detail: str
) -> None:
    refused = _refused(raw)
    assert refused.reason is reason
    assert detail in refused.detail


def test_a_message_larger_than_the_workers_limit_is_refused_unread() -> None:
    small = Settings.from_env({}, max_message_bytes=200)
    refused = prepare(event_bytes(), small, now=NOW)
    assert isinstance(refused, Rejection)
    assert refused.reason is RejectReason.TOO_LARGE


def test_a_given_kind_overrides_detection() -> None:
    refused = _refused(event_bytes(), kind="feedback")
    assert refused.detail == "task_id: required"
    assert _prepared(event_bytes(), kind="event").kind == "event"


KEYS = DeviceKeys({"cam-7": [bytes(range(32)), bytes(range(100, 132))]})


def test_with_device_keys_an_event_is_signed_with_its_devices_current_key() -> None:
    raw = event_bytes(source="camera", device_id="cam-7")
    message = prepare(raw, SETTINGS, now=NOW, keys=KEYS)
    assert isinstance(message, Outgoing), message
    assert message.value == raw
    assert message.headers == ((SIGNATURE_HEADER, sign(bytes(range(32)), raw)),)
    assert "signed" in message.summary
    assert KEYS.verify("cam-7", message.value, signature_from_headers(message.headers)) is None


def test_without_device_keys_nothing_is_signed() -> None:
    assert _prepared(event_bytes(source="camera", device_id="cam-7")).headers == ()


def test_an_event_whose_device_has_no_key_is_refused_not_sent_unsigned() -> None:
    refused = prepare(event_bytes(device_id="ter-1"), SETTINGS, now=NOW, keys=KEYS)
    assert isinstance(refused, Rejection)
    assert refused.reason is RejectReason.BAD_SIGNATURE
    assert "no key for device 'ter-1'" in refused.detail


def test_feedback_is_never_signed() -> None:
    message = prepare(feedback_bytes("accept"), SETTINGS, now=NOW, keys=KEYS)
    assert isinstance(message, Outgoing)
    assert message.headers == ()
