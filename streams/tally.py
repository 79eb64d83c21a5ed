"""Counter increments gathered over a batch and applied once: a label lookup per batch and series
instead of one per event."""

from __future__ import annotations

from collections import Counter as Counts

from prometheus_client import Counter

__all__ = ["Tally"]


class Tally:
    """``add`` during a batch, ``apply`` at its end."""

    def __init__(self) -> None:
        self._counts: Counts[tuple[Counter, tuple[str, ...]]] = Counts()

    def add(self, counter: Counter, *labels: str) -> None:
        self._counts[(counter, labels)] += 1

    def apply(self) -> None:
        for (counter, labels), amount in self._counts.items():
            (counter.labels(*labels) if labels else counter).inc(amount)
        self._counts.clear()
