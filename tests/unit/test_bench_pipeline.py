"""The closing part of ``bench/pipeline.py``: its rounds, and the counter totals it waits for
after each wave, summed over the rounds."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

PIPELINE = Path(__file__).resolve().parents[2] / "bench" / "pipeline.py"


def _pipeline() -> ModuleType:
    # bench/ is not a package: load the script the way `make bench` runs it, by path.
    spec = importlib.util.spec_from_file_location("bench_pipeline", PIPELINE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Its dataclasses look their module up while they are built.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


pipeline = _pipeline()


@pytest.mark.parametrize(
    ("tasks", "per_round", "sizes"),
    [
        (30_000, 10_000, [10_000, 10_000, 10_000]),
        (25_000, 10_000, [10_000, 10_000, 5_000]),
        (1_000_000, 50_000, [50_000] * 20),
        (20_000, 50_000, [20_000]),
        (20_000, 20_000, [20_000]),
        (10_000, 0, [10_000]),
        (1, 1, [1]),
        (0, 0, []),
    ],
)
def test_rounds_number_the_tasks_from_0_on_across_the_rounds(
    tasks: int, per_round: int, sizes: list[int]
) -> None:
    rounds = pipeline._closing_rounds(tasks, per_round)
    assert [len(r) for r in rounds] == sizes
    assert [n for r in rounds for n in r] == list(range(tasks))
    assert [r.stop for r in rounds] == [sum(sizes[: i + 1]) for i in range(len(sizes))]


def test_feedback_targets_sum_every_round_so_far() -> None:
    steps = len(pipeline._CLOSING_STEPS)
    rounds = pipeline._closing_rounds(25_000, 10_000)
    targets = [pipeline._feedback_target(r, s) for r in rounds for s in range(1, steps + 1)]
    assert targets == [
        10_000, 20_000, 30_000, 40_000,
        50_000, 60_000, 70_000, 80_000,
        85_000, 90_000, 95_000, 100_000,
    ]  # fmt: skip
    assert targets[-1] == steps * 25_000


def test_one_round_waits_for_what_the_all_open_form_did() -> None:
    (only,) = pipeline._closing_rounds(10_000, 0)
    steps = len(pipeline._CLOSING_STEPS)
    assert only.stop == 10_000
    assert [pipeline._feedback_target(only, s) for s in range(1, steps + 1)] == [
        s * 10_000 for s in range(1, steps + 1)
    ]


def test_closing_round_option() -> None:
    assert pipeline._parse([]).closing_round == 50_000
    quick = pipeline._parse(["--quick"])
    assert len(pipeline._closing_rounds(quick.closed_tasks, quick.closing_round)) == 1
    assert pipeline._parse(["--closing-round", "0"]).closing_round == 0
    with pytest.raises(SystemExit):
        pipeline._parse(["--closing-round", "-1"])


def _latency(seen_at: list[float]) -> Any:
    """1,000 reports sent at 100/s, each seen in a task state at ``seen_at[i]``."""
    lat = pipeline.Latency(offered=100.0, seconds=10.0, warmup=0.0)
    sent_at = [i / 100 for i in range(1000)]
    lat.sent, lat.first_send, lat.last_send, lat.done = 1000, sent_at[0], sent_at[-1], True
    lat.samples = [(sent, seen - sent) for sent, seen in zip(sent_at, seen_at, strict=True)]
    return lat


def test_a_worker_seeing_every_report_soon_after_it_is_sent_kept_up() -> None:
    lat = _latency([i / 100 + 0.02 for i in range(1000)])
    assert lat.kept_up()
    assert "kept up" in pipeline._latency_row(lat)[0]


def test_a_backlog_drained_at_half_the_sent_rate_fell_behind_whatever_the_slope() -> None:
    # Seen at 50/s from 5 s on, the last sent first: latency falls in send order (a negative
    # slope), yet the worker handled half of what it was sent.
    lat = _latency([5 + (999 - i) / 50 for i in range(1000)])
    assert lat.growth() < 0
    assert not lat.kept_up()
    assert "FELL BEHIND: handled slower than sent" in pipeline._latency_row(lat)[0]


def test_worker_settings_pass_citygrid_names_and_keep_the_scripts_own() -> None:
    assert pipeline._worker_settings(["CITYGRID_BATCH_SIZE=500", "CITYGRID_LOG_FORMAT=a=b"]) == {
        "CITYGRID_BATCH_SIZE": "500",
        "CITYGRID_LOG_FORMAT": "a=b",
    }
    for bad in ["CITYGRID_BATCH_SIZE", "BATCH_SIZE=5", "CITYGRID_PARTITIONS=3"]:
        with pytest.raises(ValueError, match="CITYGRID_NAME=VALUE"):
            pipeline._worker_settings([bad])


def test_latency_reports_are_built_beforehand_in_send_order() -> None:
    lat = pipeline.Latency(offered=1000.0, seconds=1.0, warmup=0.0)
    lat.places = 10
    topics = {domain: f"t.{domain.value}" for domain in pipeline.Domain}
    paced = pipeline._Matcher(lat).build(40, 4, topics)
    assert [p.event_id for p in paced[3:5]] == ["warm-00000003", "lat-00000004"]
    occurred = [pipeline.loads(p.value)["occurred_at"] for p in paced]
    times = [pipeline.datetime.fromisoformat(t) for t in occurred]
    steps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert steps == pytest.approx([0.001] * 39)
    assert {p.topic for p in paced} <= set(topics.values())


def test_the_batch_phases_are_read_from_the_workers_own_exposition() -> None:
    from streams import metrics  # noqa: PLC0415 - the worker's registry, only for this test

    before = pipeline.batch_phases(metrics.exposition().decode())
    for records, decide, acks in ((100, 0.002, 0.020), (300, 0.004, 0.030)):
        metrics.BATCH_RECORDS.labels("merge").observe(records)
        metrics.BATCH_PHASE_SECONDS.labels("merge", "decide").observe(decide)
        metrics.BATCH_PHASE_SECONDS.labels("merge", "acks").observe(acks)
    after = pipeline.batch_phases(metrics.exposition().decode())
    assert after[("merge", "records_count")] - before.get(("merge", "records_count"), 0) == 2
    line = pipeline.phases_line(before, after)
    assert line == "merge 2 batches of 200 records, mean decide 3.0 ms, acks 25.0 ms"
