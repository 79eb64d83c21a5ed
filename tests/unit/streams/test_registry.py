"""The shipped demo registry is the Jiulong sub-district of DOMAIN.md, and a bad registry file is
refused with an error that names the road."""

from __future__ import annotations

import math
import re
from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest

from schemas.json import dumps
from schemas.road import Road
from streams.domain.places import METRES_PER_DEGREE, RoadIndex
from streams.exceptions import CitygridError, RegistryError
from streams.registry import DEMO_REGISTRY, load_registry_file
from tests.factories import road_dict

DOMAIN_ROADS = {
    "yulong-st": "宇龙街",
    "longshan-st": "龙善街",
    "longfei-north-st": "龙飞北街",
    "longxing-south-st": "龙兴南街",
    "south-third-ring-rd": "南三环",
    "sihai-rd": "四海路",
    "yuhe-rd": "宇和路",
}
JIULONG_LAT, JIULONG_LON = 34.72, 113.78


@pytest.fixture(scope="module")
def demo() -> list[Road]:
    return load_registry_file(DEMO_REGISTRY)


def _length_m(road: Road) -> float:
    kx = METRES_PER_DEGREE * math.cos(math.radians(JIULONG_LAT))
    return max(
        sum(
            math.hypot((b[0] - a[0]) * kx, (b[1] - a[1]) * METRES_PER_DEGREE)
            for a, b in pairwise(line)
        )
        for line in road.segments
    )


def test_demo_registry_has_the_seven_communities_and_about_twenty_roads(demo: list[Road]) -> None:
    assert 18 <= len(demo) <= 24
    per_community = Counter(road.community for road in demo)
    assert len(per_community) == 7
    assert min(per_community.values()) >= 2
    assert all(community.endswith("社区") for community in per_community)


def test_demo_registry_has_every_road_named_in_the_domain_brief(demo: list[Road]) -> None:
    names = {road.road_id: road.name for road in demo}
    for road_id, chinese in DOMAIN_ROADS.items():
        assert road_id in names
        assert names[road_id].startswith(chinese), names[road_id]


def test_demo_registry_has_exactly_one_vacant_post(demo: list[Road]) -> None:
    assert len([road for road in demo if road.chief_id is None]) == 1
    chiefs = [road.chief_id for road in demo if road.chief_id is not None]
    assert len(set(chiefs)) == len(chiefs)


def test_demo_roads_are_city_streets_around_jiulong(demo: list[Road]) -> None:
    for road in demo:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", road.road_id), road.road_id
        assert 300 <= _length_m(road) <= 2100, road.road_id
        for line in road.segments:
            assert 2 <= len(line) <= 5, road.road_id
            for lon, lat in line:
                assert abs(lat - JIULONG_LAT) < 0.03, road.road_id
                assert abs(lon - JIULONG_LON) < 0.03, road.road_id


def test_the_middle_of_every_demo_road_is_placed_on_that_road(demo: list[Road]) -> None:
    index = RoadIndex(demo)
    for road in demo:
        line = road.segments[0]
        (lon_a, lat_a), (lon_b, lat_b) = line[len(line) // 2 - 1], line[len(line) // 2]
        found = index.nearest((lat_a + lat_b) / 2, (lon_a + lon_b) / 2)
        assert found is not None
        assert found[0].road_id == road.road_id


def test_registry_error_is_a_citygrid_error() -> None:
    assert issubclass(RegistryError, CitygridError)


def _write(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "registry.json"
    path.write_bytes(content)
    return path


def test_a_valid_file_loads_in_order(tmp_path: Path) -> None:
    records = [road_dict(road_id="a-st"), road_dict(road_id="b-st", chief_id=None)]
    roads = load_registry_file(_write(tmp_path, dumps(records)))
    assert [road.road_id for road in roads] == ["a-st", "b-st"]
    assert roads[1].chief_id is None
    assert [road.to_wire() for road in roads] == records


@pytest.mark.parametrize(
    ("records", "message"),
    [
        pytest.param(
            [road_dict(road_id="a-st"), road_dict(road_id="b-st", segments=[[[113.78, 34.72]]])],
            r"road 1 \('b-st'\): segments\[0\]: must be a list of at least two",
            id="bad-segments",
        ),
        pytest.param(
            [road_dict(road_id="a-st", segments=[[[34.72, 200.0], [34.73, 113.78]]])],
            r"road 0 \('a-st'\): segments\[0\]\[0\]: .* is not a WGS84",
            id="lat-lon-swapped",
        ),
        pytest.param(
            [road_dict(road_id="a-st", community=None)],
            r"road 0 \('a-st'\): community: required",
            id="missing-field",
        ),
        pytest.param(
            [road_dict(road_id="a-st"), road_dict(road_id="b-st"), road_dict(road_id="a-st")],
            r"road 2 \('a-st'\): duplicate road_id, already at road 0",
            id="duplicate",
        ),
        pytest.param(
            [{"name": "no id"}], r"road 0 \(no road_id\): road_id: required", id="no-road_id"
        ),
        pytest.param(["yulong-st"], r"road 0 \(no road_id\): .*object", id="not-an-object"),
        pytest.param(road_dict(), r"must be a JSON array of roads", id="not-an-array"),
    ],
)
def test_a_bad_file_is_refused_naming_the_road(
    tmp_path: Path, records: object, message: str
) -> None:
    with pytest.raises(RegistryError, match=message):
        load_registry_file(_write(tmp_path, dumps(records)))


def test_an_unreadable_or_non_json_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="cannot read"):
        load_registry_file(tmp_path / "missing.json")
    with pytest.raises(RegistryError, match="not valid JSON"):
        load_registry_file(_write(tmp_path, b'[{"road_id": "a-st",'))
