"""A road of the registry (路长制): who is its chief and where its segments run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Point", "Road"]

Point = tuple[float, float]
"""``(lon, lat)`` in WGS84 degrees, GeoJSON order as in the contract."""


@dataclass(frozen=True, slots=True)
class Road:
    """One road. ``chief_id`` is None while the post is vacant: its tasks wait for a dispatcher."""

    road_id: str
    name: str
    community: str
    chief_id: str | None
    segments: tuple[tuple[Point, ...], ...]

    def to_wire(self) -> dict[str, Any]:
        """The road as the contract's JSON object."""
        return {
            "road_id": self.road_id,
            "name": self.name,
            "community": self.community,
            "chief_id": self.chief_id,
            "segments": [[list(p) for p in seg] for seg in self.segments],
        }
