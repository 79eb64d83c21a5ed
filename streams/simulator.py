"""Simulated field traffic: a fleet of terminals, sensors, cameras, drones and hotline operators
publishing events around the Jiulong sub-district, with a share of malformed messages.

Places come from the demo road registry: terminals, cameras, drones and the hotline name a road and
give a point on it; fixed sensors give only their point, within 30 m of a road; about one report
in twenty comes from inside a block, away from every road, and belongs to a grid cell. Generation
is pure and seeded (same seed, same messages); :func:`publish` sends them to Kafka at a steady rate.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer

from schemas.categories import CATEGORIES, Category
from schemas.enums import Domain, Source
from schemas.json import dumps
from schemas.road import Point, Road
from streams.domain.places import METRES_PER_DEGREE, RoadIndex
from streams.registry import DEMO_REGISTRY, load_registry_file
from streams.settings import Settings
from streams.topics import EVENT_TOPICS, kafka_client_options, topic_name

__all__ = ["Message", "SimulatorConfig", "messages", "publish"]

logger = logging.getLogger(__name__)

_SENSORS_PER_ROAD = 3
_SENSOR_OFFSET_M = 30.0
"""Fixed sensors stand on the pavement or a wall, at most this far from the road's centre line."""
_OFF_ROAD_SHARE = 0.05
"""Share of reports from inside a block (a compound, a building site), away from every road."""
_OFF_ROAD_SENSORS = 4
_MANUAL_SOURCES = (Source.TERMINAL, Source.CAMERA, Source.DRONE, Source.HOTLINE)
_MALFORMED: tuple[Callable[[dict[str, Any]], bytes], ...] = (
    lambda e: dumps(e)[:-7],  # truncated in flight
    lambda e: dumps({k: v for k, v in e.items() if k != "occurred_at"}),
    lambda e: dumps({**e, "category": "9999"}),
    lambda e: dumps({**e, "occurred_at": "yesterday"}),
    lambda e: b"\xff\xfe" + dumps(e),
)


class Message(NamedTuple):
    """One message to publish: the domain topic, the key (device id) and the value bytes."""

    domain: Domain
    key: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """How much traffic, how fast, how dirty."""

    rate: float = 20.0
    """Messages per second."""
    count: int | None = None
    """Stop after this many messages (None: no limit)."""
    duration: float | None = None
    """Stop after this many seconds (None: no limit)."""
    seed: int = 7
    bad_ratio: float = 0.02
    """Share of messages that are deliberately malformed."""


def _sensor_reading(rng: random.Random, category: Category) -> dict[str, Any] | None:
    rule = category.sensor
    if rule is None:
        return None
    # Most readings sit below the threshold; about one in five crosses it.
    crosses = rng.random() < 0.2  # noqa: PLR2004 - share of readings over the threshold
    if rule.metric == "smoke":
        value = 1.0 if crosses else 0.0
    else:
        factor = rng.uniform(1.05, 1.6) if crosses else rng.uniform(0.2, 0.95)
        value = round(rule.threshold * factor, 2)
    return {"metric": rule.metric, "value": value, "unit": rule.unit}


class _Spot(NamedTuple):
    """A point of the district, and the road a reporter there names (None: only the point)."""

    road_id: str | None
    lat: float
    lon: float


class _Sensor(NamedTuple):
    device_id: str
    spot: _Spot


@dataclass(frozen=True, slots=True)
class _District:
    """The demo registry as the simulator samples it."""

    roads: tuple[Road, ...]
    index: RoadIndex
    bounds: tuple[float, float, float, float]
    """South, north, west and east edges of the registry's points."""
    sensors: tuple[_Sensor, ...]
    off_road_sensors: tuple[_Sensor, ...]


@functools.cache
def _district() -> _District:
    roads = tuple(load_registry_file(DEMO_REGISTRY))
    index = RoadIndex(roads)
    points = [p for road in roads for line in road.segments for p in line]
    lons, lats = [p[0] for p in points], [p[1] for p in points]
    bounds = (min(lats), max(lats), min(lons), max(lons))
    # A sensor stays where it was installed whatever the seed: each has its own generator.
    sensors = tuple(
        _Sensor(
            f"sen-{road.road_id}-{n:02d}",
            _near_road(random.Random(f"{road.road_id}/{n}"), road),  # noqa: S311
        )
        for road in roads
        for n in range(1, _SENSORS_PER_ROAD + 1)
    )
    off_road_sensors = tuple(
        _Sensor(
            f"sen-block-{n:02d}",
            _off_road(random.Random(f"block/{n}"), index, bounds),  # noqa: S311
        )
        for n in range(1, _OFF_ROAD_SENSORS + 1)
    )
    return _District(roads, index, bounds, sensors, off_road_sensors)


def _on_road(rng: random.Random, road: Road) -> _Spot:
    """A point on ``road``, uniformly along its length."""
    pieces = [(a, b, _length_m(a, b)) for line in road.segments for a, b in pairwise(line)]
    at = rng.uniform(0.0, sum(length for _, _, length in pieces))
    for a, b, length in pieces:  # noqa: B007 - the piece the loop stops on is the one wanted
        if at <= length:
            break
        at -= length
    t = min(at / length, 1.0) if length else 0.0
    return _Spot(road.road_id, a[1] + (b[1] - a[1]) * t, a[0] + (b[0] - a[0]) * t)


