"""The local brokers do what citygrid relies on Kafka for: round trips, compaction, restarts.

The crash test runs first and starts a broker of its own (of the kind ``CITYGRID_TEST_BROKER``
names), so that when this file runs alone it is over before the session's broker starts.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, cast, get_args

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streams.brokers import BrokerKind, LocalBroker

Record = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]

RECORDS: list[Record] = [
    (b"device-1", b'{"seq": 1}', [("trace-id", b"abc"), ("source", b"sensor")]),
    # Not UTF-8, repeated and empty header values: bytes must come back untouched.
    (b"\x00\xffdevice-2", bytes(range(256)), [("a", b"1"), ("a", b"2"), ("empty", b"")]),
    (None, b"", []),
]


async def produce(bootstrap: str, topic: str, records: list[Record]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value, headers in records:
            # One partition, so order is defined: tansu auto-creates topics with 4 partitions.
            await producer.send_and_wait(topic, value, key, partition=0, headers=headers)
    finally:
        await producer.stop()


async def consume(bootstrap: str, topic: str, count: int) -> list[Record]:
    """Read the first ``count`` records of partition 0, without a consumer group."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    consumer.assign([TopicPartition(topic, 0)])
    try:
        return await take(consumer, count)
    finally:
        await consumer.stop()


async def take(consumer: AIOKafkaConsumer, count: int) -> list[Record]:
    got: list[Record] = []
    async with asyncio.timeout(60):
        while len(got) < count:
            batches = await consumer.getmany(timeout_ms=500, max_records=count - len(got))
            got.extend(
                (m.key, m.value, list(m.headers)) for batch in batches.values() for m in batch
            )
    return got


async def topic_names(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names: list[str] = await admin.list_topics()
    finally:
        await admin.close()
    return names


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_broker_comes_back_on_the_same_address_after_a_crash(
    broker_choice: str, tmp_path: Path, unique_name: str
) -> None:
    if broker_choice not in get_args(BrokerKind):
        pytest.skip("needs a broker the test can kill: CITYGRID_TEST_BROKER=tansu or apache")
    kind = cast(BrokerKind, broker_choice)
    topic = f"{unique_name}-crash"
    local = LocalBroker(kind, workdir=tmp_path, ready_timeout=120.0)
    first = local.start()
    try:
        await produce(first.bootstrap, topic, RECORDS[:1])
        local.kill()
        assert not local.running
        assert not pid_exists(first.pid)

        second = local.start()
        assert second.bootstrap == first.bootstrap
        assert second.pid != first.pid
        if kind == "apache":  # data lives on disk in the workdir
            assert await consume(second.bootstrap, topic, 1) == RECORDS[:1]
        else:  # tansu keeps everything in memory
            assert topic not in await topic_names(second.bootstrap)

        # A maintenance restart (SIGTERM) comes back the same way, and keeps the work directory.
        await produce(second.bootstrap, topic, RECORDS[1:2])
        third = local.restart()
        assert (third.bootstrap, third.workdir) == (second.bootstrap, second.workdir)
        assert not pid_exists(second.pid)
        if kind == "apache":
            assert await consume(third.bootstrap, topic, 2) == RECORDS[:2]
    finally:
        local.stop()
    local.stop()  # idempotent
    assert not pid_exists(third.pid)
    assert (tmp_path / ("kafka.log" if kind == "apache" else "tansu.log")).exists()


async def test_records_come_back_byte_identical(kafka_bootstrap: str, unique_name: str) -> None:
    topic = f"{unique_name}-roundtrip"
    await produce(kafka_bootstrap, topic, RECORDS)

    got = await consume(kafka_bootstrap, topic, len(RECORDS))

    assert got == RECORDS


async def test_a_consumer_group_resumes_after_its_committed_offset(
    kafka_bootstrap: str, unique_name: str
) -> None:
    topic, group = f"{unique_name}-resume", f"{unique_name}-group"
    partition = TopicPartition(topic, 0)
    await produce(kafka_bootstrap, topic, RECORDS)

    member = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        # tansu holds every join for half the session timeout; 6 s is Kafka's minimum.
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    await member.start()
    try:
        head = await take(member, 1)
        await member.commit({partition: 1})
    finally:
        await member.stop()
    # Assigned, not subscribed: it starts at the group's committed offset without a rebalance.
    # (On tansu a new member would wait ~10 s for the old one to expire: tansu numbers the first
    # generation 0, and aiokafka sends no LeaveGroup from generation 0.)
    successor = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await successor.start()
    successor.assign([partition])
    try:
        rest = await take(successor, len(RECORDS) - 1)
    finally:
        await successor.stop()

    assert head + rest == RECORDS


async def test_a_compacted_topic_can_be_created(kafka_bootstrap: str, unique_name: str) -> None:
    topic = f"{unique_name}-compacted"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        created = await admin.create_topics(
            [NewTopic(topic, num_partitions=3, replication_factor=1,
                      topic_configs={"cleanup.policy": "compact"})]
        )  # fmt: skip
        described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        partitions = (await admin.describe_topics([topic]))[0]["partitions"]
    finally:
        await admin.close()

    assert [error for _, error, *_ in created.topic_errors] == [0]
    assert config_value(described[0].to_object(), "cleanup.policy") == "compact"
    assert len(partitions) == 3


def config_value(response: dict[str, Any], name: str) -> str | None:
    """Find one config in a DescribeConfigs response (field names differ between versions)."""
    for resource in response["resources"]:
        for entry in resource["config_entries"]:
            if entry.get("config_name", entry.get("config_names")) == name:
                value: str | None = entry["config_value"]
                return value
    return None
