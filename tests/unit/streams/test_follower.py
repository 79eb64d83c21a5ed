"""What a follower applies of one fetch (following a real topic is tested in tests/integration)."""

from __future__ import annotations

from aiokafka import ConsumerRecord

from streams.follower import TopicFollower
from streams.settings import Settings


def _record(offset: int, key: bytes, value: bytes | None) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="t",
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key),
        serialized_value_size=0 if value is None else len(value),
        headers=(),
    )


FETCH = [
    [_record(0, b"a", b"a1"), _record(1, b"b", b"b1"), _record(2, b"a", b"a2")],
    [_record(0, b"c", b"c1"), _record(1, b"c", None)],
]


def _applied(latest_only: bool) -> list[tuple[bytes | None, bytes | None]]:
    seen: list[tuple[bytes | None, bytes | None]] = []
    follower = TopicFollower(
        Settings(app_id="unit"),
        "t",
        lambda key, value: seen.append((key, value)),
        latest_only=latest_only,
    )
    follower.take(FETCH)
    return seen


def test_a_follower_applies_every_record_in_offset_order() -> None:
    assert _applied(latest_only=False) == [
        (b"a", b"a1"),
        (b"b", b"b1"),
        (b"a", b"a2"),
        (b"c", b"c1"),
        (b"c", None),
    ]


def test_a_latest_only_follower_applies_each_key_s_last_record_of_the_fetch() -> None:
    assert sorted(_applied(latest_only=True), key=repr) == sorted(
        [(b"a", b"a2"), (b"b", b"b1"), (b"c", None)], key=repr
    )
