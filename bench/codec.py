"""Throughput of the event codec on one core: ``decode_event`` against ``orjson.loads`` alone.

Builds a realistic corpus of event messages (terminal reports with a description and a photo,
camera and drone reports with evidence, sensor readings, hotline reports; about 1% malformed), then
times ``schemas.codec.decode_event(raw, now=..., topic_domain=..., max_bytes=...)`` per message
exactly as the ingest agent calls it, and ``orjson.loads`` over the same bytes in the same run for
reference. Each is warmed up, then timed over several passes; the best and the median pass are
reported.

Usage: ``.venv/bin/python bench/codec.py [--seconds S] [--events N] [--seed K]``
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import platform
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson

from schemas.categories import CATEGORIES, categories_of
from schemas.codec import DEFAULT_MAX_MESSAGE_BYTES, Rejection, decode_event
from schemas.enums import Domain, Source
from schemas.json import dumps

__all__ = ["corpus", "main"]

_CST = timezone(timedelta(hours=8))
_NOW = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)
_ROADS = [
    ("yulong-st", 34.7215, 113.7842),
    ("longshan-st", 34.7248, 113.7791),
    ("longfei-north-st", 34.7302, 113.7755),
    ("longxing-south-st", 34.7153, 113.7868),
    ("south-third-ring-rd", 34.7096, 113.7810),
    ("sihai-rd", 34.7188, 113.7720),
    ("yuhe-rd", 34.7260, 113.7902),
]
# Officers type Chinese punctuation; it is part of what the codec has to carry.
_SAYINGS = [
    "宇龙街与龙善街交叉口东北角占道经营，流动摊贩三处，影响行人通行。",  # noqa: RUF001
    "Bins at the north gate of Jinlong Garden overflowing since morning, bags on the pavement.",
    "消防通道被两辆私家车堵塞，车牌已拍照。",  # noqa: RUF001
    "Construction site on Longfei North St: trucks leaving without covers, visible dust.",
    "井盖缺失，已放置临时警示锥。",  # noqa: RUF001
    "Small ads pasted on the bus shelter and two lamp posts.",
    "Smell of burning plastic behind the market, smoke visible from the road.",
]
# Weights chosen so the mean message is about 350 bytes, as in the pilot's traffic.
_MIX = [
    (Source.SENSOR, 50),
    (Source.TERMINAL, 18),
    (Source.CAMERA, 14),
    (Source.HOTLINE, 13),
    (Source.DRONE, 5),
]
_MALFORMED_SHARE = 0.01


def _evidence(rng: random.Random, n: int) -> list[dict[str, Any]]:
    items = []
    for _ in range(n):
        digest = hashlib.sha256(rng.randbytes(16)).hexdigest()
        items.append(
            {
                "sha256": digest,
                "media_type": rng.choice(["image/jpeg", "video/mp4"]),
                "uri": f"s3://citygrid-evidence/2026/11/29/{digest[:16]}.jpg",
            }
        )
    return items


def _event(rng: random.Random, source: Source, serial: int) -> dict[str, Any]:
    if source is Source.SENSOR:
        category = rng.choice([c for c in CATEGORIES.values() if c.sensor is not None])
    else:
        category = rng.choice(categories_of(rng.choice(list(Domain))))
    road_id, lat, lon = rng.choice(_ROADS)
    occurred = (_NOW - timedelta(seconds=rng.randrange(1, 3600))).astimezone(_CST)
    event: dict[str, Any] = {
        "event_id": f"{source.value[:3]}-{serial:08d}",
        "domain": category.domain.value,
        "source": source.value,
        "device_id": f"{source.value[:3]}-{road_id[:8]}-{rng.randrange(1, 50):02d}",
        "category": category.code,
        "occurred_at": occurred.isoformat(timespec="seconds"),
        "location": {
            "road_id": road_id,
            "lat": round(lat + rng.uniform(-5e-4, 5e-4), 6),
            "lon": round(lon + rng.uniform(-5e-4, 5e-4), 6),
        },
    }
    if source is Source.SENSOR:
        rule = category.sensor
        assert rule is not None  # noqa: S101 - chosen among categories with a sensor above
        value = rule.threshold * rng.uniform(0.5, 1.5)
        event["reading"] = {"metric": rule.metric, "value": round(value, 2), "unit": rule.unit}
        del event["location"]["road_id"]
    elif source is Source.TERMINAL:
        event["officer_id"] = f"officer-{rng.randrange(1, 200):04d}"
        event["severity"] = rng.choice(["minor", "moderate", "severe"])
        event["description"] = rng.choice(_SAYINGS)
        event["evidence"] = _evidence(rng, 1)
    elif source in (Source.CAMERA, Source.DRONE):
        event["evidence"] = _evidence(rng, rng.choice([1, 1, 2]))
        if source is Source.DRONE:
            del event["location"]["road_id"]
            event["altitude_m"] = rng.randrange(30, 120)
    else:
        event["description"] = rng.choice(_SAYINGS)
        event["location"] = {"road_id": road_id}
    return event


def _without_device_id(event: dict[str, Any]) -> None:
    del event["device_id"]


def _without_location(event: dict[str, Any]) -> None:
    event["location"] = {}


def _unknown_category(event: dict[str, Any]) -> None:
    event["category"] = "9999"


def _clock_ahead(event: dict[str, Any]) -> None:
    event["occurred_at"] = (_NOW + timedelta(hours=2)).isoformat()


_MISTAKES = (_without_device_id, _without_location, _unknown_category, _clock_ahead)


def _malformed(rng: random.Random, event: dict[str, Any]) -> tuple[bytes, Domain]:
    """One of the mistakes devices make, with the topic the message was published to."""
    domain = Domain(event["domain"])
    kind = rng.randrange(len(_MISTAKES) + 2)
    if kind == len(_MISTAKES):
        return dumps(event)[: rng.randrange(10, 60)], domain  # cut short by a flaky uplink
    if kind == len(_MISTAKES) + 1:
        return dumps(event), rng.choice([d for d in Domain if d is not domain])  # misrouted
    _MISTAKES[kind](event)
    return dumps(event), domain


def corpus(n: int, seed: int = 7) -> list[tuple[bytes, Domain]]:
    """``n`` messages with the domain of the topic each arrived on."""
    rng = random.Random(seed)  # noqa: S311 - test data, not cryptography
    sources = [s for s, _ in _MIX]
    weights = [w for _, w in _MIX]
    out = []
    for serial in range(n):
        event = _event(rng, rng.choices(sources, weights)[0], serial)
        if rng.random() < _MALFORMED_SHARE:
            out.append(_malformed(rng, event))
        else:
            out.append((dumps(event), Domain(event["domain"])))
    return out


def _time_pass(run: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _measure(
    runs: dict[str, Callable[[], object]], seconds: float, min_reps: int = 5
) -> dict[str, list[float]]:
    """Alternate the runs pass by pass, so drift in the machine hits them alike."""
    for run in runs.values():
        run()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in runs}
    deadline = time.perf_counter() + seconds * len(runs)
    while time.perf_counter() < deadline or min(map(len, times.values())) < min_reps:
        for name, run in runs.items():
            times[name].append(_time_pass(run))
    return times


def _pin_to_one_core() -> str:
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned"
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return f"pinned to cpu {cpu}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time budget per measurement")
    parser.add_argument("--events", type=int, default=20_000, help="messages in the corpus")
    parser.add_argument("--seed", type=int, default=7, help="corpus random seed")
    args = parser.parse_args(argv)

    pinned = _pin_to_one_core()
    messages = corpus(args.events, args.seed)
    sizes = [len(raw) for raw, _ in messages]
    now = _NOW
    max_bytes = DEFAULT_MAX_MESSAGE_BYTES

    def codec() -> list[object]:
        return [
            decode_event(raw, now=now, topic_domain=topic, max_bytes=max_bytes)
            for raw, topic in messages
        ]

    def codec_streaming() -> None:
        # As the worker calls it: each result is used and dropped before the next message, so
        # the cyclic GC never walks a growing pile of live events (the kept-results row does).
        for raw, topic in messages:
            decode_event(raw, now=now, topic_domain=topic, max_bytes=max_bytes)

    def parse_only() -> list[object]:
        loads = orjson.loads
        out = []
        for raw, _ in messages:
            try:
                out.append(loads(raw))
            except orjson.JSONDecodeError as exc:
                out.append(exc)
        return out

    outcomes = Counter(r.reason.value if isinstance(r, Rejection) else "accepted" for r in codec())
    times = _measure(
        {
            "decode_event, results dropped": codec_streaming,
            "decode_event, results kept": codec,
            "orjson.loads only": parse_only,
        },
        args.seconds,
    )

    n = len(messages)
    lines = [
        f"corpus: {n:,} events, mean {statistics.fmean(sizes):.0f} B "
        f"(min {min(sizes)}, max {max(sizes)}), "
        f"{sum(v for k, v in outcomes.items() if k != 'accepted') / n:.1%} rejected "
        f"({', '.join(f'{k} {v}' for k, v in sorted(outcomes.items()))})",
        f"python {platform.python_version()}, orjson {orjson.__version__}, "
        f"{platform.machine()}, {pinned}",
        "",
        f"{'what':<34}{'best ev/s':>14}{'median ev/s':>14}{'median us/ev':>14}{'passes':>8}",
    ]
    medians = {}
    for name, passes in times.items():
        best, median = n / min(passes), n / statistics.median(passes)
        medians[name] = median
        lines.append(
            f"{name:<34}{best:>14,.0f}{median:>14,.0f}{1e6 / median:>14.2f}{len(passes):>8}"
        )
    codec_rate = medians["decode_event, results dropped"]
    parse_rate = medians["orjson.loads only"]
    lines.append("")
    lines.append(f"validation costs {parse_rate / codec_rate:.1f}x the parse alone (medians)")
    lines.append("target: 150,000 events/s on one core for decode+validate (issue 2)")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
