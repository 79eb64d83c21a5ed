"""The published JSON Schema files: in step with the code, valid draft 2020-12, and in agreement
with the codec on what is a well-formed event or feedback message."""

from __future__ import annotations

import calendar
import copy
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from jsonschema import Draft202012Validator, FormatChecker

from schemas.categories import CATEGORIES
from schemas.codec import Rejection, decode_event, decode_feedback
from schemas.enums import Action, Domain, RejectReason, Severity, Source
from schemas.event import (
    DESCRIPTION_MAX,
    DEVICE_ID_MAX,
    EVENT_ID_MAX,
    EVIDENCE_MAX,
    ID_MAX,
    MEDIA_TYPE_MAX,
    URI_MAX,
)
from schemas.feedback import NOTE_MAX, TASK_ID_MAX
from schemas.generate import JSON_DIR, rendered
from schemas.json import dumps, loads
from tests.factories import ABSENT, event_dict, evidence_item, feedback_dict, sha256_hex
from tests.unit.schemas.strategies import (
    FAR_FUTURE,
    mutated_events,
    mutated_feedback,
    near_valid_events,
    near_valid_feedback,
    timestamps,
)

_RFC3339_DATE_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:[Zz]|[+-](\d{2}):(\d{2}))",
    re.ASCII,
)


def _is_rfc3339_date_time(value: object) -> bool:
    """RFC 3339 ``date-time`` as format-asserting validators check it.

    jsonschema checks ``date-time`` only when the optional ``rfc3339-validator`` is installed,
    which citygrid does not depend on, so the test brings its own. It follows rfc3339-validator
    (real calendar dates, hours 00-23, minutes and seconds 00-59, no year 0, offsets within
    +-23:59) but, like ajv-formats, the validator most device vendors run, it takes the space
    separator RFC 3339 section 5.6 allows and anchors at the true end of the string.
    """
    if not isinstance(value, str):
        return True
    match = _RFC3339_DATE_TIME.fullmatch(value)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    off_hour, off_minute = (int(g) if g else 0 for g in match.groups()[6:])
    return (
        year > 0
        and 1 <= month <= 12
        and 1 <= day <= calendar.monthrange(year, month)[1]
        and hour <= 23
        and minute <= 59
        and second <= 59
        and off_hour <= 23
        and off_minute <= 59
    )


_FORMATS = FormatChecker(formats=())
_FORMATS.checks("date-time")(_is_rfc3339_date_time)


def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(loads((JSON_DIR / name).read_bytes()), format_checker=_FORMATS)


EVENT_SCHEMA = _validator("event.schema.json")
FEEDBACK_SCHEMA = _validator("feedback.schema.json")


# --- drift ---------------------------------------------------------------------------------------


def test_committed_schema_files_match_the_generator() -> None:
    expected = rendered()
    committed = {p.name: p.read_bytes() for p in JSON_DIR.glob("*.json")}
    assert sorted(committed) == sorted(expected), (
        "schemas/json/ holds other files than the generator writes; "
        "run `python -m schemas.generate` and commit the result"
    )
    for name, data in expected.items():
        assert committed[name] == data, (
            f"schemas/json/{name} is out of date with the code; "
            "run `python -m schemas.generate` and commit the result"
        )


@pytest.mark.parametrize("name", ["event.schema.json", "feedback.schema.json"])
def test_committed_schemas_are_valid_draft_2020_12(name: str) -> None:
    schema = loads((JSON_DIR / name).read_bytes())
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_event_schema_lists_the_contract_vocabularies() -> None:
    props = EVENT_SCHEMA.schema["properties"]
    assert props["domain"]["enum"] == [d.value for d in Domain]
    assert props["source"]["enum"] == [s.value for s in Source]
    assert props["severity"]["enum"] == [*(s.value for s in Severity), None]
    assert props["category"]["enum"] == sorted(CATEGORIES)
    assert FEEDBACK_SCHEMA.schema["properties"]["action"]["enum"] == [a.value for a in Action]


def test_factory_messages_are_schema_valid() -> None:
    for source in Source:
        for domain in Domain:
            EVENT_SCHEMA.validate(event_dict(source, domain))
    for action in Action:
        FEEDBACK_SCHEMA.validate(feedback_dict(action))


