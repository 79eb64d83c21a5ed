"""Decoding input messages: one pass from bytes to a typed value or to a :class:`Rejection`.

A rejection carries a reason from :class:`~schemas.enums.RejectReason` (the DLQ vocabulary) and a
detail a device vendor can act on. Decoding never raises on bad input: whatever the bytes, the
caller gets a value or a rejection.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from types import MappingProxyType
from typing import Any, Final, NamedTuple, NoReturn

from schemas.categories import CATEGORIES
from schemas.enums import Action, Domain, RejectReason, Severity, Source, by_value
from schemas.event import (
    DESCRIPTION_MAX,
    DEVICE_ID_MAX,
    EVENT_ID_MAX,
    EVIDENCE_MAX,
    FUTURE_SKEW_SECONDS,
    ID_MAX,
    MEDIA_TYPE_MAX,
    URI_MAX,
    Event,
    Evidence,
    Location,
    Reading,
)
from schemas.feedback import NOTE_MAX, TASK_ID_MAX, Feedback
from schemas.json import JSONDecodeError, loads
from schemas.road import Point, Road

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "EVENT_FIELDS",
    "FEEDBACK_FIELDS",
    "RFC3339_PATTERN",
    "Rejection",
    "decode_accepted_event",
    "decode_event",
    "decode_feedback",
    "decode_road",
    "parse_timestamp",
]

DEFAULT_MAX_MESSAGE_BYTES: Final = 64 * 1024
"""The largest message worth parsing. A typical event is about 350 bytes; a schema-valid one can
exceed this only with 20 evidence items carrying near-maximal URIs, which no terminal sends."""

RFC3339_PATTERN: Final = (
    r"^[2-9][0-9]{3}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(\.[0-9]{1,9})?([Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
)
"""RFC 3339 with an offset, in the years 2000 to 9999: no device citygrid serves reports from
before 2000, and such dates (a clock reset to 1970, a default of 0001-01-01) would also bring
datetime's range edges into the rules' arithmetic."""
_RFC3339 = re.compile(RFC3339_PATTERN)
_RFC3339_ANY_YEAR = re.compile("^[0-9]" + RFC3339_PATTERN[len("^[2-9]") :])
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_CATEGORY = re.compile(r"^[0-9]{4}$")

EVENT_FIELDS: Final = frozenset(
    {
        "event_id", "domain", "source", "device_id", "officer_id", "category", "occurred_at",
        "location", "severity", "reading", "description", "evidence",
    }
)  # fmt: skip
FEEDBACK_FIELDS: Final = frozenset(
    {"task_id", "action", "actor_id", "at", "note", "evidence", "assignee", "reason"}
)

_DOMAINS: Final = by_value(Domain)
_SOURCES: Final = by_value(Source)
_SEVERITIES: Final = by_value(Severity)
_ACTIONS: Final = by_value(Action)
_FUTURE_SKEW: Final = timedelta(seconds=FUTURE_SKEW_SECONDS)
_LAT_MAX: Final = 90.0
_LON_MAX: Final = 180.0
"""WGS84 ranges."""
_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


class Rejection(NamedTuple):
    """Why a message was not accepted: the DLQ reason and a human-readable detail."""

    reason: RejectReason
    detail: str


class _Invalid(Exception):
    """Internal control flow of the codec; never escapes this module."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _fail(detail: str, reason: RejectReason = RejectReason.SCHEMA) -> NoReturn:
    raise _Invalid(reason, detail)


def _string(obj: Mapping[str, Any], name: str, max_len: int, required: bool = True) -> Any:
    value = obj.get(name)
    if type(value) is str and 0 < len(value) <= max_len:
        return value
    if value is None:
        if required:
            _fail(f"{name}: required")
        return None
    if type(value) is not str:
        _fail(f"{name}: must be a string, got {_json_type(value)}")
    _fail(f"{name}: must be 1 to {max_len} characters, got {len(value)}")


