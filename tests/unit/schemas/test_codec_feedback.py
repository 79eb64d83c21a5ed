"""decode_feedback: the actions terminals and consoles send on city.feedback, and their DLQ reasons.

Whether an action is allowed in a task's current status (``invalid_transition``) and whether the
task exists (``unknown_task``) are decided by the task state machine, not here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.codec import Rejection, decode_feedback
from schemas.enums import Action, RejectReason
from schemas.event import EVIDENCE_MAX, ID_MAX, Evidence
from schemas.feedback import NOTE_MAX, TASK_ID_MAX, Feedback
from schemas.json import dumps
from tests.factories import (
    ABSENT,
    evidence_item,
    feedback_bytes,
    feedback_dict,
    sha256_hex,
    with_field,
)


def _accepted(raw: bytes) -> Feedback:
    result = decode_feedback(raw)
    assert isinstance(result, Feedback), result
    return result


def _raw(case_id: str, raw: bytes, reason: RejectReason = RejectReason.INVALID_JSON) -> Any:
    return pytest.param(raw, reason, None, id=case_id)


def _bad(
    case_id: str, base: dict[str, Any], path: str, value: Any, field: str | None = None
) -> Any:
    raw = dumps(with_field(base, path, value))
    return pytest.param(raw, RejectReason.SCHEMA, field or path, id=case_id)


_ACCEPT = feedback_dict("accept")
_DISPATCH = feedback_dict("dispatch")
_HANDLE = feedback_dict("handle")
_REQUIRED = ["task_id", "action", "actor_id", "at"]

_CASES = [
    _raw("not_utf8", feedback_bytes(note="caf\u00e9").replace(b"\xc3\xa9", b"\xe9")),
    _raw("truncated", feedback_bytes()[:-2]),
    _raw("empty", b""),
    _raw("top_level_array", dumps([_ACCEPT]), RejectReason.SCHEMA),
    _raw("top_level_string", b'"accept"', RejectReason.SCHEMA),
    *(_bad(f"missing_{name}", _ACCEPT, name, ABSENT) for name in _REQUIRED),
    *(_bad(f"null_{name}", _ACCEPT, name, None) for name in _REQUIRED),
    *(_bad(f"empty_{name}", _ACCEPT, name, "") for name in ["task_id", "actor_id", "at"]),
    _bad("task_id_number", _ACCEPT, "task_id", 17),
    _bad("action_unknown", _ACCEPT, "action", "close"),
    _bad("action_upper_case", _ACCEPT, "action", "ACCEPT"),
    _bad("action_list", _ACCEPT, "action", ["accept"]),
    _bad("dispatch_without_assignee", _DISPATCH, "assignee", ABSENT),
    _bad("dispatch_with_null_assignee", _DISPATCH, "assignee", None),
    _bad("dispatch_with_empty_assignee", _DISPATCH, "assignee", ""),
    _bad("assignee_number", _ACCEPT, "assignee", 7),
    _bad("at_without_offset", _ACCEPT, "at", "2026-11-29T09:55:00"),
    _bad("at_epoch", _ACCEPT, "at", 1764381300),
    _bad("at_words", _ACCEPT, "at", "just now"),
    _bad("at_month_13", _ACCEPT, "at", "2026-13-01T09:55:00+08:00"),
    _bad("at_date_only", _ACCEPT, "at", "2026-11-29"),
    _bad("note_number", _ACCEPT, "note", 1),
    _bad("note_empty", _ACCEPT, "note", ""),
    _bad("reason_object", _ACCEPT, "reason", {"code": "dup"}),
    _bad("evidence_object", _HANDLE, "evidence", evidence_item()),
    _bad("evidence_21_items", _HANDLE, "evidence", [evidence_item(i) for i in range(21)]),
    _bad("evidence_bad_sha256", _HANDLE, "evidence.0.sha256", "0" * 63, "sha256"),
]


@pytest.mark.parametrize(("raw", "reason", "field"), _CASES)
def test_feedback_is_rejected_with_reason_and_detail(
    raw: bytes, reason: RejectReason, field: str | None
) -> None:
    result = decode_feedback(raw)
    assert isinstance(result, Rejection), result
    assert result.reason is reason, result.detail
    assert result.detail.strip()
    if field is not None:
        assert field in result.detail


_LIMITS = [("task_id", TASK_ID_MAX), ("actor_id", ID_MAX), ("note", NOTE_MAX), ("reason", NOTE_MAX)]


@pytest.mark.parametrize(("field", "limit"), _LIMITS, ids=[f for f, _ in _LIMITS])
def test_string_length_limit_is_inclusive(field: str, limit: int) -> None:
    _accepted(feedback_bytes("cancel", **{field: "界" * limit}))
    result = decode_feedback(feedback_bytes("cancel", **{field: "界" * (limit + 1)}))
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.SCHEMA
    assert field in result.detail


def test_assignee_length_limit_is_inclusive() -> None:
    _accepted(feedback_bytes("dispatch", assignee="c" * ID_MAX))
    result = decode_feedback(feedback_bytes("dispatch", assignee="c" * (ID_MAX + 1)))
    assert isinstance(result, Rejection)
    assert "assignee" in result.detail


def test_message_of_exactly_max_bytes_is_parsed_and_one_more_is_too_large() -> None:
    raw = feedback_bytes("handle")
    assert isinstance(decode_feedback(raw, max_bytes=len(raw)), Feedback)
    result = decode_feedback(raw, max_bytes=len(raw) - 1)
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.TOO_LARGE


@pytest.mark.parametrize("action", list(Action), ids=str)
def test_every_action_is_accepted(action: Action) -> None:
    feedback = _accepted(feedback_bytes(action))
    assert feedback.action is action
    assert type(feedback.action) is Action


def test_feedback_decodes_to_typed_values() -> None:
    message = feedback_dict("handle", at="2026-11-29T09:55:00+08:00")
    feedback = _accepted(dumps(message))
    assert feedback.task_id == message["task_id"]
    assert feedback.actor_id == message["actor_id"]
    assert feedback.at == datetime(2026, 11, 29, 1, 55, tzinfo=UTC)
    assert feedback.at.utcoffset() == timedelta(hours=8)
    assert feedback.note == "Cleared and photographed."
    assert feedback.evidence == (Evidence(**message["evidence"][0]),)
    assert feedback.assignee is None
    assert feedback.reason is None


def test_dispatch_carries_its_assignee_and_cancel_its_reason() -> None:
    assert _accepted(feedback_bytes("dispatch", assignee="chief-7")).assignee == "chief-7"
    assert _accepted(feedback_bytes("cancel", reason="invalid")).reason == "invalid"


def test_assignee_on_another_action_is_accepted() -> None:
    assert _accepted(feedback_bytes("resume", assignee="chief-7")).assignee == "chief-7"


def test_evidence_limit_is_twenty_items() -> None:
    items = [evidence_item(i) for i in range(EVIDENCE_MAX)]
    assert len(_accepted(feedback_bytes("handle", evidence=items)).evidence) == EVIDENCE_MAX


def test_sha256_is_kept_in_lower_case() -> None:
    digest = sha256_hex("after")
    feedback = _accepted(feedback_bytes("handle", evidence=[evidence_item(sha256=digest.upper())]))
    assert feedback.evidence[0].sha256 == digest


@pytest.mark.parametrize("field", ["note", "evidence", "reason", "assignee"])
def test_null_for_an_optional_field_is_treated_as_absent(field: str) -> None:
    null = _accepted(feedback_bytes("accept", **{field: None}))
    absent = _accepted(feedback_bytes("accept", **{field: ABSENT}))
    assert null == absent


def test_unknown_fields_are_kept_in_extra() -> None:
    feedback = _accepted(feedback_bytes("accept", console="dispatch-3", gps=[113.78, 34.72]))
    assert feedback.extra == {"console": "dispatch-3", "gps": [113.78, 34.72]}


def test_feedback_dated_ahead_of_the_clock_is_a_future_timestamp() -> None:
    # Its time would become the task's handled or closed time, and every duration from it.
    now = datetime(2026, 11, 29, 9, 30, tzinfo=UTC)
    skewed = feedback_bytes("accept", at=(now + timedelta(seconds=299)).isoformat())
    assert isinstance(decode_feedback(skewed, now=now), Feedback)
    ahead = feedback_bytes("accept", at="9999-12-31T23:59:59+08:00")
    result = decode_feedback(ahead, now=now)
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.FUTURE_TIMESTAMP
    assert "9999-12-31T23:59:59+08:00" in result.detail
    # Without a clock (a message checked again after ingest accepted it) the rule is left out.
    assert isinstance(decode_feedback(ahead), Feedback)
