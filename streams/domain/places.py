"""Where an event belongs: its road, the road nearest to its point, or the grid cell of the point.

Distances use a local equirectangular projection centred on the query point (x = east metres,
y = north metres, longitude scaled by the cosine of the query's latitude). Over the 150 m that
matter here that is off by far less than a GPS fix, and it is fine at city scale; it is not meant
for distances of hundreds of kilometres, near the poles or across the antimeridian.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator
from typing import Final, NamedTuple

from schemas.event import Location
from schemas.road import Point, Road

__all__ = [
    "CELL_SIZE_M",
    "DEFAULT_RADIUS_M",
    "METRES_PER_DEGREE",
    "Place",
    "RoadIndex",
    "cell_centre",
    "grid_cell",
    "segment_distance_m",
]

METRES_PER_DEGREE: Final = 6_371_008.8 * math.pi / 180.0
"""Length of one degree of latitude (and of longitude on the equator) on the mean Earth sphere."""

DEFAULT_RADIUS_M: Final = 150.0
"""A point further than this from every road belongs to its grid cell (CONTRACT.md)."""

CELL_SIZE_M: Final = 100.0
"""Side of a grid cell (万米单元网格: about 100 m x 100 m)."""

_CELL_LAT: Final = CELL_SIZE_M / METRES_PER_DEGREE
# Below this cosine (within about 0.6 degrees of a pole) longitudes stop meaning distance.
_MIN_COS: Final = 0.01
# Float slack, in cells, on every box: a point exactly on a cell boundary is never missed.
_SLACK: Final = 1e-9
_POINTS_KEPT: Final = 32_768
"""Places of points remembered between registry changes (fixed sensors and cameras report from
the same points); a bound keeps memory flat, about 240 B an entry (tracemalloc)."""


class Place(NamedTuple):
    """The place a report belongs to; reports of one category at one place merge into one task."""

    key: str
    """The merge key: the road id, or ``cell:<row>:<col>`` for a grid cell."""
    road_id: str | None
    community: str | None
    chief_id: str | None


def grid_cell(lat: float, lon: float) -> str:
    """The id of the grid cell holding ``(lat, lon)``, as ``cell:<row>:<col>``.

    Rows are 100 m bands of latitude counted from the equator; columns are counted from the prime
    meridian, 100 m wide in the middle of the whole degree of latitude the row lies in (so within
    one degree of latitude, 111 km, the cells form one aligned grid, 100 m wide to within 1% at
    the pilot's latitude). Ids depend on nothing but the point, so they are stable across
    workers, restarts and registry changes.
    """
    row = math.floor(lat / _CELL_LAT)
    col = math.floor(lon / _cell_lon(row))
    return f"cell:{row}:{col}"


def cell_centre(key: str) -> tuple[float, float]:
    """``(lat, lon)`` of the middle of grid cell ``key`` (as :func:`grid_cell` names it).

    Raises:
        ValueError: ``key`` is not a grid cell id.
    """
    prefix, row_text, col_text = key.split(":")
    if prefix != "cell":
        raise ValueError(f"not a grid cell id: {key!r}")
    row, col = int(row_text), int(col_text)
    return (row + 0.5) * _CELL_LAT, (col + 0.5) * _cell_lon(row)


def _cell_lon(row: int) -> float:
    degree = math.floor((row + 0.5) * _CELL_LAT)
    return _CELL_LAT / max(math.cos(math.radians(degree + 0.5)), _MIN_COS)


def segment_distance_m(lat: float, lon: float, a: Point, b: Point) -> float:
    """Metres from ``(lat, lon)`` to the segment from ``a`` to ``b`` (``(lon, lat)`` points)."""
    kx = METRES_PER_DEGREE * max(math.cos(math.radians(lat)), _MIN_COS)
    return math.sqrt(_distance2(lat, lon, kx, a[0], a[1], b[0], b[1]))


def _distance2(  # noqa: PLR0917 - the lookup's inner loop: plain floats, nothing packed
    lat: float, lon: float, kx: float, ax: float, ay: float, bx: float, by: float
) -> float:
    # Squared metres from the origin (the query point) to the segment, in the local projection.
    k = METRES_PER_DEGREE
    px, py = (ax - lon) * kx, (ay - lat) * k
    dx, dy = (bx - ax) * kx, (by - ay) * k
    length2 = dx * dx + dy * dy
    if length2 > 0.0:
        t = -(px * dx + py * dy) / length2
        if t > 1.0:
            px, py = px + dx, py + dy
        elif t > 0.0:
            px, py = px + t * dx, py + t * dy
    return px * px + py * py


class _Segment(NamedTuple):
    road_id: str
    ax: float
    ay: float
    bx: float
    by: float


class RoadIndex:
    """The road registry as a worker sees it, with a spatial index over the roads' segments.

    The index is a uniform grid over latitude and longitude with square cells of ``radius_m``
    worth of latitude. Each straight segment is listed in every cell its path crosses (found by
    cutting it into pieces no longer than a cell and taking each piece's bounding box), so a
    lookup reads only the few cells around the query point, whatever the size of the registry.
    """

    def __init__(self, roads: Iterable[Road] = (), *, radius_m: float = DEFAULT_RADIUS_M) -> None:
        if not radius_m > 0.0:
            raise ValueError(f"radius_m must be positive, got {radius_m}")
        self.radius_m = radius_m
        self._cell = radius_m / METRES_PER_DEGREE
        self._roads: dict[str, Road] = {}
        self._cells: dict[tuple[int, int], list[_Segment]] = {}
        self._cells_of: dict[str, set[tuple[int, int]]] = {}
        self._points: dict[tuple[float, float], Place] = {}
        """Places of the points looked up since the registry last changed: fixed sensors give
        the same point with every reading, and the nearest-road search is the costly part."""
        for road in roads:
            self.put(road)

    def __len__(self) -> int:
        return len(self._roads)

    def __iter__(self) -> Iterator[Road]:
        return iter(self._roads.values())

    def get(self, road_id: str) -> Road | None:
        """The road ``road_id``, or None if the registry does not know it."""
        return self._roads.get(road_id)

    def put(self, road: Road) -> None:
        """Insert ``road``, or replace the road of that id (its old segments leave the index)."""
        self.remove(road.road_id)
        self._points.clear()
        self._roads[road.road_id] = road
        cells: set[tuple[int, int]] = set()
        for line in road.segments:
            for a, b in itertools.pairwise(line):
                segment = _Segment(road.road_id, a[0], a[1], b[0], b[1])
                for cell in self._cells_crossed(segment):
                    self._cells.setdefault(cell, []).append(segment)
                    cells.add(cell)
        self._cells_of[road.road_id] = cells

    def remove(self, road_id: str) -> None:
        """Forget road ``road_id``; forgetting a road the registry does not know does nothing."""
        if self._roads.pop(road_id, None) is not None:
            self._points.clear()
        for cell in self._cells_of.pop(road_id, ()):
            kept = [s for s in self._cells[cell] if s.road_id != road_id]
            if kept:
                self._cells[cell] = kept
            else:
                del self._cells[cell]

    def nearest(self, lat: float, lon: float) -> tuple[Road, float] | None:
        """The road with a segment nearest to ``(lat, lon)`` within ``radius_m``, and that distance
        in metres; of equally near roads, the one with the lowest ``road_id``. None if no road is
        that near."""
        k = METRES_PER_DEGREE
        kx = k * max(math.cos(math.radians(lat)), _MIN_COS)
        # Slightly more than the radius, so float rounding never hides a road at the limit.
        reach = self.radius_m * 1.001
        size = self._cell
        row0 = math.floor((lat - reach / k) / size - _SLACK)
        row1 = math.floor((lat + reach / k) / size + _SLACK)
        col0 = math.floor((lon - reach / kx) / size - _SLACK)
        col1 = math.floor((lon + reach / kx) / size + _SLACK)
        if (row1 - row0 + 1) * (col1 - col0 + 1) <= len(self._cells):
            cells = self._cells
            candidates = (
                cells.get((row, col))
                for row in range(row0, row1 + 1)
                for col in range(col0, col1 + 1)
            )
        else:
            # Near a pole the box spans more cells than hold anything: read the occupied ones.
            candidates = (
                segments
                for (row, col), segments in self._cells.items()
                if row0 <= row <= row1 and col0 <= col <= col1
            )
        best2 = self.radius_m * self.radius_m
        best: str | None = None
        for segments in candidates:
            if not segments:
                continue
            for road_id, ax, ay, bx, by in segments:
                d2 = _distance2(lat, lon, kx, ax, ay, bx, by)
                if d2 < best2 or (d2 == best2 and (best is None or road_id < best)):
                    best2, best = d2, road_id
        if best is None:
            return None
        return self._roads[best], math.sqrt(best2)

    def place_of(self, location: Location) -> Place:
        """The place of an event: the road it names (known to the registry or not), else the road
        nearest to its point within ``radius_m``, else the grid cell of its point.

        Raises:
            ValueError: the location has neither a road nor a complete point (the codec never
                lets such an event through).
        """
        if location.road_id is not None:
            road = self._roads.get(location.road_id)
            if road is None:
                return Place(location.road_id, location.road_id, None, None)
            return Place(road.road_id, road.road_id, road.community, road.chief_id)
        if location.lat is None or location.lon is None:
            raise ValueError("a location needs a road_id or both lat and lon")
        point = (location.lat, location.lon)
        place = self._points.get(point)
        if place is None:
            if len(self._points) >= _POINTS_KEPT:
                self._points.clear()
            place = self._points[point] = self._place_of_point(*point)
        return place

    def _place_of_point(self, lat: float, lon: float) -> Place:
        found = self.nearest(lat, lon)
        if found is None:
            return Place(grid_cell(lat, lon), None, None, None)
        road = found[0]
        return Place(road.road_id, road.road_id, road.community, road.chief_id)

    def _cells_crossed(self, segment: _Segment) -> set[tuple[int, int]]:
        size = self._cell
        dx, dy = segment.bx - segment.ax, segment.by - segment.ay
        pieces = max(1, math.ceil(max(abs(dx), abs(dy)) / size))
        cells: set[tuple[int, int]] = set()
        x0, y0 = segment.ax, segment.ay
        for i in range(1, pieces + 1):
            t = i / pieces
            x1, y1 = segment.ax + dx * t, segment.ay + dy * t
            for row in range(
                math.floor(min(y0, y1) / size - _SLACK), math.floor(max(y0, y1) / size + _SLACK) + 1
            ):
                for col in range(
                    math.floor(min(x0, x1) / size - _SLACK),
                    math.floor(max(x0, x1) / size + _SLACK) + 1,
                ):
                    cells.add((row, col))
            x0, y0 = x1, y1
        return cells
