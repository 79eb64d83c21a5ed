"""Fuzzing the codec with hostile input (:mod:`tests.hostile`): whatever arrives, a value or a
rejection with the right reason from the DLQ vocabulary, in bounded time, and a message over the
limit is refused unread.

``FUZZ_EXAMPLES`` sets the examples per fuzz test (300 by default; ``make test-fuzz`` runs 10,000)
and ``FUZZ_SEED`` the seed (0 by default), so a run is reproducible; a failure names the family,
topic and seed of the message, and :func:`tests.hostile.build` makes it again.
"""

from __future__ import annotations

import gc
import math
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings

from schemas import codec
from schemas.codec import DEFAULT_MAX_MESSAGE_BYTES, Rejection, decode_event, decode_feedback
from schemas.enums import Domain, RejectReason
from schemas.event import Event
from schemas.feedback import Feedback
from streams.dlq import HEADER_PREFIX, dead_letter
from tests.factories import NOW, event_bytes, event_dict, feedback_dict, with_literal
from tests.hostile import (
    FEEDBACK_TOPIC,
    INPUT_TOPICS,
    TEN_MB,
    Context,
    Family,
    Hostile,
    hostile_messages,
    hostile_stream,
    oversized,
)

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
FUZZ_SEED = int(os.environ.get("FUZZ_SEED", "0"))

