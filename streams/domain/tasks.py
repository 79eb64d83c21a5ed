"""A slot's task after it opens: feedback from terminals and consoles, and the deadline clock.

Both arrive at the slot in order with its events (the merge agent's partition), so the task's
whole life is one sequence of pure steps over :class:`~streams.domain.merge.SlotState`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import NamedTuple

from schemas.categories import CATEGORIES
from schemas.enums import RejectReason
from schemas.feedback import Feedback
from schemas.task import Task
from streams.domain.lifecycle import Refusal, Transition, apply, mark_overdue
from streams.domain.merge import Change, MergeConfig, Outcome, Result, SlotState, task_event
from streams.domain.sla import resumed_due_at

__all__ = ["Refused", "feedback_key", "on_feedback", "on_tick"]


class Refused(NamedTuple):
    """Feedback that changes nothing and goes to the DLQ with this reason."""

    reason: RejectReason
    detail: str


def _step(state: SlotState, transition: Transition, *, actor_id: str | None) -> Outcome:
    seq = state.seq + 1
    event = task_event(
        transition.task,
        seq,
        transition.type,
        at=transition.task.updated_at,
        actor_id=actor_id,
        detail=transition.detail,
    )
    return Outcome(
        replace(state, task=transition.task, seq=seq),
        (Change(transition.task, event),),
        Result.CHANGED,
    )


def feedback_key(feedback: Feedback) -> str:
    """What makes two feedback messages the same one: a terminal's retry, or a replay after a
    crash, repeats all of it."""
    return "\x1f".join(
        (feedback.action.value, feedback.actor_id, feedback.at.isoformat(), feedback.assignee or "")
    )


def on_feedback(state: SlotState, feedback: Feedback, config: MergeConfig) -> Outcome | Refused:
    """Apply one feedback message to the slot's task (``config`` gives the task's clock).

    Feedback already applied to the task changes nothing (``Result.DUPLICATE``): at-least-once
    delivery replays it after a crash, and terminals retry, and neither is an invalid transition.
    """
    task = state.task
    if task is None or task.task_id != feedback.task_id:
        current = "none" if task is None else task.task_id
        return Refused(
            RejectReason.UNKNOWN_TASK,
            f"no task {feedback.task_id} at this place (current task: {current})",
        )
    key = feedback_key(feedback)
    if key in state.feedback:
        return Outcome(state, (), Result.DUPLICATE)

    clock = config.clock_for(CATEGORIES[task.category])

    def resume_due(suspended: Task, resumed_at: datetime) -> datetime:
        if suspended.suspended_at is None:
            return suspended.due_at
        return resumed_due_at(suspended.due_at, suspended.suspended_at, resumed_at, clock)

    result = apply(task, feedback, resume_due=resume_due)
    if isinstance(result, Refusal):
        return Refused(result.reason, result.detail)
    step = _step(state, result, actor_id=feedback.actor_id)
    return step._replace(state=replace(step.state, feedback=state.feedback | {key}))


def on_tick(state: SlotState, now: datetime) -> Outcome | None:
    """The deadline clock: flag the slot's task overdue once it is past due and not handled."""
    if state.task is None:
        return None
    transition = mark_overdue(state.task, now)
    if transition is None:
        return None
    return _step(state, transition, actor_id=None)
