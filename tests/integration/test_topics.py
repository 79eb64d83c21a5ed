"""`citygrid topics create` declares the catalogue once: a second run finds and leaves it."""

from __future__ import annotations

import os
import subprocess
import sys

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.harness import REPO, run


def test_topics_create_is_idempotent_and_reports_what_it_found(
    kafka_bootstrap: str, unique_name: str
) -> None:
    env = {
        **os.environ,
        "CITYGRID_BROKER_URL": f"kafka://{kafka_bootstrap}",
        "CITYGRID_TOPIC_PREFIX": f"{unique_name}.",
        "CITYGRID_PARTITIONS": "3",
    }
    command = [sys.executable, "-m", "streams", "topics", "create"]
    first = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, check=True)
    second = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, check=True)
    created = [line for line in first.stdout.splitlines() if line.startswith("created")]
    found = [line for line in second.stdout.splitlines() if line.startswith("exists")]
    assert len(created) == len(found) == 10, (first.stdout, second.stdout)
    assert all("partitions=3" in line for line in found)
    # What the broker holds, not what the catalogue says: the latest-state topics are compacted.
    names = [line.split()[1] for line in found]
    policies = run(_cleanup_policies(kafka_bootstrap, names))
    compacted = {name for name, policy in policies.items() if policy == "compact"}
    assert compacted == {
        f"{unique_name}.city.tasks.state",
        f"{unique_name}.city.registry.roads",
        f"{unique_name}.city.kpi.roads",
    }
    assert set(policies.values()) == {"compact", "delete"}


async def _cleanup_policies(bootstrap: str, topics: list[str]) -> dict[str, str | None]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic) for topic in topics]
        )
    finally:
        await admin.close()
    policies: dict[str, str | None] = {}
    for response in described:
        for resource in response.to_object()["resources"]:
            entries = {
                entry.get("config_name", entry.get("config_names")): entry["config_value"]
                for entry in resource["config_entries"]
            }
            policies[resource["resource_name"]] = entries.get("cleanup.policy")
    return policies
