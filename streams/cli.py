"""The ``citygrid`` command: Faust's own command line (``citygrid worker -l info``) plus
citygrid's commands (``topics``, ``registry``, ``broker``, ``simulate``, ``console``,
``publish``, ``demo``)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from streams.domain.signatures import DeviceKeys, load_device_keys
from streams.exceptions import CitygridError
from streams.settings import Settings

__all__ = ["console", "demo", "main", "publish_message", "simulate", "topics"]


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except CitygridError as exc:
        raise click.ClickException(str(exc)) from None


def _device_keys(path: Path) -> DeviceKeys:
    try:
        return load_device_keys(path)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--device-keys") from None


_DEVICE_KEYS = click.option(
    "--device-keys",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="A device key file (JSON: device id to hex key, as deploy/devices/keys.example.json): "
    "sign events with their device's key, in the citygrid.signature header.",
)


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
@click.option(
    "--feedback/--no-feedback",
    default=True,
    show_default=True,
    help="Road chiefs accept and handle the tasks dispatched to them, 5-60 s apart, and "
    "supervisors verify them (about 15% sent back for rework), as long as the traffic runs. "
    "Who does what is seeded; when depends on when the worker shows the task.",
)
@click.option(
    "--scenario",
    metavar="FILE|NAME",
    default=None,
    help="Play this scripted story instead of random traffic: a YAML file, or the name of a "
    "shipped one (bin-rebound, vending-stall in deploy/scenarios/).",
)
@click.option(
    "--fast",
    is_flag=True,
    help="With --scenario: send each step as soon as the worker shows the one before, not at "
    "its scripted time; timestamps keep the scripted spacing.",
)
@click.option(
    "--run-id",
    default=None,
    help="With --scenario: the tag in the story's event ids, and so in its task ids: the same "
    "tag gives the same task ids. [default: the start time]",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="With --scenario: check the story and print what each step should do; send nothing.",
)
@_DEVICE_KEYS
def simulate(
    *,
    rate: float,
    count: int | None,
    duration: float | None,
    seed: int,
    bad_ratio: float,
    feedback: bool,
    scenario: str | None,
    fast: bool,
    run_id: str | None,
    dry_run: bool,
    device_keys: Path | None,
) -> None:
    """Publish simulated field traffic (terminals, sensors, cameras, drones, hotline) to the four
    domain topics of CITYGRID_BROKER_URL, and the feedback of the people answering the tasks
    (city.feedback). Runs until --count or --duration, or Ctrl-C. With --device-keys, the
    devices the file lists sign their events; the others send unsigned.

    With --scenario, plays a scripted story instead, step by step, waiting for the worker to
    show each step's effect on city.tasks.state; exits non-zero when the story does not play out
    as written. A story needs places where nothing was reported before, so it is played once per
    deployment (or topic prefix).
    """
    from rich.progress import Progress  # noqa: PLC0415

    from streams.simulator import SimulatorConfig, publish  # noqa: PLC0415

    settings = _settings()
    if scenario is not None:
        if device_keys is not None:
            raise click.UsageError("--device-keys signs random traffic; a --scenario is unsigned")
        from streams.scenario import (  # noqa: PLC0415
            find_scenario,
            load_scenario,
            outline,
            script_for,
            tell,
        )

        try:
            script = script_for(
                load_scenario(find_scenario(scenario)), settings, fast=fast, run=run_id
            )
            if dry_run:
                for line in outline(script):
                    click.echo(line)
                return
            asyncio.run(tell(settings, script, click.echo))
        except CitygridError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            click.echo("interrupted")
        return
    if fast or run_id or dry_run:
        raise click.UsageError("--fast, --run-id and --dry-run go with --scenario")
    if rate <= 0:
        raise click.BadParameter("must be positive", param_hint="--rate")
    config = SimulatorConfig(
        rate=rate,
        count=count,
        duration=duration,
        seed=seed,
        bad_ratio=bad_ratio,
        feedback=feedback,
        keys=_device_keys(device_keys) if device_keys is not None else DeviceKeys(),
    )
    total = count or (int(rate * duration) if duration else None)
    answered = 0
    with Progress(transient=False) as progress:
        bar = progress.add_task("publishing", total=total)

        def on_feedback(_: object) -> None:
            nonlocal answered
            answered += 1
            progress.update(bar, description=f"publishing ({answered} feedback)")

        try:
            sent = asyncio.run(
                publish(
                    settings,
                    config,
                    on_sent=lambda n: progress.update(bar, completed=n),
                    on_feedback=on_feedback,
                )
            )
        except KeyboardInterrupt:
            click.echo("interrupted")
            return
    click.echo(
        f"sent {sent.events} events and {sent.feedback} feedback messages "
        f"to {settings.bootstrap_servers}"
    )


@click.command()
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@click.option("--rate", default=20.0, show_default=True, help="Simulated messages per second.")
@click.option("--seed", default=7, show_default=True, help="Same seed, same traffic.")
@click.option("--web-port", default=6066, show_default=True, help="The worker's HTTP port.")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/demo"),
    show_default=True,
    help="Where logs and the worker's state go.",
)
@click.option(
    "--feedback/--no-feedback",
    default=True,
    show_default=True,
    help="Simulated road chiefs and supervisors accept, handle and verify the tasks.",
)
@click.option(
    "--scenario",
    "scenarios",
    metavar="FILE|NAME",
    multiple=True,
    help="A scripted story to play at the start, beside the random traffic; repeat for more. "
    "[default: bin-rebound]",
)
@click.option("--no-scenario", is_flag=True, help="Random traffic only, no scripted story.")
def demo(
    *,
    duration: float | None,
    rate: float,
    seed: int,
    web_port: int,
    state_dir: Path,
    feedback: bool,
    scenarios: tuple[str, ...],
    no_scenario: bool,
) -> None:
    """Start the embedded broker (tansu), create the topics, start a worker, simulated terminals
    and the people answering the tasks, play the bin-rebound story, and print where to look.
    Ctrl-C stops everything."""
    from streams.demo import DemoConfig, run_demo  # noqa: PLC0415

    stories = () if no_scenario else (scenarios or ("bin-rebound",))
    try:
        code = run_demo(
            DemoConfig(
                workdir=state_dir,
                web_port=web_port,
                rate=rate,
                duration=duration,
                seed=seed,
                feedback=feedback,
                scenarios=stories,
            ),
            say=click.echo,
        )
    except CitygridError as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)


@click.command()
@click.option(
    "--community",
    multiple=True,
    help="Only tasks of this community. Repeat it or give a comma list.",
)
@click.option(
    "--road",
    multiple=True,
    help="Only tasks on this road id (or grid cell). Repeat it or give a comma list.",
)
@click.option(
    "--domain",
    multiple=True,
    help="Only this domain: fire, environment, sanitation, citymgmt. Repeat it or give a "
    "comma list.",
)
@click.option(
    "--status",
    multiple=True,
    help="Only this status: registered, dispatched, accepted, handled, suspended, closed, "
    "cancelled; 'open' for the first five, 'all' for every one. Repeat it or give a comma "
    "list. [default: open]",
)
@click.option(
    "--priority",
    multiple=True,
    help="Only this priority: P1 to P4. Repeat it or give a comma list.",
)
@click.option(
    "--assignee",
    multiple=True,
    help="Only tasks assigned to this id. Repeat it or give a comma list.",
)
@click.option(
    "--lang",
    type=click.Choice(["zh-CN", "en"]),
    default="zh-CN",
    show_default=True,
    help="Language of the table.",
)
@click.option(
    "--jsonl",
    is_flag=True,
    help="Write JSON lines for scripts instead of the table: one object per task as it stands, "
    'then one per change (the task state plus "event", "events" and "snapshot").',
)
def console(
    *,
    community: tuple[str, ...],
    road: tuple[str, ...],
    domain: tuple[str, ...],
    status: tuple[str, ...],
    priority: tuple[str, ...],
    assignee: tuple[str, ...],
    lang: str,
    jsonl: bool,
) -> None:
    """Watch the tasks live: every task on city.tasks.state as it stands, then each change as
    city.tasks.state and city.tasks.events report it. The table shows the most urgent first
    (priority, then oldest), with deadlines (⏰ overdue), rebounds (返) and rework. Reads the
    topics whole without a consumer group, so it never takes work from a worker. Ctrl-C quits."""
    from rich.console import Console  # noqa: PLC0415 - keeps `--help` fast

    from schemas.i18n import Language  # noqa: PLC0415
    from streams.console import filter_from_options, watch_lines, watch_table  # noqa: PLC0415

    try:
        view = filter_from_options(
            community=community,
            road=road,
            domain=domain,
            status=status,
            priority=priority,
            assignee=assignee,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    language: Language = "en" if lang == "en" else "zh-CN"
    settings = _settings()

    def write(line: bytes) -> None:
        sys.stdout.buffer.write(line + b"\n")
        sys.stdout.buffer.flush()

    try:
        if jsonl:
            asyncio.run(watch_lines(settings, view, write))
        else:
            asyncio.run(watch_table(settings, view, language, Console()))
    except KeyboardInterrupt:
        return
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep the exit flush from failing.
        import os  # noqa: PLC0415

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


@click.command(name="publish")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option(
    "--kind",
    type=click.Choice(["event", "feedback"]),
    default=None,
    help="What FILE holds. [default: told by its fields: event_id, device_id, ... for an "
    "event; task_id, action, ... for feedback]",
)
@click.option("--dry-run", is_flag=True, help="Validate only; send nothing.")
@_DEVICE_KEYS
def publish_message(
    *, file: str, kind: str | None, dry_run: bool, device_keys: Path | None
) -> None:
    """Send ONE event or feedback message from FILE ('-' for stdin) to its topic, once the codec
    accepts it: an event to city.events.<domain>, keyed by its device_id; feedback to
    city.feedback, keyed by its task_id. A refused message is not sent: the codec's reason and
    detail are printed and the exit status is 1.

    With --device-keys FILE an event is signed with its device's key from FILE (the first, when
    the device has several); an event whose device is not in FILE is refused rather than sent
    unsigned. Feedback is never signed. Whether a feedback's task exists and allows the action
    is the worker's decision; a refusal lands in city.events.dlq."""
    from datetime import UTC, datetime  # noqa: PLC0415

    from schemas.codec import Rejection  # noqa: PLC0415
    from streams.publish import prepare, send  # noqa: PLC0415

    settings = _settings()
    keys = _device_keys(device_keys) if device_keys is not None else None
    with click.open_file(file, "rb") as stream:
        raw = stream.read()
    message = prepare(
        raw,
        settings,
        now=datetime.now(UTC),
        kind="event" if kind == "event" else "feedback" if kind == "feedback" else None,
        keys=keys,
    )
    if isinstance(message, Rejection):
        raise click.ClickException(f"refused, nothing sent ({message.reason}): {message.detail}")
    if keys is not None and message.kind == "feedback":
        raise click.UsageError("--device-keys signs events; feedback is never signed")
    if dry_run:
        click.echo(f"valid {message.summary}; would go to {message.topic} (--dry-run: not sent)")
        return
    try:
        sent = asyncio.run(send(settings, message))
    except CitygridError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"sent {message.summary} to {sent.topic} (partition {sent.partition}, "
        f"offset {sent.offset}) on {settings.bootstrap_servers}"
    )


EXIT_STAGE_FAILED = 70
"""Exit status of a worker stopped by a failed pipeline stage (EX_SOFTWARE)."""


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

    for command in (topics, broker, registry, simulate, demo, console, publish_message):
        cli.add_command(command)
    from streams.app import failures  # noqa: PLC0415

    try:
        app.main()
    finally:
        # A worker that stopped because a pipeline stage died exits non-zero, so supervisors
        # that restart only on failure restart it too (Faust's stop itself exits 0).
        if failures:
            sys.exit(EXIT_STAGE_FAILED)
