"""Feedback: an action on a task, sent by a terminal or a dispatch console to ``city.feedback``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from schemas.enums import Action
from schemas.event import Evidence

__all__ = ["NOTE_MAX", "TASK_ID_MAX", "Feedback"]

TASK_ID_MAX = 128
NOTE_MAX = 2000

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Feedback:
    """A validated feedback message.

    ``assignee`` is required for ``dispatch``; ``reason`` is the optional why of a ``cancel``
    (duplicate, invalid). Unknown fields are kept in ``extra``.
    """

    task_id: str
    action: Action
    actor_id: str
    at: datetime
    note: str | None = None
    evidence: tuple[Evidence, ...] = ()
    assignee: str | None = None
    reason: str | None = None
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, compare=False)
