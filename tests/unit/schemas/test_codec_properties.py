"""Properties of the codec over inputs nobody wrote by hand: it never raises, whatever the bytes,
and what it accepts survives a round trip through the wire form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.categories import CATEGORIES
from schemas.codec import (
    Rejection,
    decode_accepted_event,
    decode_event,
    decode_feedback,
    decode_road,
    parse_timestamp,
)
from schemas.enums import Domain, RejectReason
from schemas.event import Event
from schemas.feedback import Feedback
from schemas.json import dumps
from schemas.road import Road
from tests.factories import (
    NOW,
    event_bytes,
    event_dict,
    evidence_item,
    feedback_dict,
    road_dict,
    with_literal,
)
from tests.unit.schemas.strategies import (
    FAR_FUTURE,
    json_values,
    mutated_events,
    mutated_feedback,
    near_valid_events,
    near_valid_feedback,
    valid_events,
    valid_feedback,
)

_FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_clocks = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - naive bounds, made aware below
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)
_topics = st.none() | st.sampled_from(Domain)


def _check_event(raw: bytes, now: datetime, topic: Domain | None) -> Event | Rejection:
    result = decode_event(raw, now=now, topic_domain=topic)
    if isinstance(result, Rejection):
        assert type(result.reason) is RejectReason
        assert result.detail
    else:
        assert type(result) is Event
        assert result.category in CATEGORIES
        assert CATEGORIES[result.category].domain is result.domain
        assert topic is None or result.domain is topic
        assert result.occurred_at - now <= timedelta(minutes=5)
    return result


def _check_feedback(raw: bytes) -> Feedback | Rejection:
    result = decode_feedback(raw)
    if isinstance(result, Rejection):
        assert type(result.reason) is RejectReason
        assert result.detail
    else:
        assert type(result) is Feedback
    return result


def _check_road(raw: bytes) -> Road | Rejection:
    result = decode_road(raw)
    if isinstance(result, Rejection):
        assert type(result.reason) is RejectReason
        assert result.detail
    else:
        assert type(result) is Road
    return result


def _check_all(raw: bytes, now: datetime = NOW, topic: Domain | None = None) -> None:
    _check_event(raw, now, topic)
    _check_feedback(raw)
    _check_road(raw)


# --- never raises --------------------------------------------------------------------------------


@_FAST
@given(st.binary(max_size=512))
def test_random_bytes_are_decoded_or_rejected(raw: bytes) -> None:
    _check_all(raw)


@_FAST
@given(st.binary(max_size=64), st.integers(0, 600), st.binary(max_size=64))
def test_valid_messages_with_random_bytes_spliced_in_are_decoded_or_rejected(
    junk: bytes, at: int, tail: bytes
) -> None:
    for valid in (event_bytes(), dumps(feedback_dict("handle")), dumps(road_dict())):
        cut = min(at, len(valid))
        _check_all(valid[:cut] + junk + valid[cut:] + tail)


@_FAST
@given(json_values)
def test_any_json_value_is_decoded_or_rejected(value: Any) -> None:
    _check_all(dumps(value))


@_FAST
@given(near_valid_events(), _clocks, _topics)
def test_near_valid_events_are_decoded_or_rejected(
    event: dict[str, Any], now: datetime, topic: Domain | None
) -> None:
    _check_event(dumps(event), now, topic)


@_FAST
@given(mutated_events(), _clocks, _topics)
def test_events_with_one_field_changed_are_decoded_or_rejected(
    event: dict[str, Any], now: datetime, topic: Domain | None
) -> None:
    _check_event(dumps(event), now, topic)


@_FAST
@given(near_valid_feedback() | mutated_feedback())
def test_near_valid_feedback_is_decoded_or_rejected(feedback: dict[str, Any]) -> None:
    _check_feedback(dumps(feedback))


@pytest.mark.parametrize("depth", [1_025, 10_000, 100_000])
@pytest.mark.parametrize(("left", "right"), [(b"[", b"]"), (b'{"a":', b"}")], ids=["list", "obj"])
def test_deep_nesting_is_invalid_json(depth: int, left: bytes, right: bytes) -> None:
    raw = left * depth + b"0" + right * depth
    limit = len(raw)  # past the size check, into the parser
    results = (
        decode_event(raw, now=NOW, max_bytes=limit),
        decode_feedback(raw, max_bytes=limit),
        decode_road(raw, max_bytes=limit),
    )
    for result in results:
        assert isinstance(result, Rejection)
        assert result.reason is RejectReason.INVALID_JSON


@pytest.mark.parametrize("depth", [10, 500, 900, 1_000, 1_022])
@pytest.mark.parametrize("field", ["domain", "location", "extra_field"])
def test_deep_nesting_inside_a_field_never_raises(depth: int, field: str) -> None:
    """Below the parser's depth limit the value is parsed; reporting it must not blow the stack."""
    raw = with_literal(event_dict(), field, b"[" * depth + b"]" * depth)
    result = _check_event(raw, NOW, Domain.FIRE)
    assert isinstance(result, Event) == (field == "extra_field")


