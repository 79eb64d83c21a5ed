"""decode_event: which messages reach the task stream, which land in the DLQ, and why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from schemas.categories import CATEGORIES
from schemas.codec import DEFAULT_MAX_MESSAGE_BYTES, Rejection, decode_event
from schemas.enums import Domain, RejectReason, Severity, Source
from schemas.event import (
    DESCRIPTION_MAX,
    DEVICE_ID_MAX,
    EVENT_ID_MAX,
    EVIDENCE_MAX,
    ID_MAX,
    MEDIA_TYPE_MAX,
    URI_MAX,
    Event,
    Evidence,
    Location,
    Reading,
)
from schemas.json import dumps
from tests.factories import (
    ABSENT,
    NOW,
    ROAD_ID,
    ROAD_LAT,
    ROAD_LON,
    event_bytes,
    event_dict,
    evidence_item,
    sha256_hex,
    with_field,
    with_literal,
)


def _decode(raw: bytes, topic: Domain | None = Domain.FIRE, **kwargs: Any) -> Event | Rejection:
    return decode_event(raw, now=NOW, topic_domain=topic, **kwargs)


def _accepted(raw: bytes, topic: Domain | None = Domain.FIRE) -> Event:
    result = _decode(raw, topic)
    assert isinstance(result, Event), result
    return result


def _raw(case_id: str, raw: bytes, reason: RejectReason = RejectReason.INVALID_JSON) -> Any:
    return pytest.param(raw, reason, None, Domain.FIRE, id=case_id)


def _bad(
    case_id: str,
    base: dict[str, Any],
    path: str,
    value: Any,
    field: str | None = None,
) -> Any:
    """A schema rejection: ``base`` with ``path`` set to ``value``; the detail names ``field``."""
    raw = dumps(with_field(base, path, value))
    return pytest.param(raw, RejectReason.SCHEMA, field or path, Domain.FIRE, id=case_id)


def _semantic(
    case_id: str,
    raw: bytes,
    reason: RejectReason,
    field: str,
    topic: Domain | None = Domain.FIRE,
) -> Any:
    return pytest.param(raw, reason, field, topic, id=case_id)


# --- rejected ------------------------------------------------------------------------------------

_T = event_dict("terminal", "fire")
_S = event_dict("sensor", "fire")
_C = event_dict("camera", "fire")
_SHA = sha256_hex()
_NOT_UTF8 = event_bytes(description="caf\u00e9").replace(b"\xc3\xa9", b"\xe9")

_INVALID_JSON = [
    _raw("not_utf8", _NOT_UTF8),
    _raw("truncated", event_bytes()[:-1]),
    _raw("empty", b""),
    _raw("trailing_garbage", event_bytes() + b"}"),
    _raw("single_quotes", b"{'event_id': 'e1'}"),
    _raw("nan_literal", with_literal(_S, "reading.value", b"NaN")),
    _raw("infinity_literal", with_literal(_S, "reading.value", b"-Infinity")),
    _raw("1e400", with_literal(_T, "location.lat", b"1e400")),
    _raw("reading_1e400", with_literal(_S, "reading.value", b"-1e400")),
    _raw("lone_surrogate_escape", with_literal(_T, "description", b'"\\ud800"')),
    _raw("surrogate_bytes", with_literal(_T, "description", b'"\xed\xa0\x80"')),
]

_REQUIRED = ["event_id", "domain", "source", "device_id", "category", "occurred_at", "location"]
_EMPTY_STRINGS = [
    (_T, "event_id"),
    (_T, "device_id"),
    (_T, "officer_id"),
    (_T, "description"),
    (_T, "location.road_id"),
    (_T, "evidence.0.media_type"),
    (_T, "evidence.0.uri"),
    (_S, "reading.metric"),
    (_S, "reading.unit"),
]

_SCHEMA = [
    *(_bad(f"missing_{name}", _T, name, ABSENT) for name in _REQUIRED),
    *(_bad(f"null_{name}", _T, name, None) for name in _REQUIRED),
    *(_bad(f"empty_{path}", base, path, "", path.rsplit(".")[-1]) for base, path in _EMPTY_STRINGS),
    _bad("terminal_without_officer_id", _T, "officer_id", ABSENT),
    _bad("terminal_with_null_officer_id", _T, "officer_id", None),
    _bad("sensor_without_reading", _S, "reading", ABSENT),
    _bad("sensor_with_null_reading", _S, "reading", None),
    _bad("reading_list", _S, "reading", [1.0, "smoke"]),
    _bad("reading_without_value", _S, "reading.value", ABSENT),
    _bad("reading_value_null", _S, "reading.value", None),
    _bad("reading_value_string", _S, "reading.value", "165"),
    _bad("reading_value_bool", _S, "reading.value", True),
    _bad("reading_value_object", _S, "reading.value", {"v": 1}),
    _bad("reading_without_metric", _S, "reading.metric", ABSENT, "metric"),
    _bad("reading_without_unit", _S, "reading.unit", ABSENT, "unit"),
    _bad("event_id_number", _T, "event_id", 42),
    _bad("event_id_bool", _T, "event_id", True),
    _bad("domain_number", _T, "domain", 1),
    _bad("domain_unknown", _T, "domain", "police"),
    _bad("domain_upper_case", _T, "domain", "FIRE"),
    _bad("source_list", _T, "source", ["terminal"]),
    _bad("source_unknown", _T, "source", "satellite"),
    _bad("device_id_object", _T, "device_id", {"id": 1}),
    _bad("officer_id_number", _C, "officer_id", 42),
    _bad("category_number", _T, "category", 1003),
    _bad("category_three_digits", _T, "category", "103"),
    _bad("category_five_digits", _T, "category", "10030"),
    _bad("category_letters", _T, "category", "fire"),
    _bad("category_padded", _T, "category", " 1003"),
    _bad("occurred_at_epoch", _T, "occurred_at", 1764379800),
    _bad("occurred_at_without_offset", _T, "occurred_at", "2026-11-29T09:30:00"),
    _bad("occurred_at_date_only", _T, "occurred_at", "2026-11-29"),
    _bad("occurred_at_words", _T, "occurred_at", "yesterday"),
    _bad("occurred_at_feb_30", _T, "occurred_at", "2026-02-30T09:30:00+08:00"),
    _bad("occurred_at_hour_24", _T, "occurred_at", "2026-11-29T24:00:00+08:00"),
    _bad("occurred_at_offset_24h", _T, "occurred_at", "2026-11-29T09:30:00+24:00"),
    _bad("occurred_at_year_0", _T, "occurred_at", "0000-11-29T09:30:00+08:00"),
    _bad("location_string", _T, "location", ROAD_ID),
    _bad("location_empty", _T, "location", {}),
    _bad("location_all_null", _T, "location", {"road_id": None, "lat": None, "lon": None}),
    _bad("lat_without_lon", _T, "location", {"lat": ROAD_LAT}, "lat"),
    _bad("lon_without_lat", _T, "location", {"road_id": ROAD_ID, "lon": ROAD_LON}, "lon"),
    _bad("lat_bool", _T, "location.lat", True),
    _bad("lat_string", _T, "location.lat", "34.72"),
    _bad("lat_above_90", _T, "location.lat", 90.000001),
    _bad("lat_below_minus_90", _T, "location.lat", -91),
    _bad("lon_above_180", _T, "location.lon", 180.5),
    _bad("lon_below_minus_180", _T, "location.lon", -180.000001),
    _bad("road_id_number", _T, "location.road_id", 7, "road_id"),
    _bad("severity_number", _T, "severity", 3),
    _bad("severity_unknown", _T, "severity", "critical"),
    _bad("description_number", _T, "description", 12.5),
    _bad("evidence_object", _T, "evidence", evidence_item()),
    _bad("evidence_item_string", _T, "evidence", [_SHA], "evidence[0]"),
    _bad("evidence_21_items", _T, "evidence", [evidence_item(i) for i in range(21)]),
    _bad("evidence_without_sha256", _T, "evidence.0.sha256", ABSENT, "sha256"),
    _bad("sha256_63_chars", _T, "evidence.0.sha256", _SHA[:63], "sha256"),
    _bad("sha256_65_chars", _T, "evidence.0.sha256", _SHA + "0", "sha256"),
    _bad("sha256_not_hex", _T, "evidence.0.sha256", "g" + _SHA[1:], "sha256"),
    _bad("sha256_number", _T, "evidence.0.sha256", 1234, "sha256"),
    _bad("evidence_without_media_type", _T, "evidence.0.media_type", ABSENT, "media_type"),
    _raw("top_level_array", dumps([_T]), RejectReason.SCHEMA),
    _raw("top_level_string", b'"event"', RejectReason.SCHEMA),
    _raw("top_level_number", b"42", RejectReason.SCHEMA),
    _raw("top_level_null", b"null", RejectReason.SCHEMA),
]

_MISMATCH = RejectReason.DOMAIN_MISMATCH
_SEMANTIC = [
    _semantic(
        "domain_not_the_topics", event_bytes("camera", "environment"), _MISMATCH, "environment"
    ),
    _semantic(
        "category_of_another_domain",
        event_bytes("camera", "fire", category="2001"),
        _MISMATCH,
        "2001",
        None,
    ),
    _semantic(
        "category_and_domain_of_two_others",
        event_bytes("camera", "citymgmt", category="2001"),
        _MISMATCH,
        "citymgmt",
        Domain.FIRE,
    ),
    *(
        _semantic(
            f"unknown_category_{code}",
            event_bytes("camera", category=code),
            RejectReason.UNKNOWN_CATEGORY,
            code,
        )
        for code in ["1005", "9999", "0000", "4006"]
    ),
    # Malformed and misrouted: the vendor has to fix the shape first.
    _semantic(
        "schema_before_domain_mismatch",
        event_bytes("camera", "environment", device_id=""),
        RejectReason.SCHEMA,
        "device_id",
    ),
    _semantic(
        "schema_before_future_timestamp",
        event_bytes("camera", occurred_at="2099-01-01T00:00:00Z", severity="high"),
        RejectReason.SCHEMA,
        "severity",
    ),
]


@pytest.mark.parametrize(("raw", "reason", "field", "topic"), _INVALID_JSON + _SCHEMA + _SEMANTIC)
def test_message_is_rejected_with_reason_and_detail(
    raw: bytes, reason: RejectReason, field: str | None, topic: Domain | None
) -> None:
    result = _decode(raw, topic)
    assert isinstance(result, Rejection), result
    assert result.reason is reason, result.detail
    assert result.detail.strip()
    if field is not None:
        assert field in result.detail


def test_sha256_with_trailing_newline_is_rejected() -> None:
    raw = event_bytes(evidence=[evidence_item(sha256=sha256_hex() + "\n")])
    result = _decode(raw)
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.SCHEMA


_LIMITS = [
    ("event_id", EVENT_ID_MAX, "terminal"),
    ("device_id", DEVICE_ID_MAX, "terminal"),
    ("officer_id", ID_MAX, "terminal"),
    ("description", DESCRIPTION_MAX, "terminal"),
    ("location.road_id", ID_MAX, "terminal"),
    ("evidence.0.media_type", MEDIA_TYPE_MAX, "terminal"),
    ("evidence.0.uri", URI_MAX, "terminal"),
    ("reading.metric", ID_MAX, "sensor"),
    ("reading.unit", ID_MAX, "sensor"),
]


@pytest.mark.parametrize("char", ["a", "界"], ids=["ascii", "cjk"])
@pytest.mark.parametrize(("path", "limit", "source"), _LIMITS, ids=[p for p, _, _ in _LIMITS])
def test_string_length_limit_is_in_characters_and_inclusive(
    path: str, limit: int, source: str, char: str
) -> None:
    base = event_dict(source, "fire")
    _accepted(dumps(with_field(base, path, char * limit)))
    result = _decode(dumps(with_field(base, path, char * (limit + 1))))
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.SCHEMA
    assert path.rsplit(".", 1)[-1] in result.detail
    assert str(limit) in result.detail


def test_evidence_limit_is_twenty_items() -> None:
    items = [evidence_item(i) for i in range(EVIDENCE_MAX)]
    assert len(_accepted(event_bytes(evidence=items)).evidence) == EVIDENCE_MAX
    result = _decode(event_bytes(evidence=[*items, evidence_item(99)]))
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.SCHEMA
    assert result.detail.startswith("evidence")


@pytest.mark.parametrize(
    ("lat", "lon"),
    [(90, 180), (-90, -180), (90.0, -180.0), (0, 0), (-0.0, 179.999999)],
)
def test_coordinates_at_the_ends_of_their_ranges_are_accepted(lat: float, lon: float) -> None:
    event = _accepted(event_bytes("drone", location={"lat": lat, "lon": lon}))
    assert event.location == Location(None, float(lat), float(lon))


_SKEW = timedelta(minutes=5)
_CST = timezone(timedelta(hours=8))
_EST = timezone(timedelta(hours=-5))


@pytest.mark.parametrize(
    "text", ["1999-12-31T23:59:59Z", "1970-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00"]
)
def test_occurred_at_before_2000_is_refused_as_a_wrong_device_clock(text: str) -> None:
    result = _decode(event_bytes("camera", occurred_at=text))
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.SCHEMA
    assert "before the year 2000" in result.detail


@pytest.mark.parametrize(
    ("occurred_at", "accepted"),
    [
        pytest.param(NOW + _SKEW, True, id="now+5min_utc"),
        pytest.param((NOW + _SKEW).astimezone(_CST), True, id="now+5min_+08:00"),
        pytest.param((NOW + _SKEW).astimezone(_EST), True, id="now+5min_-05:00"),
        pytest.param(NOW + _SKEW + timedelta(seconds=1), False, id="now+5min+1s_utc"),
        pytest.param(
            (NOW + _SKEW + timedelta(seconds=1)).astimezone(_CST), False, id="now+5min+1s_+08:00"
        ),
        pytest.param(
            (NOW + _SKEW + timedelta(seconds=1)).astimezone(_EST), False, id="now+5min+1s_-05:00"
        ),
        pytest.param(NOW + _SKEW + timedelta(microseconds=1), False, id="now+5min+1us"),
        pytest.param(NOW, True, id="now"),
        pytest.param(NOW - timedelta(days=3), True, id="three_days_ago"),
        pytest.param(datetime(2000, 1, 1, tzinfo=UTC), True, id="year_2000"),
    ],
)
def test_occurred_at_may_be_at_most_five_minutes_ahead(
    occurred_at: datetime, accepted: bool
) -> None:
    result = _decode(event_bytes("camera", occurred_at=occurred_at.isoformat()))
    if accepted:
        assert isinstance(result, Event), result
        assert result.occurred_at == occurred_at
    else:
        assert isinstance(result, Rejection)
        assert result.reason is RejectReason.FUTURE_TIMESTAMP
        assert "occurred_at" in result.detail


def test_local_wall_clock_ahead_of_utc_is_not_the_future() -> None:
    """09:30+08:00 is 01:30Z; a naive comparison of wall clocks would put it 7.5 h ahead."""
    result = _accepted(event_bytes(occurred_at="2026-11-29T09:30:00+08:00"))
    assert result.occurred_at == datetime(2026, 11, 29, 1, 30, tzinfo=UTC)
    assert result.occurred_at.utcoffset() == timedelta(hours=8)


def test_message_of_exactly_max_bytes_is_parsed_and_one_more_is_too_large() -> None:
    raw = event_bytes()
    assert isinstance(_decode(raw, max_bytes=len(raw)), Event)
    result = _decode(raw, max_bytes=len(raw) - 1)
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.TOO_LARGE
    assert str(len(raw)) in result.detail


def _padded(size: int) -> bytes:
    """A valid event of exactly ``size`` bytes, padded by an unknown field."""
    raw = event_bytes(x_padding="")
    padded = event_bytes(x_padding="p" * (size - len(raw)))
    assert len(padded) == size
    return padded


def test_default_limit_is_64_kib() -> None:
    assert isinstance(_decode(_padded(DEFAULT_MAX_MESSAGE_BYTES)), Event)
    result = _decode(_padded(DEFAULT_MAX_MESSAGE_BYTES + 1))
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.TOO_LARGE


def test_too_large_is_decided_before_parsing() -> None:
    result = _decode(b"\xff" * 100, max_bytes=99)
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.TOO_LARGE


# --- accepted ------------------------------------------------------------------------------------


@pytest.mark.parametrize("domain", list(Domain), ids=str)
@pytest.mark.parametrize("source", list(Source), ids=str)
def test_every_source_and_domain_is_accepted_on_its_topic(source: Source, domain: Domain) -> None:
    event = _accepted(event_bytes(source, domain), topic=domain)
    assert (event.source, event.domain) == (source, domain)
    assert type(event.source) is Source
    assert type(event.domain) is Domain
    assert CATEGORIES[event.category].domain is domain


def test_terminal_report_decodes_to_typed_values() -> None:
    message = event_dict("terminal", "fire", severity="severe")
    event = _accepted(dumps(message))
    assert event.event_id == message["event_id"]
    assert event.device_id == message["device_id"]
    assert event.officer_id == "officer-0042"
    assert event.category == "1003"
    assert event.severity is Severity.SEVERE
    assert event.occurred_at == datetime.fromisoformat(message["occurred_at"])
    assert event.location == Location(ROAD_ID, ROAD_LAT, ROAD_LON)
    assert event.description == message["description"]
    assert event.evidence == (Evidence(**message["evidence"][0]),)
    assert event.reading is None
    assert event.extra == {}


def test_sensor_reading_decodes_to_a_float() -> None:
    raw = event_bytes(
        "sensor", "environment", reading={"metric": "pm25", "value": 151, "unit": "ug/m3"}
    )
    event = _accepted(raw, topic=Domain.ENVIRONMENT)
    assert event.reading == Reading("pm25", 151.0, "ug/m3")
    assert type(event.reading.value) is float


def test_sha256_is_accepted_in_upper_case_and_kept_in_lower_case() -> None:
    digest = sha256_hex("x")
    event = _accepted(event_bytes(evidence=[evidence_item(sha256=digest.upper(), uri=ABSENT)]))
    assert event.evidence == (Evidence(digest, "image/jpeg", None),)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-29T01:30:00Z", datetime(2026, 11, 29, 1, 30, tzinfo=UTC)),
        ("2026-11-29t01:30:00z", datetime(2026, 11, 29, 1, 30, tzinfo=UTC)),
        ("2026-11-29T01:30:00.250+00:00", datetime(2026, 11, 29, 1, 30, 0, 250000, tzinfo=UTC)),
        ("2026-11-29T01:30:00.123456789Z", datetime(2026, 11, 29, 1, 30, 0, 123456, tzinfo=UTC)),
        ("2026-11-28T20:30:00-05:00", datetime(2026, 11, 29, 1, 30, tzinfo=UTC)),
        ("2026-11-29T07:15:00+05:45", datetime(2026, 11, 29, 1, 30, tzinfo=UTC)),
    ],
)
def test_rfc3339_timestamps_are_read_as_instants(text: str, expected: datetime) -> None:
    event = _accepted(event_bytes("camera", occurred_at=text))
    assert event.occurred_at == expected
    assert event.occurred_at.tzinfo is not None


def test_unknown_fields_are_kept_in_extra() -> None:
    vendor = {"firmware": "2.4.1", "battery": 0.81, "tags": ["night", None]}
    event = _accepted(event_bytes("camera", vendor=vendor, x_trace_id="abc123", priority=None))
    assert event.extra == {"vendor": vendor, "x_trace_id": "abc123", "priority": None}
    assert "event_id" not in event.extra
    assert event.to_wire()["vendor"] == vendor


def test_unknown_nested_fields_are_not_rejected() -> None:
    location = {"road_id": ROAD_ID, "lat": ROAD_LAT, "lon": ROAD_LON, "accuracy_m": 4.5}
    reading = {"metric": "smoke", "value": 1, "unit": "alarm", "sampled_ms": 200}
    evidence = [evidence_item(width=1920)]
    raw = event_bytes("sensor", location=location, reading=reading, evidence=evidence)
    assert isinstance(_decode(raw), Event)


@pytest.mark.parametrize(
    ("source", "path"),
    [
        ("camera", "officer_id"),
        ("terminal", "severity"),
        ("camera", "reading"),
        ("terminal", "description"),
        ("terminal", "evidence"),
        ("drone", "location.road_id"),
        ("hotline", "location.lat"),
        ("terminal", "evidence.0.uri"),
    ],
)
def test_null_for_an_optional_field_is_treated_as_absent(source: str, path: str) -> None:
    base = event_dict(source, "fire")
    if path == "location.lat":
        base = with_field(base, "location.lon", None)
    null = _accepted(dumps(with_field(base, path, None)))
    absent_base = with_field(base, path, ABSENT) if _has(base, path) else base
    if path == "location.lat":
        absent_base = with_field(absent_base, "location.lon", ABSENT)
    assert null == _accepted(dumps(absent_base))


def _has(message: dict[str, Any], path: str) -> bool:
    node: Any = message
    for step in path.split("."):
        if isinstance(node, list):
            node = node[int(step)]
        elif step in node:
            node = node[step]
        else:
            return False
    return True


@pytest.mark.parametrize("code", sorted(CATEGORIES))
def test_effective_severity_falls_back_to_the_category_default(code: str) -> None:
    category = CATEGORIES[code]
    event = _accepted(event_bytes("camera", category.domain, category=code), topic=None)
    assert event.severity is None
    assert event.effective_severity is category.default_severity


def test_reported_severity_wins_over_the_category_default() -> None:
    event = _accepted(event_bytes("camera", category="1002", severity="minor"))
    assert CATEGORIES["1002"].default_severity is Severity.EXTREME
    assert event.effective_severity is Severity.MINOR


def test_key_is_device_id_and_event_id() -> None:
    event = _accepted(event_bytes(device_id="cam-7", event_id="e-42"))
    assert event.key == ("cam-7", "e-42")


def test_topic_domain_none_skips_the_routing_check() -> None:
    assert isinstance(_decode(event_bytes("camera", "sanitation"), topic=None), Event)


@pytest.mark.parametrize("domain", list(Domain), ids=str)
@pytest.mark.parametrize("source", list(Source), ids=str)
def test_to_wire_round_trips_to_an_equal_event(source: Source, domain: Domain) -> None:
    event = _accepted(event_bytes(source, domain, x_vendor={"a": [1, 2]}), topic=domain)
    again = _accepted(dumps(event.to_wire()), topic=domain)
    assert again == event
    assert again.extra == event.extra
