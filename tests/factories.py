"""Factories for valid wire messages (events, feedback, roads) that tests tweak by keyword.

Every factory returns a fresh dict that ``schemas.codec`` accepts as it is, relative to the
processing clock :data:`NOW`; keyword overrides replace top-level fields (``datetime`` and enum
values are written in their wire form), :data:`ABSENT` removes one, and ``None`` sends an explicit
JSON ``null``. :func:`with_field` changes a nested field. The ``*_bytes`` variants encode the same
dict the way a producer would. Shared by the unit, integration and end-to-end suites, so nothing
here depends on pytest.

Timestamps are fixed (``occurred_at`` is 30 minutes before :data:`NOW`), so unit tests are
deterministic; they lie in the past of any real clock after that date too, so a worker on the
wall clock accepts them. Pass ``occurred_at=datetime.now(UTC)`` where the age of a report matters.

Example::

    raw = event_bytes(source="sensor", domain="environment", reading={"metric": "pm25",
                      "value": 180.0, "unit": "ug/m3"})
    bad = event_bytes(officer_id=ABSENT)  # a terminal report without its officer
"""

from __future__ import annotations

import copy
import hashlib
import itertools
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum
from typing import Any, Final

from schemas.categories import CATEGORIES, Category, categories_of
from schemas.enums import Action, Domain, Source
from schemas.json import dumps

__all__ = [
    "ABSENT",
    "CST",
    "DEFAULT_CATEGORY",
    "NOW",
    "ROAD_ID",
    "ROAD_LAT",
    "ROAD_LON",
    "event_bytes",
    "event_dict",
    "evidence_item",
    "feedback_bytes",
    "feedback_dict",
    "road_bytes",
    "road_dict",
    "sha256_hex",
    "with_field",
    "with_literal",
]


class _Absent:
    """The type of :data:`ABSENT`; compare with ``is``."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()
"""Pass as an override to leave a field out of the message altogether (``None`` means null)."""

CST: Final = timezone(timedelta(hours=8), "CST")
"""China Standard Time, the offset the field devices in the pilot write."""

NOW: Final = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)
"""The processing clock the factories' messages are valid against (10:00 in Zhengzhou)."""

ROAD_ID: Final = "yulong-st"
ROAD_LAT: Final = 34.7215
ROAD_LON: Final = 113.7842

DEFAULT_CATEGORY: Final[dict[Domain, str]] = {
    Domain.FIRE: "1003",
    Domain.ENVIRONMENT: "2004",
    Domain.SANITATION: "3001",
    Domain.CITYMGMT: "4001",
}
"""The category a non-sensor report of each domain gets unless ``category`` is given."""

_DEVICE_PREFIX: Final = {
    Source.TERMINAL: "term",
    Source.SENSOR: "sensor",
    Source.CAMERA: "cam",
    Source.DRONE: "drone",
    Source.HOTLINE: "hotline",
}
_serial = itertools.count(1)


def sha256_hex(seed: str | bytes = b"") -> str:
    """A well-formed evidence hash: the SHA-256 of ``seed``, as 64 lower-case hex characters."""
    data = seed.encode() if isinstance(seed, str) else seed
    return hashlib.sha256(data).hexdigest()


def evidence_item(n: int = 0, **overrides: Any) -> dict[str, Any]:
    """One evidence entry (a JPEG with a URI); ``n`` varies the hash and the URI."""
    item: dict[str, Any] = {
        "sha256": sha256_hex(f"photo-{n}"),
        "media_type": "image/jpeg",
        "uri": f"s3://citygrid-evidence/2026/11/29/photo-{n}.jpg",
    }
    return _apply(item, overrides)


