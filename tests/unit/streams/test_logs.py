"""JSON logs carry ids as fields, one object per line."""

from __future__ import annotations

import logging

from schemas.json import loads
from streams.logs import JsonFormatter, logging_config


def test_a_record_becomes_one_json_object_with_its_extra_fields() -> None:
    record = logging.LogRecord(
        "citygrid.merge", logging.INFO, __file__, 1, "task %s", ("t-1",), None
    )
    record.task_id = "t-1"
    record.event_id = "e-9"
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = loads(line)
    assert entry["message"] == "task t-1"
    assert (entry["task_id"], entry["event_id"], entry["level"]) == ("t-1", "e-9", "info")
    assert entry["logger"] == "citygrid.merge"


def test_text_keeps_fausts_logging_and_json_swaps_the_formatter() -> None:
    assert logging_config("text") is None
    config = logging_config("json")
    assert config is not None
    assert config["handlers"]["default"]["formatter"] == "json"