# --- codec and schema agree ---------------------------------------------------------------------


# The size limit and the future-timestamp rule are stated in the schema's descriptions only, as
# JSON Schema cannot express them: a huge limit and a clock far ahead of every generated
# timestamp leave them out of the comparison.
_NO_SIZE_LIMIT = 2**31


def _event_verdict(event: dict[str, Any]) -> Rejection | None:
    raw = dumps(event)
    decoded = decode_event(raw, now=FAR_FUTURE, topic_domain=None, max_bytes=_NO_SIZE_LIMIT)
    rejection = decoded if isinstance(decoded, Rejection) else None
    assert rejection is None or rejection.reason is not RejectReason.FUTURE_TIMESTAMP
    return rejection


def _feedback_verdict(feedback: dict[str, Any]) -> Rejection | None:
    decoded = decode_feedback(dumps(feedback), max_bytes=_NO_SIZE_LIMIT)
    return decoded if isinstance(decoded, Rejection) else None


def _assert_agree(
    schema: Draft202012Validator, rejection: Rejection | None, message: dict[str, Any]
) -> None:
    schema_errors = [f"{e.json_path}: {e.message}" for e in schema.iter_errors(message)]
    if rejection is None and schema_errors:
        pytest.fail(f"codec accepts, schema rejects ({schema_errors}): {message!r}")
    if rejection is not None and not schema_errors:
        pytest.fail(f"schema accepts, codec rejects ({rejection}): {message!r}")


# Every field, nested ones included, set to each value of a fixed list of probes: every JSON type,
# absent, null, and the boundaries of its own rule (length limits in ASCII and in CJK characters,
# range ends, each enum member, real and unreal timestamps).
_ANY = [ABSENT, None, True, False, 0, 1, -1.5, 2**63, "", " ", "x", [], {}, ["x"], {"x": 1}]
_SHA = sha256_hex("probe")
_TIMESTAMPS = [
    "2026-11-29T09:30:00+08:00",
    "2026-11-29T01:30:00Z",
    "2026-11-29t01:30:00z",
    "2026-11-29T01:30:00.5Z",
    "2026-11-29T01:30:00.123456789-05:00",
    "2026-11-29T01:30:00.1234567890Z",
    "2026-11-29T01:30:00",
    "2026-11-29",
    "2026-11-29T01:30Z",
    "2026-11-29T01:30:00+0800",
    "2026-11-29T01:30:00+08",
    "2026-11-29T01:30:00+08:00:00",
    "2026-11-29T01:30:00+23:59",
    "2026-11-29T01:30:00+24:00",
    "2026-11-29T24:00:00Z",
    "2026-11-29T23:60:00Z",
    "2026-12-31T23:59:60Z",
    "2026-02-29T00:00:00Z",
    "2028-02-29T00:00:00Z",
    "2026-04-31T00:00:00Z",
    "2026-13-01T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "1764379800",
    "2026-11-29T01:30:00Z\n",
    " 2026-11-29T01:30:00Z",
]


def _strings(limit: int) -> list[str]:
    return ["a" * limit, "界" * limit, "a" * (limit + 1), "界" * (limit + 1)]


