"""The task state machine (CONTRACT.md "Task" and "Feedback"; GB/T 30428 case workflow).

Each test hands :func:`apply` or :func:`mark_overdue` a task and what a terminal, console or the
deadline clock does to it, and checks what a dispatcher would see: the task's status and
timestamps, the TaskEvent type, or a refusal that leaves the task as it was.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.enums import Action, Domain, Priority, RejectReason, Source, Status, TaskEventType
from schemas.feedback import Feedback
from schemas.task import Task
from streams.domain.lifecycle import (
    Refusal,
    Transition,
    allowed_actions,
    apply,
    mark_overdue,
)

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 29, 9, 0, tzinfo=CST)
"""When the task was created."""
UPDATED = T0 + timedelta(hours=1)
"""The task's ``updated_at`` before the action under test."""
AT = T0 + timedelta(hours=2)
"""When the action under test happens."""
DUE = T0 + timedelta(hours=8)
NEW_DUE = T0 + timedelta(days=2)
"""What the test calendar answers on resume."""

CHIEF = "chief-yulong"
OFFICER = "officer-9"


def make_task(status: Status = Status.DISPATCHED, **overrides: Any) -> Task:
    """A task in ``status`` whose fields agree with it (an assignee once dispatched, the stamps
    of the stages it went through); ``overrides`` replace any field."""
    stamps: dict[str, Any] = {"assignee": None}
    if status is not Status.REGISTERED:
        stamps["assignee"] = CHIEF
        stamps["dispatched_at"] = T0
    if status in (Status.HANDLED, Status.CLOSED):
        stamps["handled_at"] = T0 + timedelta(minutes=40)
    if status is Status.CLOSED:
        stamps["closed_at"] = UPDATED
    if status is Status.SUSPENDED:
        stamps["suspended_at"] = UPDATED
    if status is Status.CANCELLED:
        stamps["cancel_reason"] = "duplicate"
    task = Task(
        task_id="yulong-st~4001~0123456789ab",
        status=status,
        domain=Domain.CITYMGMT,
        category="4001",
        priority=Priority.P4,
        place="yulong-st",
        road_id="yulong-st",
        community="jinlong",
        created_at=T0,
        updated_at=UPDATED,
        due_at=DUE,
        event_ids=("evt-000001",),
        sources=(Source.CAMERA,),
        **stamps,
    )
    return replace(task, **overrides)


def feedback(action: Action, at: datetime = AT, **fields: Any) -> Feedback:
    """A decoded feedback message for :func:`make_task`'s task; ``dispatch`` names an officer."""
    if action is Action.DISPATCH:
        fields.setdefault("assignee", OFFICER)
    return Feedback(
        task_id="yulong-st~4001~0123456789ab",
        action=action,
        actor_id="console-01",
        at=at,
        **fields,
    )


@dataclass
class Calendar:
    """A ``resume_due`` that remembers its calls and answers :data:`NEW_DUE`."""

    calls: list[tuple[Task, datetime]] = field(default_factory=list)

    def __call__(self, task: Task, at: datetime) -> datetime:
        self.calls.append((task, at))
        return NEW_DUE


def transition(result: Transition | Refusal) -> Transition:
    assert isinstance(result, Transition), result
    return result


def refusal(result: Transition | Refusal) -> Refusal:
    assert isinstance(result, Refusal), result
    return result


# --- the transition table -------------------------------------------------------------------

_Changes = Callable[[Task], dict[str, Any]]


def _dispatch(task: Task) -> dict[str, Any]:
    return {"assignee": OFFICER, "dispatched_at": AT}


def _none(task: Task) -> dict[str, Any]:
    return {}


def _handle(task: Task) -> dict[str, Any]:
    return {"handled_at": AT}


def _verify_pass(task: Task) -> dict[str, Any]:
    return {"closed_at": AT}


def _verify_fail(task: Task) -> dict[str, Any]:
    return {"rework_count": task.rework_count + 1, "handled_at": None, "dispatched_at": AT}


def _suspend(task: Task) -> dict[str, Any]:
    return {"suspended_at": AT, "handled_at": None}


