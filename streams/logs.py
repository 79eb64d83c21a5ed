"""Structured logs: with ``CITYGRID_LOG_FORMAT=json`` every record is one JSON object per line,
and the ids a record carries (``task_id``, ``event_id``, ``reason``, ``topic``...) are fields of
it, passed as ``extra=``; they are never metric labels."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from schemas.json import dumps

__all__ = ["JsonFormatter", "RepeatFilter", "logging_config"]

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, extra fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return dumps(entry).decode()


class RepeatFilter(logging.Filter):
    """Holds back repeats of a Kafka client's warnings and errors: the first of a kind (same
    logger, same message template) passes, the next ones within ``window`` seconds do not, and the
    first after the window says how many were held back (``repeated``, also a field in JSON).

    With the broker gone, aiokafka's clients (two stages, the task book, Faust's) each log every
    retry, every 100 ms: about 500 errors a minute per worker, saying the same four things.
    """

    def __init__(self, window: float = 30.0, prefixes: tuple[str, ...] = ("aiokafka",)) -> None:
        super().__init__()
        self.window = window
        self.prefixes = prefixes
        self._seen: dict[tuple[str, Any], list[float]] = {}
        """(logger, template) to [when it last passed, how many held back since]."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.name.startswith(self.prefixes):
            return True
        # One decision per record, whichever of the handlers sharing this filter asks first.
        decided: bool | None = getattr(record, "_repeat_filter_passes", None)
        if decided is None:
            decided = record._repeat_filter_passes = self._decide(record)
        return decided

    def _decide(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)
        seen = self._seen.get(key)
        if seen is not None and record.created - seen[0] < self.window:
            seen[1] += 1
            return False
        held = int(seen[1]) if seen is not None else 0
        self._seen[key] = [record.created, 0]
        if held:
            record.repeated = held
            if isinstance(record.args, tuple):
                # Without arguments the message is not %-formatted: keep a literal % so.
                text = str(record.msg) if record.args else str(record.msg).replace("%", "%%")
                record.msg = f"{text} (%d more like this in the last {self.window:g} s)"
                record.args = (*record.args, held)
        return True


def logging_config(log_format: str) -> dict[str, Any] | None:
    """The Faust worker's ``logging_config`` for ``log_format``: None keeps Faust's own."""
    if log_format != "json":
        return None
    return {
        "version": 1,
        # Merged into the worker's config, which keeps the level chosen with `-l`.
        "merge": True,
        "formatters": {"json": {"()": "streams.logs.JsonFormatter"}},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "json"}},
    }
