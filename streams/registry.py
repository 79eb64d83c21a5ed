"""The road registry (路长制) as ops tooling handles it: read and check a registry file, publish its
roads to ``city.registry.roads``, and delete a road with a tombstone.

A registry file is a JSON array of Road objects exactly as the contract puts them on the topic;
:data:`DEMO_REGISTRY` is the Jiulong sub-district's, shipped with the project.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Final, TypeAlias

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from schemas.codec import Rejection, decode_road
from schemas.json import JSONDecodeError, dumps, loads
from schemas.road import Road
from streams.exceptions import RegistryError
from streams.settings import Settings
from streams.topics import kafka_client_options, topic_name

__all__ = ["DEMO_REGISTRY", "REGISTRY_TOPIC", "delete_road", "load_registry_file", "publish_roads"]

REGISTRY_TOPIC: Final = "city.registry.roads"
"""The contract topic of the registry (before the deployment's topic prefix)."""

DEMO_REGISTRY: Final = (
    Path(__file__).resolve().parent.parent / "deploy" / "registry" / "jiulong.json"
)
"""The demo registry: the seven communities of the Jiulong sub-district and their roads."""

# A metadata wait longer than this means the topic is missing or the broker is away; the default
# (40 s) would leave an operator staring at a silent command.
_REQUEST_TIMEOUT_MS: Final = 15_000

_Send: TypeAlias = Callable[[AIOKafkaProducer], Awaitable[int]]


def load_registry_file(path: Path) -> list[Road]:
    """The roads of registry file ``path``, each checked as the worker checks a registry record.

    Raises:
        RegistryError: the file cannot be read, is not a JSON array, holds a record the codec
            refuses (the message names its index, its road_id and the codec's detail) or holds two
            records with one road_id.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        records = loads(raw)
    except JSONDecodeError as exc:
        raise RegistryError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(records, list):
        raise RegistryError(f"{path}: must be a JSON array of roads")
    roads: list[Road] = []
    first_at: dict[str, int] = {}
    for i, record in enumerate(records):
        road = decode_road(dumps(record))
        if isinstance(road, Rejection):
            raise RegistryError(f"{path}: road {i} ({_road_id_of(record)}): {road.detail}")
        if road.road_id in first_at:
            raise RegistryError(
                f"{path}: road {i} ({road.road_id!r}): duplicate road_id, "
                f"already at road {first_at[road.road_id]}"
            )
        first_at[road.road_id] = i
        roads.append(road)
    return roads


def _road_id_of(record: object) -> str:
    road_id = record.get("road_id") if isinstance(record, dict) else None
    return repr(road_id) if isinstance(road_id, str) else "no road_id"


async def publish_roads(settings: Settings, roads: Sequence[Road]) -> int:
    """Publish ``roads`` to the registry topic, keyed by road_id, and wait for every write to be
    acknowledged by all in-sync replicas. Returns how many were published.

    Raises:
        RegistryError: the broker could not be reached or refused a write.
    """
    topic = topic_name(settings, REGISTRY_TOPIC)

    async def send(producer: AIOKafkaProducer) -> int:
        pending = [
            await producer.send(topic, dumps(road.to_wire()), key=road.road_id.encode())
            for road in roads
        ]
        await asyncio.gather(*pending)
        return len(pending)

    return await _with_producer(settings, topic, send)


async def delete_road(settings: Settings, road_id: str) -> None:
    """Write a tombstone (a null value) for ``road_id``: workers forget the road, and compaction
    eventually removes its records. Deleting a road the registry does not hold is harmless.

    Raises:
        RegistryError: the broker could not be reached or refused the write.
    """
    topic = topic_name(settings, REGISTRY_TOPIC)

    async def send(producer: AIOKafkaProducer) -> int:
        await producer.send_and_wait(topic, None, key=road_id.encode())
        return 1

    await _with_producer(settings, topic, send)


async def _with_producer(settings: Settings, topic: str, send: _Send) -> int:
    producer = AIOKafkaProducer(
        **kafka_client_options(settings),
        acks="all",
        client_id="citygrid-registry",
        request_timeout_ms=_REQUEST_TIMEOUT_MS,
    )
    try:
        await producer.start()
        return await send(producer)
    except KafkaConnectionError as exc:
        raise RegistryError(
            f"cannot reach the broker at {settings.bootstrap_servers}: {exc}"
        ) from exc
    except KafkaTimeoutError as exc:
        raise RegistryError(
            f"{settings.bootstrap_servers} did not take the write to {topic} within "
            f"{_REQUEST_TIMEOUT_MS // 1000} s: does the topic exist? (`citygrid topics create`)"
        ) from exc
    except KafkaError as exc:
        raise RegistryError(
            f"could not write to {topic} on {settings.bootstrap_servers}: {exc!r}"
        ) from exc
    finally:
        await producer.stop()
