"""Dead-letter records keep the original bytes and say why in the contract's headers."""

from __future__ import annotations

from schemas.codec import Rejection
from schemas.enums import RejectReason
from streams.dlq import dead_letter


def test_original_bytes_and_contract_headers() -> None:
    record = dead_letter(
        Rejection(RejectReason.SCHEMA, "event_id: required"),
        key=b"\x00device",
        value=b"\xff{not json",
        topic="city.events.fire",
        partition=3,
        offset=41,
    )
    assert (record.key, record.value) == (b"\x00device", b"\xff{not json")
    assert dict(record.headers) == {
        "citygrid.error.reason": b"schema",
        "citygrid.error.detail": b"event_id: required",
        "citygrid.error.topic": b"city.events.fire",
        "citygrid.error.partition": b"3",
        "citygrid.error.offset": b"41",
    }


def test_a_hostile_detail_is_cut_short() -> None:
    record = dead_letter(
        Rejection(RejectReason.SCHEMA, "x" * 100_000),
        key=None,
        value=b"",
        topic="t",
        partition=0,
        offset=0,
    )
    assert len(dict(record.headers)["citygrid.error.detail"]) == 1000
    assert record.key is None
