"""Simulated field traffic: a fleet of terminals, sensors, cameras, drones and hotline operators
publishing events around the Jiulong sub-district, with a share of malformed messages.

Generation is pure and seeded (same seed, same messages); :func:`publish` sends them to Kafka at a
steady rate.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer

from schemas.categories import CATEGORIES, Category
from schemas.enums import Domain, Source
from schemas.json import dumps
from streams.settings import Settings
from streams.topics import EVENT_TOPICS, kafka_client_options, topic_name

__all__ = ["Message", "SimulatorConfig", "messages", "publish"]

logger = logging.getLogger(__name__)

# Roads of DOMAIN.md with a point on each, around 34.72 N, 113.78 E.
_ROADS: tuple[tuple[str, float, float], ...] = (
    ("yulong-st", 34.7215, 113.7842),
    ("longshan-st", 34.7248, 113.7791),
    ("longfei-north-st", 34.7302, 113.7755),
    ("longxing-south-st", 34.7153, 113.7868),
    ("south-third-ring-rd", 34.7106, 113.7810),
    ("sihai-rd", 34.7269, 113.7920),
    ("yuhe-rd", 34.7190, 113.7730),
)
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


def _event(rng: random.Random, seq: int, now: datetime) -> dict[str, Any]:
    category = rng.choice(list(CATEGORIES.values()))
    road_id, lat, lon = rng.choice(_ROADS)
    sensor_capable = category.sensor is not None
    # Where a sensor can see the problem, most reports come from one.
    by_sensor = sensor_capable and rng.random() < 0.6  # noqa: PLR2004
    source = Source.SENSOR if by_sensor else rng.choice(_MANUAL_SOURCES)
    device_id = f"{source.value[:3]}-{road_id[:8]}-{rng.randrange(1, 6):02d}"
    event: dict[str, Any] = {
        "event_id": f"sim-{seq:09d}",
        "domain": category.domain.value,
        "source": source.value,
        "device_id": device_id,
        "category": category.code,
        "occurred_at": (now - timedelta(seconds=rng.uniform(0, 3))).isoformat(),
        "location": {
            "road_id": road_id,
            "lat": round(lat + rng.uniform(-0.0005, 0.0005), 6),
            "lon": round(lon + rng.uniform(-0.0005, 0.0005), 6),
        },
    }
    if source is Source.SENSOR:
        event["reading"] = _sensor_reading(rng, category)
        del event["location"]["road_id"]
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
