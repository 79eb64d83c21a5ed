"""The sustained-threshold rule for fixed sensors (CONTRACT.md): a single spike makes no task.

A reading crosses its category's threshold; the crossing is *sustained* when at least 3
consecutive readings of that metric from one device cross it, or it stays crossed for 10 minutes.
Categories marked ``one_reading`` (smoke) need one reading. A reading under the threshold breaks
the run. Readings are taken in the order of ``(occurred_at, event_id)`` per device; one at or
below the device's high-water mark is a repeat and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

from schemas.categories import SensorRule
from schemas.codec import parse_timestamp

__all__ = [
    "SUSTAINED_FOR",
    "SUSTAINED_READINGS",
    "Reading",
    "SensorTrack",
    "Step",
    "Verdict",
    "observe",
]

SUSTAINED_READINGS = 3
SUSTAINED_FOR = timedelta(minutes=10)


class Verdict(StrEnum):
    """What one reading did."""

    REPEAT = "repeat"
    """At or below the device's high-water mark: already seen, or older than what was seen."""
    BELOW = "below"
    """Under the threshold: breaks any run."""
    PENDING = "pending"
    """Over the threshold, not sustained yet."""
    SUSTAINED = "sustained"
    """This reading makes the run a report."""


class Reading(NamedTuple):
    """The parts of a sensor event the rule looks at."""

    event_id: str
    occurred_at: datetime
    value: float


@dataclass(frozen=True, slots=True)
class SensorTrack:
    """One device's run of readings for one category at one place."""

    device_id: str
    last_at: datetime
    last_event_id: str
    pending: tuple[str, ...] = ()
    """Event ids of the current run of readings over the threshold."""
    since: datetime | None = None
    """When the current run started."""

    def to_wire(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "last_at": self.last_at.isoformat(),
            "last_event_id": self.last_event_id,
            "pending": list(self.pending),
            "since": None if self.since is None else self.since.isoformat(),
        }

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> SensorTrack:
        since = obj.get("since")
        return cls(
            device_id=obj["device_id"],
            last_at=parse_timestamp(obj["last_at"]),
            last_event_id=obj["last_event_id"],
            pending=tuple(obj.get("pending", ())),
            since=None if since is None else parse_timestamp(since),
        )


class Step(NamedTuple):
    """The outcome of one reading: the track after it, and what it did. On ``SUSTAINED``,
    ``event_ids`` are the readings of the run that become one report."""

    track: SensorTrack
    verdict: Verdict
    event_ids: tuple[str, ...] = ()


def observe(track: SensorTrack | None, device_id: str, reading: Reading, rule: SensorRule) -> Step:
    """Apply one reading to a device's track."""
    if track is not None and (reading.occurred_at, reading.event_id) <= (
        track.last_at,
        track.last_event_id,
    ):
        return Step(track, Verdict.REPEAT)
    # Tracks are built directly: dataclasses.replace costs several times as much, per reading.
    if track is not None:
        device_id, pending, since = track.device_id, track.pending, track.since
    else:
        pending, since = (), None
    if not rule.exceeded_by(reading.value):
        return Step(_track(device_id, reading), Verdict.BELOW)
    pending = (*pending, reading.event_id)
    since = since or reading.occurred_at
    sustained = (
        rule.one_reading
        or len(pending) >= SUSTAINED_READINGS
        or reading.occurred_at - since >= SUSTAINED_FOR
    )
    if sustained:
        return Step(_track(device_id, reading), Verdict.SUSTAINED, pending)
    return Step(_track(device_id, reading, pending, since), Verdict.PENDING)


def _track(
    device_id: str, reading: Reading, pending: tuple[str, ...] = (), since: datetime | None = None
) -> SensorTrack:
    """A device's track with ``reading`` as its latest."""
    return SensorTrack(device_id, reading.occurred_at, reading.event_id, pending, since)
