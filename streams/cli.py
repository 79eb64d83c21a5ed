"""The ``citygrid`` command: Faust's own command line (``citygrid worker -l info``) plus citygrid's
commands (``topics``, ``registry``, ``broker``, ``simulate``, ``demo``)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from streams.exceptions import CitygridError
from streams.settings import Settings

__all__ = ["demo", "main", "simulate", "topics"]


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except CitygridError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def topics() -> None:
    """Declare and list the contract topics (city.events.*, city.tasks.*, ...)."""


@topics.command("create")
def topics_create() -> None:
    """Create every contract topic that does not exist yet; existing ones are left as they are.

    Partitions and replication come from CITYGRID_PARTITIONS and CITYGRID_REPLICATION_FACTOR;
    compaction and retention from the topic catalogue.
    """
    from streams.topics import create_topics  # noqa: PLC0415 - keeps `--help` fast

    settings = _settings()
    try:
        reports = asyncio.run(create_topics(settings))
    except CitygridError as exc:
        raise click.ClickException(str(exc)) from None
    for report in reports:
        state = "created" if report.created else "exists "
        config = ", ".join(f"{k}={v}" for k, v in report.config.items())
        click.echo(f"{state}  {report.name:<32} partitions={report.partitions:<3} {config}")


@topics.command("list")
def topics_list() -> None:
    """Print the topic catalogue: name, key, value and configuration."""
    from streams.topics import CATALOGUE  # noqa: PLC0415

    for spec in CATALOGUE:
        config = ", ".join(f"{k}={v}" for k, v in spec.config.items())
        click.echo(f"{spec.name:<26} {spec.role.value:<7} key={spec.key:<14} {config}")


@click.command()
@click.option("--rate", default=20.0, show_default=True, help="Messages per second.")
@click.option("--count", type=int, default=None, help="Stop after this many messages.")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@click.option("--seed", default=7, show_default=True, help="Same seed, same traffic.")
@click.option(
    "--bad-ratio",
    default=0.02,
    show_default=True,
    type=click.FloatRange(0.0, 1.0),
    help="Share of deliberately malformed messages.",
)
def simulate(
    rate: float, count: int | None, duration: float | None, seed: int, bad_ratio: float
) -> None:
    """Publish simulated field traffic (terminals, sensors, cameras, drones, hotline) to the four
    domain topics of CITYGRID_BROKER_URL. Runs until --count or --duration, or Ctrl-C."""
    from rich.progress import Progress  # noqa: PLC0415

    from streams.simulator import SimulatorConfig, publish  # noqa: PLC0415

    if rate <= 0:
        raise click.BadParameter("must be positive", param_hint="--rate")
    settings = _settings()
    config = SimulatorConfig(
        rate=rate, count=count, duration=duration, seed=seed, bad_ratio=bad_ratio
    )
    total = count or (int(rate * duration) if duration else None)
    with Progress(transient=False) as progress:
        bar = progress.add_task("publishing", total=total)
        try:
            sent = asyncio.run(
                publish(settings, config, on_sent=lambda n: progress.update(bar, completed=n))
            )
        except KeyboardInterrupt:
            click.echo("interrupted")
            return
    click.echo(f"sent {sent} messages to {settings.bootstrap_servers}")


@click.command()
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@click.option("--rate", default=20.0, show_default=True, help="Simulated messages per second.")
@click.option("--web-port", default=6066, show_default=True, help="The worker's HTTP port.")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/demo"),
    show_default=True,
    help="Where logs and the worker's state go.",
)
def demo(duration: float | None, rate: float, web_port: int, state_dir: Path) -> None:
    """Start the embedded broker (tansu), create the topics, start a worker and simulated
    terminals, and print where to look. Ctrl-C stops everything."""
    from streams.demo import DemoConfig, run_demo  # noqa: PLC0415

    try:
        code = run_demo(
            DemoConfig(workdir=state_dir, web_port=web_port, rate=rate, duration=duration),
            say=click.echo,
        )
    except CitygridError as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)


def main() -> None:
    """Entry point of the ``citygrid`` console script."""
    try:
        import agents  # noqa: F401, PLC0415 - registers the agents on the app
        from streams.app import app  # noqa: PLC0415
        from streams.brokers_cli import broker  # noqa: PLC0415
        from streams.registry_cli import registry  # noqa: PLC0415
    except CitygridError as exc:
        click.echo(f"citygrid: {exc}", err=True)
        sys.exit(2)
    from faust.cli.faust import cli  # noqa: PLC0415

    for command in (topics, broker, registry, simulate, demo):
        cli.add_command(command)
    app.main()
