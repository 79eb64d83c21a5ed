"""The topic catalogue: every contract topic, its role and its configuration, and how to declare
them on a cluster.

Faust's internal topics (changelogs, repartitions, the leader topic) are not listed: Faust creates
and owns them.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.conn import create_conn
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAlreadyExistsError,
)
from aiokafka.helpers import create_ssl_context

from schemas.enums import Domain
from streams.exceptions import SettingsError, TopicError
from streams.settings import Settings

__all__ = [
    "CATALOGUE",
    "ENVELOPE_BYTES",
    "EVENT_TOPICS",
    "MAX_INPUT_BYTES",
    "Role",
    "TopicReport",
    "TopicSpec",
    "connection_problem",
    "create_topics",
    "domain_of_topic",
    "kafka_client_options",
    "topic_name",
]

logger = logging.getLogger(__name__)


MAX_INPUT_BYTES = 1024 * 1024
"""Largest record batch a contract topic takes (Kafka's ``max.message.bytes``; 1 MiB, about the
broker default), set explicitly so the topics that carry an input message onwards can be given
more."""
ENVELOPE_BYTES = 64 * 1024
"""Room for what citygrid adds to a message it carries onwards: the dead-letter headers (the
detail is cut to 1,000 characters), the hop's place and origin headers, the batch framing."""


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
    max_message_bytes: int = MAX_INPUT_BYTES

    @property
    def config(self) -> dict[str, str]:
        """Topic configuration as Kafka's CreateTopics takes it."""
        config = {
            "cleanup.policy": "compact" if self.compacted else "delete",
            "max.message.bytes": str(self.max_message_bytes),
        }
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
        "city.events.dlq",
        "original key",
        "original bytes",
        Role.DLQ,
        retention_ms=_MONTH_MS,
        # The largest input any input topic takes must fit here, with its error headers.
        max_message_bytes=MAX_INPUT_BYTES + ENVELOPE_BYTES,
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
    """aiokafka connection options (bootstrap, security) from the settings.

    Every Kafka client citygrid makes takes its connection and security options from here, so
    that one set of ``CITYGRID_*`` variables reaches a secured cluster from every command.

    Raises:
        SettingsError: SASL without a user name or password, or TLS files that cannot be read.
    """
    protocol = settings.security_protocol
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": protocol,
    }
    if protocol.startswith("SASL"):
        if not (settings.sasl_username and settings.sasl_password):
            raise SettingsError(
                f"{Settings.env_var('security_protocol')}={protocol} needs "
                f"{Settings.env_var('sasl_username')} and {Settings.env_var('sasl_password')}"
            )
        options.update(
            sasl_mechanism=settings.sasl_mechanism,
            sasl_plain_username=settings.sasl_username,
            sasl_plain_password=settings.sasl_password,
        )
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = _ssl_context(settings)
    return options


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    """Verify the brokers against ``CITYGRID_SSL_CAFILE`` (else the system's CAs) and their host
    names; present a client certificate when one is set (mutual TLS)."""
    if settings.ssl_keyfile and not settings.ssl_certfile:
        raise SettingsError(
            f"{Settings.env_var('ssl_keyfile')} needs {Settings.env_var('ssl_certfile')} too"
        )
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=settings.ssl_cafile or None,
            certfile=settings.ssl_certfile or None,
            keyfile=settings.ssl_keyfile or None,
        )
    except (OSError, ssl.SSLError) as exc:
        files = ", ".join(
            f"{Settings.env_var(name)}={getattr(settings, name)!r}"
            for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile")
            if getattr(settings, name)
        )
        raise SettingsError(f"cannot load the TLS files ({files}): {exc}") from None
    return context


async def connection_problem(settings: Settings, limit_s: float = 10.0) -> str | None:
    """Why a client with ``settings`` cannot use the cluster, or None if a bootstrap server lets
    it in.

    aiokafka logs the cause of a failed bootstrap (an untrusted certificate, refused credentials)
    and raises only "Unable to bootstrap"; this connects once more, by itself, to say why.
    """
    options = kafka_client_options(settings)
    options.pop("bootstrap_servers")
    servers = [server.strip() for server in settings.bootstrap_servers.split(",")]
    problems = []
    for server in servers:
        host, _, port = server.rpartition(":")
        try:
            async with asyncio.timeout(limit_s):
                conn = await create_conn(
                    host.strip("[]"), int(port), request_timeout_ms=int(limit_s * 1000), **options
                )
        except (OSError, ValueError, KafkaError, TimeoutError) as exc:
            why = _explain(exc, settings)
            problems.append(why if len(servers) == 1 else f"{server}: {why}")
            continue
        conn.close()
        return None
    return "; ".join(problems)


def _explain(exc: BaseException, settings: Settings) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"the broker's TLS certificate is not trusted ({exc.verify_message}); "
            f"{Settings.env_var('ssl_cafile')} must hold the CA that signed it"
        )
    if isinstance(exc, SaslAuthenticationFailed):
        return (
            f"SASL authentication failed ({exc.args[0] if exc.args else exc}); "
            f"check {Settings.env_var('sasl_username')}, {Settings.env_var('sasl_password')} "
            f"and {Settings.env_var('sasl_mechanism')}"
        )
    if isinstance(exc, TimeoutError | KafkaConnectionError):
        # A TLS listener drops a plaintext hello; a plaintext one never answers a TLS hello.
        return (
            f"{exc or 'no answer'} (does {Settings.env_var('security_protocol')}="
            f"{settings.security_protocol} match the broker's listener?)"
        )
    # aiokafka's errors name their class already; OSError and the like do not.
    return str(exc) if isinstance(exc, KafkaError) else f"{type(exc).__name__}: {exc}"


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
        why = str(exc)
        if isinstance(exc, KafkaConnectionError):
            why = await connection_problem(settings) or why
        raise TopicError(
            f"could not declare topics on {settings.bootstrap_servers}: {why}"
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
