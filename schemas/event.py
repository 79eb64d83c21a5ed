"""The Event: one observation from a terminal, sensor, camera, drone or the hotline.

Field limits live here beside the type, so the codec and the generated JSON Schema read the same
numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, NamedTuple

from schemas.categories import CATEGORIES
from schemas.enums import Domain, Severity, Source

__all__ = [
    "DESCRIPTION_MAX",
    "DEVICE_ID_MAX",
    "EVENT_ID_MAX",
    "EVIDENCE_MAX",
    "FUTURE_SKEW_SECONDS",
    "ID_MAX",
    "MEDIA_TYPE_MAX",
    "URI_MAX",
    "Event",
    "Evidence",
    "Location",
    "Reading",
]

EVENT_ID_MAX = 128
DEVICE_ID_MAX = 64
ID_MAX = 64
"""Longest officer, actor, road, community and assignee id."""
DESCRIPTION_MAX = 2000
EVIDENCE_MAX = 20
MEDIA_TYPE_MAX = 127
URI_MAX = 2048
FUTURE_SKEW_SECONDS = 300
"""How far ``occurred_at`` may run ahead of the processing clock (device clocks drift)."""

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class Location(NamedTuple):
    """Where an event was observed: a road, a WGS84 point, or both."""

    road_id: str | None
    lat: float | None
    lon: float | None


class Reading(NamedTuple):
    """A fixed sensor's measurement."""

    metric: str
    value: float
    unit: str


class Evidence(NamedTuple):
    """A photo or clip proving the report, identified by its content hash."""

    sha256: str
    media_type: str
    uri: str | None = None


class Event(NamedTuple):
    """A validated input event. ``extra`` keeps fields the contract does not name.

    A NamedTuple rather than a frozen dataclass: it is built once per input message, and a frozen
    dataclass's ``__init__`` cost more than all the field checks of the codec together.
    """

    event_id: str
    domain: Domain
    source: Source
    device_id: str
    category: str
    occurred_at: datetime
    location: Location
    officer_id: str | None = None
    severity: Severity | None = None
    reading: Reading | None = None
    description: str | None = None
    evidence: tuple[Evidence, ...] = ()
    extra: Mapping[str, Any] = _EMPTY

    @property
    def key(self) -> tuple[str, str]:
        """The idempotency key: the same pair received twice is the same event."""
        return (self.device_id, self.event_id)

    @property
    def effective_severity(self) -> Severity:
        """The reported severity, or the category's default when the device gave none."""
        return self.severity or CATEGORIES[self.category].default_severity

    def to_wire(self) -> dict[str, Any]:
        """The event as a contract JSON object (extra fields included)."""
        out: dict[str, Any] = dict(self.extra)
        location: dict[str, Any] = {}
        if self.location.road_id is not None:
            location["road_id"] = self.location.road_id
        if self.location.lat is not None:
            location["lat"] = self.location.lat
            location["lon"] = self.location.lon
        out.update(
            event_id=self.event_id,
            domain=self.domain.value,
            source=self.source.value,
            device_id=self.device_id,
            category=self.category,
            occurred_at=self.occurred_at.isoformat(),
            location=location,
        )
        if self.officer_id is not None:
            out["officer_id"] = self.officer_id
        if self.severity is not None:
            out["severity"] = self.severity.value
        if self.reading is not None:
            out["reading"] = self.reading._asdict()
        if self.description is not None:
            out["description"] = self.description
        if self.evidence:
            out["evidence"] = [
                {k: v for k, v in e._asdict().items() if v is not None} for e in self.evidence
            ]
        return out