def _resume(task: Task) -> dict[str, Any]:
    return {"suspended_at": None, "due_at": NEW_DUE}


def _cancel(task: Task) -> dict[str, Any]:
    return {"cancel_reason": "duplicate", "suspended_at": None}


_DISPATCH = (Status.DISPATCHED, TaskEventType.DISPATCHED, _dispatch)
_SUSPEND = (Status.SUSPENDED, TaskEventType.SUSPENDED, _suspend)
_CANCEL = (Status.CANCELLED, TaskEventType.CANCELLED, _cancel)

TABLE: dict[tuple[Status, Action], tuple[Status, TaskEventType, _Changes]] = {
    (Status.REGISTERED, Action.DISPATCH): _DISPATCH,
    (Status.REGISTERED, Action.SUSPEND): _SUSPEND,
    (Status.REGISTERED, Action.CANCEL): _CANCEL,
    (Status.DISPATCHED, Action.ACCEPT): (Status.ACCEPTED, TaskEventType.ACCEPTED, _none),
    (Status.DISPATCHED, Action.DISPATCH): _DISPATCH,
    (Status.DISPATCHED, Action.SUSPEND): _SUSPEND,
    (Status.DISPATCHED, Action.CANCEL): _CANCEL,
    (Status.ACCEPTED, Action.HANDLE): (Status.HANDLED, TaskEventType.HANDLED, _handle),
    (Status.ACCEPTED, Action.DISPATCH): _DISPATCH,
    (Status.ACCEPTED, Action.SUSPEND): _SUSPEND,
    (Status.ACCEPTED, Action.CANCEL): _CANCEL,
    (Status.HANDLED, Action.VERIFY_PASS): (
        Status.CLOSED,
        TaskEventType.VERIFY_PASSED,
        _verify_pass,
    ),
    (Status.HANDLED, Action.VERIFY_FAIL): (
        Status.DISPATCHED,
        TaskEventType.VERIFY_FAILED,
        _verify_fail,
    ),
    (Status.HANDLED, Action.SUSPEND): _SUSPEND,
    (Status.HANDLED, Action.CANCEL): _CANCEL,
    (Status.SUSPENDED, Action.RESUME): (Status.DISPATCHED, TaskEventType.RESUMED, _resume),
    (Status.SUSPENDED, Action.CANCEL): _CANCEL,
}
"""Every allowed (status, action): the status after it, the TaskEvent type, and the fields it
changes besides ``status`` and ``updated_at``. Every pair not listed is refused."""

_PAIRS = list(itertools.product(Status, Action))


@pytest.mark.parametrize(("status", "action"), _PAIRS, ids=[f"{s}-{a}" for s, a in _PAIRS])
def test_every_status_and_action(status: Status, action: Action) -> None:
    task = make_task(status)
    calendar = Calendar()
    result = apply(task, feedback(action, reason="duplicate"), resume_due=calendar)

    if (status, action) in TABLE:
        new_status, event_type, changes = TABLE[status, action]
        step = transition(result)
        assert step.type is event_type
        assert step.task == replace(task, status=new_status, updated_at=AT, **changes(task))
        assert len(calendar.calls) == (1 if action is Action.RESUME else 0)
    else:
        refused = refusal(result)
        assert refused.reason is RejectReason.INVALID_TRANSITION
        assert refused.detail.startswith(f"{action} is not allowed while the task is {status}")
        assert calendar.calls == []
        assert task == make_task(status)


@pytest.mark.parametrize("status", list(Status), ids=str)
def test_allowed_actions_is_the_table(status: Status) -> None:
    assert allowed_actions(status) == {a for s, a in TABLE if s is status}


@pytest.mark.parametrize("status", [Status.CLOSED, Status.CANCELLED], ids=str)
def test_closed_and_cancelled_are_final(status: Status) -> None:
    assert allowed_actions(status) == frozenset()
    detail = refusal(apply(make_task(status), feedback(Action.RESUME), resume_due=Calendar()))
    assert (
        detail.detail
        == f"resume is not allowed while the task is {status} (allowed: none, the task is final)"
    )