def _near_road(rng: random.Random, road: Road) -> _Spot:
    """A point within :data:`_SENSOR_OFFSET_M` of ``road`` (uniform over a disc around a point on
    it), without the road's id."""
    on = _on_road(rng, road)
    distance = _SENSOR_OFFSET_M * math.sqrt(rng.random())
    bearing = rng.uniform(0.0, 2 * math.pi)
    return _Spot(
        None,
        on.lat + distance * math.cos(bearing) / METRES_PER_DEGREE,
        on.lon + distance * math.sin(bearing) / _metres_per_degree_lon(on.lat),
    )


def _off_road(
    rng: random.Random, index: RoadIndex, bounds: tuple[float, float, float, float]
) -> _Spot:
    """A point within ``bounds`` further than the placing radius from every road."""
    south, north, west, east = bounds
    for _ in range(100):
        # Rounded as published, so that the published point is the one checked.
        lat, lon = round(rng.uniform(south, north), 6), round(rng.uniform(west, east), 6)
        if index.nearest(lat, lon) is None:
            return _Spot(None, lat, lon)
    # Hardly any room between the roads: step outside the district instead.
    return _Spot(None, north + 2 * index.radius_m / METRES_PER_DEGREE, east)


def _length_m(a: Point, b: Point) -> float:
    return math.hypot(
        (b[0] - a[0]) * _metres_per_degree_lon(a[1]), (b[1] - a[1]) * METRES_PER_DEGREE
    )


def _metres_per_degree_lon(lat: float) -> float:
    return METRES_PER_DEGREE * math.cos(math.radians(lat))


def _event(rng: random.Random, seq: int, now: datetime) -> dict[str, Any]:
    district = _district()
    category = rng.choice(list(CATEGORIES.values()))
    sensor_capable = category.sensor is not None
    # Where a sensor can see the problem, most reports come from one.
    by_sensor = sensor_capable and rng.random() < 0.6  # noqa: PLR2004
    off_road = rng.random() < _OFF_ROAD_SHARE
    if by_sensor:
        source = Source.SENSOR
        device_id, spot = rng.choice(district.off_road_sensors if off_road else district.sensors)
    else:
        source = rng.choice(_MANUAL_SOURCES)
        if off_road:
            spot = _off_road(rng, district.index, district.bounds)
            device_id = f"{source.value[:3]}-block-{rng.randrange(1, 6):02d}"
        else:
            spot = _on_road(rng, rng.choice(district.roads))
            device_id = f"{source.value[:3]}-{spot.road_id}-{rng.randrange(1, 6):02d}"
    location: dict[str, Any] = {"lat": round(spot.lat, 6), "lon": round(spot.lon, 6)}
    if spot.road_id is not None:
        location["road_id"] = spot.road_id
    event: dict[str, Any] = {
        "event_id": f"sim-{seq:09d}",
        "domain": category.domain.value,
        "source": source.value,
        "device_id": device_id,
        "category": category.code,
        "occurred_at": (now - timedelta(seconds=rng.uniform(0, 3))).isoformat(),
        "location": location,
    }
    if source is Source.SENSOR:
        event["reading"] = _sensor_reading(rng, category)
    if source is Source.TERMINAL:
        event["officer_id"] = f"officer-{rng.randrange(1, 40):03d}"
        event["description"] = f"{category.name_zh} / {category.name_en}"
    if source in (Source.TERMINAL, Source.CAMERA, Source.DRONE):
        digest = hashlib.sha256(f"{device_id}/{seq}".encode()).hexdigest()
        event["evidence"] = [{"sha256": digest, "media_type": "image/jpeg"}]
    return event


def messages(
    config: SimulatorConfig, clock: Callable[[], datetime] | None = None
) -> Iterator[Message]:
    """The simulated messages in order; endless unless ``config.count`` is set."""
    rng = random.Random(config.seed)  # noqa: S311 - simulation, not cryptography
    now = clock or (lambda: datetime.now(UTC))
    seq = 0
    while config.count is None or seq < config.count:
        event = _event(rng, seq, now())
        domain = Domain(event["domain"])
        bad = rng.random() < config.bad_ratio
        value = rng.choice(_MALFORMED)(event) if bad else dumps(event)
        yield Message(domain, event["device_id"].encode(), value)
        seq += 1


async def publish(
    settings: Settings,
    config: SimulatorConfig,
    on_sent: Callable[[int], None] | None = None,
) -> int:
    """Publish simulated messages at ``config.rate`` until the count or duration is reached.

    Returns how many messages were sent; ``on_sent`` is called with the running total.
    """
    producer = AIOKafkaProducer(**kafka_client_options(settings), acks="all", linger_ms=5)
    await producer.start()
    sent = 0
    started = time.monotonic()
    try:
        for message in messages(config):
            elapsed = time.monotonic() - started
            if config.duration is not None and elapsed >= config.duration:
                break
            # Pace against the schedule, not the previous send, so the rate does not drift.
            ahead = sent / config.rate - elapsed
            if ahead > 0:
                await asyncio.sleep(ahead)
            topic = topic_name(settings, EVENT_TOPICS[message.domain])
            await producer.send(topic, message.value, key=message.key)
            sent += 1
            if on_sent is not None:
                on_sent(sent)
        await producer.flush()
    finally:
        await producer.stop()
    return sent
