"""Hostile input for fuzzing: messages made to break a consumer, each tagged with its family.

Every family the "Hostile input" issue names is here: invalid UTF-8, deep nesting, huge strings
and arrays, oversized values, NaN and Infinity, wrong types, numbers out of range, timestamps far in
the past and future, unknown categories, plus events on the wrong topic, feedback for tasks that do
not exist and feedback no task's status allows. Most messages are a valid message with one hostile
change, so they reach the check they aim at instead of tripping over the first one; the rest are
whole-message garbage (random bytes, a bare array nested 30,000 deep).

Each message says which reasons are right for it, and whether the codec alone refuses it or only
the worker can (unknown tasks and refused transitions need task state). Everything is built from a
seed: :func:`build` makes one message from ``(family, topic, seed)``, :func:`hostile_stream` a
reproducible stream for a broker run, and :func:`hostile_messages` the same as a hypothesis
strategy. A failure names the family, topic and seed, and ``build`` makes the same bytes again.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any, Final, Literal, NamedTuple

from hypothesis import strategies as st

from schemas.categories import CATEGORIES, categories_of
from schemas.codec import DEFAULT_MAX_MESSAGE_BYTES
from schemas.enums import Action, Domain, RejectReason, Source
from schemas.event import (
    DESCRIPTION_MAX,
    DEVICE_ID_MAX,
    EVENT_ID_MAX,
    EVIDENCE_MAX,
    ID_MAX,
    MEDIA_TYPE_MAX,
    URI_MAX,
)
from schemas.feedback import NOTE_MAX, TASK_ID_MAX
from schemas.json import dumps
from streams.topics import EVENT_TOPICS
from tests.factories import (
    ABSENT,
    event_dict,
    evidence_item,
    feedback_dict,
    sha256_hex,
    with_field,
    with_literal,
)

__all__ = [
    "EVENT_FAMILIES",
    "FEEDBACK_FAMILIES",
    "FEEDBACK_TOPIC",
    "INPUT_TOPICS",
    "TEN_MB",
    "Context",
    "Family",
    "Hostile",
    "build",
    "hostile_messages",
    "hostile_stream",
    "oversized",
]

FEEDBACK_TOPIC: Final = "city.feedback"
INPUT_TOPICS: Final = (*EVENT_TOPICS.values(), FEEDBACK_TOPIC)
"""Every contract topic citygrid reads hostile traffic from (the registry is ops tooling's)."""

TEN_MB: Final = 10 * 1024 * 1024
"""The issue's "10 MB value"."""

_DOMAIN_OF_TOPIC: Final = {topic: domain for domain, topic in EVENT_TOPICS.items()}
_NESTING_LIMIT: Final = 1024
"""orjson refuses deeper documents; below it a nested value parses and fails a field rule."""


class Family(StrEnum):
    """What makes a message hostile."""

    INVALID_UTF8 = "invalid_utf8"
    DEEP_NESTING = "deep_nesting"
    HUGE_STRING = "huge_string"
    HUGE_ARRAY = "huge_array"
    OVERSIZED = "oversized"
    """Larger than the message limit: junk, padding or a valid message with a big extra field."""
    NAN_INFINITY = "nan_infinity"
    WRONG_TYPE = "wrong_type"
    """A field of another JSON type, missing, or a word outside its vocabulary."""
    OUT_OF_RANGE = "out_of_range"
    """Numbers, lengths, codes and dates outside what their field allows."""
    FAR_FUTURE = "far_future"
    FAR_PAST = "far_past"
    UNKNOWN_CATEGORY = "unknown_category"
    DOMAIN_MISMATCH = "domain_mismatch"
    UNKNOWN_TASK = "unknown_task"
    INVALID_TRANSITION = "invalid_transition"


EVENT_FAMILIES: Final = tuple(
    f for f in Family if f not in (Family.UNKNOWN_TASK, Family.INVALID_TRANSITION)
)
FEEDBACK_FAMILIES: Final = tuple(
    f for f in Family if f not in (Family.UNKNOWN_CATEGORY, Family.DOMAIN_MISMATCH)
)

_ANY_REASON: Final = frozenset(RejectReason)
_INVALID_JSON: Final = frozenset({RejectReason.INVALID_JSON})
_SCHEMA: Final = frozenset({RejectReason.SCHEMA})
_UNKNOWN_TASK: Final = frozenset({RejectReason.UNKNOWN_TASK})


class Hostile(NamedTuple):
    """One hostile message for one input topic (a contract name, without a deployment prefix)."""

    family: Family
    topic: str
    key: bytes | None
    value: bytes
    reasons: frozenset[RejectReason]
    """The reasons a correct citygrid may give for refusing it."""
    by_worker: bool
    """True when only the worker can refuse it (it needs task state): the codec decodes it."""
    seed: int

    @property
    def domain(self) -> Domain | None:
        """The domain of the event topic it is sent to; None for feedback."""
        return _DOMAIN_OF_TOPIC.get(self.topic)

    def __repr__(self) -> str:
        # Values run to megabytes: name the message, so a failure can rebuild it with build().
        return (
            f"Hostile({self.family.value}, {self.topic}, seed={self.seed}, "
            f"{len(self.value)} bytes: {self.value[:60]!r})"
        )


@dataclass(frozen=True)
class Context:
    """What the messages are built against."""

    clock: datetime
    """About when the consumer reads them: "far" future and past are at least an hour from it."""
    limit: int = DEFAULT_MAX_MESSAGE_BYTES
    """The consumer's message limit (``CITYGRID_MAX_MESSAGE_BYTES``)."""
    max_value: int = 1024 * 1024
    """The largest value to build; :func:`oversized` makes bigger ones on purpose."""
    task_ids: tuple[str, ...] = ()
    """Tasks that exist during the run. Without them there is no ``invalid_transition`` message."""
    refused_actions: tuple[Action, ...] = (Action.RESUME, Action.VERIFY_PASS, Action.VERIFY_FAIL)
    """Actions no task in ``task_ids`` may take at any time during the run."""


# --- building blocks -----------------------------------------------------------------------------

Kind = Literal["event", "feedback"]
Message = dict[str, Any]
Built = tuple[bytes, frozenset[RejectReason]]

_INVALID_UTF8_SEQUENCES: Final = (
    b"\xff",
    b"\xfe\xff",
    b"\x80",  # a lone continuation byte
    b"\xc3\x28",  # a lead byte without its continuation
    b"\xe2\x28\xa1",
    b"\xe4\xb8",  # the first two bytes of 中, cut short
    b"\xf0\x28\x8c\xbc",
    b"\xc0\xaf",  # an overlong '/'
    b"\xe0\x80\xaf",  # an overlong '/', three bytes
    b"\xed\xa0\x80",  # a UTF-16 surrogate encoded as UTF-8 (CESU-8)
    b"\xf4\x90\x80\x80",  # above U+10FFFF
    b"\xf8\x88\x80\x80\x80",  # the old five-byte form
)
_LONE_SURROGATES: Final = (b'"\\ud800"', b'"\\udfff"', b'"x\\udc00y"', b'"\\ud83d\\u0041"')
_NON_FINITE: Final = (
    b"NaN",
    b"-NaN",
    b"nan",
    b"Infinity",
    b"-Infinity",
    b"inf",
    b"1e400",
    b"-1e999",
    b"1.7976931348623159e308",  # the first decimal past the largest double
    b"1" + b"0" * 400,  # an integer no double holds
)
_NOT_STRINGS: Final[tuple[Any, ...]] = (0, -7, 1.5, True, False, [], ["x"], {}, {"a": 1})
_NOT_OBJECTS: Final[tuple[Any, ...]] = (0, 2.5, True, "yulong-st", [], [34.7, 113.7], ["a"])
_NOT_LISTS: Final[tuple[Any, ...]] = (0, True, "x", {}, {"sha256": "a"}, [1], [None], [[]])
_NOT_NUMBERS: Final[tuple[Any, ...]] = ("12.5", "", True, False, [], [1.0], {}, {"v": 1})
_CHARSETS: Final = ("x", "界", "🚒", "é", "\x00", "\\", '"')
_OFFSETS: Final = tuple(timezone(timedelta(minutes=m)) for m in (-1439, -480, 0, 330, 480, 1439))


def _log_uniform(rng: random.Random, low: int, high: int) -> int:
    """A size between ``low`` and ``high``, mostly small: each power of two is as likely."""
    return min(high, int(math.exp(rng.uniform(math.log(low), math.log(high + 1)))))


def _text(rng: random.Random, at_least: int) -> str:
    """A string of one repeated character (ASCII, CJK, emoji, or one JSON escapes) whose JSON
    form takes at least ``at_least`` characters and ``at_least`` bytes."""
    char = rng.choice(_CHARSETS)
    return char * at_least


def _base_event(rng: random.Random, domain: Domain, ctx: Context) -> Message:
    """A valid event of ``domain``, a minute to an hour before the clock."""
    source = rng.choice(list(Source))
    overrides: dict[str, Any] = {
        "event_id": f"hostile-{rng.getrandbits(48):012x}",
        "device_id": f"hostile-{source.value}-{rng.randrange(100):02d}",
        "occurred_at": (ctx.clock - timedelta(seconds=rng.uniform(60, 3600))).isoformat(),
    }
    if source is not Source.SENSOR:
        overrides["category"] = rng.choice(categories_of(domain)).code
    return event_dict(source, domain, **overrides)


def _unknown_task_id(rng: random.Random, ctx: Context) -> str:
    """A task id citygrid never issued: not shaped like one, or shaped like one of a real slot."""
    choice = rng.randrange(4)
    if choice == 0:
        return f"task-{rng.getrandbits(64):016x}"
    if choice == 1:
        return rng.choice(["~", "~~", "a~b", "~1001~", "yulong-st~1003", "road:~~x"])
    digest = f"{rng.getrandbits(48):012x}"
    if choice == 2 or not ctx.task_ids:
        code = rng.choice(sorted(CATEGORIES))
        return f"{rng.choice(['yulong-st', 'sihai-rd', 'nowhere-rd'])}~{code}~{digest}"
    # The slot of a real task with another digest: routed to that task's state, and refused there.
    real = rng.choice(ctx.task_ids)
    slot = real.rsplit("~", 1)[0]
    return f"{slot}~{digest}" if f"{slot}~{digest}" != real else f"{slot}~{digest[::-1]}x"


def _base_feedback(rng: random.Random, ctx: Context) -> Message:
    """Valid feedback for a task that does not exist."""
    action = rng.choice(list(Action))
    at = ctx.clock - timedelta(seconds=rng.uniform(0, 600))
    return feedback_dict(
        action,
        task_id=_unknown_task_id(rng, ctx),
        actor_id=f"hostile-officer-{rng.randrange(100):02d}",
        at=at.isoformat(),
    )


def _encode(message: Message) -> bytes:
    return dumps(message)


def _required(kind: Kind, message: Message) -> list[str]:
    if kind == "feedback":
        fields = ["task_id", "action", "actor_id", "at"]
        return [*fields, "assignee"] if message["action"] == Action.DISPATCH else fields
    fields = ["event_id", "domain", "source", "device_id", "category", "occurred_at", "location"]
    if message["source"] == Source.TERMINAL:
        fields.append("officer_id")
    if message["source"] == Source.SENSOR:
        fields.append("reading")
    return fields


_EVENT_STRINGS: Final = {
    "event_id": EVENT_ID_MAX,
    "device_id": DEVICE_ID_MAX,
    "officer_id": ID_MAX,
    "description": DESCRIPTION_MAX,
    "location.road_id": ID_MAX,
}
_FEEDBACK_STRINGS: Final = {
    "task_id": TASK_ID_MAX,
    "actor_id": ID_MAX,
    "note": NOTE_MAX,
    "assignee": ID_MAX,
    "reason": NOTE_MAX,
}


def _strings(kind: Kind) -> dict[str, int]:
    return _FEEDBACK_STRINGS if kind == "feedback" else _EVENT_STRINGS


def _timestamp_field(kind: Kind) -> str:
    return "at" if kind == "feedback" else "occurred_at"


# --- the families --------------------------------------------------------------------------------
# Each takes the rng, the kind, a valid base message and the context, and returns the value and
# the reasons that are right for it. A value over the message limit is `too_large`, whatever else
# is wrong with it: :func:`build` sees to that.


def _invalid_utf8(rng: random.Random, kind: Kind, base: Message, ctx: Context) -> Built:
    choice = rng.randrange(5)
    if choice == 0:  # junk that starts as no UTF-8 text can
        return b"\xff" + rng.randbytes(_log_uniform(rng, 1, 4096)), _INVALID_JSON
    if choice == 1:  # UTF-16, as a Windows tool might write it
        return _encode(base).decode().encode(rng.choice(["utf-16", "utf-16-le", "utf-32"])), (
            _INVALID_JSON
        )
    if choice == 2:  # an escaped lone surrogate: valid JSON syntax, no valid text
        path = rng.choice(list(_strings(kind)))
        return with_literal(base, path, rng.choice(_LONE_SURROGATES)), _INVALID_JSON
    # Raw bad bytes inside a string value or an object key.
    bad = rng.choice(_INVALID_UTF8_SEQUENCES)
    marker = "@@hostile@@"
    if choice == 3:
        path = rng.choice(list(_strings(kind)))
        raw = _encode(with_field(base, path, f"ok{marker}ok"))
    else:
        raw = _encode({**base, f"x-{marker}": 1})
    return raw.replace(marker.encode(), bad), _INVALID_JSON


def _deep_nesting(rng: random.Random, kind: Kind, base: Message, ctx: Context) -> Built:
    open_, close, levels = rng.choice([(b"[", b"]", 1), (b'{"a":', b"}", 1), (b'[{"a":', b"}]", 2)])
    # Past the parser's limit it fails to parse wherever it is; within it (the message and the
    # field are two more levels), it parses and only a known field refuses it. Mostly past it,
    # and mostly small enough to reach the parser.
    deep = rng.random() < 0.6
    if deep:
        most = max(_NESTING_LIMIT, ctx.limit // (len(open_) + len(close)))
        depth = _log_uniform(rng, _NESTING_LIMIT // levels + 1, most)
    else:
        depth = rng.randint(2, (_NESTING_LIMIT - 2) // levels)
    nest = open_ * depth + b"0" + close * depth
    choice = rng.randrange(4)
    if deep and choice == 0:
        return nest, _INVALID_JSON
    if deep and choice == 1:  # cut short: never closed
        return open_ * depth, _INVALID_JSON
    if deep and choice == 2:  # in an unknown field, which is kept, so it is parsed too
        return with_literal(base, f"x-nested-{depth}", nest), _INVALID_JSON
    fields = ["task_id", "action", "at", "evidence"] if kind == "feedback" else ["domain"]
    if kind == "event":
        fields += ["category", "occurred_at", "location", "reading", "evidence"]
    # Within the limit, a field of the wrong type; or, where reporting it would recurse as
    # deep as the interpreter allows, refused as too deeply nested (the codec's documented word).
    shallow = frozenset({RejectReason.SCHEMA, RejectReason.INVALID_JSON})
    return with_literal(base, rng.choice(fields), nest), _INVALID_JSON if deep else shallow


def _huge_string(rng: random.Random, kind: Kind, base: Message, ctx: Context) -> Built:
    # Over the field's limit; a fifth of them over the message limit too (an unknown field is
    # kept as it is, so only its size can refuse it).
    if rng.random() < 0.2:
        chars = _log_uniform(rng, ctx.limit + 1, min(4 * ctx.limit, ctx.max_value) // 4)
        where = rng.choice([*_strings(kind), "x-blob"])
    else:
        where, limit = rng.choice(list(_strings(kind).items()))
        chars = rng.choice([limit + 1, _log_uniform(rng, limit + 1, ctx.limit // 8)])
    return _encode(with_field(base, where, _text(rng, chars))), _SCHEMA


def _huge_array(rng: random.Random, kind: Kind, base: Message, ctx: Context) -> Built:
    # Mostly within the message limit, where the parser builds them; a fifth over it.
    over = rng.random() < 0.2
    budget = min(4 * ctx.limit, ctx.max_value) if over else ctx.limit
    choice = rng.randrange(4)
    if choice == 0:  # evidence, past its 20 items (copies of one item: cheap to build)
        item = evidence_item(0)
        most = max(EVIDENCE_MAX + 1, budget // len(dumps(item)))
        items = rng.choice([EVIDENCE_MAX + 1, _log_uniform(rng, EVIDENCE_MAX + 1, most)])
        return _encode({**base, "evidence": [item] * items}), _SCHEMA
    element = rng.choice([0, 1.5, None, "a", [], {}])
    most = budget // (len(dumps(element)) + 1)
    array = [element] * _log_uniform(rng, min(1_000, most), most)
    if choice == 1:  # the whole message
        return _encode(array), _SCHEMA
    if choice == 2:  # a field that wants a string or an object
        fields = ["task_id", "actor_id", "at"] if kind == "feedback" else ["location", "reading"]
        return _encode(with_field(base, rng.choice(fields), array)), _SCHEMA
    # An unknown field is kept as it is: only a big one is refused, for its size.
    array = [element] * max(len(array), ctx.limit)
    return _encode({**base, "x-samples": array}), _SCHEMA


def oversized(rng: random.Random, kind: Kind, size: int, ctx: Context) -> bytes:
    """A value of exactly ``size`` bytes: a valid message padded with JSON whitespace (so only
    its size is wrong), junk, or a valid message with a big unknown field."""
    base = _base_feedback(rng, ctx) if kind == "feedback" else _base_event(rng, Domain.FIRE, ctx)
    raw = _encode(base)
    choice = rng.randrange(3)
    if choice == 0 or size < len(raw) + 16:
        return (raw + b" " * size)[:size] if size >= len(raw) else rng.randbytes(size)
    if choice == 1:
        return rng.randbytes(size)
    padding = size - len(raw) - len(b',"x-pad":""')
    return _encode({**base, "x-pad": "p" * padding})[:-1].ljust(size - 1, b" ") + b"}"


def _oversized(rng: random.Random, kind: Kind, base: Message, ctx: Context) -> Built:
    draw = rng.random()
    if draw < 0.5:  # the boundary: one byte to a kilobyte over
        size = ctx.limit + rng.choice([1, 2, rng.randint(3, 1024)])
    elif draw < 0.95:
        size = _log_uniform(rng, ctx.limit + 1, 2 * ctx.limit)
    else:
        size = _log_uniform(rng, 2 * ctx.limit, ctx.max_value)
    return oversized(rng, kind, size, ctx), frozenset({RejectReason.TOO_LARGE})


def _nan_infinity(rng: random.Random, kind: Kind, base: Message, ctx: Context) -> Built:
    literal = rng.choice(_NON_FINITE)
    if kind == "feedback":
        paths = ["note", "x-score", "evidence"]
    else:
        paths = ["location.lat", "location.lon", "x-score", "severity"]
        paths += ["reading.value"] if "reading" in base else []
    return with_literal(base, rng.choice(paths), literal), _INVALID_JSON


def _wrong_type(rng: random.Random, kind: Kind, base: Message, ctx: Context) -> Built:
    choice = rng.randrange(5)
    if choice == 0:  # not an object at all
        value = rng.choice([[], [base], "event", 42, 1.5, None, True, ""])
        return _encode(value), _SCHEMA
    if choice == 1:  # a required field missing
        return _encode(with_field(base, rng.choice(_required(kind, base)), ABSENT)), _SCHEMA
    if choice == 2:  # a word outside its vocabulary
        if kind == "feedback":
            field, word = "action", rng.choice(["close", "Accept", "ACCEPT", "accept ", "approve"])
        else:
            field, word = rng.choice(
                [
                    ("domain", "police"),
                    ("domain", base["domain"].upper()),
                    ("source", "satellite"),
                    ("source", "Terminal"),
                    ("severity", "critical"),
                    ("severity", "Severe"),
                ]
            )
        return _encode(with_field(base, field, word)), _SCHEMA
    if kind == "feedback":
        strings = ["task_id", "action", "actor_id", "at", "note", "assignee", "reason"]
        objects: list[str] = []
        lists = ["evidence"]
        numbers: list[str] = []
    else:
        strings = ["event_id", "domain", "source", "device_id", "category", "occurred_at"]
        strings += ["officer_id", "severity", "description", "location.road_id"]
        objects = ["location", "reading"]
        lists = ["evidence"]
        numbers = ["location.lat", "location.lon"]
        numbers += ["reading.value"] if "reading" in base else []
    field = rng.choice([*strings, *objects, *lists, *numbers])
    if field in strings:
        wrong = rng.choice(_NOT_STRINGS)
    elif field in objects:
        wrong = rng.choice(_NOT_OBJECTS)
    elif field in lists:
        wrong = rng.choice(_NOT_LISTS)
    else:
        wrong = rng.choice(_NOT_NUMBERS)
    if choice == 4 and field in _required(kind, base):  # null for a required one
        wrong = None
    return _encode(with_field(base, field, wrong)), _SCHEMA


_FULL_WIDTH: Final = str.maketrans("0123456789", "".join(chr(0xFF10 + d) for d in range(10)))


def _bad_date(rng: random.Random) -> str:
    return rng.choice(
        [
            "2026-13-01T00:00:00+08:00",
            "2026-02-30T10:00:00+08:00",
            "2026-11-29T24:00:00Z",
            "2026-11-29T10:60:00Z",
            "2026-11-29T10:00:61Z",
            "2026-11-29T10:00:00+24:00",
            "2026-11-29T10:00:00+08:60",
            "2026-11-29T10:00:00",  # no offset
            "2026-11-29",
            "0000-01-01T00:00:00Z",
            "+12026-11-29T10:00:00Z",
            "-0001-01-01T00:00:00Z",
            "2026-11-29T10:00:00.1234567890Z",
            "2026".translate(_FULL_WIDTH) + "-11-29T10:00:00Z",
            "2026-11-29T10:00:00+08:00\n",
            str(rng.getrandbits(40)),
        ]
    )


def _bad_coordinate(rng: random.Random, base: Message) -> bytes:
    """A latitude or longitude outside WGS84, however it is written."""
    axis, bound = rng.choice([("lat", 90.0), ("lon", 180.0)])
    number = rng.choice(
        [
            repr(bound + 1e-7),
            repr(bound + rng.uniform(0, 1000)),
            repr(rng.uniform(bound, 1e308)),
            "1.7976931348623157e308",
            str(2**64),  # past 64 bits: no encoder writes it, a parser makes a float of it
            str(10**30),
            str(2**63 + 1),
        ]
    )
    literal = (rng.choice(["", "-"]) + number).encode()
    location = {"lat": 34.72, "lon": 113.78}
    return with_literal({**base, "location": location}, f"location.{axis}", literal)


def _out_of_range(rng: random.Random, kind: Kind, base: Message, ctx: Context) -> Built:
    bad_hash = {
        "sha256": rng.choice(
            [sha256_hex("x")[:63], sha256_hex("x") + "0", "g" * 64, "", "界" * 64]
        ),
        "media_type": "image/jpeg",
    }
    if kind == "feedback":
        empty = rng.choice(["task_id", "actor_id", "assignee", "reason"])
        if empty == "assignee" and base["action"] != Action.DISPATCH:
            empty = "actor_id"
        variants: list[tuple[str, Any]] = [
            (empty, ""),
            ("at", _bad_date(rng)),
            ("evidence", [bad_hash]),
        ]
    else:
        if rng.random() < 0.2:
            return _bad_coordinate(rng, base), _SCHEMA
        codes = ["10011", "101", "", "0x10", "1001".translate(_FULL_WIDTH), "1001 ", " 1001"]
        long_media_type = evidence_item(1, media_type="m" * (MEDIA_TYPE_MAX + 1))
        long_uri = evidence_item(1, uri="u" * (URI_MAX + 1))
        variants = [
            (rng.choice(["event_id", "device_id", "location.road_id", "officer_id"]), ""),
            ("category", rng.choice([*codes, "10.1", "-100"])),
            ("occurred_at", _bad_date(rng)),
            ("evidence", [bad_hash]),
            ("evidence", [rng.choice([long_media_type, long_uri])]),
        ]
    path, value = rng.choice(variants)
    return _encode(with_field(base, path, value)), _SCHEMA


def _far(rng: random.Random, ctx: Context, *, future: bool) -> str:
    """A timestamp at least an hour, and up to the end of the calendar, from the clock."""
    if future:
        edge = [
            "9999-12-31T23:59:59.999999+00:00",
            "9999-12-31T23:59:59-23:59",  # past datetime.max once in UTC
            "9999-12-31T23:59:59Z",
        ]
        span = (datetime(9999, 12, 30, tzinfo=UTC) - ctx.clock).total_seconds()
        when = ctx.clock + timedelta(seconds=_log_uniform(rng, 3600, int(span)))
    else:
        # Before 2000: older than any device citygrid serves, as far back as the calendar goes.
        edge = [
            "0001-01-01T00:00:00+00:00",
            "0001-01-01T00:00:00+14:00",  # before datetime.min once in UTC
            "0001-01-02T12:00:00-08:00",
            "1900-01-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:00:00Z",
        ]
        low = datetime(1, 1, 3, tzinfo=UTC)
        when = low + (datetime(2000, 1, 1, tzinfo=UTC) - low) * rng.random()
    if rng.random() < 0.2:
        return rng.choice(edge)
    return when.astimezone(rng.choice(_OFFSETS)).isoformat()


def _far_future(rng: random.Random, kind: Kind, base: Message, ctx: Context) -> Built:
    at = _far(rng, ctx, future=True)
    field = "at" if kind == "feedback" else "occurred_at"
    return _encode({**base, field: at}), frozenset({RejectReason.FUTURE_TIMESTAMP})


def _far_past(rng: random.Random, kind: Kind, base: Message, ctx: Context) -> Built:
    at = _far(rng, ctx, future=False)
    if kind == "feedback":
        return _encode({**base, "at": at}), _UNKNOWN_TASK
    # The contract names no reason for it yet (it has no lower bound): any is right, none is not.
    return _encode({**base, "occurred_at": at}), _ANY_REASON


def _unknown_category(rng: random.Random, kind: Kind, base: Message, ctx: Context) -> Built:
    code = f"{rng.randrange(10_000):04d}"
    while code in CATEGORIES:
        code = f"{rng.randrange(10_000):04d}"
    return _encode({**base, "category": code}), frozenset({RejectReason.UNKNOWN_CATEGORY})


def _domain_mismatch(rng: random.Random, kind: Kind, base: Message, ctx: Context) -> Built:
    own = Domain(base["domain"])
    other = rng.choice([d for d in Domain if d is not own])
    if rng.random() < 0.5:  # a valid event of another domain, on this topic
        event = _base_event(rng, other, ctx)
    else:  # this domain, with another domain's category
        event = {**base, "category": rng.choice(categories_of(other)).code}
        event.pop("reading", None)
        if event["source"] == Source.SENSOR:
            event["source"] = Source.CAMERA.value
    return _encode(event), frozenset({RejectReason.DOMAIN_MISMATCH})


def _unknown_task(rng: random.Random, kind: Kind, base: Message, ctx: Context) -> Built:
    return _encode(base), _UNKNOWN_TASK


def _invalid_transition(rng: random.Random, kind: Kind, base: Message, ctx: Context) -> Built:
    feedback = {
        **base,
        "task_id": rng.choice(ctx.task_ids),
        "action": rng.choice(ctx.refused_actions).value,
    }
    feedback.pop("assignee", None)
    # Before its task is created (it may overtake it), the task is unknown instead.
    return _encode(feedback), frozenset({RejectReason.INVALID_TRANSITION, *_UNKNOWN_TASK})


_FAMILIES: Final[dict[Family, Callable[[random.Random, Kind, Message, Context], Built]]] = {
    Family.INVALID_UTF8: _invalid_utf8,
    Family.DEEP_NESTING: _deep_nesting,
    Family.HUGE_STRING: _huge_string,
    Family.HUGE_ARRAY: _huge_array,
    Family.OVERSIZED: _oversized,
    Family.NAN_INFINITY: _nan_infinity,
    Family.WRONG_TYPE: _wrong_type,
    Family.OUT_OF_RANGE: _out_of_range,
    Family.FAR_FUTURE: _far_future,
    Family.FAR_PAST: _far_past,
    Family.UNKNOWN_CATEGORY: _unknown_category,
    Family.DOMAIN_MISMATCH: _domain_mismatch,
    Family.UNKNOWN_TASK: _unknown_task,
    Family.INVALID_TRANSITION: _invalid_transition,
}


def _key(rng: random.Random, natural: str) -> bytes | None:
    """Mostly the key a producer would set; sometimes none, junk, or a long one (a key is only
    a hint, and the DLQ must give it back unchanged)."""
    draw = rng.random()
    if draw < 0.7:
        return natural.encode()
    if draw < 0.8:
        return None
    if draw < 0.9:
        return b"\xff\x00" + rng.randbytes(rng.randrange(0, 64))
    return b"k" * _log_uniform(rng, 256, 4096)


def applies(family: Family, topic: str, ctx: Context) -> bool:
    """Whether ``family`` has messages for ``topic`` in ``ctx``."""
    if topic == FEEDBACK_TOPIC:
        return family in FEEDBACK_FAMILIES and (
            family is not Family.INVALID_TRANSITION or bool(ctx.task_ids)
        )
    return family in EVENT_FAMILIES


def build(family: Family, topic: str, seed: int, ctx: Context) -> Hostile:
    """The hostile message of ``family`` for ``topic`` made from ``seed``: the same every time."""
    if not applies(family, topic, ctx):
        raise ValueError(f"{family.value} has no message for {topic} here")
    rng = random.Random(seed)
    kind: Kind = "feedback" if topic == FEEDBACK_TOPIC else "event"
    if kind == "feedback":
        base = _base_feedback(rng, ctx)
        natural = str(base["task_id"])
    else:
        base = _base_event(rng, _DOMAIN_OF_TOPIC[topic], ctx)
        natural = str(base["device_id"])
    value, reasons = _FAMILIES[family](rng, kind, base, ctx)
    if len(value) > ctx.limit:
        reasons = frozenset({RejectReason.TOO_LARGE})
    by_worker = kind == "feedback" and reasons <= {
        RejectReason.UNKNOWN_TASK,
        RejectReason.INVALID_TRANSITION,
    }
    return Hostile(family, topic, _key(rng, natural), value, reasons, by_worker, seed)


def _pairs(
    ctx: Context, families: Sequence[Family] | None, topics: Sequence[str]
) -> list[tuple[Family, str]]:
    chosen = list(Family) if families is None else list(families)
    return [(f, t) for f in chosen for t in topics if applies(f, t, ctx)]


def hostile_stream(
    n: int,
    seed: int,
    ctx: Context,
    *,
    families: Sequence[Family] | None = None,
    topics: Sequence[str] = INPUT_TOPICS,
) -> Iterator[Hostile]:
    """``n`` hostile messages, every (family, topic) pair in turn, shuffled: the same for the same
    arguments. With ``n`` at least the number of pairs, every pair is there."""
    pairs = _pairs(ctx, families, topics)
    rng = random.Random(seed)
    order = [pairs[i % len(pairs)] for i in range(n)]
    rng.shuffle(order)
    for family, topic in order:
        yield build(family, topic, rng.getrandbits(64), ctx)


def hostile_messages(
    ctx: Context,
    *,
    families: Sequence[Family] | None = None,
    topics: Sequence[str] = INPUT_TOPICS,
) -> st.SearchStrategy[Hostile]:
    """Hostile messages as a hypothesis strategy.

    Hypothesis draws the family, the topic and a seed; the message is built from the seed with
    :func:`build`. Values run to a megabyte, far past what hypothesis draws byte by byte, and a
    seed reproduces one exactly (shrinking goes to the simplest family and the smallest seed).
    """
    pairs = _pairs(ctx, families, topics)
    return st.tuples(st.sampled_from(pairs), st.integers(0, 2**64 - 1)).map(
        lambda drawn: build(drawn[0][0], drawn[0][1], drawn[1], ctx)
    )
