"""The sustained-threshold rule: one spike makes no task, a sustained crossing does."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from schemas.categories import CATEGORIES, SensorRule
from streams.domain.sensors import Reading, SensorTrack, Step, Verdict, observe

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 29, 9, 0, tzinfo=CST)
DEVICE = "sensor-yulong-st-01"


def _rule(code: str) -> SensorRule:
    rule = CATEGORIES[code].sensor
    assert rule is not None
    return rule


PM25 = _rule("2001")  # > 150
SMOKE = _rule("1001")  # >= 1, one reading suffices
BIN_FILL = _rule("3002")  # >= 0.9


def _feed(
    readings: list[tuple[str, timedelta, float]],
    rule: SensorRule = PM25,
    track: SensorTrack | None = None,
) -> tuple[SensorTrack | None, list[Step]]:
    """Fold ``observe`` over ``(event_id, offset from T0, value)`` readings of one device."""
    steps = []
    for event_id, offset, value in readings:
        step = observe(track, DEVICE, Reading(event_id, T0 + offset, value), rule)
        track = step.track
        steps.append(step)
    return track, steps


def _minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def test_a_single_spike_is_pending_not_a_report() -> None:
    track, [step] = _feed([("r1", _minutes(0), 300.0)])
    assert step.verdict is Verdict.PENDING
    assert step.event_ids == ()
    assert track is not None
    assert track.pending == ("r1",)
    assert track.since == T0
    assert (track.device_id, track.last_event_id, track.last_at) == (DEVICE, "r1", T0)


def test_three_consecutive_readings_over_are_sustained_with_all_three_ids() -> None:
    track, steps = _feed(
        [("r1", _minutes(0), 180.0), ("r2", _minutes(1), 190.0), ("r3", _minutes(2), 200.0)]
    )
    assert [s.verdict for s in steps] == [Verdict.PENDING, Verdict.PENDING, Verdict.SUSTAINED]
    assert steps[-1].event_ids == ("r1", "r2", "r3")
    assert track is not None
    # The run became a report: the next spike starts a new run.
    assert track.pending == ()
    assert track.since is None


def test_a_reading_under_the_threshold_resets_the_run() -> None:
    _, steps = _feed(
        [
            ("r1", _minutes(0), 180.0),
            ("r2", _minutes(1), 190.0),
            ("r3", _minutes(2), 40.0),
            ("r4", _minutes(3), 180.0),
            ("r5", _minutes(4), 180.0),
            ("r6", _minutes(5), 180.0),
        ]
    )
    assert [s.verdict for s in steps] == [
        Verdict.PENDING,
        Verdict.PENDING,
        Verdict.BELOW,
        Verdict.PENDING,
        Verdict.PENDING,
        Verdict.SUSTAINED,
    ]
    assert steps[2].track.pending == ()
    assert steps[-1].event_ids == ("r4", "r5", "r6")


@pytest.mark.parametrize(
    ("gap", "verdict", "event_ids"),
    [
        (timedelta(minutes=10), Verdict.SUSTAINED, ("r1", "r2")),
        (timedelta(minutes=9, seconds=59), Verdict.PENDING, ()),
        (timedelta(hours=2), Verdict.SUSTAINED, ("r1", "r2")),
    ],
    ids=["10m", "9m59s", "2h"],
)
def test_two_readings_over_for_ten_minutes_are_sustained(
    gap: timedelta, verdict: Verdict, event_ids: tuple[str, ...]
) -> None:
    _, steps = _feed([("r1", timedelta(0), 180.0), ("r2", gap, 180.0)])
    assert steps[-1].verdict is verdict
    assert steps[-1].event_ids == event_ids


def test_the_ten_minutes_restart_after_a_reading_under() -> None:
    _, steps = _feed(
        [("r1", _minutes(0), 180.0), ("r2", _minutes(5), 100.0), ("r3", _minutes(10), 180.0)]
    )
    assert [s.verdict for s in steps] == [Verdict.PENDING, Verdict.BELOW, Verdict.PENDING]


def test_one_smoke_alarm_is_a_report_at_once() -> None:
    track, [step] = _feed([("s1", _minutes(0), 1.0)], rule=SMOKE)
    assert step.verdict is Verdict.SUSTAINED
    assert step.event_ids == ("s1",)
    assert track is not None
    assert track.pending == ()


def test_no_smoke_is_below() -> None:
    _, [step] = _feed([("s1", _minutes(0), 0.0)], rule=SMOKE)
    assert step.verdict is Verdict.BELOW


def test_a_first_reading_under_starts_a_track_with_no_run() -> None:
    track, [step] = _feed([("r1", _minutes(0), 12.0)])
    assert step.verdict is Verdict.BELOW
    assert track == SensorTrack(DEVICE, T0, "r1", pending=(), since=None)


@pytest.mark.parametrize(
    ("event_id", "offset"),
    [
        ("r2", _minutes(1)),
        ("r0", _minutes(0)),
        ("r9", _minutes(-5)),
        ("r1", _minutes(0)),
    ],
    ids=["same-event-again", "same-time-lower-id", "older-occurred-at", "oldest-again"],
)
def test_a_reading_at_or_below_the_high_water_mark_is_a_repeat(
    event_id: str, offset: timedelta
) -> None:
    track, _ = _feed([("r1", _minutes(0), 180.0), ("r2", _minutes(1), 180.0)])
    step = observe(track, DEVICE, Reading(event_id, T0 + offset, 400.0), PM25)
    assert step.verdict is Verdict.REPEAT
    assert step.event_ids == ()
    assert step.track == track


def test_a_repeated_reading_does_not_count_twice_in_the_run() -> None:
    _, steps = _feed(
        [
            ("r1", _minutes(0), 180.0),
            ("r2", _minutes(1), 180.0),
            ("r2", _minutes(1), 180.0),
            ("r3", _minutes(2), 180.0),
        ]
    )
    assert [s.verdict for s in steps] == [
        Verdict.PENDING,
        Verdict.PENDING,
        Verdict.REPEAT,
        Verdict.SUSTAINED,
    ]
    assert steps[-1].event_ids == ("r1", "r2", "r3")


@pytest.mark.parametrize(
    ("code", "value", "over"),
    [
        ("2001", 150.0, False),
        ("2001", 150.01, True),
        ("2002", 250.0, False),
        ("2002", 250.5, True),
        ("2003", 70.0, False),
        ("2003", 70.1, True),
        ("3002", 0.9, True),
        ("3002", 0.89, False),
        ("1001", 1.0, True),
        ("1001", 0.5, False),
    ],
    ids=[
        "pm25-150-not-over",
        "pm25-150.01-over",
        "pm10-250-not-over",
        "pm10-250.5-over",
        "noise-70-not-over",
        "noise-70.1-over",
        "bin_fill-0.9-over",
        "bin_fill-0.89-not-over",
        "smoke-1-over",
        "smoke-0.5-not-over",
    ],
)
def test_threshold_boundaries(code: str, value: float, over: bool) -> None:
    _, [step] = _feed([("r1", _minutes(0), value)], rule=_rule(code))
    assert (step.verdict is not Verdict.BELOW) is over