_EVENT_PROBES: dict[tuple[str | int, ...], list[Any]] = {
    ("event_id",): _strings(EVENT_ID_MAX),
    ("domain",): [*(d.value for d in Domain), "FIRE"],
    ("source",): [*(s.value for s in Source), "Terminal"],
    ("device_id",): _strings(DEVICE_ID_MAX),
    ("officer_id",): _strings(ID_MAX),
    # Full-width digits are digits to str.isdigit but not to the MMNN rule.
    ("category",): [
        *CATEGORIES,
        "9999",
        "0000",
        "101",
        "10010",
        "\uff11\uff10\uff10\uff11",
        "1001 ",
    ],
    ("occurred_at",): _TIMESTAMPS,
    ("location",): [
        {"road_id": "r"},
        {"lat": 0, "lon": 0},
        {"lat": 0},
        {"lon": 0},
        {"road_id": None},
        {"road_id": "r", "lat": None, "lon": None},
        {"road_id": "r", "lat": None, "lon": 0},
        {"road_id": None, "lat": 0, "lon": 0},
    ],
    ("location", "road_id"): _strings(ID_MAX),
    ("location", "lat"): [-90, 90, -90.0, 90.0, -90.000001, 90.000001, 0.0, -0.0],
    ("location", "lon"): [-180, 180, -180.000001, 180.000001, 0.0],
    ("severity",): [*(s.value for s in Severity), "Minor"],
    ("reading",): [{"metric": "pm25", "value": 1, "unit": "ug/m3"}, {"metric": "pm25"}],
    ("reading", "metric"): _strings(ID_MAX),
    ("reading", "value"): [0, -0.0, 1e308, -1e308, 2**64 - 1, "1", 0.5],
    ("reading", "unit"): _strings(ID_MAX),
    ("description",): _strings(DESCRIPTION_MAX),
    ("evidence",): [
        [evidence_item()] * EVIDENCE_MAX,
        [evidence_item()] * (EVIDENCE_MAX + 1),
        [evidence_item(), "x"],
        [{"sha256": _SHA, "media_type": "image/png"}],
    ],
    ("evidence", 0, "sha256"): [_SHA, _SHA.upper(), _SHA[:63], _SHA + "0", "g" + _SHA[1:]],
    ("evidence", 0, "media_type"): _strings(MEDIA_TYPE_MAX),
    ("evidence", 0, "uri"): _strings(URI_MAX),
    ("x_vendor",): [],
    ("location", "accuracy_m"): [],
    ("reading", "sampled_at"): [],
    ("evidence", 0, "taken_at"): [],
}

_FEEDBACK_PROBES: dict[tuple[str | int, ...], list[Any]] = {
    ("task_id",): _strings(TASK_ID_MAX),
    ("action",): [*(a.value for a in Action), "Accept", "close"],
    ("actor_id",): _strings(ID_MAX),
    ("at",): _TIMESTAMPS,
    ("note",): _strings(NOTE_MAX),
    ("evidence",): _EVENT_PROBES[("evidence",)],
    ("evidence", 0, "sha256"): _EVENT_PROBES[("evidence", 0, "sha256")],
    ("assignee",): _strings(ID_MAX),
    ("reason",): _strings(NOTE_MAX),
    ("x_console",): [],
}


def _probed(
    base: dict[str, Any], probes: dict[tuple[str | int, ...], list[Any]]
) -> Iterator[dict[str, Any]]:
    """``base`` with one field set to one probe value, for every field and probe."""
    for path, specific in probes.items():
        for value in [*_ANY, *specific]:
            message = copy.deepcopy(base)
            parent: Any = message
            try:
                for step in path[:-1]:
                    parent = parent[step]
            except (KeyError, IndexError):
                continue  # e.g. reading.value of an event without a reading
            if value is ABSENT:
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = value
            yield message


def _disagreements(
    schema: Draft202012Validator,
    verdict: Callable[[dict[str, Any]], Rejection | None],
    messages: Iterable[dict[str, Any]],
) -> list[str]:
    found = []
    for message in messages:
        rejection = verdict(message)
        schema_ok = schema.is_valid(message)
        if (rejection is None) != schema_ok:
            side = "schema rejects" if rejection is None else f"codec rejects ({rejection})"
            found.append(f"{side}: {message!r}")
    return sorted(found, key=len)


@pytest.mark.parametrize("source", list(Source), ids=str)
def test_codec_and_event_schema_agree_on_every_field_at_its_boundaries(source: Source) -> None:
    found = _disagreements(EVENT_SCHEMA, _event_verdict, _probed(event_dict(source), _EVENT_PROBES))
    assert not found, f"{len(found)} disagreements, shortest first:\n" + "\n".join(found[:5])


@pytest.mark.parametrize("action", list(Action), ids=str)
def test_codec_and_feedback_schema_agree_on_every_field_at_its_boundaries(action: Action) -> None:
    messages = _probed(feedback_dict(action, evidence=[evidence_item()]), _FEEDBACK_PROBES)
    found = _disagreements(FEEDBACK_SCHEMA, _feedback_verdict, messages)
    assert not found, f"{len(found)} disagreements, shortest first:\n" + "\n".join(found[:5])


