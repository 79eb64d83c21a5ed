"""The task state machine (CONTRACT.md "Task" and "Feedback"; GB/T 30428 case workflow).

:func:`apply` takes a task and one feedback action and returns either the task after the action
(a :class:`Transition`, with the TaskEvent type to publish) or a :class:`Refusal` that changes
nothing and sends the feedback to the DLQ as ``invalid_transition``. :func:`mark_overdue` flags a
task that is still not handled at its ``due_at``. Both are pure: the caller supplies every
timestamp and the working-time calendar (``resume_due``), so a replay gives the same tasks.

The flow: ``registered`` (立案) → ``dispatched`` (派遣) → ``accepted`` (处置中) → ``handled``
(反馈) → ``closed`` (核查结案). A failed verification sends the task back to the same assignee
(返工, ``rework_count`` + 1). Any open status may be parked (挂账, ``suspended``) and resumed, or
cancelled (a duplicate or invalid case). Closed and cancelled are final.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from types import MappingProxyType
from typing import NamedTuple, TypeAlias

from schemas.enums import Action, RejectReason, Status, TaskEventType
from schemas.feedback import Feedback
from schemas.task import Task

__all__ = [
    "Refusal",
    "ResumeDue",
    "Transition",
    "allowed_actions",
    "apply",
    "mark_overdue",
]

ResumeDue: TypeAlias = Callable[[Task, datetime], datetime]
"""Given the suspended task and the resume time, the new ``due_at`` (the caller counts the
suspended time out on its working-time calendar)."""


class Transition(NamedTuple):
    """An action that was applied: the task after it and the TaskEvent to publish."""

    task: Task
    """The task after the action; ``updated_at`` is the action's time, never earlier than before."""
    type: TaskEventType
    detail: str | None
    """Human-readable detail for the TaskEvent (the rework number, a re-assignment, a reason)."""


class Refusal(NamedTuple):
    """An action not allowed in the task's status: the task stays as it was."""

    reason: RejectReason
    """Always :attr:`RejectReason.INVALID_TRANSITION`, the DLQ header value."""
    detail: str
    """Names the action, the status and what is allowed there."""


# The forward step of each stage first, then the side exits; refusal details list actions in
# this order so an operator reads "what could happen next" before "how to park or drop it".
_ORDER = (
    Action.ACCEPT,
    Action.HANDLE,
    Action.VERIFY_PASS,
    Action.VERIFY_FAIL,
    Action.DISPATCH,
    Action.SUSPEND,
    Action.RESUME,
    Action.CANCEL,
)

_ALLOWED: Mapping[Status, frozenset[Action]] = MappingProxyType(
    {
        Status.REGISTERED: frozenset({Action.DISPATCH, Action.SUSPEND, Action.CANCEL}),
        Status.DISPATCHED: frozenset(
            {Action.ACCEPT, Action.DISPATCH, Action.SUSPEND, Action.CANCEL}
        ),
        Status.ACCEPTED: frozenset({Action.HANDLE, Action.DISPATCH, Action.SUSPEND, Action.CANCEL}),
        Status.HANDLED: frozenset(
            {Action.VERIFY_PASS, Action.VERIFY_FAIL, Action.SUSPEND, Action.CANCEL}
        ),
        Status.SUSPENDED: frozenset({Action.RESUME, Action.CANCEL}),
        Status.CLOSED: frozenset(),
        Status.CANCELLED: frozenset(),
    }
)

_DEFAULT_CANCEL_REASON = "cancelled"


def allowed_actions(status: Status) -> frozenset[Action]:
    """The feedback actions a task in ``status`` accepts; empty for closed and cancelled."""
    return _ALLOWED[status]


def _refuse(action: Action, status: Status) -> Refusal:
    allowed = allowed_actions(status)
    listed = ", ".join(a.value for a in _ORDER if a in allowed) or "none, the task is final"
    return Refusal(
        RejectReason.INVALID_TRANSITION,
        f"{action.value} is not allowed while the task is {status.value} (allowed: {listed})",
    )


def _waiting_status(task: Task) -> Status:
    # The status before a suspension is not stored: a resumed task waits for its assignee to
    # accept again, or for a dispatcher when it never had one.
    return Status.DISPATCHED if task.assignee is not None else Status.REGISTERED


