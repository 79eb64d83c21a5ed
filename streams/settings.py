"""citygrid's settings: one frozen object, read from ``CITYGRID_*`` environment variables here only.

Each field's docstring names its variable; the README's settings table lists the same, and a test
keeps the two in step. Durations accept plain seconds or a suffix: ``90``, ``30m``, ``7d``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args

from schemas.codec import DEFAULT_MAX_MESSAGE_BYTES
from streams.exceptions import SettingsError

__all__ = [
    "ENV_PREFIX",
    "LogFormat",
    "SaslMechanism",
    "SecurityProtocol",
    "Settings",
    "parse_duration",
    "parse_time_limits",
]

ENV_PREFIX = "CITYGRID_"

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
LogFormat = Literal["text", "json"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds in ``text``: ``"90"``, ``"90s"``, ``"30m"``, ``"2h"`` or ``"7d"``."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use seconds, or 30m, 2h, 7d)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_time_limits(text: str) -> dict[str, float]:
    """``"4002=1h,3001=2d"`` as ``{"4002": 60.0, "3001": 2880.0}`` (minutes)."""
    limits: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        code, sep, duration = item.partition("=")
        code = code.strip()
        if not sep or not re.fullmatch(r"[0-9]{4}", code):
            raise ValueError(f"{item!r} is not code=duration with a four-digit category code")
        limits[code] = parse_duration(duration) / 60
    return limits


def _setting(default: Any, doc: str, *, secret: bool = False) -> Any:
    return field(default=default, metadata={"doc": doc, "secret": secret})


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything an operator can set. Field ``x`` is read from ``CITYGRID_X``."""

    broker_url: str = _setting(
        "kafka://127.0.0.1:9092",
        "Kafka bootstrap servers, comma-separated, as `kafka://host:port`.",
    )
    security_protocol: SecurityProtocol = _setting(
        "PLAINTEXT", "`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`."
    )
    sasl_mechanism: SaslMechanism = _setting(
        "SCRAM-SHA-512", "`PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (with SASL_*)."
    )
    sasl_username: str = _setting("", "SASL user name.")
    sasl_password: str = _setting("", "SASL password; never logged.", secret=True)
    ssl_cafile: str = _setting("", "CA bundle to verify the brokers (with SSL and SASL_SSL).")
    ssl_certfile: str = _setting("", "Client certificate for mutual TLS.")
    ssl_keyfile: str = _setting("", "Client private key for mutual TLS.")
    app_id: str = _setting(
        "citygrid",
        "Application id: the prefix of the consumer groups (`<app_id>.ingest`, `<app_id>.merge`, "
        "and Faust's `<app_id>`) and of the internal topics (`<app_id>-placed`, "
        "`<app_id>-slots-changelog`).",
    )
    topic_prefix: str = _setting(
        "",
        "Prepended to every contract topic name (`dev.` gives `dev.city.events.fire`). Empty in "
        "production; tests use it to keep runs apart on one broker.",
    )
    partitions: int = _setting(
        8, "Partitions of the topics citygrid creates; the ceiling on parallel workers."
    )
    replication_factor: int = _setting(
        1, "Replicas of the topics citygrid creates (3 on a production cluster)."
    )
    web_host: str = _setting("127.0.0.1", "Address the worker's HTTP server binds.")
    web_port: int = _setting(6066, "Port of the worker's HTTP server (`/metrics`, `/health`).")
    api_token: str = _setting(
        "",
        "Bearer token the dispatch board and the HTTP API require (`Authorization: Bearer ...`); "
        "empty leaves them open. `/health`, `/ready` and `/metrics` never ask for it.",
        secret=True,
    )
    device_keys: str = _setting(
        "",
        'Device key registry for event signatures (see "Device signatures"), the path of a JSON '
        "file like `deploy/devices/keys.example.json`; empty checks no signatures. The keys are "
        "secret (keep the file readable by citygrid only) and never logged.",
    )
    session_timeout: float = _setting(
        10.0,
        "How long the group waits for a silent worker before moving its partitions. tansu "
        "holds every group join for half of it, so it also sets how fast a worker starts there.",
    )
    store: str = _setting(
        "rocksdb://",
        "Faust's table store (citygrid's slots are not a Faust table: open tasks' slots live in "
        "memory, closed ones on local disk, all backed by `<app_id>-slots-changelog`); "
        "`memory://` for tests and throwaway runs.",
    )
    data_dir: Path = _setting(
        Path("var/citygrid"),
        "Directory for the worker's local state: Faust's table store, the closed tasks' slots "
        "(slots/) and the task book's finished tasks (tasks/).",
    )
    merge_window: float = _setting(
        1800.0,
        "How long after a task's first report same-place reports merge into it (default 30m); "
        "a category's `merge_window_minutes` in the category table overrides it.",
    )
    rebound_horizon: float = _setting(
        7 * 86400.0,
        "How long after a close a same-place report counts as a rebound (default 7d).",
    )
    dedup_horizon: float = _setting(
        48 * 3600.0,
        "How long a place remembers (device_id, event_id) keys outside its current task, for "
        "dropping repeats (default 48h; at least 24h is sensible).",
    )
    time_limits: str = _setting(
        "",
        "Local handling time limits overriding the category table, as `code=duration` pairs: "
        "`4002=1h,3001=2d` (working time on the calendar below).",
    )
    calendar: str = _setting(
        "",
        "Working-time calendar for deadlines: empty for the wall clock (every minute counts), or "
        "the path of a calendar file such as `deploy/calendar/office-hours.json`.",
    )
    overdue_check: float = _setting(
        15.0, "How often a worker looks for tasks past their deadline (default 15s)."
    )
    kpi_window: float = _setting(
        30 * 86400.0, "The rolling window of the road KPIs and scores (default 30d)."
    )
    kpi_interval: float = _setting(
        30.0, "How often the leader worker recomputes and publishes the KPIs (default 30s)."
    )
    red_flags: int = _setting(5, "How many top-ranked roads hold a red flag (红旗).")
    log_format: LogFormat = _setting(
        "text", "`text` for people; `json` for log pipelines (one JSON object per line)."
    )
    max_message_bytes: int = _setting(
        DEFAULT_MAX_MESSAGE_BYTES,
        "Input messages larger than this are dead-lettered as `too_large` without parsing.",
    )
    max_task_reports: int = _setting(
        5000,
        "Most reports one task lists. A further report that would join it is dead-lettered as "
        "`task_full` (a device reporting one spot all day), so no task's state or slot outgrows "
        "a Kafka record.",
    )
    batch_size: int = _setting(
        2000,
        "Most records the ingest and merge stages take per batch (larger: more throughput, "
        "longer batches).",
    )

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise SettingsError(f"{ENV_PREFIX}PARTITIONS must be at least 1, got {self.partitions}")
        if self.batch_size < 1:
            raise SettingsError(f"{ENV_PREFIX}BATCH_SIZE must be at least 1, got {self.batch_size}")
        if self.max_task_reports < 1:
            raise SettingsError(
                f"{ENV_PREFIX}MAX_TASK_REPORTS must be at least 1, got {self.max_task_reports}"
            )
        if self.replication_factor < 1:
            raise SettingsError(
                f"{ENV_PREFIX}REPLICATION_FACTOR must be at least 1, got {self.replication_factor}"
            )
        if not 0 < self.web_port < 65536:  # noqa: PLR2004 - TCP port range
            raise SettingsError(f"{ENV_PREFIX}WEB_PORT must be a TCP port, got {self.web_port}")
        try:
            parse_time_limits(self.time_limits)
        except ValueError as exc:
            raise SettingsError(f"{ENV_PREFIX}TIME_LIMITS={self.time_limits!r}: {exc}") from None
        if self.topic_prefix and not re.fullmatch(r"[a-z0-9][a-z0-9.-]*\.", self.topic_prefix):
            raise SettingsError(
                f"{ENV_PREFIX}TOPIC_PREFIX must be lowercase, dot-separated and end with a dot "
                f"(like 'dev.'), got {self.topic_prefix!r}"
            )

    @property
    def time_limit_minutes(self) -> dict[str, float]:
        """``CITYGRID_TIME_LIMITS`` as category code to minutes."""
        return parse_time_limits(self.time_limits)

    @property
    def bootstrap_servers(self) -> str:
        """``host:port,host:port`` for plain Kafka clients (aiokafka, kcat)."""
        return ",".join(
            part.strip().removeprefix("kafka://") for part in self.broker_url.split(",")
        )

    @classmethod
    def env_var(cls, name: str) -> str:
        """The environment variable of field ``name``."""
        return ENV_PREFIX + name.upper()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every ``CITYGRID_*`` variable; ``overrides`` win over the environment."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(cls.env_var(f.name))
            if raw is None or raw == "":
                continue
            values[f.name] = _convert(f.name, f.type, raw)
        values.update(overrides)
        return cls(**values)

    @classmethod
    def documented(cls) -> list[tuple[str, str, str]]:
        """``(variable, default, description)`` for every setting, for the README table."""
        rows = []
        for f in fields(cls):
            default = "" if f.default is MISSING else f.default
            rows.append((cls.env_var(f.name), _show(f.name, default), f.metadata["doc"]))
        return rows

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict with secrets masked, safe to log."""
        return {
            f.name: (
                "***" if f.metadata["secret"] and getattr(self, f.name) else getattr(self, f.name)
            )
            for f in fields(self)
        }


def _convert(name: str, annotation: Any, raw: str) -> Any:
    var = Settings.env_var(name)
    if annotation in ("int", int):
        if not raw.strip().lstrip("-").isdigit():
            raise SettingsError(f"{var}={raw!r}: must be a whole number")
        return int(raw)
    try:
        if annotation in ("float", float):
            return parse_duration(raw)
        if annotation in ("Path", Path):
            return Path(raw)
    except ValueError as exc:
        raise SettingsError(f"{var}={raw!r}: {exc}") from None
    choices = _literal_choices(annotation)
    if choices and raw not in choices:
        raise SettingsError(f"{var}={raw!r}: must be one of {', '.join(choices)}")
    return raw


def _literal_choices(annotation: Any) -> tuple[str, ...]:
    named = {
        "SecurityProtocol": SecurityProtocol,
        "SaslMechanism": SaslMechanism,
        "LogFormat": LogFormat,
    }
    target = named.get(annotation, annotation) if isinstance(annotation, str) else annotation
    return tuple(str(a) for a in get_args(target))


def _show(name: str, default: Any) -> str:
    if name in (
        "merge_window",
        "rebound_horizon",
        "dedup_horizon",
        "session_timeout",
        "overdue_check",
        "kpi_window",
        "kpi_interval",
    ):
        return f"{int(default)}"
    return str(default)