settings.register_profile(
    "citygrid-fuzz",
    max_examples=FUZZ_EXAMPLES,
    deadline=None,  # time is measured per message below, as CPU time
    database=None,  # the seed alone decides a run
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_FUZZ = settings.get_profile("citygrid-fuzz")

_CTX = Context(clock=NOW, task_ids=("yulong-st~4001~0123456789ab",))
_KNOWN_DEFECTS = (Family.FAR_PAST,)
_FAMILIES = [f for f in Family if f not in _KNOWN_DEFECTS]

_CPU_BOUND_S = 0.25
"""Per message, in CPU time of the decoding thread, so other load on the machine does not count.
The worst hostile message within the limit measured about 25 ms (an array of 30,000 objects);
anything quadratic in 64 KiB, or a backtracking regex, takes seconds."""


def _decode(message: Hostile) -> Event | Feedback | Rejection:
    if message.topic == FEEDBACK_TOPIC:
        return decode_feedback(message.value, now=_CTX.clock)
    return decode_event(message.value, now=_CTX.clock, topic_domain=message.domain)


def _cpu(decode: Callable[[], object]) -> float:
    """CPU seconds ``decode`` takes, as timeit measures: the best of up to three runs, with the
    garbage collector off (a collection costs what the whole test process holds, not the codec)."""
    best = math.inf
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(3):
            started = time.thread_time()
            decode()
            best = min(best, time.thread_time() - started)
            if best < _CPU_BOUND_S:
                break
    finally:
        if enabled:
            gc.enable()
    return best


def _check(message: Hostile) -> RejectReason | None:
    """Decode one hostile message and check what the codec made of it; its reason, if refused."""
    result = _decode(message)
    cpu = _cpu(lambda: _decode(message))
    assert cpu < _CPU_BOUND_S, f"{cpu:.3f} s of CPU for {message!r}"
    if message.by_worker:
        # Well-formed feedback for a task that does not exist, or that refuses the action: only
        # the worker, which holds the tasks, can refuse it.
        assert isinstance(result, Feedback), (message, result)
        return None
    assert isinstance(result, Rejection), f"accepted {message!r}"
    assert type(result.reason) is RejectReason
    assert result.reason in message.reasons, (message, result)
    assert result.detail
    # The dead letter carries the original bytes and a bounded, encodable detail.
    record = dead_letter(
        result, key=message.key, value=message.value, topic=message.topic, partition=0, offset=7
    )
    headers = dict(record.headers)
    assert (record.key, record.value) == (message.key, message.value)
    assert headers[HEADER_PREFIX + "reason"] == result.reason.value.encode()
    assert len(headers[HEADER_PREFIX + "detail"]) <= 4 * 1000
    return result.reason


@_FUZZ
@seed(FUZZ_SEED)
@given(hostile_messages(_CTX, families=_FAMILIES))
def test_hostile_messages_are_refused_with_their_reason_in_bounded_time(message: Hostile) -> None:
    _check(message)


@_FUZZ
@seed(FUZZ_SEED)
@given(hostile_messages(_CTX, families=[Family.FAR_PAST], topics=INPUT_TOPICS[:-1]))
def test_events_far_in_the_past_are_refused(message: Hostile) -> None:
    _check(message)


def test_a_stream_holds_every_family_on_every_input_topic_and_all_are_refused() -> None:
    """What the broker run sends (tests/integration/test_hostile.py), made the same way and
    checked here, where the codec can be asked directly."""
    n = max(FUZZ_EXAMPLES, 1000)
    seen: Counter[tuple[Family, str]] = Counter()
    reasons: Counter[RejectReason | None] = Counter()
    for message in hostile_stream(n, FUZZ_SEED, _CTX, families=_FAMILIES):
        seen[message.family, message.topic] += 1
        reasons[_check(message)] += 1
    assert {topic for _, topic in seen} == set(INPUT_TOPICS)
    assert {family for family, _ in seen} == set(_FAMILIES)
    assert min(seen.values()) >= n // len(seen) - 1, "every pair gets its share"
    # Every reason the codec gives is among them; the rest are the worker's to give.
    codec_reasons = set(RejectReason) - {
        RejectReason.UNKNOWN_TASK,
        RejectReason.INVALID_TRANSITION,
        RejectReason.BAD_SIGNATURE,
        RejectReason.TASK_FULL,
    }
    assert codec_reasons <= set(reasons), reasons


@pytest.mark.parametrize("kind", ["event", "feedback"])
@pytest.mark.parametrize("variant", range(4))
def test_ten_megabytes_is_too_large_and_never_parsed(
    kind: str, variant: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(variant)
    values = [
        oversized(rng, "feedback" if kind == "feedback" else "event", TEN_MB, _CTX),
        b"\xff" * TEN_MB,
        b"[" * TEN_MB,
        b"NaN".ljust(TEN_MB),
    ]
    value = values[variant]
    assert len(value) == TEN_MB

    def parse(raw: Any) -> Any:
        raise AssertionError(f"parsed a {len(raw)}-byte value")

    monkeypatch.setattr(codec, "loads", parse)
    if kind == "feedback":
        result: Any = decode_feedback(value)
    else:
        result = decode_event(value, now=NOW, topic_domain=Domain.FIRE)
    assert result == Rejection(
        RejectReason.TOO_LARGE,
        f"{TEN_MB} bytes, more than the limit of {DEFAULT_MAX_MESSAGE_BYTES}",
    )


def test_the_limit_is_exact_and_counts_bytes_not_characters() -> None:
    raw = event_bytes()
    at_limit = raw.ljust(DEFAULT_MAX_MESSAGE_BYTES)  # JSON may end in whitespace
    assert isinstance(decode_event(at_limit, now=NOW), Event)
    over = decode_event(at_limit + b" ", now=NOW)
    assert isinstance(over, Rejection)
    assert over.reason is RejectReason.TOO_LARGE
    # 界 is three bytes: a description of a third of the limit in characters is over it in bytes.
    wide = event_bytes(description="界" * (DEFAULT_MAX_MESSAGE_BYTES // 3 + 1))
    result = decode_event(wide, now=NOW)
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.TOO_LARGE


_ROOM = DEFAULT_MAX_MESSAGE_BYTES - 1024
"""What a single field can take of a message that stays within the limit."""


def _filled(path: str, literal: bytes, kind: str = "event") -> bytes:
    base = feedback_dict() if kind == "feedback" else event_dict()
    raw = with_literal(base, path, literal)
    assert len(raw) <= DEFAULT_MAX_MESSAGE_BYTES, len(raw)
    return raw


_WORST: dict[str, tuple[str, bytes]] = {
    "unclosed-nesting": ("event", b"[" * _ROOM),
    "nesting-at-the-limit": ("event", b"[" * 1020 + b"]" * 1020),
    "deep-category": ("event", _filled("category", b"[" * 1000 + b"]" * 1000)),
    "wide-category": ("event", _filled("category", b"[" + b"[]," * (_ROOM // 3) + b"0]")),
    "long-fraction": (
        "event",
        _filled("occurred_at", b'"2026-11-29T10:00:00.' + b"1" * _ROOM + b'Z"'),
    ),
    "timestamp-prefixes": ("event", _filled("occurred_at", b'"' + b"2026-" * (_ROOM // 5) + b'"')),
    "long-hash": (
        "event",
        _filled("evidence", b'[{"sha256":"' + b"a" * _ROOM + b'","media_type":"x"}]'),
    ),
    "many-evidence": (
        "event",
        _filled("evidence", b"[" + b'{"sha256":"","media_type":""},' * (_ROOM // 32) + b"0]"),
    ),
    "many-keys": (
        "event",
        _filled("x-keys", b"{" + b"".join(b'"k%d":0,' % i for i in range(_ROOM // 10)) + b'"z":0}'),
    ),
    "long-at": ("feedback", _filled("at", b'"' + b"9" * _ROOM + b'"', "feedback")),
    "long-task-id": ("feedback", _filled("task_id", b'"' + b"~" * _ROOM + b'"', "feedback")),
    "escapes": ("feedback", b'"' + b"\\u0000" * (_ROOM // 6) + b'"'),
}
"""The costliest shapes that stay within the limit, so the parser and the field rules see them."""


@pytest.mark.parametrize("case", list(_WORST))
def test_the_worst_messages_within_the_limit_take_bounded_time(case: str) -> None:
    kind, raw = _WORST[case]

    def decode() -> object:
        if kind == "feedback":
            return decode_feedback(raw)
        return decode_event(raw, now=NOW, topic_domain=Domain.FIRE)

    assert isinstance(decode(), Rejection | Event)
    cpu = _cpu(decode)
    assert cpu < _CPU_BOUND_S, f"{cpu:.3f} s of CPU"
