"""The hop's packed origin header: what the merge stage reads back to dead-letter a refused report
with the original's coordinates and key."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.hop import Origin


@given(
    topic=st.from_regex(r"[a-z0-9][a-z0-9.-]{0,40}", fullmatch=True),
    partition=st.integers(0, 10_000),
    offset=st.integers(0, 2**63 - 1),
    key=st.none() | st.binary(max_size=64),
)
def test_a_packed_origin_reads_back_whole(
    topic: str, partition: int, offset: int, key: bytes | None
) -> None:
    # Keys are bytes of any kind, NULs and the empty key included; a null key stays null.
    packed = Origin.packed(Origin.packed_prefix(topic, partition), offset, key)
    assert Origin.unpack(packed) == Origin(topic, partition, offset, key)


def test_the_packed_form_is_plain_bytes() -> None:
    prefix = Origin.packed_prefix("t.city.events.citymgmt", 3)
    assert Origin.packed(prefix, 42, b"cam-7") == b"t.city.events.citymgmt\x003\x0042\x00cam-7"
    assert Origin.packed(prefix, 42, None) == b"t.city.events.citymgmt\x003\x0042"
