"""Hypothesis strategies for wire messages: any JSON, valid and near-valid events and feedback.

"Near-valid" messages are what a buggy device sends: every field drawn mostly from its valid values
and sometimes from its boundary values (exact length limits, range ends, unreal dates), from
another JSON type, or left out. They are what the codec and the JSON Schema must agree on.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from schemas.categories import CATEGORIES
from schemas.codec import EVENT_FIELDS, FEEDBACK_FIELDS
from schemas.enums import Action, Domain, Severity, Source
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
from tests.factories import ABSENT, sha256_hex

__all__ = [
    "FAR_FUTURE",
    "json_values",
    "mutated_events",
    "mutated_feedback",
    "near_valid_events",
    "near_valid_feedback",
    "timestamps",
    "valid_events",
    "valid_feedback",
]

FAR_FUTURE = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
"""A processing clock no generated ``occurred_at`` (years up to 9998) can be ahead of."""

_text = st.text(st.characters(codec="utf-8"), max_size=12)

_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    # orjson writes integers of at most 64 bits.
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    _text,
)

json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)
"""Any JSON value orjson can encode."""


def _mostly(
    valid: st.SearchStrategy[Any], odd: st.SearchStrategy[Any], one_in: int = 8
) -> st.SearchStrategy[Any]:
    """``valid`` most of the time, ``odd`` about once in ``one_in`` draws."""
    return st.integers(0, one_in - 1).flatmap(lambda i: odd if i == 0 else valid)


def _sized(max_len: int) -> st.SearchStrategy[str]:
    """Strings around a length limit: short ones, and exactly 0, 1, max and max + 1 characters.

    The long ones use a CJK character, so a limit in bytes instead of characters would show.
    """
    return st.one_of(
        st.text(st.characters(codec="utf-8"), min_size=1, max_size=16),
        st.sampled_from([0, 1, max_len, max_len + 1]).map(lambda n: "界" * n),
    )


def _string_field(max_len: int) -> st.SearchStrategy[str]:
    return _mostly(st.text(st.characters(codec="utf-8"), min_size=1, max_size=16), _sized(max_len))


def _optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """An optional field: mostly a value, else absent, null, or any JSON value."""
    return _mostly(strategy, st.one_of(st.just(ABSENT), st.none(), json_values), one_in=4)


def _required(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A required field: mostly a value, else absent, null, or any JSON value."""
    return _mostly(strategy, st.one_of(st.just(ABSENT), st.none(), json_values))


def _offsets() -> st.SearchStrategy[timezone]:
    return st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))


_real_datetimes = st.datetimes(
    min_value=datetime(1, 1, 2),  # noqa: DTZ001 - naive bounds; the offset is drawn below
    max_value=datetime(9998, 12, 30),  # noqa: DTZ001
    timezones=_offsets(),
)
_valid_datetimes = st.datetimes(
    # The codec takes the years 2000 to 9999 as written (with their own offset).
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - naive bounds; the offset is drawn below
    max_value=datetime(9998, 12, 30),  # noqa: DTZ001
    timezones=_offsets(),
)


def _number(low: int, high: int, *odd: int) -> st.SearchStrategy[int]:
    """Mostly in ``low..high``, sometimes one of the ``odd`` values just outside it."""
    return _mostly(st.integers(low, high), st.sampled_from(odd), one_in=4)


@st.composite
def _timestamp_pieces(draw: st.DrawFn) -> str:
    """Strings shaped like RFC 3339 whose parts may be out of range, mostly one at a time:
    February 30th, hour 24, second 60, an offset of +24:00 or +05:60, year 0000."""
    year = draw(_mostly(st.integers(1, 9998), st.just(0), one_in=4))
    month = draw(_number(1, 12, 0, 13))
    day = draw(_number(1, 28, 0, 29, 30, 31, 32))
    hour, minute, second = (
        draw(_number(0, 23, 24, 25)),
        draw(_number(0, 59, 60, 99)),
        draw(_number(0, 59, 60, 61)),
    )
    sep = draw(st.sampled_from("Tt "))
    frac = draw(st.sampled_from(["", ".5", ".123456", ".123456789", ".1234567890"]))
    offset = draw(
        _mostly(
            st.tuples(st.sampled_from("+-"), _number(0, 23, 24, 99), _number(0, 59, 60, 99)).map(
                lambda t: f"{t[0]}{t[1]:02d}:{t[2]:02d}"
            ),
            st.sampled_from(["Z", "z", "", "+8", "+0800", "+08:00:00"]),
            one_in=3,
        )
    )
    time = f"{hour:02d}:{minute:02d}:{second:02d}{frac}"
    return f"{year:04d}-{month:02d}-{day:02d}{sep}{time}{offset}"