def _choice(obj: Mapping[str, Any], name: str, choices: Mapping[str, Any]) -> Any:
    value = obj.get(name)
    if type(value) is str:
        member = choices.get(value)
        if member is not None:
            return member
    if value is None:
        _fail(f"{name}: required")
    _fail(f"{name}: must be one of {', '.join(choices)}, got {_preview(value)}")


def _number(value: Any, name: str) -> float:
    # bool is an int subclass in Python but not a number in JSON.
    if type(value) is not float and type(value) is not int:
        _fail(f"{name}: must be a number, got {_json_type(value)}")
    number = float(value)
    if not math.isfinite(number):
        _fail(f"{name}: must be finite")
    return number


def _timestamp(value: Any, name: str) -> datetime:
    """Parse an RFC 3339 timestamp with an offset."""
    if type(value) is not str:
        _fail(f"{name}: must be an RFC 3339 timestamp string, got {_json_type(value)}")
    if _RFC3339.fullmatch(value) is None:
        if _RFC3339_ANY_YEAR.fullmatch(value) is not None:
            _fail(f"{name}: {_preview(value)} is before the year 2000: the device clock is wrong")
        _fail(
            f"{name}: must be RFC 3339 with an offset (2026-11-29T09:30:00+08:00), "
            f"got {_preview(value)}"
        )
    try:
        return _fromisoformat(value)
    except ValueError as exc:
        _fail(f"{name}: not a real date or time ({exc})")


def _not_ahead(at: datetime, now: datetime, name: str) -> None:
    if at - now > _FUTURE_SKEW:
        _fail(
            f"{name} {at.isoformat()} is more than {FUTURE_SKEW_SECONDS} s ahead of the "
            f"processing clock {now.isoformat()}",
            RejectReason.FUTURE_TIMESTAMP,
        )


