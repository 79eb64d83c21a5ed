"""The topic catalogue: every contract topic, its role and its configuration, and how to declare
them on a cluster.

Faust's internal topics (changelogs, repartitions, the leader topic) are not listed: Faust creates
and owns them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from schemas.enums import Domain
from streams.exceptions import TopicError
from streams.settings import Settings

__all__ = [
    "CATALOGUE",
    "EVENT_TOPICS",
    "Role",
    "TopicReport",
    "TopicSpec",
    "create_topics",
    "domain_of_topic",
    "kafka_client_options",
    "topic_name",
]

logger = logging.getLogger(__name__)


class Role(StrEnum):
    """Who writes a topic, as the contract's topic table says."""

    INPUT = "input"
    OUTPUT = "output"
    DLQ = "dlq"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One contract topic. ``config`` holds the topic-level Kafka settings citygrid relies on."""

    name: str
    key: str
    value: str
    role: Role
    compacted: bool = False
    retention_ms: int | None = None

    @property
    def config(self) -> dict[str, str]:
        """Topic configuration as Kafka's CreateTopics takes it."""
        config = {"cleanup.policy": "compact" if self.compacted else "delete"}
        if self.retention_ms is not None:
            config["retention.ms"] = str(self.retention_ms)
        return config


_WEEK_MS = 7 * 24 * 3600 * 1000
_MONTH_MS = 30 * 24 * 3600 * 1000

EVENT_TOPICS: MappingProxyType[Domain, str] = MappingProxyType(
    {
        Domain.FIRE: "city.events.fire",
        Domain.ENVIRONMENT: "city.events.environment",
        Domain.SANITATION: "city.events.sanitation",
        Domain.CITYMGMT: "city.events.citymgmt",
    }
)
"""The input topic of each domain."""

CATALOGUE: tuple[TopicSpec, ...] = (
    *(
        TopicSpec(name, "device id", "Event (JSON)", Role.INPUT, retention_ms=_WEEK_MS)
        for name in EVENT_TOPICS.values()
    ),
    TopicSpec("city.feedback", "task id", "Feedback (JSON)", Role.INPUT, retention_ms=_MONTH_MS),
    TopicSpec(
        "city.registry.roads", "road id", "Road (JSON); null deletes", Role.INPUT, compacted=True
    ),
    TopicSpec(
        "city.tasks.state", "task id", "Task (JSON), latest state", Role.OUTPUT, compacted=True
    ),
    TopicSpec(
        "city.tasks.events", "task id", "TaskEvent (JSON)", Role.OUTPUT, retention_ms=_MONTH_MS
    ),
    TopicSpec(
        "city.events.dlq", "original key", "original bytes", Role.DLQ, retention_ms=_MONTH_MS
    ),
    TopicSpec("city.kpi.roads", "road id", "RoadKpi (JSON), latest", Role.OUTPUT, compacted=True),
)


def topic_name(settings: Settings, name: str) -> str:
    """The name of contract topic ``name`` on this deployment (with the topic prefix)."""
    return settings.topic_prefix + name


def domain_of_topic(settings: Settings, topic: str) -> Domain | None:
    """The domain whose events ``topic`` carries, or None for any other topic."""
    for domain, name in EVENT_TOPICS.items():
        if topic == topic_name(settings, name):
            return domain
    return None


@dataclass(frozen=True, slots=True)
class TopicReport:
    """What ``create_topics`` did with one topic."""

    name: str
    created: bool
    partitions: int
    config: dict[str, str]


def kafka_client_options(settings: Settings) -> dict[str, Any]:
    """aiokafka connection options (bootstrap, security) from the settings."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol.startswith("SASL"):
        options.update(
            sasl_mechanism=settings.sasl_mechanism,
            sasl_plain_username=settings.sasl_username,
            sasl_plain_password=settings.sasl_password,
        )
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context  # noqa: PLC0415 - only with TLS

        options["ssl_context"] = create_ssl_context(
            cafile=settings.ssl_cafile or None,
            certfile=settings.ssl_certfile or None,
            keyfile=settings.ssl_keyfile or None,
        )
    return options


async def create_topics(settings: Settings) -> list[TopicReport]:
    """Declare every catalogue topic; topics that already exist are reported, not changed.

    Raises:
        TopicError: the cluster refused a topic or could not be reached.
    """
    admin = AIOKafkaAdminClient(**kafka_client_options(settings), client_id="citygrid-topics")
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        wanted = [
            (spec, topic_name(settings, spec.name))
            for spec in CATALOGUE
            if topic_name(settings, spec.name) not in existing
        ]
        if wanted:
            new_topics = [
                NewTopic(
                    name=name,
                    num_partitions=settings.partitions,
                    replication_factor=settings.replication_factor,
                    topic_configs=spec.config,
                )
                for spec, name in wanted
            ]
            try:
                await admin.create_topics(new_topics)
            except TopicAlreadyExistsError:
                logger.info("a topic appeared while creating: another process created it")
        described = {name: spec for spec, name in wanted}
        metadata = await admin.describe_topics([topic_name(settings, s.name) for s in CATALOGUE])
    except KafkaError as exc:
        raise TopicError(
            f"could not declare topics on {settings.bootstrap_servers}: {exc}"
        ) from exc
    finally:
        await admin.close()
    partitions = {m["topic"]: len(m.get("partitions") or ()) for m in metadata}
    return [
        TopicReport(
            name=topic_name(settings, spec.name),
            created=topic_name(settings, spec.name) in described,
            partitions=partitions.get(topic_name(settings, spec.name), 0),
            config=spec.config,
        )
        for spec in CATALOGUE
    ]
