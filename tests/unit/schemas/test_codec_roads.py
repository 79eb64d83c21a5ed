"""decode_road: registry records from city.registry.roads, whose chief receives a road's tasks."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.codec import Rejection, decode_road
from schemas.enums import RejectReason
from schemas.event import ID_MAX
from schemas.json import dumps
from schemas.road import Road
from tests.factories import ABSENT, road_bytes, road_dict, with_field


def _accepted(raw: bytes) -> Road:
    result = decode_road(raw)
    assert isinstance(result, Road), result
    return result


def _bad(case_id: str, path: str, value: Any, field: str | None = None) -> Any:
    return pytest.param(dumps(with_field(road_dict(), path, value)), field or path, id=case_id)


_CASES = [
    *(_bad(f"missing_{f}", f, ABSENT) for f in ["road_id", "name", "community", "segments"]),
    *(_bad(f"empty_{f}", f, "") for f in ["road_id", "name", "community", "chief_id"]),
    _bad("road_id_too_long", "road_id", "r" * (ID_MAX + 1)),
    _bad("segments_empty", "segments", []),
    _bad("segments_object", "segments", {"a": 1}),
    _bad("polyline_of_one_point", "segments", [[[113.78, 34.72]]], "segments[0]"),
    _bad("point_of_three_numbers", "segments.0.0", [113.78, 34.72, 80.0], "segments[0][0]"),
    _bad("point_as_object", "segments.0.0", {"lon": 113.78, "lat": 34.72}, "segments[0][0]"),
    _bad("coordinate_bool", "segments.0.1", [True, 34.72], "segments[0][1][0]"),
    _bad("coordinate_string", "segments.0.1", [113.78, "34.72"], "segments[0][1][1]"),
    # [lat, lon] instead of GeoJSON's [lon, lat]: 113.78 is no latitude.
    _bad("lat_lon_swapped", "segments.0.1", [34.7215, 113.7842], "segments[0][1]"),
    _bad("lon_out_of_range", "segments.0.2", [180.5, 34.72], "segments[0][2]"),
]


@pytest.mark.parametrize(("raw", "field"), _CASES)
def test_malformed_road_is_a_schema_rejection_naming_the_field(raw: bytes, field: str) -> None:
    result = decode_road(raw)
    assert isinstance(result, Rejection), result
    assert result.reason is RejectReason.SCHEMA
    assert field in result.detail


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"\xff", b"[" * 5000 + b"]" * 5000],
    ids=["empty", "truncated", "not_utf8", "nested_5000_deep"],
)
def test_invalid_json_road_is_rejected(raw: bytes) -> None:
    result = decode_road(raw)
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.INVALID_JSON


def test_road_decodes_to_typed_values_in_lon_lat_order() -> None:
    road = _accepted(road_bytes())
    assert road.road_id == "yulong-st"
    assert road.chief_id == "chief-yulong"
    assert road.segments[0][0] == (113.7830, 34.7215)
    assert road.to_wire() == road_dict()


def test_road_without_chief_is_vacant() -> None:
    assert _accepted(road_bytes(chief_id=None)).chief_id is None
    assert _accepted(road_bytes(chief_id=ABSENT)).chief_id is None


def test_road_round_trips_through_to_wire() -> None:
    segments = [[[113.0, 34.0], [113.5, 34.5]], [[-180, -90], [180, 90], [0, 0]]]
    road = _accepted(road_bytes(segments=segments))
    assert _accepted(dumps(road.to_wire())) == road


def test_road_limit_is_one_mib_by_default() -> None:
    point = [113.78, 34.72]
    big = road_bytes(segments=[[point] * 70_000])
    assert len(big) > 1024 * 1024
    result = decode_road(big)
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.TOO_LARGE
    assert isinstance(decode_road(big, max_bytes=len(big)), Road)