timestamps = _mostly(
    _real_datetimes.map(datetime.isoformat),
    st.one_of(
        _timestamp_pieces(),
        _real_datetimes.map(lambda d: d.replace(tzinfo=None).isoformat()),
        _real_datetimes.map(lambda d: d.date().isoformat()),
        _real_datetimes.map(lambda d: d.isoformat() + "\n"),
    ),
    one_in=3,
)
"""``occurred_at``/``at`` values: real timestamps with offsets, and near misses."""

_sha256 = _mostly(
    st.binary(max_size=8).map(sha256_hex),
    st.one_of(
        st.binary(max_size=8).map(lambda b: sha256_hex(b).upper()),
        st.binary(max_size=8).map(lambda b: sha256_hex(b)[:63]),
        st.binary(max_size=8).map(lambda b: sha256_hex(b) + "0"),
        st.binary(max_size=8).map(lambda b: "g" + sha256_hex(b)[1:]),
        st.just(""),
    ),
)

_evidence_item = _mostly(
    st.fixed_dictionaries(
        {
            "sha256": _required(_sha256),
            "media_type": _required(_string_field(MEDIA_TYPE_MAX)),
            "uri": _optional(_string_field(URI_MAX)),
        }
    ),
    json_values,
    one_in=10,
)

_evidence = st.one_of(
    st.lists(_evidence_item, max_size=3),
    # Exactly at and one past the limit; the items are copies, which keeps the draw cheap.
    st.tuples(_evidence_item, st.sampled_from([EVIDENCE_MAX, EVIDENCE_MAX + 1])).map(
        lambda t: [t[0]] * t[1]
    ),
)

_coordinate = st.one_of(
    st.floats(-200, 200, allow_nan=False),
    st.sampled_from([-180, -90, 90, 180, -180.0000001, 90.0000001]),
    st.integers(-200, 200),
)

_location = st.fixed_dictionaries(
    {
        "road_id": _optional(_string_field(ID_MAX)),
        "lat": _optional(_coordinate),
        "lon": _optional(_coordinate),
    }
)

_reading_value = _mostly(
    st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**63), 2**63),
    st.one_of(st.booleans(), st.just("12.5"), json_values),
)

_reading = st.fixed_dictionaries(
    {
        "metric": _required(_string_field(ID_MAX)),
        "value": _required(_reading_value),
        "unit": _required(_string_field(ID_MAX)),
    }
)


def _extra(known: frozenset[str]) -> st.SearchStrategy[dict[str, Any]]:
    keys = _text.filter(lambda k: k not in known)
    return st.dictionaries(keys, json_values, max_size=2)


def _strip(value: Any) -> Any:
    """Drop the fields drawn as :data:`ABSENT`, at any depth."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if v is not ABSENT}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


_valid_text = st.text(st.characters(codec="utf-8"), min_size=1, max_size=16)


@st.composite
def _valid_locations(draw: st.DrawFn) -> dict[str, Any]:
    """A road, a point, or both; absent parts sometimes written as null."""
    kind = draw(st.sampled_from(["road", "point", "both"]))
    location: dict[str, Any] = {}
    if kind != "point":
        location["road_id"] = draw(_valid_text)
    elif draw(st.booleans()):
        location["road_id"] = None
    if kind != "road":
        location["lat"] = draw(st.floats(-90, 90) | st.integers(-90, 90))
        location["lon"] = draw(st.floats(-180, 180) | st.integers(-180, 180))
    elif draw(st.booleans()):
        location.update(lat=None, lon=None)
    return location


_valid_evidence = st.lists(
    st.fixed_dictionaries(
        {"sha256": st.binary(max_size=4).map(sha256_hex), "media_type": _valid_text},
        optional={"uri": st.none() | _valid_text},
    ),
    max_size=3,
)

_valid_reading = st.fixed_dictionaries(
    {
        "metric": _valid_text,
        "value": st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53),
        "unit": _valid_text,
    }
)


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A valid optional field: absent, null, or a value."""
    return st.one_of(st.just(ABSENT), st.none(), strategy)


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    """Event dicts the codec accepts, given a clock like :data:`FAR_FUTURE` and no topic check."""
    category = CATEGORIES[draw(st.sampled_from(sorted(CATEGORIES)))]
    source = draw(st.sampled_from([s.value for s in Source]))
    event = {
        "event_id": draw(_valid_text),
        "domain": category.domain.value,
        "source": source,
        "device_id": draw(_valid_text),
        "officer_id": draw(_valid_text if source == Source.TERMINAL else _maybe(_valid_text)),
        "category": category.code,
        "occurred_at": draw(_valid_datetimes.map(datetime.isoformat)),
        "location": draw(_valid_locations()),
        "severity": draw(_maybe(st.sampled_from([s.value for s in Severity]))),
        "reading": draw(_valid_reading if source == Source.SENSOR else _maybe(_valid_reading)),
        "description": draw(_maybe(_valid_text)),
        "evidence": draw(_maybe(_valid_evidence)),
    }
    event.update(draw(_extra(EVENT_FIELDS)))
    stripped: dict[str, Any] = _strip(event)
    return stripped