def _fromisoformat(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        # 3.11's fromisoformat takes 'Z' and nanoseconds but not lower-case 't' and 'z'.
        return datetime.fromisoformat(value.upper())


_ZONES: dict[tzinfo, tzinfo] = {}
"""One tzinfo per UTC offset: RFC 3339 offsets are whole minutes, so at most a few thousand."""


def parse_timestamp(value: str) -> datetime:
    """An ISO 8601 timestamp, as ``datetime.fromisoformat`` reads it but also with lower-case
    ``t`` and ``z``; every one with the same offset shares one tzinfo object.

    ``fromisoformat`` makes a new tzinfo for every offset but UTC, and datetimes with different
    tzinfo objects compare by computing both offsets, about ten times slower: merging compares a
    report's time with every report its slot remembers (devices here send ``+08:00``). Sharing
    costs about a microsecond, which the validating decoder (ingest) does not spend.

    Raises:
        ValueError: ``value`` is not such a timestamp.
    """
    parsed = _fromisoformat(value)
    zone = parsed.tzinfo
    if zone is None or zone is UTC:
        return parsed
    shared = _ZONES.setdefault(zone, zone)
    # The same offset: the same wall time, and astimezone is cheaper than replace.
    return parsed if shared is zone else parsed.astimezone(shared)


def _evidence(value: Any) -> tuple[Evidence, ...]:
    if value is None:
        return ()
    if type(value) is not list:
        _fail(f"evidence: must be a list, got {_json_type(value)}")
    if len(value) > EVIDENCE_MAX:
        _fail(f"evidence: at most {EVIDENCE_MAX} items, got {len(value)}")
    items = []
    for i, item in enumerate(value):
        if type(item) is dict:
            sha, media_type, uri = item.get("sha256"), item.get("media_type"), item.get("uri")
            if (
                type(sha) is str
                and _SHA256.fullmatch(sha) is not None
                and type(media_type) is str
                and 0 < len(media_type) <= MEDIA_TYPE_MAX
                and (uri is None or (type(uri) is str and 0 < len(uri) <= URI_MAX))
            ):
                items.append(Evidence(sha.lower(), media_type, uri))
                continue
        if type(item) is not dict:
            _fail(f"evidence[{i}]: must be an object, got {_json_type(item)}")
        sha = item.get("sha256")
        if type(sha) is not str or _SHA256.fullmatch(sha) is None:
            _fail(f"evidence[{i}].sha256: must be 64 hex characters")
        media_type = _string(item, "media_type", MEDIA_TYPE_MAX)
        uri = _string(item, "uri", URI_MAX, False)
        items.append(Evidence(sha.lower(), media_type, uri))
    return tuple(items)


def _location(value: Any) -> Location:
    if value is None:
        _fail("location: required")
    if type(value) is not dict:
        _fail(f"location: must be an object, got {_json_type(value)}")
    road_id = _string(value, "road_id", ID_MAX, False)
    lat = value.get("lat")
    lon = value.get("lon")
    # Fast path: orjson yields only finite floats, so in-range floats are valid as they are.
    if (
        type(lat) is float
        and type(lon) is float
        and -_LAT_MAX <= lat <= _LAT_MAX
        and -_LON_MAX <= lon <= _LON_MAX
    ):
        return Location(road_id, lat, lon)
    if (lat is None) != (lon is None):
        _fail("location: lat and lon go together")
    if lat is not None:
        lat = _number(lat, "location.lat")
        lon = _number(lon, "location.lon")
        if not -_LAT_MAX <= lat <= _LAT_MAX:
            _fail(f"location.lat: must be within -90..90, got {lat}")
        if not -_LON_MAX <= lon <= _LON_MAX:
            _fail(f"location.lon: must be within -180..180, got {lon}")
    elif road_id is None:
        _fail("location: needs road_id, or lat and lon, or both")
    return Location(road_id, lat, lon)


def _reading(value: Any) -> Reading:
    if type(value) is not dict:
        _fail(f"reading: must be an object, got {_json_type(value)}")
    metric = _string(value, "metric", ID_MAX)
    unit = _string(value, "unit", ID_MAX)
    if "value" not in value:
        _fail("reading.value: required")
    return Reading(metric, _number(value["value"], "reading.value"), unit)


def _object(raw: bytes, max_bytes: int) -> dict[str, Any]:
    if len(raw) > max_bytes:
        _fail(f"{len(raw)} bytes, more than the limit of {max_bytes}", RejectReason.TOO_LARGE)
    try:
        obj = loads(raw)
    except JSONDecodeError as exc:
        _fail(f"not UTF-8 JSON: {exc}", RejectReason.INVALID_JSON)
    if type(obj) is not dict:
        _fail(f"must be a JSON object, got {_json_type(obj)}")
    return obj


def _present(required: int, *optional: Any) -> int:
    """How many known fields an object surely holds: the required ones and the optional ones
    read with a value (an absent, null or empty one is not counted, so this never overcounts)."""
    return required + len(optional) - optional.count(None) - optional.count(())


def _extra(obj: dict[str, Any], known: frozenset[str], present: int) -> Mapping[str, Any]:
    # ``present`` known fields were read with a value: when that is every key, there is nothing
    # extra, and the key-by-key check (the costliest step for a typical event) is skipped.
    if len(obj) == present or known.issuperset(obj):
        return _EMPTY
    return MappingProxyType({k: v for k, v in obj.items() if k not in known})


def _event(raw: bytes, topic_domain: Domain | None, now: datetime, max_bytes: int) -> Event:
    obj = _object(raw, max_bytes)
    event_id = _string(obj, "event_id", EVENT_ID_MAX)
    domain: Domain = _choice(obj, "domain", _DOMAINS)
    source: Source = _choice(obj, "source", _SOURCES)
    device_id = _string(obj, "device_id", DEVICE_ID_MAX)
    officer_id = _string(obj, "officer_id", ID_MAX, source is Source.TERMINAL)

    code = obj.get("category")
    if type(code) is not str or _CATEGORY.fullmatch(code) is None:
        _fail(f"category: must be a 4-digit string MMNN, got {_preview(code)}")

    occurred_at = _timestamp(obj.get("occurred_at"), "occurred_at")
    location = _location(obj.get("location"))

    severity = obj.get("severity")
    if severity is not None:
        severity = _choice(obj, "severity", _SEVERITIES)
    reading = obj.get("reading")
    if reading is not None:
        reading = _reading(reading)
    elif source is Source.SENSOR:
        _fail("reading: required when source is sensor")
    description = _string(obj, "description", DESCRIPTION_MAX, False)
    evidence = _evidence(obj.get("evidence"))

    # Semantic checks come after the shape is known good, so a message that is both malformed
    # and misrouted is reported as malformed: the vendor must fix that first.
    category = CATEGORIES.get(code)
    if category is None:
        _fail(f"category: {code} is not in the category table", RejectReason.UNKNOWN_CATEGORY)
    if topic_domain is not None and domain is not topic_domain:
        _fail(
            f"domain {domain.value} arrived on the {topic_domain.value} topic",
            RejectReason.DOMAIN_MISMATCH,
        )
    if category.domain is not domain:
        _fail(
            f"category {code} belongs to {category.domain.value}, not {domain.value}",
            RejectReason.DOMAIN_MISMATCH,
        )
    _not_ahead(occurred_at, now, "occurred_at")
    present = _present(7, officer_id, severity, reading, description, evidence)
    # Positional: keyword construction of a 13-field tuple costs twice as much, per event.
    return Event(
        event_id, domain, source, device_id, code, occurred_at, location,
        officer_id, severity, reading, description, evidence,
        _extra(obj, EVENT_FIELDS, present),
    )  # fmt: skip


def decode_event(
    raw: bytes,
    *,
    now: datetime,
    topic_domain: Domain | None = None,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> Event | Rejection:
    """Decode and validate one event.

    Args:
        raw: the message value, exactly as it came off the topic.
        now: the processing clock (timezone-aware), for the future-timestamp rule.
        topic_domain: the domain of the topic it arrived on; None skips the routing check.
        max_bytes: messages larger than this are rejected as ``too_large`` unparsed.
    """
    try:
        return _event(raw, topic_domain, now, max_bytes)
    except _Invalid as exc:
        return Rejection(exc.reason, exc.detail)
    except RecursionError:
        return Rejection(RejectReason.INVALID_JSON, "nested too deeply")


def decode_accepted_event(raw: bytes) -> Event:
    """The Event :func:`decode_event` makes of ``raw``, for bytes it has accepted before (the
    repartition hop carries them unchanged), built without checking anything again: in about half
    the time, on a path every event takes twice.

    Raises:
        AttributeError, KeyError, TypeError, ValueError: on bytes :func:`decode_event` refuses
            it may raise, or return an Event that breaks the contract: only accepted bytes
            belong here.
    """
    obj = loads(raw)
    location = obj["location"]
    lat, lon = location.get("lat"), location.get("lon")
    severity = obj.get("severity")
    reading = obj.get("reading")
    if reading is not None:
        reading = Reading(reading["metric"], float(reading["value"]), reading["unit"])
    evidence = tuple(
        Evidence(item["sha256"].lower(), item["media_type"], item.get("uri"))
        for item in obj.get("evidence") or ()
    )
    officer_id, description = obj.get("officer_id"), obj.get("description")
    present = _present(7, officer_id, severity, reading, description, evidence)
    return Event(
        obj["event_id"], _DOMAINS[obj["domain"]], _SOURCES[obj["source"]], obj["device_id"],
        obj["category"], parse_timestamp(obj["occurred_at"]),
        Location(
            location.get("road_id"),
            None if lat is None else float(lat),
            None if lon is None else float(lon),
        ),
        officer_id, None if severity is None else _SEVERITIES[severity], reading, description,
        evidence, _extra(obj, EVENT_FIELDS, present),
    )  # fmt: skip


def _feedback(raw: bytes, max_bytes: int, now: datetime | None) -> Feedback:
    obj = _object(raw, max_bytes)
    task_id = _string(obj, "task_id", TASK_ID_MAX)
    action: Action = _choice(obj, "action", _ACTIONS)
    actor_id = _string(obj, "actor_id", ID_MAX)
    at = _timestamp(obj.get("at"), "at")
    if now is not None:
        # An action dated years ahead would become the task's handled or closed time, and
        # every duration and KPI computed from it.
        _not_ahead(at, now, "at")
    note = _string(obj, "note", NOTE_MAX, False)
    evidence = _evidence(obj.get("evidence"))
    assignee = _string(obj, "assignee", ID_MAX, action is Action.DISPATCH)
    reason = _string(obj, "reason", NOTE_MAX, False)
    return Feedback(
        task_id=task_id,
        action=action,
        actor_id=actor_id,
        at=at,
        note=note,
        evidence=evidence,
        assignee=assignee,
        reason=reason,
        extra=_extra(obj, FEEDBACK_FIELDS, _present(4, note, evidence, assignee, reason)),
    )


def decode_feedback(
    raw: bytes, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, now: datetime | None = None
) -> Feedback | Rejection:
    """Decode and validate one feedback message (task existence is checked by the caller).

    ``now`` is the processing clock (timezone-aware) for the future-timestamp rule, as for events;
    None leaves that rule out (a message checked again after ingest accepted it).
    """
    try:
        return _feedback(raw, max_bytes, now)
    except _Invalid as exc:
        return Rejection(exc.reason, exc.detail)
    except RecursionError:
        return Rejection(RejectReason.INVALID_JSON, "nested too deeply")


def _segments(value: Any) -> tuple[tuple[Point, ...], ...]:
    if type(value) is not list or not value:
        _fail("segments: must be a non-empty list of polylines")
    segments = []
    for i, line in enumerate(value):
        if type(line) is not list or len(line) < 2:  # noqa: PLR2004 - a line needs two points
            _fail(f"segments[{i}]: must be a list of at least two [lon, lat] points")
        points = []
        for j, point in enumerate(line):
            if type(point) is not list or len(point) != 2:  # noqa: PLR2004 - [lon, lat]
                _fail(f"segments[{i}][{j}]: must be [lon, lat]")
            lon = _number(point[0], f"segments[{i}][{j}][0]")
            lat = _number(point[1], f"segments[{i}][{j}][1]")
            if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):  # noqa: PLR2004 - WGS84
                _fail(f"segments[{i}][{j}]: [{lon}, {lat}] is not a WGS84 [lon, lat]")
            points.append((lon, lat))
        segments.append(tuple(points))
    return tuple(segments)


def _road(raw: bytes, max_bytes: int) -> Road:
    obj = _object(raw, max_bytes)
    return Road(
        road_id=_string(obj, "road_id", ID_MAX),
        name=_string(obj, "name", DESCRIPTION_MAX),
        community=_string(obj, "community", ID_MAX),
        chief_id=_string(obj, "chief_id", ID_MAX, False),
        segments=_segments(obj.get("segments")),
    )


def decode_road(raw: bytes, *, max_bytes: int = 1024 * 1024) -> Road | Rejection:
    """Decode one registry record (a road's polylines can be long, hence the larger limit)."""
    try:
        return _road(raw, max_bytes)
    except _Invalid as exc:
        return Rejection(exc.reason, exc.detail)
    except RecursionError:
        return Rejection(RejectReason.INVALID_JSON, "nested too deeply")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."  # noqa: PLR2004 - keep details short