def apply(  # noqa: PLR0911 - one return per action keeps the transition table in one place
    task: Task, feedback: Feedback, *, resume_due: ResumeDue
) -> Transition | Refusal:
    """Apply one feedback action to ``task``.

    Args:
        task: the task's latest state.
        feedback: the action, its actor and time; ``dispatch`` needs ``assignee``.
        resume_due: computes the new ``due_at`` on ``resume``; called with the suspended task
            and ``feedback.at``, and only then.

    Returns:
        A :class:`Transition` when the action is allowed in the task's status, else a
        :class:`Refusal` (the task is unchanged). An action dated before the task was created is
        still applied, since device clocks drift, but ``updated_at`` never moves backwards.
    """
    action = feedback.action
    status = task.status
    if action not in allowed_actions(status):
        return _refuse(action, status)

    at = feedback.at
    stamped = replace(task, updated_at=max(task.updated_at, at))

    if action is Action.DISPATCH:
        assignee = feedback.assignee
        if not assignee:
            # The codec requires it on the wire; this guards feedback built in code.
            return Refusal(RejectReason.INVALID_TRANSITION, "dispatch needs an assignee")
        if task.assignee is None:
            detail = assignee
        elif task.assignee == assignee:
            detail = f"redispatched to {assignee}"
        else:
            detail = f"reassigned {task.assignee} -> {assignee}"
        return Transition(
            replace(stamped, status=Status.DISPATCHED, assignee=assignee, dispatched_at=at),
            TaskEventType.DISPATCHED,
            detail,
        )
    if action is Action.ACCEPT:
        return Transition(replace(stamped, status=Status.ACCEPTED), TaskEventType.ACCEPTED, None)
    if action is Action.HANDLE:
        return Transition(
            replace(stamped, status=Status.HANDLED, handled_at=at), TaskEventType.HANDLED, None
        )
    if action is Action.VERIFY_PASS:
        return Transition(
            replace(stamped, status=Status.CLOSED, closed_at=at), TaskEventType.VERIFY_PASSED, None
        )
    if action is Action.VERIFY_FAIL:
        rework = task.rework_count + 1
        return Transition(
            replace(
                stamped,
                status=Status.DISPATCHED,
                rework_count=rework,
                handled_at=None,
                dispatched_at=at,
            ),
            TaskEventType.VERIFY_FAILED,
            f"rework {rework}",
        )
    if action is Action.SUSPEND:
        # A resumed task goes back to dispatched, so a handling report made before the
        # suspension no longer stands; it is made again after the resume.
        return Transition(
            replace(stamped, status=Status.SUSPENDED, suspended_at=at, handled_at=None),
            TaskEventType.SUSPENDED,
            f"from {status.value}",
        )
    if action is Action.RESUME:
        return Transition(
            replace(
                stamped,
                status=_waiting_status(task),
                suspended_at=None,
                due_at=resume_due(task, at),
            ),
            TaskEventType.RESUMED,
            None,
        )
    # Only cancel is left: every allowed action above returned.
    reason = feedback.reason or feedback.note or _DEFAULT_CANCEL_REASON
    return Transition(
        replace(stamped, status=Status.CANCELLED, cancel_reason=reason, suspended_at=None),
        TaskEventType.CANCELLED,
        reason,
    )


_OVERDUE_STATUSES = frozenset({Status.REGISTERED, Status.DISPATCHED, Status.ACCEPTED})


def mark_overdue(task: Task, now: datetime) -> Transition | None:
    """Flag ``task`` overdue when it is still not handled at ``now`` >= ``due_at``.

    Only a task waiting for work (registered, dispatched or accepted) and not yet flagged is
    flagged; handled, closed, cancelled and suspended (挂账, excluded from on-time rates) tasks
    never are. Returns None when nothing changes.
    """
    if task.overdue or task.status not in _OVERDUE_STATUSES or now < task.due_at:
        return None
    flagged = replace(task, overdue=True, updated_at=max(task.updated_at, now))
    return Transition(flagged, TaskEventType.OVERDUE, f"due at {task.due_at.isoformat()}")
