"""Dispatch priority from domain and severity (CONTRACT.md), and the never-lower rule."""

from __future__ import annotations

from schemas.enums import Domain, Priority, Severity

__all__ = ["higher", "priority_of"]

_RANK = {Priority.P1: 1, Priority.P2: 2, Priority.P3: 3, Priority.P4: 4}


def priority_of(domain: Domain, severity: Severity) -> Priority:
    """``extreme``/``severe`` fire is P1; other fire and ``extreme`` anywhere P2; ``severe`` P3;
    everything else P4."""
    if domain is Domain.FIRE:
        return Priority.P1 if severity in (Severity.EXTREME, Severity.SEVERE) else Priority.P2
    if severity is Severity.EXTREME:
        return Priority.P2
    if severity is Severity.SEVERE:
        return Priority.P3
    return Priority.P4


def higher(a: Priority, b: Priority) -> Priority:
    """The more urgent of two priorities: a task's priority is raised, never lowered."""
    return a if _RANK[a] <= _RANK[b] else b
