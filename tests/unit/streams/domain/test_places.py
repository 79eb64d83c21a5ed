"""Every event gets one place: the road it names, else the road nearest to its point within 150 m
(ties to the lowest road_id), else the grid cell of its point; the index agrees with a full scan."""

from __future__ import annotations

import math
from dataclasses import replace
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.event import Location
from schemas.road import Point, Road
from streams.domain.places import (
    CELL_SIZE_M,
    METRES_PER_DEGREE,
    Place,
    RoadIndex,
    cell_centre,
    grid_cell,
    segment_distance_m,
)

LAT0, LON0 = 34.72, 113.78


def _at(x: float, y: float, lat0: float = LAT0, lon0: float = LON0) -> tuple[float, float]:
    """``(lat, lon)`` of the point ``x`` metres east and ``y`` metres north of the origin."""
    return lat0 + y / METRES_PER_DEGREE, lon0 + x / (
        METRES_PER_DEGREE * math.cos(math.radians(lat0))
    )


def _road(road_id: str, *lines: list[tuple[float, float]], vacant: bool = False) -> Road:
    """A road whose polylines are given in metres east and north of the origin."""
    segments = tuple(tuple((_at(x, y)[1], _at(x, y)[0]) for x, y in line) for line in lines)
    chief_id = None if vacant else f"chief-{road_id}"
    return Road(road_id, road_id.title(), f"community-of-{road_id}", chief_id, segments)


# An east-west road along the origin's latitude, from 500 m west to 500 m east.
EAST_WEST = _road("yulong-st", [(-500, 0), (0, 0), (500, 0)])
# A north-south road 400 m east of the origin, south of it.
NORTH_SOUTH = _road("longxing-south-st", [(400, -600), (400, -100)])
VACANT = _road("longhu-st", [(-500, 800), (500, 800)], vacant=True)
REGISTRY = (EAST_WEST, NORTH_SOUTH, VACANT)


def _point(x: float, y: float, road_id: str | None = None) -> Location:
    lat, lon = _at(x, y)
    return Location(road_id, lat, lon)


def _on(road: Road) -> Place:
    return Place(road.road_id, road.road_id, road.community, road.chief_id)


def _cell(x: float, y: float) -> Place:
    return Place(grid_cell(*_at(x, y)), None, None, None)


@pytest.mark.parametrize(
    ("location", "want"),
    [
        pytest.param(Location("yulong-st", None, None), _on(EAST_WEST), id="road_id-given"),
        pytest.param(
            Location("no-such-rd", None, None),
            Place("no-such-rd", "no-such-rd", None, None),
            id="unknown-road_id-keeps-its-key",
        ),
        pytest.param(
            _point(400, -300, road_id="yulong-st"), _on(EAST_WEST), id="road_id-beats-the-point"
        ),
        pytest.param(_point(123, 0), _on(EAST_WEST), id="point-on-a-segment"),
        pytest.param(_point(-200, 140), _on(EAST_WEST), id="140m-from-a-segment"),
        pytest.param(_point(-200, 160), _cell(-200, 160), id="160m-from-a-segment"),
        pytest.param(_point(640, 0), _on(EAST_WEST), id="140m-beyond-the-end"),
        pytest.param(_point(660, 0), _cell(660, 0), id="160m-beyond-the-end"),
        pytest.param(_point(380, -120), _on(NORTH_SOUTH), id="two-roads-nearer-wins"),
        pytest.param(_point(330, -60), _on(EAST_WEST), id="two-roads-other-side"),
        pytest.param(_point(0, 700), _on(VACANT), id="vacant-post-has-no-chief"),
        pytest.param(_point(-1000, -1000), _cell(-1000, -1000), id="no-road-grid-cell"),
    ],
)
def test_place_of(location: Location, want: Place) -> None:
    assert RoadIndex(REGISTRY).place_of(location) == want


def test_a_location_with_neither_road_nor_point_is_refused() -> None:
    with pytest.raises(ValueError, match="road_id or both lat and lon"):
        RoadIndex(REGISTRY).place_of(Location(None, LAT0, None))


def test_nearest_reports_the_distance_in_metres() -> None:
    found = RoadIndex(REGISTRY).nearest(*_at(-200, 140))
    assert found is not None
    road, distance = found
    assert road == EAST_WEST
    assert distance == pytest.approx(140, abs=0.01)


def test_equally_near_roads_go_to_the_lowest_road_id() -> None:
    line = [(-300, 0), (300, 0)]
    twins = [_road(road_id, line) for road_id in ("b-road", "c-road", "a-road")]
    index = RoadIndex(twins)
    assert index.place_of(_point(0, 50)).road_id == "a-road"
    index.remove("a-road")
    assert index.place_of(_point(0, 50)).road_id == "b-road"


def test_put_replaces_the_road_and_its_segments() -> None:
    index = RoadIndex(REGISTRY)
    moved = _road("yulong-st", [(-500, 2000), (500, 2000)], vacant=True)
    index.put(moved)
    assert len(index) == len(REGISTRY)
    assert index.get("yulong-st") == moved
    assert index.place_of(_point(0, 0)).road_id is None
    assert index.place_of(_point(0, 2050)) == _on(moved)