_DIFFERENTIAL = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@_DIFFERENTIAL
@given(near_valid_events())
@example(event_dict("sensor", "fire"))
@example(event_dict("terminal", officer_id=None))
@example(event_dict("camera", location={"road_id": "r", "lat": 1.0, "lon": None}))
@example(event_dict("camera", location={"road_id": None, "lat": None, "lon": None}))
@example(event_dict("camera", location={"lat": 90, "lon": -180}))
@example(event_dict("camera", domain="fire", category="2001"))
@example(event_dict("camera", occurred_at="2026-02-29T10:00:00Z"))
@example(event_dict("camera", occurred_at="2028-02-29t10:00:00.123456789z"))
@example(event_dict("camera", occurred_at="2026-11-29T09:30:00+23:59"))
@example(event_dict("camera", occurred_at="2026-11-29T09:30:00+24:00"))
@example(event_dict("camera", occurred_at="2026-11-29T23:59:60Z"))
@example(event_dict("camera", occurred_at="0000-01-01T00:00:00Z"))
def test_codec_and_event_schema_agree_on_near_valid_events(event: dict[str, Any]) -> None:
    _assert_agree(EVENT_SCHEMA, _event_verdict(event), event)


@_DIFFERENTIAL
@given(mutated_events())
def test_codec_and_event_schema_agree_on_events_with_one_field_changed(
    event: dict[str, Any],
) -> None:
    _assert_agree(EVENT_SCHEMA, _event_verdict(event), event)


@_DIFFERENTIAL
@given(near_valid_feedback())
@example(feedback_dict("dispatch", assignee=None))
@example(feedback_dict("cancel", reason=None, note=None, evidence=None))
@example(feedback_dict("accept", at="2026-11-29T09:30:00"))
def test_codec_and_feedback_schema_agree_on_near_valid_feedback(
    feedback: dict[str, Any],
) -> None:
    _assert_agree(FEEDBACK_SCHEMA, _feedback_verdict(feedback), feedback)


@_DIFFERENTIAL
@given(mutated_feedback())
def test_codec_and_feedback_schema_agree_on_feedback_with_one_field_changed(
    feedback: dict[str, Any],
) -> None:
    _assert_agree(FEEDBACK_SCHEMA, _feedback_verdict(feedback), feedback)


@_DIFFERENTIAL
@given(timestamps)
def test_codec_and_schemas_agree_on_timestamps(text: str) -> None:
    event = event_dict("camera", occurred_at=text)
    _assert_agree(EVENT_SCHEMA, _event_verdict(event), event)
    feedback = feedback_dict("accept", at=text)
    _assert_agree(FEEDBACK_SCHEMA, _feedback_verdict(feedback), feedback)


@pytest.mark.parametrize("offset", ["+05:60", "+00:99", "-08:75"])
def test_codec_and_schema_agree_on_offsets_with_minutes_past_59(offset: str) -> None:
    event = event_dict("camera", occurred_at=f"2026-11-29T09:30:00{offset}")
    assert not EVENT_SCHEMA.is_valid(event)
    assert _event_verdict(event) is not None, "codec accepted offset minutes past 59"


_NEWLINE_SHA = [evidence_item(sha256=sha256_hex() + "\n")]


@pytest.mark.parametrize(
    ("schema", "verdict", "message"),
    [
        (EVENT_SCHEMA, _event_verdict, event_dict("camera", evidence=_NEWLINE_SHA)),
        (FEEDBACK_SCHEMA, _feedback_verdict, feedback_dict("handle", evidence=_NEWLINE_SHA)),
    ],
    ids=["event", "feedback"],
)
def test_schema_rejects_a_sha256_with_a_trailing_newline(
    schema: Draft202012Validator,
    verdict: Callable[[dict[str, Any]], Rejection | None],
    message: dict[str, Any],
) -> None:
    assert verdict(message) is not None
    assert not schema.is_valid(message)