# --- what is accepted ----------------------------------------------------------------------------


@_FAST
@given(valid_events())
def test_valid_events_are_accepted_and_round_trip_through_to_wire(event: dict[str, Any]) -> None:
    decoded = decode_event(dumps(event), now=FAR_FUTURE)
    assert isinstance(decoded, Event), decoded
    again = decode_event(dumps(decoded.to_wire()), now=FAR_FUTURE)
    assert again == decoded
    assert again.key == (event["device_id"], event["event_id"])


@_FAST
@given(valid_feedback())
def test_valid_feedback_is_accepted(feedback: dict[str, Any]) -> None:
    decoded = decode_feedback(dumps(feedback))
    assert isinstance(decoded, Feedback), decoded
    assert decoded.action.value == feedback["action"]


@_FAST
@given(valid_events(), st.sampled_from(Domain))
def test_only_the_events_own_topic_accepts_it(event: dict[str, Any], topic: Domain) -> None:
    result = decode_event(dumps(event), now=FAR_FUTURE, topic_domain=topic)
    if topic.value == event["domain"]:
        assert isinstance(result, Event)
    else:
        assert isinstance(result, Rejection)
        assert result.reason is RejectReason.DOMAIN_MISMATCH


@_FAST
@given(st.sampled_from(["terminal", "sensor", "camera", "drone", "hotline"]), st.integers(-3, 3))
def test_decoding_is_deterministic(source: str, minutes: int) -> None:
    raw = dumps(event_dict(source))
    now = NOW + timedelta(minutes=minutes)
    assert decode_event(raw, now=now) == decode_event(raw, now=now)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_events() | near_valid_events() | mutated_events())
def test_accepted_bytes_decode_again_to_the_same_event_unchecked(event: dict[str, Any]) -> None:
    # The merge stage rebuilds the events ingest accepted without checking them again.
    raw = dumps(event)
    decoded = decode_event(raw, now=FAR_FUTURE)
    if isinstance(decoded, Event):
        # repr tells 1 from 1.0, which == does not.
        assert repr(decode_accepted_event(raw)) == repr(decoded)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(event_bytes(), id="terminal"),
        pytest.param(
            event_bytes(
                "sensor", "environment", reading={"metric": "pm25", "value": 180, "unit": "ug/m3"}
            ),
            id="integer-reading",
        ),
        pytest.param(
            event_bytes(location={"lat": 34, "lon": 113, "road_id": "yulong-st"}),
            id="integer-point",
        ),
        pytest.param(
            event_bytes(
                evidence=[evidence_item(uri=None), {"sha256": "AB" * 32, "media_type": "x"}]
            ),
            id="upper-case-hash-and-null-uri",
        ),
        pytest.param(event_bytes(description=None, severity=None), id="explicit-nulls"),
        pytest.param(event_bytes(severity="extreme", vendor={"fw": 3}), id="extra-field"),
        pytest.param(
            with_literal(event_dict(), "occurred_at", b'"2026-11-29t09:30:00.123456789z"'),
            id="lower-case-timestamp",
        ),
    ],
)
def test_accepted_bytes_decode_again_to_the_same_event_unchecked_examples(raw: bytes) -> None:
    decoded = decode_event(raw, now=FAR_FUTURE)
    assert isinstance(decoded, Event), decoded
    assert repr(decode_accepted_event(raw)) == repr(decoded)


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - naive bounds, made aware below
        max_value=datetime(9999, 1, 1),  # noqa: DTZ001
        timezones=st.integers(-23 * 60 - 59, 23 * 60 + 59).map(
            lambda minutes: timezone(timedelta(minutes=minutes))
        ),
    ),
    st.integers(1, 60),
)
def test_timestamps_of_one_offset_share_their_tzinfo(at: datetime, minutes: int) -> None:
    # Shared, they compare without computing offsets; the values must not change.
    later = at + timedelta(minutes=minutes)
    first, second = parse_timestamp(at.isoformat()), parse_timestamp(later.isoformat())
    assert first.tzinfo is second.tzinfo
    assert (first.isoformat(), second.isoformat()) == (at.isoformat(), later.isoformat())
    assert parse_timestamp(at.isoformat().replace("T", "t")) == at
