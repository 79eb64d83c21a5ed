"""Structured logs: with ``CITYGRID_LOG_FORMAT=json`` every record is one JSON object per line,
and the ids a record carries (``task_id``, ``event_id``, ``reason``, ``topic``...) are fields of
it, passed as ``extra=``; they are never metric labels."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from schemas.json import dumps

__all__ = ["JsonFormatter", "logging_config"]

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