def test_a_refusal_names_the_action_the_status_and_what_is_allowed() -> None:
    refused = refusal(apply(make_task(), feedback(Action.VERIFY_PASS), resume_due=Calendar()))
    assert refused == Refusal(
        RejectReason.INVALID_TRANSITION,
        "verify_pass is not allowed while the task is dispatched "
        "(allowed: accept, dispatch, suspend, cancel)",
    )


# --- the GB/T 30428 flow --------------------------------------------------------------------


def test_the_whole_flow_with_one_rework() -> None:
    calendar = Calendar()
    task = make_task(Status.REGISTERED)
    at = T0
    seen: list[TaskEventType] = []

    def step(action: Action, **fields: Any) -> Task:
        nonlocal at
        at += timedelta(minutes=30)
        result = transition(apply(task, feedback(action, at, **fields), resume_due=calendar))
        seen.append(result.type)
        assert result.task.updated_at == max(task.updated_at, at)
        return result.task

    task = step(Action.DISPATCH, assignee=CHIEF)
    assert (task.status, task.assignee, task.dispatched_at) == (Status.DISPATCHED, CHIEF, at)
    task = step(Action.ACCEPT)
    assert task.status is Status.ACCEPTED
    task = step(Action.HANDLE)
    assert (task.status, task.handled_at) == (Status.HANDLED, at)
    task = step(Action.VERIFY_FAIL)
    assert (task.status, task.assignee, task.rework_count) == (Status.DISPATCHED, CHIEF, 1)
    assert (task.handled_at, task.dispatched_at) == (None, at)
    task = step(Action.ACCEPT)
    task = step(Action.HANDLE)
    handled_at = at
    task = step(Action.VERIFY_PASS)
    assert task.status is Status.CLOSED
    assert (task.closed_at, task.handled_at, task.rework_count) == (at, handled_at, 1)
    assert (task.suspended_at, task.cancel_reason, task.overdue) == (None, None, False)
    assert task.created_at == T0
    assert seen == [
        TaskEventType.DISPATCHED,
        TaskEventType.ACCEPTED,
        TaskEventType.HANDLED,
        TaskEventType.VERIFY_FAILED,
        TaskEventType.ACCEPTED,
        TaskEventType.HANDLED,
        TaskEventType.VERIFY_PASSED,
    ]
    assert calendar.calls == []


def test_a_failed_verification_names_the_rework_and_keeps_the_assignee() -> None:
    task = make_task(Status.HANDLED, rework_count=1)
    step = transition(apply(task, feedback(Action.VERIFY_FAIL), resume_due=Calendar()))
    assert step.detail == "rework 2"
    assert (step.task.rework_count, step.task.assignee) == (2, CHIEF)


# --- dispatch -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "before", "detail"),
    [
        (Status.REGISTERED, None, OFFICER),
        (Status.DISPATCHED, "officer-3", "reassigned officer-3 -> officer-9"),
        (Status.ACCEPTED, "officer-3", "reassigned officer-3 -> officer-9"),
        (Status.DISPATCHED, OFFICER, "redispatched to officer-9"),
    ],
    ids=["first", "reassigned-before-accept", "reassigned-after-accept", "same-officer"],
)
def test_dispatch_sets_the_assignee_and_says_who_had_it(
    status: Status, before: str | None, detail: str
) -> None:
    task = make_task(status, assignee=before)
    step = transition(apply(task, feedback(Action.DISPATCH), resume_due=Calendar()))
    assert step.detail == detail
    assert (step.task.status, step.task.assignee) == (Status.DISPATCHED, OFFICER)
    assert step.task.dispatched_at == AT


@pytest.mark.parametrize("assignee", [None, ""], ids=["missing", "empty"])
def test_dispatch_without_an_assignee_is_refused(assignee: str | None) -> None:
    result = apply(
        make_task(Status.REGISTERED),
        feedback(Action.DISPATCH, assignee=assignee),
        resume_due=Calendar(),
    )
    assert refusal(result) == Refusal(RejectReason.INVALID_TRANSITION, "dispatch needs an assignee")


# --- suspend and resume (挂账) ----------------------------------------------------------------


