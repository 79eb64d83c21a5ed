"""The JSON wrappers."""

from __future__ import annotations

import tracemalloc

from schemas.json import dumps, dumps_kept


def test_dumps_kept_holds_only_the_json() -> None:
    # orjson's own result keeps its write buffer (4 KiB for a 60-byte value) alive behind it.
    value = {"key": "g:123:456", "road_id": None, "community": None, "chief_id": None}
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [dumps_kept(value) for _ in range(100)]
        held = (tracemalloc.get_traced_memory()[0] - before) / len(kept)
    finally:
        tracemalloc.stop()
    assert kept[0] == dumps(value)
    assert held < 2 * len(kept[0]) + 100, f"{held:.0f} bytes held per {len(kept[0])}-byte value"