def test_remove_forgets_the_road_and_ignores_unknown_ids() -> None:
    index = RoadIndex(REGISTRY)
    index.remove("yulong-st")
    index.remove("yulong-st")
    index.remove("never-there")
    assert len(index) == len(REGISTRY) - 1
    assert sorted(road.road_id for road in index) == ["longhu-st", "longxing-south-st"]
    assert index.get("yulong-st") is None
    assert index.nearest(*_at(0, 0)) is None
    assert index.place_of(Location("yulong-st", None, None)) == Place(
        "yulong-st", "yulong-st", None, None
    )


def test_radius_is_configurable_and_must_be_positive() -> None:
    assert RoadIndex(REGISTRY, radius_m=100).nearest(*_at(-200, 140)) is None
    with pytest.raises(ValueError, match="positive"):
        RoadIndex(radius_m=0)


@pytest.mark.parametrize(("dx", "dy"), [(200, 0), (0, 200), (-200, 0), (0, -200), (150, 150)])
def test_points_200m_apart_are_in_different_cells(dx: float, dy: float) -> None:
    for x, y in [(0, 0), (37, -81), (-1234, 567)]:
        assert grid_cell(*_at(x, y)) != grid_cell(*_at(x + dx, y + dy))


def test_points_near_a_cell_centre_share_its_cell_and_cells_are_100m() -> None:
    key = grid_cell(LAT0, LON0)
    lat, lon = cell_centre(key)
    assert grid_cell(lat, lon) == key
    for dx in (-45, 0, 45):
        for dy in (-45, 0, 45):
            assert grid_cell(*_at(dx, dy, lat, lon)) == key
    _, row, col = key.split(":")
    assert grid_cell(*_at(0, 55, lat, lon)) == f"cell:{int(row) + 1}:{col}"
    assert grid_cell(*_at(55, 0, lat, lon)) == f"cell:{row}:{int(col) + 1}"
    assert CELL_SIZE_M == 100


def test_grid_cell_ids_are_stable() -> None:
    # A change here re-keys every open task placed on a grid cell: change it deliberately.
    assert grid_cell(34.72, 113.78) == "cell:38606:104266"


def _brute_force(roads: list[Road], lat: float, lon: float, radius: float) -> tuple[str, float]:
    best = min(
        (
            (segment_distance_m(lat, lon, a, b), road.road_id)
            for road in roads
            for line in road.segments
            for a, b in pairwise(line)
        ),
        default=(math.inf, ""),
    )
    return (best[1], best[0]) if best[0] <= radius else ("", math.inf)


_metres = st.floats(-1500, 1500, allow_nan=False)


@st.composite
def _cities(draw: st.DrawFn) -> tuple[float, float, list[Road]]:
    lat0 = draw(st.floats(-70, 70))
    lon0 = draw(st.floats(-179, 179))
    roads = []
    for i in range(draw(st.integers(0, 8))):
        lines = []
        for _ in range(draw(st.integers(1, 2))):
            points: list[Point] = []
            for _ in range(draw(st.integers(2, 4))):
                lat, lon = _at(draw(_metres), draw(_metres), lat0, lon0)
                points.append((lon, lat))
            lines.append(tuple(points))
        # Few distinct ids, so some roads replace others, as in a registry being edited.
        roads.append(Road(f"r{draw(st.integers(0, 5))}-{i % 2}", "n", "c", None, tuple(lines)))
    return lat0, lon0, roads


@settings(max_examples=200, deadline=None)
@given(
    city=_cities(),
    queries=st.lists(st.tuples(_metres, _metres), min_size=1, max_size=10),
    radius=st.sampled_from([20.0, 150.0, 600.0]),
)
def test_nearest_equals_a_scan_of_every_segment(
    city: tuple[float, float, list[Road]], queries: list[tuple[float, float]], radius: float
) -> None:
    lat0, lon0, roads = city
    index = RoadIndex(radius_m=radius)
    for road in roads:
        index.put(road)
    registry = list({road.road_id: road for road in roads}.values())
    for x, y in queries:
        lat, lon = _at(x, y, lat0, lon0)
        found = index.nearest(lat, lon)
        got = ("", math.inf) if found is None else (found[0].road_id, found[1])
        assert got == _brute_force(registry, lat, lon, radius)


def test_a_point_looked_up_before_a_registry_change_gets_the_new_answer() -> None:
    # Sensors repeat their point, so its place is remembered: until the registry changes.
    index = RoadIndex([NORTH_SOUTH])
    sensor = _point(0, 50)
    assert index.place_of(sensor) == _cell(0, 50)
    index.put(EAST_WEST)
    assert index.place_of(sensor) == _on(EAST_WEST)
    new_chief = replace(EAST_WEST, chief_id="chief-new")
    index.put(new_chief)
    assert index.place_of(sensor) == _on(new_chief)
    index.remove("never-there")
    assert index.place_of(sensor) == _on(new_chief)
    index.remove("yulong-st")
    assert index.place_of(sensor) == _cell(0, 50)