def test_resume_asks_the_calendar_for_the_new_due_time() -> None:
    calendar = Calendar()
    suspended = transition(
        apply(make_task(Status.ACCEPTED), feedback(Action.SUSPEND), resume_due=calendar)
    )
    assert suspended.detail == "from accepted"
    assert (suspended.task.status, suspended.task.suspended_at) == (Status.SUSPENDED, AT)
    assert calendar.calls == []

    resume_at = AT + timedelta(days=3)
    resumed = transition(
        apply(suspended.task, feedback(Action.RESUME, resume_at), resume_due=calendar)
    )
    assert calendar.calls == [(suspended.task, resume_at)]
    assert resumed.type is TaskEventType.RESUMED
    assert resumed.task.due_at == NEW_DUE
    assert (resumed.task.status, resumed.task.assignee) == (Status.DISPATCHED, CHIEF)
    assert (resumed.task.suspended_at, resumed.task.updated_at) == (None, resume_at)


def test_a_task_suspended_before_dispatch_resumes_registered() -> None:
    suspended = make_task(Status.SUSPENDED, assignee=None, dispatched_at=None)
    step = transition(apply(suspended, feedback(Action.RESUME), resume_due=Calendar()))
    assert (step.task.status, step.task.assignee) == (Status.REGISTERED, None)


def test_an_overdue_flag_survives_suspension() -> None:
    task = make_task(Status.SUSPENDED, overdue=True)
    step = transition(apply(task, feedback(Action.RESUME), resume_due=Calendar()))
    assert step.task.overdue


# --- cancel ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_reason", "note", "reason"),
    [
        ("duplicate", "same as 0042", "duplicate"),
        (None, "not a public road", "not a public road"),
        (None, None, "cancelled"),
        ("", "", "cancelled"),
    ],
    ids=["reason", "note", "neither", "empty"],
)
def test_cancel_keeps_the_reason(given_reason: str | None, note: str | None, reason: str) -> None:
    cancel = feedback(Action.CANCEL, reason=given_reason, note=note)
    step = transition(apply(make_task(), cancel, resume_due=Calendar()))
    assert (step.task.status, step.task.cancel_reason) == (Status.CANCELLED, reason)
    assert (step.type, step.detail) == (TaskEventType.CANCELLED, reason)


# --- clocks ---------------------------------------------------------------------------------


def test_an_action_dated_before_the_task_is_still_applied() -> None:
    early = T0 - timedelta(minutes=10)
    step = transition(apply(make_task(), feedback(Action.ACCEPT, early), resume_due=Calendar()))
    assert step.task.status is Status.ACCEPTED
    assert step.task.updated_at == UPDATED


def test_updated_at_never_moves_backwards() -> None:
    late = UPDATED - timedelta(minutes=1)
    step = transition(
        apply(make_task(Status.ACCEPTED), feedback(Action.HANDLE, late), resume_due=Calendar())
    )
    assert (step.task.handled_at, step.task.updated_at) == (late, UPDATED)


# --- overdue --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [Status.REGISTERED, Status.DISPATCHED, Status.ACCEPTED], ids=str)
def test_an_unhandled_task_is_flagged_overdue_once_at_its_due_time(status: Status) -> None:
    task = make_task(status)
    assert mark_overdue(task, DUE - timedelta(seconds=1)) is None

    step = mark_overdue(task, DUE)
    assert step is not None
    assert step.type is TaskEventType.OVERDUE
    assert step.task == replace(task, overdue=True, updated_at=DUE)
    assert mark_overdue(step.task, DUE + timedelta(hours=1)) is None


@pytest.mark.parametrize(
    "status", [Status.HANDLED, Status.CLOSED, Status.CANCELLED, Status.SUSPENDED], ids=str
)
def test_handled_final_and_suspended_tasks_are_never_overdue(status: Status) -> None:
    assert mark_overdue(make_task(status), DUE + timedelta(days=30)) is None


def test_overdue_keeps_a_later_updated_at() -> None:
    task = make_task(updated_at=DUE + timedelta(hours=2))
    step = mark_overdue(task, DUE + timedelta(hours=1))
    assert step is not None
    assert step.task.updated_at == task.updated_at


# --- any sequence ---------------------------------------------------------------------------

