"""A slot's task after it opens: feedback applied in order, refusals with their DLQ reason, the
deadline clock, and which clock a category's time limit runs on."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType

from schemas.categories import CATEGORIES
from schemas.enums import Action, RejectReason, Status, TaskEventType
from schemas.feedback import Feedback
from streams.domain.calendar import load_calendar
from streams.domain.merge import MergeConfig, Result, SlotState
from streams.domain.tasks import Refused, on_feedback, on_tick
from tests.unit.streams.domain.test_merge import CONFIG, T0, fold, report

OFFICE = load_calendar(Path(__file__).resolve().parents[4] / "deploy/calendar/office-hours.json")


def _opened(category: str = "4001", config: MergeConfig = CONFIG) -> SlotState:
    state, _ = fold([report("first", category=category)], config=config)
    return state


def _feedback(state: SlotState, action: Action, at: datetime, **fields: str) -> Feedback:
    assert state.task is not None
    return Feedback(
        task_id=state.task.task_id, action=action, actor_id="officer-9", at=at, **fields
    )


def test_feedback_moves_the_task_and_numbers_its_task_event() -> None:
    state = _opened()
    outcome = on_feedback(state, _feedback(state, Action.ACCEPT, T0), CONFIG)
    assert not isinstance(outcome, Refused)
    assert outcome.result is Result.CHANGED
    assert outcome.state.task is not None and outcome.state.task.status is Status.ACCEPTED
    (change,) = outcome.changes
    assert change.event.type is TaskEventType.ACCEPTED
    assert change.event.seq == state.seq + 1 == outcome.state.seq
    assert change.event.actor_id == "officer-9"


def test_an_action_the_status_does_not_allow_is_an_invalid_transition() -> None:
    state = _opened()
    refused = on_feedback(state, _feedback(state, Action.VERIFY_PASS, T0), CONFIG)
    assert isinstance(refused, Refused)
    assert refused.reason is RejectReason.INVALID_TRANSITION


def test_feedback_for_another_task_at_the_slot_is_an_unknown_task() -> None:
    state = _opened()
    feedback = replace(_feedback(state, Action.ACCEPT, T0), task_id="yulong-st~4001~feedfeedfeed")
    refused = on_feedback(state, feedback, CONFIG)
    assert isinstance(refused, Refused)
    assert refused.reason is RejectReason.UNKNOWN_TASK
    empty = on_feedback(SlotState(), feedback, CONFIG)
    assert isinstance(empty, Refused) and empty.reason is RejectReason.UNKNOWN_TASK


def test_feedback_applied_before_is_a_duplicate_not_an_invalid_transition() -> None:
    # A terminal's retry, or the replay of an uncommitted batch after a crash.
    state = _opened()
    accept = _feedback(state, Action.ACCEPT, T0)
    applied = on_feedback(state, accept, CONFIG)
    assert not isinstance(applied, Refused)
    again = on_feedback(applied.state, accept, CONFIG)
    assert not isinstance(again, Refused)
    assert again.result is Result.DUPLICATE
    assert again.changes == () and again.state is applied.state
    # The same action at another time is new feedback, judged by the lifecycle.
    later = on_feedback(applied.state, replace(accept, at=T0 + timedelta(minutes=1)), CONFIG)
    assert isinstance(later, Refused) and later.reason is RejectReason.INVALID_TRANSITION
    # Remembered across the changelog, and forgotten when the slot's next task opens.
    assert SlotState.from_wire(applied.state.to_wire()) == applied.state
    handled = on_feedback(applied.state, _feedback(state, Action.HANDLE, T0), CONFIG)
    assert not isinstance(handled, Refused)
    closed = on_feedback(handled.state, _feedback(state, Action.VERIFY_PASS, T0), CONFIG)
    assert not isinstance(closed, Refused) and len(closed.state.feedback) == 3
    rebound, _ = fold([report("next", at=T0 + timedelta(days=1))], state=closed.state)
    assert rebound.task is not None and rebound.task.rebound_of is not None
    assert rebound.feedback == frozenset()


def test_resume_gives_back_the_working_time_left_at_suspension() -> None:
    # Office calendar: Mon-Fri 08:30-12:00, 14:00-18:00. Vending (4001) has 120 working minutes.
    config = MergeConfig(calendar=OFFICE)
    monday = datetime(2026, 11, 30, 9, 0, tzinfo=T0.tzinfo)  # 09:00 Monday, due 11:00
    state, _ = fold([report("first", at=monday)], config=config)
    assert state.task is not None and state.task.due_at == monday + timedelta(hours=2)
    suspended = on_feedback(
        state, _feedback(state, Action.SUSPEND, monday + timedelta(hours=1)), config
    )
    assert not isinstance(suspended, Refused)
    resumed_at = monday + timedelta(days=1)  # Tuesday 09:00, with 60 working minutes left
    resumed = on_feedback(suspended.state, _feedback(state, Action.RESUME, resumed_at), config)
    assert not isinstance(resumed, Refused)
    assert resumed.state.task is not None
    assert resumed.state.task.due_at == resumed_at + timedelta(hours=1)


def test_emergencies_run_on_the_wall_clock_and_the_rest_on_the_calendar() -> None:
    config = MergeConfig(calendar=OFFICE)
    saturday = datetime(2026, 12, 5, 3, 0, tzinfo=T0.tzinfo)
    fire = config.due_at(saturday, CATEGORIES["1002"])
    assert fire == saturday + timedelta(minutes=CATEGORIES["1002"].time_limit_minutes)
    garbage = config.due_at(saturday, CATEGORIES["3001"])
    assert garbage > datetime(2026, 12, 7, 8, 30, tzinfo=T0.tzinfo), "waits for Monday's office"


def test_local_time_limits_override_the_table() -> None:
    config = MergeConfig(time_limits=MappingProxyType({"4001": 5.0}))
    state = _opened(config=config)
    assert state.task is not None and state.task.due_at == T0 + timedelta(minutes=5)


def test_the_clock_flags_a_task_past_due_once() -> None:
    state = _opened()
    assert state.task is not None
    assert on_tick(state, state.task.due_at - timedelta(seconds=1)) is None
    flagged = on_tick(state, state.task.due_at)
    assert flagged is not None
    assert flagged.state.task is not None and flagged.state.task.overdue
    assert flagged.changes[0].event.type is TaskEventType.OVERDUE
    assert on_tick(flagged.state, state.task.due_at + timedelta(hours=1)) is None
    assert on_tick(SlotState(), T0) is None
