"""Errors raised by the citygrid runtime (settings, topics, the road registry, brokers)."""

from __future__ import annotations

__all__ = ["BrokerError", "CitygridError", "RegistryError", "SettingsError", "TopicError"]


class CitygridError(Exception):
    """Base class of every error citygrid raises on purpose."""


class SettingsError(CitygridError):
    """An environment variable holds a value citygrid cannot use."""


class TopicError(CitygridError):
    """A topic could not be created, or the cluster could not be asked about its topics."""


class BrokerError(CitygridError):
    """A local broker (tansu or Apache Kafka) could not be fetched, started or reached."""


class RegistryError(CitygridError):
    """A road registry file is unreadable or invalid, or could not be published."""
