"""``citygrid broker``: run a local Kafka broker on 127.0.0.1 for development, or fetch its jars."""

from __future__ import annotations

import secrets
import shlex
import signal
import time
from pathlib import Path
from types import FrameType
from typing import get_args

import click

from streams.brokers import (
    CACHE_DIR_ENV,
    CLIENT_ENV_FILE,
    BrokerKind,
    LocalBroker,
    ScramUser,
    default_cache_dir,
    fetch_apache_kafka,
    read_client_env,
)
from streams.exceptions import BrokerError
from streams.settings import Settings

__all__ = ["broker"]

_DEFAULT_PORT = 9092
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@click.group(name="broker")
def broker() -> None:
    """Run a local Kafka-compatible broker on 127.0.0.1 for development.

    Two kinds: "tansu" (default) is a single binary installed with citygrid, ready in well under a
    second, and keeps everything in memory: stopping it loses all topics and offsets. "apache" is
    Apache Kafka in KRaft mode (one JVM, about 3 s to start); it needs java 17+, and mvn once to
    fetch its jars from Maven Central (see "citygrid broker fetch"). "apache --secure" takes
    SASL_SSL clients only (SCRAM user, TLS), like a production cluster.
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
@click.option(
    "--secure",
    is_flag=True,
    help=(
        "apache only: clients must use SASL_SSL, with a SCRAM-SHA-512 user and TLS (a CA and a "
        "certificate for 127.0.0.1 made in <state-dir>/tls). The settings clients need are "
        f"printed and written to <state-dir>/{CLIENT_ENV_FILE}."
    ),
)
@click.option(
    "--username",
    default="citygrid",
    show_default=True,
    help="With --secure: the SCRAM user to create.",
)
@click.option(
    "--password",
    default=None,
    help=(
        "With --secure: the SCRAM user's password. Default: the one recorded in --state-dir by "
        "an earlier secured start, else a random one."
    ),
)
def start(
    *,
    kind: BrokerKind,
    port: int,
    state_dir: Path | None,
    ready_timeout: float,
    secure: bool,
    username: str,
    password: str | None,
) -> None:
    """Start a broker, print its address, and run until Ctrl-C or SIGTERM, then stop it cleanly.

    Point citygrid at it with the CITYGRID_* lines it prints: CITYGRID_BROKER_URL, and with
    --secure the security protocol, the SASL user and the CA file as well.
    """
    if password is not None and not secure:
        raise click.UsageError("--password is for --secure brokers")
    scram = _scram_user(kind, state_dir, username, password) if secure else None
    local = LocalBroker(
        kind, port=port or None, workdir=state_dir, ready_timeout=ready_timeout, scram=scram
    )
    # SIGTERM behaves like Ctrl-C, so that both stop the broker, which runs in a session of its own
    # and would otherwise outlive this command.
    previous = {sig: signal.signal(sig, _interrupt) for sig in _STOP_SIGNALS}
    try:
        if kind == "apache":
            click.echo("Starting Apache Kafka (the first run fetches jars)...", err=True)
        running = local.start()
        how = " (SASL_SSL)" if scram is not None else ""
        click.echo(f"{kind} broker ready at {running.bootstrap}{how} (pid {running.pid})")
        for name, value in running.client_env.items():
            click.echo(f"  {name}={shlex.quote(value)}")
        if scram is not None:
            env_file = running.workdir / CLIENT_ENV_FILE
            click.echo(f"  (also in {env_file}: set -a; . {shlex.quote(str(env_file))}; set +a)")
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


def _scram_user(
    kind: BrokerKind, state_dir: Path | None, username: str, password: str | None
) -> ScramUser:
    if kind != "apache":
        raise click.UsageError("--secure needs --kind apache (tansu has no SASL_SSL listener)")
    if password is None and state_dir is not None:
        # The user lives in the broker's storage: a restart on the same state dir keeps it.
        recorded = read_client_env(state_dir)
        if recorded.get(Settings.env_var("sasl_username")) == username:
            password = recorded.get(Settings.env_var("sasl_password"))
    try:
        return ScramUser(username, password or secrets.token_urlsafe(18))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


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
