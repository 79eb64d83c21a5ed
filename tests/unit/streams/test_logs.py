"""JSON logs carry ids as fields, one object per line; repeats of a Kafka client's complaints are
held back."""

from __future__ import annotations

import logging

from schemas.json import loads
from streams.logs import JsonFormatter, RepeatFilter, logging_config


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


def _record(
    name: str, level: int, msg: str, args: tuple[object, ...], at: float
) -> logging.LogRecord:
    record = logging.LogRecord(name, level, __file__, 1, msg, args, None)
    record.created = at
    return record


def test_repeats_of_a_kafka_clients_error_are_held_back_and_counted() -> None:
    repeats = RepeatFilter(window=30.0)
    template = "Unable connect to node with id %s: %s"

    def passes(at: float, node: int = 1, name: str = "aiokafka.conn") -> logging.LogRecord | None:
        record = _record(name, logging.ERROR, template, (node, "refused"), at)
        return record if repeats.filter(record) else None

    first = passes(0.0)
    assert first is not None and first.getMessage() == "Unable connect to node with id 1: refused"
    # The same template, other arguments: the same complaint, held back within the window.
    assert [passes(t, node=n) for t, n in [(1.0, 1), (2.0, 2), (29.0, 1)]] == [None] * 3
    # Another logger's, or another template, is a complaint of its own.
    assert passes(3.0, name="aiokafka.consumer.fetcher") is not None
    later = passes(31.0)
    assert later is not None
    assert later.getMessage() == (
        "Unable connect to node with id 1: refused (3 more like this in the last 30 s)"
    )
    assert later.repeated == 3  # type: ignore[attr-defined]
    assert passes(32.0) is None


def test_only_kafka_clients_warnings_and_errors_are_held_back() -> None:
    repeats = RepeatFilter(window=30.0)
    for at in (0.0, 1.0):
        assert repeats.filter(_record("citygrid.merge", logging.ERROR, "stage failed", (), at))
        assert repeats.filter(_record("aiokafka.conn", logging.INFO, "connected", (), at))


def test_handlers_sharing_the_filter_get_one_decision_per_record() -> None:
    repeats = RepeatFilter(window=30.0)
    record = _record("aiokafka", logging.WARNING, "retrying %s", ("it",), 0.0)
    assert repeats.filter(record) and repeats.filter(record)
    again = _record("aiokafka", logging.WARNING, "retrying %s", ("it",), 1.0)
    assert not repeats.filter(again) and not repeats.filter(again)


def test_a_message_without_arguments_keeps_its_percent_signs() -> None:
    repeats = RepeatFilter(window=10.0)
    for at in (0.0, 1.0):
        repeats.filter(_record("aiokafka", logging.WARNING, "disk 100% full", (), at))
    record = _record("aiokafka", logging.WARNING, "disk 100% full", (), 20.0)
    assert repeats.filter(record)
    assert record.getMessage() == "disk 100% full (1 more like this in the last 10 s)"
