"""The simulator is reproducible, valid where it means to be, and dirty in the share asked for."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from itertools import islice

from schemas.codec import Rejection, decode_event
from schemas.enums import Source
from streams.domain.places import RoadIndex
from streams.registry import DEMO_REGISTRY, load_registry_file
from streams.simulator import SimulatorConfig, messages

CLOCK = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)


def _take(config: SimulatorConfig, n: int) -> list[bytes]:
    return [m.value for m in islice(messages(config, clock=lambda: CLOCK), n)]


def test_same_seed_same_traffic_and_another_seed_differs() -> None:
    assert _take(SimulatorConfig(seed=1), 200) == _take(SimulatorConfig(seed=1), 200)
    assert _take(SimulatorConfig(seed=1), 200) != _take(SimulatorConfig(seed=2), 200)


def test_clean_traffic_is_all_valid_on_its_own_topic() -> None:
    for message in islice(messages(SimulatorConfig(bad_ratio=0.0), clock=lambda: CLOCK), 2000):
        result = decode_event(message.value, now=CLOCK, topic_domain=message.domain)
        assert not isinstance(result, Rejection), result


def test_bad_ratio_is_respected_roughly() -> None:
    config = SimulatorConfig(bad_ratio=0.1, seed=3)
    results = [
        decode_event(m.value, now=CLOCK, topic_domain=m.domain)
        for m in islice(messages(config, clock=lambda: CLOCK), 5000)
    ]
    share = sum(isinstance(r, Rejection) for r in results) / len(results)
    assert 0.08 < share < 0.12


def test_count_bounds_the_stream() -> None:
    assert len(list(messages(SimulatorConfig(count=17)))) == 17


def test_simulated_reports_are_placed_on_the_demo_registry() -> None:
    index = RoadIndex(load_registry_file(DEMO_REGISTRY))
    kinds: Counter[str] = Counter()
    for message in islice(messages(SimulatorConfig(bad_ratio=0.0), clock=lambda: CLOCK), 4000):
        event = decode_event(message.value, now=CLOCK, topic_domain=message.domain)
        assert not isinstance(event, Rejection)
        location = event.location
        assert location.lat is not None and location.lon is not None
        found = index.nearest(location.lat, location.lon)
        if location.road_id is not None:
            assert event.source is not Source.SENSOR
            assert found is not None and found[1] < 1.0 and index.get(location.road_id)
            kinds["named"] += 1
        elif found is not None:
            assert event.source is Source.SENSOR and found[1] <= 30.0
            kinds["sensor"] += 1
        else:
            assert index.place_of(location).key.startswith("cell:")
            kinds["cell"] += 1
    assert 0.03 < kinds["cell"] / 4000 < 0.07
    assert kinds["named"] > kinds["sensor"] > 0
