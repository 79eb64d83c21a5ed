"""Nearest-road lookups per second with the spatial index versus a scan of every segment.

A synthetic city of 5,000 roads (2 to 4 segments each, mostly on a street grid) over 40 km x 40 km
around Zhengzhou; half the queries fall near a road, half anywhere. Run:
``.venv/bin/python bench/places.py``.
"""

from __future__ import annotations

import math
import random
import time
from itertools import pairwise

from schemas.road import Point, Road
from streams.domain.places import (
    DEFAULT_RADIUS_M,
    METRES_PER_DEGREE,
    RoadIndex,
    _distance2,  # the index's own inner step, so the scan is like for like
)

ROADS = 5_000
QUERIES = 20_000
BRUTE_QUERIES = 200
LAT0, LON0 = 34.75, 113.65
SPAN_M = 40_000.0
KX = METRES_PER_DEGREE * math.cos(math.radians(LAT0))


def _point(x: float, y: float) -> Point:
    return (LON0 + x / KX, LAT0 + y / METRES_PER_DEGREE)


def synthetic_roads(rng: random.Random) -> list[Road]:
    roads = []
    for i in range(ROADS):
        x, y = rng.uniform(0, SPAN_M), rng.uniform(0, SPAN_M)
        heading = rng.choice((0.0, 90.0, 180.0, 270.0)) + rng.gauss(0, 4)
        points = [_point(x, y)]
        for _ in range(rng.randint(2, 4)):
            step = rng.uniform(150, 500)
            heading += rng.gauss(0, 6)
            x += step * math.cos(math.radians(heading))
            y += step * math.sin(math.radians(heading))
            points.append(_point(x, y))
        roads.append(
            Road(f"road-{i:05d}", f"Road {i}", f"c{i % 70}", f"chief-{i}", (tuple(points),))
        )
    return roads


def queries(rng: random.Random, roads: list[Road]) -> list[tuple[float, float]]:
    out = []
    for i in range(QUERIES):
        if i % 2:
            lon, lat = rng.choice(rng.choice(roads).segments[0])
            out.append((lat + rng.gauss(0, 100) / METRES_PER_DEGREE, lon + rng.gauss(0, 100) / KX))
        else:
            x, y = _point(rng.uniform(0, SPAN_M), rng.uniform(0, SPAN_M))
            out.append((y, x))
    return out


def brute_force(roads: list[Road], lat: float, lon: float) -> tuple[str, float] | None:
    kx = METRES_PER_DEGREE * math.cos(math.radians(lat))
    best2, best = DEFAULT_RADIUS_M**2, None
    for road in roads:
        for line in road.segments:
            for a, b in pairwise(line):
                d2 = _distance2(lat, lon, kx, a[0], a[1], b[0], b[1])
                if d2 < best2 or (d2 == best2 and (best is None or road.road_id < best)):
                    best2, best = d2, road.road_id
    return None if best is None else (best, math.sqrt(best2))


def main() -> None:
    rng = random.Random(42)  # noqa: S311 - synthetic data
    roads = synthetic_roads(rng)
    points = queries(rng, roads)
    segments = sum(len(line) - 1 for road in roads for line in road.segments)

    started = time.perf_counter()
    index = RoadIndex(roads)
    build = time.perf_counter() - started

    started = time.perf_counter()
    found = [index.nearest(lat, lon) for lat, lon in points]
    indexed = len(points) / (time.perf_counter() - started)

    started = time.perf_counter()
    scanned = [brute_force(roads, lat, lon) for lat, lon in points[:BRUTE_QUERIES]]
    brute = BRUTE_QUERIES / (time.perf_counter() - started)

    mine = [None if f is None else (f[0].road_id, f[1]) for f in found[:BRUTE_QUERIES]]
    assert mine == scanned, "the index and the scan disagree"  # noqa: S101 - a bench self-check
    hits = sum(f is not None for f in found) / len(found)

    print(f"{ROADS} roads, {segments} segments, radius {DEFAULT_RADIUS_M:.0f} m")  # noqa: T201
    print(f"index build      {build * 1000:8.0f} ms ({len(index._cells)} cells)")  # noqa: T201
    print(f"index lookups    {indexed:8.0f} /s  ({hits:.0%} within the radius)")  # noqa: T201
    print(f"brute force scan {brute:8.0f} /s  (speed-up x{indexed / brute:.0f})")  # noqa: T201


if __name__ == "__main__":
    main()
