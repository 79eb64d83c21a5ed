"""Dispatch priority from domain and severity (CONTRACT.md), and the never-lower rule."""

from __future__ import annotations

import itertools

import pytest

from schemas.enums import Domain, Priority, Severity
from streams.domain.priority import higher, priority_of

# The contract's rule written out row by row, so a change to it shows up as a changed row here.
PRIORITY_TABLE = [
    (Domain.FIRE, Severity.EXTREME, Priority.P1),
    (Domain.FIRE, Severity.SEVERE, Priority.P1),
    (Domain.FIRE, Severity.MODERATE, Priority.P2),
    (Domain.FIRE, Severity.MINOR, Priority.P2),
    (Domain.ENVIRONMENT, Severity.EXTREME, Priority.P2),
    (Domain.ENVIRONMENT, Severity.SEVERE, Priority.P3),
    (Domain.ENVIRONMENT, Severity.MODERATE, Priority.P4),
    (Domain.ENVIRONMENT, Severity.MINOR, Priority.P4),
    (Domain.SANITATION, Severity.EXTREME, Priority.P2),
    (Domain.SANITATION, Severity.SEVERE, Priority.P3),
    (Domain.SANITATION, Severity.MODERATE, Priority.P4),
    (Domain.SANITATION, Severity.MINOR, Priority.P4),
    (Domain.CITYMGMT, Severity.EXTREME, Priority.P2),
    (Domain.CITYMGMT, Severity.SEVERE, Priority.P3),
    (Domain.CITYMGMT, Severity.MODERATE, Priority.P4),
    (Domain.CITYMGMT, Severity.MINOR, Priority.P4),
]

_URGENCY = {Priority.P1: 1, Priority.P2: 2, Priority.P3: 3, Priority.P4: 4}


def test_the_table_covers_every_domain_and_severity() -> None:
    assert {(d, s) for d, s, _ in PRIORITY_TABLE} == set(itertools.product(Domain, Severity))


@pytest.mark.parametrize(
    ("domain", "severity", "expected"),
    PRIORITY_TABLE,
    ids=[f"{d.value}-{s.value}" for d, s, _ in PRIORITY_TABLE],
)
def test_priority_of_follows_the_contract(
    domain: Domain, severity: Severity, expected: Priority
) -> None:
    assert priority_of(domain, severity) is expected


_PAIRS = list(itertools.product(Priority, Priority))


@pytest.mark.parametrize(("a", "b"), _PAIRS, ids=[f"{a.value}-{b.value}" for a, b in _PAIRS])
def test_higher_is_the_more_urgent_and_never_lowers(a: Priority, b: Priority) -> None:
    result = higher(a, b)
    assert result in (a, b)
    assert _URGENCY[result] == min(_URGENCY[a], _URGENCY[b])
    assert higher(b, a) is result


def test_a_milder_report_keeps_a_p1_task_at_p1() -> None:
    assert higher(Priority.P1, Priority.P4) is Priority.P1
    assert higher(Priority.P4, Priority.P1) is Priority.P1
