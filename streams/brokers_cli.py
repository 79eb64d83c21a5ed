"""``citygrid broker``: run a local Kafka broker on 127.0.0.1 for development, or fetch its jars."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType
from typing import get_args

import click

from streams.brokers import (
    CACHE_DIR_ENV,
    BrokerKind,
    LocalBroker,
    default_cache_dir,
    fetch_apache_kafka,
)
from streams.exceptions import BrokerError

__all__ = ["broker"]

_DEFAULT_PORT = 9092
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@click.group(name="broker")
def broker() -> None:
    """Run a local Kafka-compatible broker on 127.0.0.1 for development.

    Two kinds: "tansu" (default) is a single binary installed with citygrid, ready in well under a
    second, and keeps everything in memory: stopping it loses all topics and offsets. "apache" is
    Apache Kafka in KRaft mode (one JVM, about 3 s to start); it needs java 17+, and mvn once to
    fetch its jars from Maven Central (see "citygrid broker fetch").
    """


@broker.command(short_help="Run a broker until Ctrl-C.")
@click.option(
    "--kind",
    type=click.Choice(get_args(BrokerKind)),
    default="tansu",
    show_default=True,
    help="tansu: in memory, instant. apache: Apache Kafka (KRaft), data in --state-dir.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=_DEFAULT_PORT,
    show_default=True,
    help="Client port on 127.0.0.1; 0 picks a free one.",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, writable=True, path_type=Path),
    default=None,
    help=(
        "Directory for logs, configuration and (apache) data, kept afterwards; apache restarted "
        "on the same directory keeps its topics. Default: a temporary directory, removed on exit."
    ),
)
@click.option(
    "--ready-timeout",
    type=click.FloatRange(min=1.0),
    default=60.0,
    show_default=True,
    help="Seconds to wait for the broker to answer before giving up.",
)
def start(kind: BrokerKind, port: int, state_dir: Path | None, ready_timeout: float) -> None:
    """Start a broker, print its address, and run until Ctrl-C or SIGTERM, then stop it cleanly.

    Point citygrid at it with CITYGRID_BROKER_URL=kafka://<address>.
    """
    local = LocalBroker(kind, port=port or None, workdir=state_dir, ready_timeout=ready_timeout)
    # SIGTERM behaves like Ctrl-C, so that both stop the broker, which runs in a session of its own
    # and would otherwise outlive this command.
    previous = {sig: signal.signal(sig, _interrupt) for sig in _STOP_SIGNALS}
    try:
        if kind == "apache":
            click.echo("Starting Apache Kafka (the first run fetches jars)...", err=True)
        running = local.start()
        click.echo(f"{kind} broker ready at {running.bootstrap} (pid {running.pid})")
        click.echo(f"  CITYGRID_BROKER_URL=kafka://{running.bootstrap}")
        click.echo(f"  log: {running.log_file}")
        click.echo("Press Ctrl-C (or send SIGTERM) to stop it.")
        while (reason := local.exit_reason()) is None:
            time.sleep(0.5)
        raise click.ClickException(reason)
    except KeyboardInterrupt:
        click.echo("Stopping...", err=True)
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        # A second Ctrl-C must not abandon the broker half-stopped; stop() escalates to SIGKILL.
        for sig in _STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        local.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("Stopped.", err=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@broker.command(short_help="Fetch the Apache Kafka jars (needs mvn).")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, writable=True, path_type=Path),
    default=None,
    help=f"Where to keep the jars. Default: ${CACHE_DIR_ENV} or ~/.cache/citygrid.",
)
def fetch(cache_dir: Path | None) -> None:
    """Fetch the Apache Kafka jars from Maven Central with mvn, unless already cached.

    Useful before going offline or in a CI step; "broker start --kind apache" does it otherwise.
    """
    try:
        libs = fetch_apache_kafka(cache_dir if cache_dir is not None else default_cache_dir())
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Apache Kafka jars are in {libs}")