_CONTRACT_STATUSES = frozenset(
    {"registered", "dispatched", "accepted", "handled", "closed", "suspended", "cancelled"}
)
_TICK = "tick"
"""A step where the deadline clock runs (:func:`mark_overdue`) instead of an action."""

# Purely random actions are mostly refused and rarely get past ``accepted``; half the steps
# instead take one of the task's allowed actions, most often the forward one, so sequences reach
# handling, rework and closure, and what can happen there.
_FLOW = (
    Action.ACCEPT,
    Action.HANDLE,
    Action.VERIFY_PASS,
    Action.VERIFY_FAIL,
    Action.DISPATCH,
    Action.RESUME,
    Action.SUSPEND,
    Action.CANCEL,
)
_next = st.integers(min_value=0, max_value=7)
_steps = st.lists(
    st.tuples(
        st.one_of(_next, _next, st.sampled_from(list(Action)), st.just(_TICK)),
        st.sampled_from([CHIEF, OFFICER, "officer-3", None]),
        st.sampled_from([None, "duplicate"]),
        st.integers(min_value=1, max_value=600),
    ),
    min_size=1,
    max_size=40,
)


def _pick(task: Task, choice: Action | int) -> Action:
    """``choice`` itself, or the task's ``choice``-th allowed action in flow order (the first,
    the forward step, when there are fewer)."""
    if isinstance(choice, Action):
        return choice
    onward = [a for a in _FLOW if a in allowed_actions(task.status)]
    if not onward:
        return Action.ACCEPT
    return onward[choice] if choice < len(onward) else onward[0]


def _spent_suspended(task: Task, at: datetime) -> datetime:
    assert task.suspended_at is not None
    return task.due_at + (at - task.suspended_at)


@settings(max_examples=200, deadline=None)
@given(st.booleans(), _steps)
def test_any_sequence_keeps_the_task_consistent(
    dispatched: bool, steps: list[tuple[Action | int | str, str | None, str | None, int]]
) -> None:
    task = make_task(Status.DISPATCHED) if dispatched else make_task(Status.REGISTERED)
    at = UPDATED
    reworks = 0
    flagged = 0
    cancelled_from: Status | None = None
    for choice, assignee, reason, gap in steps:
        at += timedelta(minutes=gap)
        before = task
        if choice == _TICK:
            tick = mark_overdue(task, at)
            if tick is not None:
                flagged += 1
                task = tick.task
        else:
            assert isinstance(choice, Action | int)
            action = _pick(task, choice)
            result = apply(
                task,
                feedback(action, at, assignee=assignee, reason=reason),
                resume_due=_spent_suspended,
            )
            refused = action not in allowed_actions(task.status) or (
                action is Action.DISPATCH and assignee is None
            )
            assert isinstance(result, Refusal) == refused
            if isinstance(result, Refusal):
                assert result.reason is RejectReason.INVALID_TRANSITION
            else:
                new_status, event_type, _ = TABLE[before.status, action]
                assert result.type is event_type
                if action is Action.RESUME and before.assignee is None:
                    new_status = Status.REGISTERED
                assert result.task.status is new_status
                task = result.task
                reworks += action is Action.VERIFY_FAIL
                if action is Action.CANCEL:
                    cancelled_from = before.status
                if action is Action.VERIFY_FAIL:
                    assert task.assignee == before.assignee

        if not before.status.is_open:
            assert task == before
        assert task.status.value in _CONTRACT_STATUSES
        assert task.updated_at >= before.updated_at
        assert task.updated_at == (before.updated_at if task == before else at)
        assert task.rework_count == reworks
        assert (task.status is Status.CLOSED) == (task.closed_at is not None)
        assert (task.status is Status.SUSPENDED) == (task.suspended_at is not None)
        assert (task.status is Status.CANCELLED) == (task.cancel_reason is not None)
        handled_stage = task.status in (Status.HANDLED, Status.CLOSED) or (
            task.status is Status.CANCELLED and cancelled_from is Status.HANDLED
        )
        assert (task.handled_at is not None) == handled_stage
        if task.status not in (Status.REGISTERED, Status.CANCELLED, Status.SUSPENDED):
            assert task.assignee is not None
        assert flagged == (1 if task.overdue else 0)