def event_dict(
    source: Source | str = Source.TERMINAL,
    domain: Domain | str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """A valid event as a JSON-ready dict.

    Args:
        source: the producer kind; it decides which fields are present (a terminal has an
            ``officer_id``, a severity, a description and a photo; a sensor a ``reading`` that
            crosses its category's threshold and a point; cameras two photos and a road and
            point; drones two photos and a point; the hotline a road and a description).
        domain: the event's domain; by default the domain of ``category`` if given, else fire.
        **overrides: top-level fields to set (``datetime`` and enum values are written in their
            wire form), or :data:`ABSENT` to leave out.

    ``event_id`` is unique per call, so two calls are two different events of one device.
    """
    source = Source(source)
    category = _category(source, domain, overrides.get("category"))
    occurred_at = NOW.astimezone(CST) - timedelta(minutes=30)
    device_id = f"{_DEVICE_PREFIX[source]}-{ROAD_ID}-01"
    event: dict[str, Any] = {
        "event_id": f"evt-{next(_serial):06d}",
        "domain": Domain(domain).value if domain is not None else category.domain.value,
        "source": source.value,
        "device_id": device_id,
        "category": category.code,
        "occurred_at": occurred_at.isoformat(),
        "location": {"road_id": ROAD_ID, "lat": ROAD_LAT, "lon": ROAD_LON},
    }
    if source is Source.TERMINAL:
        event["officer_id"] = "officer-0042"
        event["severity"] = "moderate"
        event["description"] = f"{category.name_en} reported on patrol near {ROAD_ID}."
        event["evidence"] = [evidence_item(0)]
    elif source is Source.SENSOR:
        event["reading"] = _reading(category)
        event["location"] = {"lat": ROAD_LAT, "lon": ROAD_LON}
    elif source in (Source.CAMERA, Source.DRONE):
        event["evidence"] = [evidence_item(0), evidence_item(1)]
        if source is Source.DRONE:
            event["location"] = {"lat": ROAD_LAT, "lon": ROAD_LON}
    else:
        event["description"] = f"Caller reports: {category.name_en.lower()}."
        event["location"] = {"road_id": ROAD_ID}
    return _apply(event, overrides)


def event_bytes(
    source: Source | str = Source.TERMINAL,
    domain: Domain | str | None = None,
    **overrides: Any,
) -> bytes:
    """:func:`event_dict` encoded as the UTF-8 JSON a producer publishes."""
    return dumps(event_dict(source, domain, **overrides))


def feedback_dict(action: Action | str = Action.ACCEPT, **overrides: Any) -> dict[str, Any]:
    """A valid feedback message; a ``dispatch`` gets an ``assignee`` unless overridden."""
    action = Action(action)
    feedback: dict[str, Any] = {
        "task_id": "task-1003-yulong-st-0001",
        "action": action.value,
        "actor_id": "officer-0042",
        "at": (NOW.astimezone(CST) - timedelta(minutes=5)).isoformat(),
    }
    if action is Action.DISPATCH:
        feedback["assignee"] = "chief-yulong"
    elif action is Action.HANDLE:
        feedback["note"] = "Cleared and photographed."
        feedback["evidence"] = [evidence_item(7)]
    elif action is Action.CANCEL:
        feedback["reason"] = "duplicate"
    return _apply(feedback, overrides)


def feedback_bytes(action: Action | str = Action.ACCEPT, **overrides: Any) -> bytes:
    """:func:`feedback_dict` encoded as UTF-8 JSON."""
    return dumps(feedback_dict(action, **overrides))


def road_dict(**overrides: Any) -> dict[str, Any]:
    """A valid registry record: Yulong St with a chief and one two-segment polyline."""
    road: dict[str, Any] = {
        "road_id": ROAD_ID,
        "name": "宇龙街 Yulong St",
        "community": "jinlong",
        "chief_id": "chief-yulong",
        "segments": [[[113.7830, 34.7215], [113.7842, 34.7215], [113.7855, 34.7216]]],
    }
    return _apply(road, overrides)


def road_bytes(**overrides: Any) -> bytes:
    """:func:`road_dict` encoded as UTF-8 JSON."""
    return dumps(road_dict(**overrides))


def with_field(message: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``message`` with the dotted ``path`` set to ``value`` (or removed, for
    :data:`ABSENT`); list items by index, e.g. ``with_field(event, "evidence.0.uri", None)``."""
    out = copy.deepcopy(message)
    *parents, last = path.split(".")
    node: Any = out
    for step in parents:
        node = node[int(step)] if isinstance(node, list) else node[step]
    if value is ABSENT:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = _wire(value)
    else:
        node[last] = _wire(value)
    return out


def with_literal(message: dict[str, Any], path: str, literal: bytes) -> bytes:
    """``message`` encoded with raw JSON text at ``path``: for what no encoder writes (``NaN``,
    ``1e400``, an escaped lone surrogate)."""
    marker = "\x00citygrid-literal\x00"
    raw = dumps(with_field(message, path, marker))
    return raw.replace(dumps(marker), literal)


def _category(source: Source, domain: Domain | str | None, code: Any) -> Category:
    if isinstance(code, str) and code in CATEGORIES:
        return CATEGORIES[code]
    dom = Domain.FIRE if domain is None else Domain(domain)
    if source is Source.SENSOR:
        with_sensor = [c for c in categories_of(dom) if c.sensor is not None]
        if with_sensor:
            return with_sensor[0]
    return CATEGORIES[DEFAULT_CATEGORY[dom]]


def _reading(category: Category) -> dict[str, Any]:
    rule = category.sensor
    if rule is None:
        # A category no fixed sensor is configured for still accepts readings; any metric goes.
        return {"metric": "tilt_deg", "value": 12.5, "unit": "deg"}
    value = rule.threshold if rule.op == ">=" else rule.threshold * 1.1
    return {"metric": rule.metric, "value": value, "unit": rule.unit}


def _wire(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _apply(message: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    for name, value in overrides.items():
        if value is ABSENT:
            message.pop(name, None)
        else:
            message[name] = _wire(value)
    return message
