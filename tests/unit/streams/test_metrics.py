"""The worker's /metrics beside citygrid's own series: the process and its garbage collector."""

from __future__ import annotations

import gc

from prometheus_client.parser import text_string_to_metric_families

from streams import metrics


def _samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_process_and_its_garbage_collections_are_exported() -> None:
    before = _samples()
    assert before[("process_resident_memory_bytes", ())] > 0
    assert ("process_cpu_seconds_total", ()) in before
    gc.collect(2)
    after = _samples()
    full = ("python_gc_collections_total", (("generation", "2"),))
    assert after[full] >= before[full] + 1
