"""Assessment KPIs (DOMAIN.md, "Assessment and red flags"; CONTRACT.md, "Rebound", "Overdue").

Each scenario is a handful of tasks with hand-computed indicators, as a district leader would read
them: what was due, what was handled and closed on time, what came back, which road ranks first
and which roads hold the red flags.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.enums import Domain, Priority, Source, Status
from schemas.json import dumps, loads
from schemas.task import Task
from streams.domain.kpi import (
    DEFAULT_WEIGHTS,
    Counts,
    Period,
    RoadKpi,
    ScopeKpi,
    Weights,
    counts,
    kpi_report,
    road_kpis,
    scope_counts,
    score,
    today_period,
    window_period,
)

CST = timezone(timedelta(hours=8))
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=CST)
MIDNIGHT = datetime(2026, 11, 29, 0, 0, tzinfo=CST)
START = NOW - timedelta(days=30)
HOUR = timedelta(hours=1)

_ids = iter(range(1_000_000))


def task(
    *,
    due: datetime,
    created: datetime | None = None,
    status: Status = Status.DISPATCHED,
    handled: datetime | None = None,
    closed: datetime | None = None,
    road: str | None = "yulong-st",
    community: str | None = "jinlong",
    domain: Domain = Domain.SANITATION,
    **overrides: Any,
) -> Task:
    """A task on Yulong St, due at ``due`` and created an hour before unless told."""
    created = due - HOUR if created is None else created
    return Task(
        task_id=f"t{next(_ids)}",
        status=status,
        domain=domain,
        category="3001",
        priority=Priority.P4,
        place=road or "cell:1:1",
        road_id=road,
        community=community,
        assignee="chief",
        created_at=created,
        updated_at=max(t for t in (created, handled, closed) if t is not None),
        due_at=due,
        event_ids=("e",),
        sources=(Source.TERMINAL,),
        handled_at=handled,
        closed_at=closed,
        **overrides,
    )


def closed_task(due: datetime, handled: datetime, closed: datetime, **overrides: Any) -> Task:
    return task(due=due, status=Status.CLOSED, handled=handled, closed=closed, **overrides)


def in_window(*tasks: Task) -> Counts:
    return counts(tasks, start=START, end=NOW)


ZERO = Counts(0, 0, 0, 0, 0, 0, 0, 0, 0, None)


# --- handling -------------------------------------------------------------------------------------


def test_a_task_handled_by_its_deadline_is_on_time_and_one_handled_later_is_not() -> None:
    due = NOW - 5 * HOUR
    on_time = task(due=due, status=Status.HANDLED, handled=due - HOUR)
    late = task(due=due, status=Status.HANDLED, handled=due + HOUR)
    c = in_window(on_time, late)
    assert (c.due, c.handled, c.handled_on_time) == (2, 2, 1)
    assert c.handling_rate == 1.0
    assert c.on_time_handling_rate == 0.5


def test_handled_exactly_at_the_deadline_is_on_time() -> None:
    due = NOW - HOUR
    c = in_window(task(due=due, status=Status.HANDLED, handled=due))
    assert c.on_time_handling_rate == 1.0


def test_an_unhandled_task_is_due_but_not_handled_and_a_future_deadline_is_not_due() -> None:
    c = in_window(task(due=NOW - HOUR), task(due=NOW + HOUR))
    assert (c.due, c.handled, c.handled_on_time) == (1, 0, 0)
    assert c.handling_rate == 0.0


def test_a_reworked_task_back_with_its_team_is_not_handled() -> None:
    # Failed verification clears handled_at: the task is someone's work again.
    c = in_window(task(due=NOW - HOUR, rework_count=1))
    assert (c.due, c.handled, c.due_for_closure, c.reworked) == (1, 0, 0, 0)


def test_a_closed_task_without_handled_at_is_handled_at_its_closure() -> None:
    due = NOW - 3 * HOUR
    c = in_window(task(due=due, status=Status.CLOSED, closed=due - HOUR))
    assert (c.handled, c.handled_on_time, c.due_for_closure, c.closed_on_time) == (1, 1, 1, 1)


def test_the_period_holds_its_start_but_not_its_end() -> None:
    at_start = task(due=START)
    at_end = task(due=NOW)
    assert in_window(at_start, at_end).due == 1
    assert counts([at_end], start=START, end=NOW).due == 0


# --- closure and rework ---------------------------------------------------------------------------


def test_closure_counts_tasks_handled_in_the_period() -> None:
    due = NOW - 10 * HOUR
    on_time = closed_task(due, handled=due - 2 * HOUR, closed=due - HOUR)
    closed_late = closed_task(due, handled=due - 2 * HOUR, closed=due + HOUR)
    awaiting_verification = task(due=due, status=Status.HANDLED, handled=due - HOUR)
    handled_before_window = closed_task(
        START - HOUR, handled=START - 2 * HOUR, closed=START - HOUR, created=START - 3 * HOUR
    )
    c = in_window(on_time, closed_late, awaiting_verification, handled_before_window)
    assert (c.due_for_closure, c.closed, c.closed_on_time) == (3, 2, 1)
    assert c.closure_rate == pytest.approx(2 / 3)
    assert c.on_time_closure_rate == pytest.approx(1 / 3)


def test_a_task_handled_in_the_period_but_due_later_is_due_for_closure_only() -> None:
    early = task(due=NOW + HOUR, status=Status.HANDLED, handled=NOW - HOUR, created=NOW - 2 * HOUR)
    c = in_window(early)
    assert (c.due, c.due_for_closure) == (0, 1)


def test_rework_rate_is_the_share_of_tasks_due_for_closure_that_were_sent_back() -> None:
    due = NOW - 10 * HOUR
    clean = closed_task(due, handled=due - HOUR, closed=due - HOUR)
    reworked = closed_task(due, handled=due - HOUR, closed=due, rework_count=2)
    c = in_window(clean, reworked)
    assert (c.due_for_closure, c.reworked) == (2, 1)
    assert c.rework_rate == 0.5


# --- rebound, overdue -----------------------------------------------------------------------------


def test_rebound_rate_is_rebounds_over_closures_plus_rebounds() -> None:
    due = NOW - 48 * HOUR
    first = closed_task(due, handled=due - HOUR, closed=due - HOUR)
    second = closed_task(due, handled=due - HOUR, closed=due - HOUR)
    rebound = task(due=NOW + HOUR, created=NOW - HOUR, rebound_of=first.task_id)
    c = in_window(first, second, rebound)
    assert (c.closed, c.rebounds) == (2, 1)
    assert c.rebound_rate == pytest.approx(1 / 3)


def test_a_rebound_created_before_the_period_does_not_count() -> None:
    old = task(due=NOW + HOUR, created=START - HOUR, rebound_of="t-old")
    assert in_window(old).rebounds == 0


def test_a_parked_rebound_still_counts_and_a_cancelled_one_does_not() -> None:
    created = NOW - HOUR
    parked = task(
        due=NOW + HOUR,
        created=created,
        status=Status.SUSPENDED,
        suspended_at=created,
        rebound_of="t-1",
    )
    cancelled = task(
        due=NOW + HOUR,
        created=created,
        status=Status.CANCELLED,
        cancel_reason="duplicate",
        rebound_of="t-1",
    )
    c = in_window(parked, cancelled)
    assert c.rebounds == 1
    assert c.rebound_rate == 1.0


def test_overdue_counts_flagged_tasks_due_in_the_period() -> None:
    late = task(due=NOW - HOUR, overdue=True)
    late_last_month = task(due=START - HOUR, overdue=True)
    on_time = task(due=NOW - HOUR, status=Status.HANDLED, handled=NOW - 2 * HOUR)
    c = in_window(late, late_last_month, on_time)
    assert (c.due, c.overdue) == (2, 1)
    assert c.overdue_rate == 0.5


# --- who is assessed ------------------------------------------------------------------------------


def test_a_parked_task_is_left_out_of_due_and_closure() -> None:
    due = NOW - HOUR
    parked = task(
        due=due,
        status=Status.SUSPENDED,
        handled=due - 2 * HOUR,
        suspended_at=due - HOUR,
        overdue=True,
    )
    assert in_window(parked) == ZERO


def test_a_cancelled_task_counts_nowhere() -> None:
    due = NOW - HOUR
    cancelled = task(
        due=due,
        status=Status.CANCELLED,
        handled=due - HOUR,
        cancel_reason="invalid",
        overdue=True,
        rework_count=1,
    )
    assert in_window(cancelled) == ZERO


def test_no_tasks_gives_zero_counts_and_no_rates() -> None:
    c = in_window()
    assert c == ZERO
    assert c.to_wire()["handling_rate"] is None
    assert all(
        rate is None
        for rate in (
            c.handling_rate,
            c.on_time_handling_rate,
            c.closure_rate,
            c.on_time_closure_rate,
            c.rework_rate,
            c.rebound_rate,
            c.overdue_rate,
        )
    )


def test_average_handling_time_is_over_the_tasks_handled_in_the_period() -> None:
    due = NOW - 10 * HOUR
    one_hour = task(due=due, created=due - 3 * HOUR, status=Status.HANDLED, handled=due - 2 * HOUR)
    three_hours = closed_task(due, created=due - 3 * HOUR, handled=due, closed=due)
    unhandled = task(due=due)
    assert in_window(one_hour, three_hours, unhandled).avg_handling_seconds == 2 * 3600.0


# --- today vs the window --------------------------------------------------------------------------


def test_today_is_the_calendar_day_of_now_in_china_time() -> None:
    now = datetime(2026, 11, 28, 17, 0, tzinfo=UTC)  # 01:00 on the 29th in UTC+8
    today = today_period(now)
    assert today.start == MIDNIGHT
    assert today.end == now
    after_midnight = task(due=datetime(2026, 11, 28, 16, 30, tzinfo=UTC))  # 00:30 local
    before_midnight = task(due=datetime(2026, 11, 28, 15, 30, tzinfo=UTC))  # 23:30 yesterday
    tasks = [after_midnight, before_midnight]
    assert counts(tasks, start=today.start, end=today.end).due == 1
    window = window_period(now)
    assert counts(tasks, start=window.start, end=window.end).due == 2


def test_today_follows_the_given_time_zone() -> None:
    now = datetime(2026, 11, 28, 17, 0, tzinfo=UTC)
    assert today_period(now, UTC).start == datetime(2026, 11, 28, tzinfo=UTC)


def test_road_kpis_give_window_and_today_counts() -> None:
    yesterday = task(due=MIDNIGHT - HOUR)
    this_morning = task(due=MIDNIGHT + HOUR, overdue=True)
    (road,) = road_kpis([yesterday, this_morning], now=NOW)
    assert (road.window.due, road.today.due) == (2, 1)
    assert (road.window.overdue, road.today.overdue) == (1, 1)
    assert road.window_start == START
    assert road.today_start == MIDNIGHT
    assert road.as_of == NOW


def test_periods_refuse_naive_times_and_empty_windows() -> None:
    with pytest.raises(ValueError, match="time zone"):
        today_period(datetime(2026, 11, 29, 12))  # noqa: DTZ001 - the naive time under test
    with pytest.raises(ValueError, match="positive"):
        window_period(NOW, timedelta(0))
    with pytest.raises(ValueError, match="ends before"):
        counts([], start=NOW, end=START)


# --- scopes ---------------------------------------------------------------------------------------


def test_scope_counts_group_by_community_and_domain() -> None:
    due = NOW - HOUR
    tasks = [
        task(due=due, community="jinlong", domain=Domain.SANITATION),
        task(due=due, community="jinlong", domain=Domain.FIRE, overdue=True),
        task(due=due, road="sihai-rd", community="jinfeng", domain=Domain.FIRE),
        task(due=due, road=None, community=None, domain=Domain.CITYMGMT),
    ]
    by_community = scope_counts(tasks, lambda t: t.community, start=START, end=NOW)
    assert list(by_community) == ["jinfeng", "jinlong"]
    assert (by_community["jinlong"].due, by_community["jinlong"].overdue) == (2, 1)
    assert by_community["jinfeng"].due == 1
    by_domain = scope_counts(tasks, lambda t: t.domain.value, start=START, end=NOW)
    assert {d: c.due for d, c in by_domain.items()} == {"citymgmt": 1, "fire": 2, "sanitation": 1}


def test_kpi_report_covers_every_scope_for_both_periods() -> None:
    tasks = [
        task(due=MIDNIGHT + HOUR, community="jinlong", domain=Domain.FIRE),
        task(due=MIDNIGHT - HOUR, road="sihai-rd", community="jinfeng"),
        task(due=MIDNIGHT - HOUR, road=None, community=None, domain=Domain.CITYMGMT),
    ]
    report = kpi_report(tasks, now=NOW)
    assert [r.road_id for r in report.roads] == sorted(r.road_id for r in report.roads)
    assert {name: (k.window.due, k.today.due) for name, k in report.communities.items()} == {
        "jinfeng": (1, 0),
        "jinlong": (1, 1),
    }
    assert report.domains["fire"].today.due == 1
    assert (report.district.window.due, report.district.today.due) == (3, 1)
    assert loads(dumps(report.to_wire()))["district"]["today"]["due"] == 1


# --- score, rank, red flags -----------------------------------------------------------------------


def test_score_weights_on_time_handling_closure_rework_and_rebound() -> None:
    c = Counts(
        due=2,
        handled=1,
        handled_on_time=1,
        due_for_closure=4,
        closed=3,
        closed_on_time=2,
        reworked=1,
        rebounds=1,
        overdue=1,
        avg_handling_seconds=60.0,
    )
    # 40 * 1/2 + 30 * 2/4 + 15 * (1 - 1/4) + 15 * (1 - 1/4)
    assert score(c) == pytest.approx(20 + 15 + 11.25 + 11.25)


def test_a_missing_rate_counts_as_perfect() -> None:
    assert score(ZERO) == 100.0
    only_late = Counts(1, 0, 0, 0, 0, 0, 0, 0, 1, None)
    assert score(only_late) == 60.0


def test_weights_only_matter_in_proportion() -> None:
    c = Counts(2, 1, 1, 0, 0, 0, 0, 0, 0, None)
    assert score(c, Weights(4, 3, 1.5, 1.5)) == pytest.approx(score(c, DEFAULT_WEIGHTS))
    assert score(c, Weights(1, 0, 0, 0)) == 50.0


@pytest.mark.parametrize("weights", [(-1, 30, 15, 15), (0, 0, 0, 0), (float("nan"), 1, 1, 1)])
def test_weights_must_be_non_negative_and_not_all_zero(weights: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="weights"):
        Weights(*weights)


def test_counts_refuse_a_numerator_above_its_denominator() -> None:
    with pytest.raises(ValueError, match="inconsistent"):
        Counts(1, 2, 0, 0, 0, 0, 0, 0, 0, None)


def _road(road: str, *, on_time: int = 0, late: int = 0, unhandled: int = 0) -> list[Task]:
    """A road's tasks due five hours ago: closed on time, closed late, or not handled at all.

    Its score is 40 * on_time / due + 30 * on_time / (on_time + late) + 15 + 15.
    """
    due = NOW - 5 * HOUR
    return (
        [closed_task(due, road=road, handled=due - HOUR / 2, closed=due) for _ in range(on_time)]
        + [
            closed_task(due, road=road, handled=due + HOUR, closed=due + HOUR, overdue=True)
            for _ in range(late)
        ]
        + [task(due=due, road=road, overdue=True) for _ in range(unhandled)]
    )


def _ranking(kpis: list[RoadKpi]) -> list[tuple[str, int, bool]]:
    return [(k.road_id, k.rank, k.red_flag) for k in kpis]


def test_roads_rank_by_score_then_fewer_overdue_then_road_id() -> None:
    tasks = [
        *_road("a-st", on_time=2, late=2),  # 65, 2 overdue
        *_road("b-st", on_time=2),  # 100
        *_road("c-st", on_time=1, late=1),  # 65, 1 overdue
        *_road("e-st", unhandled=1),  # 60
        *_road("f-st", on_time=1, late=1),  # 65, 1 overdue: after c-st by road id
    ]
    kpis = road_kpis(tasks, now=NOW, red_flags=3)
    assert _ranking(kpis) == [
        ("b-st", 1, True),
        ("c-st", 2, True),
        ("f-st", 3, True),
        ("a-st", 4, False),
        ("e-st", 5, False),
    ]
    assert [k.score for k in kpis] == pytest.approx([100, 65, 65, 65, 60])
    assert [k.window.overdue for k in kpis] == [0, 1, 1, 2, 1]


def test_the_top_five_roads_hold_red_flags_by_default() -> None:
    tasks = [t for i in range(7) for t in _road(f"road-{i}", on_time=7 - i, late=i)]
    kpis = road_kpis(tasks, now=NOW)
    assert [k.road_id for k in kpis if k.red_flag] == [f"road-{i}" for i in range(5)]


def test_a_road_with_nothing_due_gets_no_red_flag_and_does_not_use_one_up() -> None:
    idle = task(due=NOW + HOUR, road="idle-st", created=NOW - HOUR)
    tasks = [idle, *_road("a-st", on_time=1, late=1), *_road("b-st", late=1)]
    kpis = road_kpis(tasks, now=NOW, red_flags=2, roads={"empty-st": "jinlong"})
    assert _ranking(kpis) == [
        ("empty-st", 1, False),
        ("idle-st", 2, False),
        ("a-st", 3, True),
        ("b-st", 4, True),
    ]
    assert kpis[0].community == "jinlong"
    assert kpis[0].window == ZERO


def test_no_red_flags_when_asked_for_none() -> None:
    kpis = road_kpis(_road("a-st", on_time=1), now=NOW, red_flags=0)
    assert not kpis[0].red_flag
    with pytest.raises(ValueError, match="red_flags"):
        road_kpis([], now=NOW, red_flags=-1)


def test_a_road_takes_its_community_from_its_latest_task_and_tasks_off_road_are_left_out() -> None:
    old = task(due=NOW - 2 * HOUR, community="old-community")
    new = task(due=NOW - HOUR, community="jinlong")
    off_road = task(due=NOW - HOUR, road=None, community=None)
    (road,) = road_kpis([new, old, off_road], now=NOW)
    assert (road.road_id, road.community, road.window.due) == ("yulong-st", "jinlong", 2)


def test_a_tie_on_the_latest_task_goes_to_the_greater_community_in_any_task_order() -> None:
    created = NOW - 2 * HOUR
    a, b = (task(due=NOW - HOUR, created=created, community=c) for c in ("jinfeng", "jinlong"))
    assert [road_kpis(order, now=NOW)[0].community for order in ([a, b], [b, a])] == ["jinlong"] * 2


def test_road_kpi_wire_form_has_counts_and_rates() -> None:
    (road,) = road_kpis(_road("yulong-st", on_time=1, late=1), now=NOW)
    wire = loads(dumps(road.to_wire()))
    assert wire["road_id"] == "yulong-st"
    assert wire["community"] == "jinlong"
    assert (wire["rank"], wire["red_flag"]) == (1, True)
    assert wire["score"] == pytest.approx(65.0)
    assert wire["as_of"] == "2026-11-29T12:00:00+08:00"
    assert wire["window_start"] == "2026-10-30T12:00:00+08:00"
    assert wire["today_start"] == "2026-11-29T00:00:00+08:00"
    assert (wire["window"]["due"], wire["window"]["overdue"]) == (2, 1)
    assert wire["window"]["on_time_handling_rate"] == 0.5
    assert (wire["window"]["closure_rate"], wire["window"]["on_time_closure_rate"]) == (1.0, 0.5)
    assert wire["window"]["avg_handling_seconds"] == (1800 + 7200) / 2  # created an hour early
    assert wire["today"]["handled"] == 2


# --- properties -----------------------------------------------------------------------------------

_ROADS = ("a-st", "b-st", "c-st", "d-st", "e-st", "f-st", "g-st")
_MINUTE = timedelta(minutes=1)
_SPAN = 60 * 24 * 45  # minutes: tasks reach from before the window to after now


@st.composite
def tasks(draw: st.DrawFn) -> Task:
    """A task whose timestamps follow its lifecycle, at any time around ``NOW``."""
    created = START - 10 * 24 * HOUR + draw(st.integers(0, _SPAN)) * _MINUTE
    due = created + draw(st.integers(0, 3 * 24 * 60)) * _MINUTE
    status = draw(st.sampled_from(Status))
    handled = closed = suspended = None
    if status in (Status.HANDLED, Status.CLOSED) or (
        status is Status.SUSPENDED and draw(st.booleans())
    ):
        handled = created + draw(st.integers(0, 4 * 24 * 60)) * _MINUTE
    if status is Status.CLOSED:
        closed = (handled or created) + draw(st.integers(0, 24 * 60)) * _MINUTE
        handled = draw(st.sampled_from((handled, None)))
    if status is Status.SUSPENDED:
        suspended = (handled or created) + draw(st.integers(0, 60)) * _MINUTE
    road = draw(st.sampled_from((*_ROADS, None)))
    return task(
        due=due,
        created=created,
        status=status,
        handled=handled,
        closed=closed,
        road=road,
        community=None if road is None else f"community-{_ROADS.index(road) % 3}",
        domain=draw(st.sampled_from(Domain)),
        suspended_at=suspended,
        overdue=(handled or closed or NOW) > due,
        rework_count=draw(st.integers(0, 2)),
        rebound_of=draw(st.sampled_from((None, "t-earlier"))),
        cancel_reason="invalid" if status is Status.CANCELLED else None,
    )


_PROPERTY = settings(max_examples=200, deadline=None)


def _assert_consistent(c: Counts) -> None:
    for part, whole in (
        (c.handled, c.due),
        (c.handled_on_time, c.handled),
        (c.overdue, c.due),
        (c.closed, c.due_for_closure),
        (c.closed_on_time, c.closed),
        (c.reworked, c.due_for_closure),
    ):
        assert 0 <= part <= whole
    for rate in (
        c.handling_rate,
        c.on_time_handling_rate,
        c.closure_rate,
        c.on_time_closure_rate,
        c.rework_rate,
        c.rebound_rate,
        c.overdue_rate,
    ):
        assert rate is None or 0.0 <= rate <= 1.0
    assert (c.avg_handling_seconds is None) == (c.due_for_closure == 0)
    assert c.avg_handling_seconds is None or c.avg_handling_seconds >= 0
    assert 0.0 <= score(c) <= 100.0


_WEIGHTS = st.tuples(*[st.floats(0, 100) for _ in range(4)]).filter(any).map(lambda w: Weights(*w))


@_PROPERTY
@given(
    st.lists(tasks(), max_size=25),
    st.integers(0, 8),
    st.integers(0, 24 * 60 - 1),
    _WEIGHTS,
)
def test_rates_scores_ranks_and_flags_stay_in_bounds(
    sample: list[Task], red_flags: int, minute_of_day: int, weights: Weights
) -> None:
    now = MIDNIGHT + minute_of_day * _MINUTE
    kpis = road_kpis(sample, now=now, red_flags=red_flags, weights=weights)
    assert [k.rank for k in kpis] == list(range(1, len(kpis) + 1))
    assert {k.road_id for k in kpis} == {t.road_id for t in sample if t.road_id is not None}
    for k in kpis:
        _assert_consistent(k.window)
        _assert_consistent(k.today)
        assert 0.0 <= k.score <= 100.0
        assert k.today.due <= k.window.due
    keys = [(-k.score, k.window.overdue, k.road_id) for k in kpis]
    assert keys == sorted(keys)
    # The flags go to the best eligible roads, as many as there are, up to ``red_flags``.
    eligible = [k.road_id for k in kpis if k.window.due > 0]
    assert [k.road_id for k in kpis if k.red_flag] == eligible[:red_flags]
    # The input is the table of a compacted topic: its order must not matter.
    assert road_kpis(sample[::-1], now=now, red_flags=red_flags, weights=weights) == kpis


@_PROPERTY
@given(st.lists(tasks(), max_size=25))
def test_scopes_add_up_to_the_district(sample: list[Task]) -> None:
    district = counts(sample, start=START, end=NOW)
    _assert_consistent(district)
    by_domain = scope_counts(sample, lambda t: t.domain.value, start=START, end=NOW)
    for name in ("due", "handled", "due_for_closure", "closed", "reworked", "rebounds", "overdue"):
        assert sum(getattr(c, name) for c in by_domain.values()) == getattr(district, name)
    report = kpi_report(sample, now=NOW)
    assert report.district.window == district
    on_roads = [t for t in sample if t.road_id is not None]
    assert sum(r.window.due for r in report.roads) == counts(on_roads, start=START, end=NOW).due


# --- one pass against the definitions -------------------------------------------------------------


def _by_definition(sample: list[Task], period: Period) -> Counts:
    """The module docstring's formulas applied to ``sample`` alone, task by task."""
    c = dict.fromkeys(
        (
            "due",
            "handled",
            "handled_on_time",
            "due_for_closure",
            "closed",
            "closed_on_time",
            "reworked",
            "rebounds",
            "overdue",
        ),
        0,
    )
    micros = 0  # handling time, summed exactly
    for t in sample:
        if t.status is Status.CANCELLED:
            continue
        if t.rebound_of is not None and period.holds(t.created_at):
            c["rebounds"] += 1
        if t.status is Status.SUSPENDED:
            continue
        handling = t.handled_at or (t.closed_at if t.status is Status.CLOSED else None)
        if period.holds(t.due_at):
            c["due"] += 1
            c["overdue"] += t.overdue
            if handling is not None or t.status in (Status.HANDLED, Status.CLOSED):
                c["handled"] += 1
                c["handled_on_time"] += handling is not None and handling <= t.due_at
        if handling is not None and period.holds(handling):
            c["due_for_closure"] += 1
            micros += max(0, (handling - t.created_at) // timedelta(microseconds=1))
            c["reworked"] += t.rework_count > 0
            if t.status is Status.CLOSED:
                c["closed"] += 1
                c["closed_on_time"] += t.closed_at is not None and t.closed_at <= t.due_at
    due_for_closure = c["due_for_closure"]
    return Counts(
        **c,
        avg_handling_seconds=micros / (due_for_closure * 1_000_000) if due_for_closure else None,
    )


_OFFSETS = st.sampled_from((-5, 0, 8))


@st.composite
def read_tasks(draw: st.DrawFn) -> Task:
    """A task from :func:`tasks` as the task book holds one: created at any microsecond up to a
    minute earlier, and each time in an offset of its own, with a tzinfo object of its own as
    parsing gives, so a report can lean neither on whole minutes nor on shared zones. Its road
    may have moved to another community."""

    def elsewhere(at: datetime) -> datetime:
        return at.astimezone(timezone(timedelta(hours=draw(_OFFSETS))))

    t = draw(tasks())
    created = t.created_at - draw(st.integers(0, 60_000_000)) * timedelta(microseconds=1)
    return replace(
        t,
        created_at=elsewhere(created),
        due_at=elsewhere(t.due_at),
        handled_at=None if t.handled_at is None else elsewhere(t.handled_at),
        closed_at=None if t.closed_at is None else elsewhere(t.closed_at),
        community=t.community and draw(st.sampled_from((t.community, "jinfeng"))),
    )


def _scope(sample: list[Task], window: Period, today: Period) -> ScopeKpi:
    return ScopeKpi(_by_definition(sample, window), _by_definition(sample, today))


REPORT_CASES = (
    st.lists(read_tasks(), max_size=40),
    st.integers(0, 24 * 60 - 1),
    st.integers(1, 30),
    st.sampled_from((CST, UTC)),
    st.dictionaries(st.sampled_from((*_ROADS[:2], "h-st")), st.sampled_from(("jinlong", None))),
)
"""A report's inputs: the tasks, the minute of the day it is now, the window in days, the time
zone of today, the registry's roads and communities."""


@_PROPERTY
@given(*REPORT_CASES)
def test_the_one_pass_report_equals_every_scope_counted_on_its_own(
    sample: list[Task],
    minute_of_day: int,
    days: int,
    tz: timezone,
    registry: dict[str, str | None],
) -> None:
    now = MIDNIGHT + minute_of_day * _MINUTE
    report = kpi_report(sample, now=now, window=days * 24 * HOUR, tz=tz, roads=registry)
    window, today = window_period(now, days * 24 * HOUR), today_period(now, tz)

    def scope(selected: list[Task]) -> ScopeKpi:
        return _scope(selected, window, today)

    # Exact equality, averages included: the report is the definitions, not an approximation.
    assert report.district == scope(sample)
    domains = sorted({t.domain.value for t in sample})
    assert dict(report.domains) == {d: scope([t for t in sample if t.domain == d]) for d in domains}
    assert list(report.domains) == domains
    communities = sorted({t.community for t in sample if t.community is not None})
    assert dict(report.communities) == {
        c: scope([t for t in sample if t.community == c]) for c in communities
    }
    assert list(report.communities) == communities
    roads = {t.road_id for t in sample if t.road_id is not None} | set(registry)
    assert {r.road_id: ScopeKpi(r.window, r.today) for r in report.roads} == {
        road: scope([t for t in sample if t.road_id == road]) for road in roads
    }
    for r in report.roads:
        named = [t for t in sample if t.road_id == r.road_id and t.community is not None]
        latest = max(((t.created_at, t.community) for t in named), default=(None, None))[1]
        assert r.community == (registry.get(r.road_id) or latest)


@_PROPERTY
@given(st.lists(read_tasks(), max_size=40))
def test_counts_and_scope_counts_equal_the_definitions(sample: list[Task]) -> None:
    period = Period(START, NOW)
    assert counts(sample, start=START, end=NOW) == _by_definition(sample, period)
    by_community = scope_counts(sample, lambda t: t.community, start=START, end=NOW)
    assert by_community == {
        c: _by_definition([t for t in sample if t.community == c], period)
        for c in sorted({t.community for t in sample if t.community is not None})
    }