_gone = st.one_of(st.just(ABSENT), st.none(), json_values)
"""A field left out, sent as null, or sent as any JSON value."""


def _odd(*strategies: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(*strategies, _gone)


_ODD_EVENT_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "event_id": _odd(_sized(EVENT_ID_MAX)),
    "domain": _odd(st.sampled_from([*(d.value for d in Domain), "Fire", "", "police"])),
    "source": _odd(st.sampled_from([*(s.value for s in Source), "satellite"])),
    "device_id": _odd(_sized(DEVICE_ID_MAX)),
    "officer_id": _odd(_sized(ID_MAX)),
    "category": _odd(st.sampled_from([*CATEGORIES, "9999", "101", "abcd", "0000", "1001 "])),
    "occurred_at": _odd(timestamps),
    "location": _odd(_location),
    "severity": _odd(st.sampled_from(["critical", "Severe", ""])),
    "reading": _odd(_reading),
    "description": _odd(_sized(DESCRIPTION_MAX)),
    "evidence": _odd(_evidence),
}


def _near(
    draw: st.DrawFn, message: dict[str, Any], odd: dict[str, st.SearchStrategy[Any]]
) -> dict[str, Any]:
    """Change each field of a valid message with a chance of one in ten."""
    for name, strategy in odd.items():
        if draw(st.integers(0, 9)) == 0:
            message[name] = draw(strategy)
    stripped: dict[str, Any] = _strip(message)
    return stripped


@st.composite
def near_valid_events(draw: st.DrawFn) -> dict[str, Any]:
    """Valid events with each field, with a chance of one in ten, set to a boundary value, an
    invalid one, any JSON value, or left out."""
    return _near(draw, draw(valid_events()), _ODD_EVENT_FIELDS)


def _paths(message: dict[str, Any]) -> list[tuple[str | int, ...]]:
    """Every field of ``message``, nested ones included, as a path of keys and indexes."""
    paths: list[tuple[str | int, ...]] = []
    for key, value in message.items():
        paths.append((key,))
        if isinstance(value, dict):
            paths.extend((key, k) for k in value)
        elif isinstance(value, list):
            for i, item in enumerate(value[:2]):
                paths.append((key, i))
                if isinstance(item, dict):
                    paths.extend((key, i, k) for k in item)
    return paths


@st.composite
def _mutated(draw: st.DrawFn, valid: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    message = copy.deepcopy(draw(valid))
    *parents, last = draw(st.sampled_from(_paths(message)))
    container: Any = message
    for step in parents:
        container = container[step]
    if isinstance(container, dict) and draw(st.booleans()):
        del container[last]
    else:
        container[last] = draw(json_values)
    return message


def mutated_events() -> st.SearchStrategy[dict[str, Any]]:
    """Valid events with one field, at any depth, removed or replaced by any JSON value."""
    return _mutated(valid_events())


def mutated_feedback() -> st.SearchStrategy[dict[str, Any]]:
    """Valid feedback with one field, at any depth, removed or replaced by any JSON value."""
    return _mutated(valid_feedback())


@st.composite
def valid_feedback(draw: st.DrawFn) -> dict[str, Any]:
    """Feedback dicts the codec accepts."""
    action = draw(st.sampled_from([a.value for a in Action]))
    feedback = {
        "task_id": draw(_valid_text),
        "action": action,
        "actor_id": draw(_valid_text),
        "at": draw(_valid_datetimes.map(datetime.isoformat)),
        "note": draw(_maybe(_valid_text)),
        "evidence": draw(_maybe(_valid_evidence)),
        "assignee": draw(_valid_text if action == Action.DISPATCH else _maybe(_valid_text)),
        "reason": draw(_maybe(_valid_text)),
    }
    feedback.update(draw(_extra(FEEDBACK_FIELDS)))
    stripped: dict[str, Any] = _strip(feedback)
    return stripped


_ODD_FEEDBACK_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "task_id": _odd(_sized(TASK_ID_MAX)),
    "action": _odd(st.sampled_from([*(a.value for a in Action), "close", "Accept"])),
    "actor_id": _odd(_sized(ID_MAX)),
    "at": _odd(timestamps),
    "note": _odd(_sized(NOTE_MAX)),
    "evidence": _odd(_evidence),
    "assignee": _odd(_sized(ID_MAX)),
    "reason": _odd(_sized(NOTE_MAX)),
}


@st.composite
def near_valid_feedback(draw: st.DrawFn) -> dict[str, Any]:
    """Valid feedback with each field, with a chance of one in ten, set to a boundary value, an
    invalid one, any JSON value, or left out."""
    return _near(draw, draw(valid_feedback()), _ODD_FEEDBACK_FIELDS)
