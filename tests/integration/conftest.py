"""Fixtures for tests against a real Kafka broker, chosen by ``CITYGRID_TEST_BROKER``.

- unset or ``tansu``: one in-memory tansu broker for the whole session (instant, the default);
- ``apache``: one Apache Kafka (KRaft) broker for the session, about 3 s to start (the first run
  fetches its jars with mvn);
- ``host:port``: a broker that is already running; nothing is started or stopped.

Every test under ``tests/integration`` is marked ``integration``. Tests share the session's broker,
so each one names its topics and consumer groups from :func:`unique_name`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import cast, get_args

import pytest

from streams.brokers import BrokerKind, LocalBroker, wait_until_ready

__all__ = ["BROKER_ENV", "broker_choice", "kafka_bootstrap", "unique_name"]

BROKER_ENV = "CITYGRID_TEST_BROKER"

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A conftest hook sees every collected item, not only those below it: filter by path.
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def broker_choice() -> str:
    """``tansu``, ``apache`` or the ``host:port`` of an existing broker, from the environment."""
    return os.environ.get(BROKER_ENV, "").strip() or "tansu"


@pytest.fixture(scope="session")
def kafka_bootstrap(broker_choice: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The ``host:port`` of the session's broker, started on first use and stopped at the end."""
    choice = broker_choice
    if choice in get_args(BrokerKind):
        kind = cast(BrokerKind, choice)
        workdir = tmp_path_factory.mktemp(f"broker-{kind}")
        with LocalBroker(kind, workdir=workdir, ready_timeout=120.0) as running:
            yield running.bootstrap
        return
    if ":" not in choice:
        pytest.fail(f"{BROKER_ENV}={choice!r}: expected tansu, apache or host:port")
    wait_until_ready(choice, timeout=30.0)
    yield choice


@pytest.fixture
def unique_name() -> str:
    """A fresh prefix for this test's topic names and group ids, e.g. ``t3f2a9c1b7d04``."""
    return f"t{uuid.uuid4().hex[:12]}"
