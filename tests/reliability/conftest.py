"""Fixtures of the crash-safety suite (``make test-reliability``): the broker of the integration
suite, but restartable; the seeded input; and the undisturbed run every disturbed one is compared
with. The numbers each test measures are printed at the end of the session.

Not part of ``make test``: ``norecursedirs`` in pyproject.toml keeps pytest out of this directory
unless it is named on the command line.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import cast, get_args

import pytest

from streams.brokers import BrokerKind, LocalBroker, wait_until_ready
from streams.simulator import Message
from tests.integration.conftest import BROKER_ENV, broker_choice, unique_name  # noqa: F401
from tests.reliability.scenario import (
    EVENTS_ENV,
    Deployment,
    Outcome,
    events_wanted,
    scenario_input,
    seed_wanted,
)

_HERE = Path(__file__).parent
_NUMBERS: list[str] = []
# Per test: the broker's and workers' start-up, plus a generous 10 ms per event and pass (a quiet
# 2-core machine needs about a tenth of that).
_BASE_TIMEOUT_S = 600
_PER_EVENT_S = 0.01


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    budget = _BASE_TIMEOUT_S + _PER_EVENT_S * events_wanted()
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.reliability)
            item.add_marker(pytest.mark.timeout(budget))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _NUMBERS:
        terminalreporter.section("citygrid reliability: what was measured")
        for line in _NUMBERS:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def numbers() -> list[str]:
    """Lines for the end-of-session report (events, kills, recovery times)."""
    return _NUMBERS


@pytest.fixture(scope="session")
def kafka_broker(
    broker_choice: str,  # noqa: F811 - the integration suite's fixture, imported above
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LocalBroker | None]:
    """The session's broker, started here (as the integration suite does) so a test can restart
    it; ``None`` for a ``host:port`` broker, which no test may restart."""
    if broker_choice in get_args(BrokerKind):
        kind = cast(BrokerKind, broker_choice)
        broker = LocalBroker(
            kind, workdir=tmp_path_factory.mktemp(f"broker-{kind}"), ready_timeout=120.0
        )
        broker.start()
        try:
            yield broker
        finally:
            broker.stop()
        return
    if ":" not in broker_choice:
        pytest.fail(f"{BROKER_ENV}={broker_choice!r}: expected tansu, apache or host:port")
    wait_until_ready(broker_choice, timeout=30.0)
    yield None


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: LocalBroker | None, broker_choice: str) -> str:  # noqa: F811
    """The ``host:port`` of the session's broker (the same address across its restarts)."""
    if kafka_broker is None:
        return broker_choice
    return kafka_broker.start().bootstrap


@pytest.fixture(scope="session")
def events() -> list[Message]:
    """The scenario's input: ``$CITYGRID_RELIABILITY_EVENTS`` seeded simulated events."""
    count, seed = events_wanted(), seed_wanted()
    started = time.monotonic()
    batch = scenario_input(count, seed)
    _NUMBERS.append(
        f"input: {len(batch):,} simulated events (seed {seed}, {EVENTS_ENV}), "
        f"generated in {time.monotonic() - started:.1f} s"
    )
    return batch


@pytest.fixture(scope="session")
def undisturbed(
    kafka_bootstrap: str, events: list[Message], tmp_path_factory: pytest.TempPathFactory
) -> Outcome:
    """What one worker makes of the input when nothing goes wrong."""
    return undisturbed_run(kafka_bootstrap, events, tmp_path_factory.mktemp("undisturbed"), "first")


def undisturbed_run(bootstrap: str, events: list[Message], workdir: Path, label: str) -> Outcome:
    """Produce the input to a fresh deployment, run one worker until it is drained, read back."""
    deployment = Deployment.create(bootstrap, f"u{uuid.uuid4().hex[:12]}", workdir)
    produced = deployment.produce(events)
    started = time.monotonic()
    deployment.worker.start()
    try:
        deployment.wait_drained(within=_BASE_TIMEOUT_S + _PER_EVENT_S * len(events))
        took = time.monotonic() - started
        outcome = deployment.outcome()
    finally:
        assert deployment.worker.stop() == 0, deployment.worker.log_tail()
    _NUMBERS.append(
        f"undisturbed run ({label}): produced in {produced:.1f} s, drained in {took:.1f} s "
        f"from the worker's start ({len(events) / took:,.0f} events/s); {outcome.summary()}"
    )
    return outcome
