"""Simulated field traffic and the people who answer it: terminals, sensors, cameras, drones and
hotline operators publishing events around the Jiulong sub-district (with a share of malformed
messages), and road chiefs and supervisors acting on the tasks citygrid dispatches.

Places come from the demo road registry: terminals, cameras, drones and the hotline name a road and
give a point on it; fixed sensors give only their point, within 30 m of a road; about one report
in twenty comes from inside a block, away from every road, and belongs to a grid cell. Generation
is pure and seeded (same seed, same messages). So is what a person decides to do with a task and
how long they take (:func:`plan_feedback`, seeded per task); *when* they act depends on when the
live system shows them the task, so the feedback's timing is not reproducible. :func:`publish`
sends both to Kafka, the events at a steady rate. Given a device key registry
(:attr:`SimulatorConfig.keys`), the devices it lists sign their events; the others do not.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import math
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any, Final, NamedTuple

from aiokafka import AIOKafkaProducer

from schemas.categories import CATEGORIES, Category
from schemas.enums import Action, Domain, Source, Status
from schemas.json import dumps_kept
from schemas.road import Point, Road
from schemas.task import Task
from streams.domain.merge import slot_key, slot_of_task
from streams.domain.places import METRES_PER_DEGREE, RoadIndex, grid_cell
from streams.domain.signatures import SIGNATURE_HEADER, DeviceKeys, sign
from streams.registry import DEMO_REGISTRY, load_registry_file
from streams.settings import Settings
from streams.taskbook import TaskBook
from streams.topics import EVENT_TOPICS, kafka_client_options, topic_name

__all__ = [
    "FEEDBACK_TOPIC",
    "Crew",
    "District",
    "Message",
    "Pace",
    "Plan",
    "Sent",
    "SimulatorConfig",
    "TaskView",
    "demo_district",
    "feedback_message",
    "messages",
    "plan_feedback",
    "point_on_road",
    "publish",
]

logger = logging.getLogger(__name__)

FEEDBACK_TOPIC: Final = "city.feedback"
"""Contract topic names, before the deployment's prefix."""

_SENSORS_PER_ROAD = 3
_SENSOR_OFFSET_M = 30.0
"""Fixed sensors stand on the pavement or a wall, at most this far from the road's centre line."""
_OFF_ROAD_SHARE = 0.05
"""Share of reports from inside a block (a compound, a building site), away from every road."""
_OFF_ROAD_SENSORS = 4
_MANUAL_SOURCES = (Source.TERMINAL, Source.CAMERA, Source.DRONE, Source.HOTLINE)
_MALFORMED: tuple[Callable[[dict[str, Any]], bytes], ...] = (
    lambda e: dumps_kept(e)[:-7],  # truncated in flight
    lambda e: dumps_kept({k: v for k, v in e.items() if k != "occurred_at"}),
    lambda e: dumps_kept({**e, "category": "9999"}),
    lambda e: dumps_kept({**e, "occurred_at": "yesterday"}),
    lambda e: b"\xff\xfe" + dumps_kept(e),
)


class Message(NamedTuple):
    """One message to publish: the domain topic, the key (device id), the value bytes, and the
    headers (the device's signature, when it has a key)."""

    domain: Domain
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class Pace:
    """How soon people act on a task, in seconds, each delay drawn uniformly from its range.

    Scaled for a demo, where a task should close within a minute or two; a real road chief takes
    minutes to hours.
    """

    accept: tuple[float, float] = (5.0, 20.0)
    """From the task showing up dispatched to the road chief accepting it."""
    handle: tuple[float, float] = (10.0, 40.0)
    """From accepting to reporting it handled."""
    verify: tuple[float, float] = (5.0, 15.0)
    """From the handling report to a supervisor's verification."""
    verify_fail: float = 0.15
    """Share of verifications that fail: the task goes back to the chief (返工)."""
    max_reworks: int = 2
    """Once a task was sent back this often, the next verification passes, so every story ends."""


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """How much traffic, how fast, how dirty, and whether people answer the tasks."""

    rate: float = 20.0
    """Messages per second."""
    count: int | None = None
    """Stop after this many messages (None: no limit)."""
    duration: float | None = None
    """Stop after this many seconds (None: no limit)."""
    seed: int = 7
    bad_ratio: float = 0.02
    """Share of messages that are deliberately malformed."""
    feedback: bool = True
    """Road chiefs accept and handle the tasks dispatched to them; supervisors verify."""
    pace: Pace = field(default_factory=Pace)
    reserved: frozenset[str] = frozenset()
    """Slots (``place~category``) left to a scripted scenario: no simulated report lands there
    and nobody acts on their tasks."""
    keys: DeviceKeys = field(default_factory=DeviceKeys)
    """Device keys: the devices listed sign every event they send (malformed ones too, as a
    device signs whatever it sends) with their current key; the others send unsigned."""


def _sensor_reading(rng: random.Random, category: Category) -> dict[str, Any] | None:
    rule = category.sensor
    if rule is None:
        return None
    # Most readings sit below the threshold; about one in five crosses it.
    crosses = rng.random() < 0.2  # noqa: PLR2004 - share of readings over the threshold
    if rule.metric == "smoke":
        value = 1.0 if crosses else 0.0
    else:
        factor = rng.uniform(1.05, 1.6) if crosses else rng.uniform(0.2, 0.95)
        value = round(rule.threshold * factor, 2)
    return {"metric": rule.metric, "value": value, "unit": rule.unit}


class _Spot(NamedTuple):
    """A point of the district, and the road a reporter there names (None: only the point)."""

    road_id: str | None
    lat: float
    lon: float


class _Sensor(NamedTuple):
    device_id: str
    spot: _Spot


@dataclass(frozen=True, slots=True)
class District:
    """The demo registry as the simulator samples it, and the fixed sensors installed in it."""

    roads: tuple[Road, ...]
    index: RoadIndex
    bounds: tuple[float, float, float, float]
    """South, north, west and east edges of the registry's points."""
    sensors: tuple[_Sensor, ...]
    off_road_sensors: tuple[_Sensor, ...]

    def sensor_point(self, device_id: str) -> tuple[float, float] | None:
        """Where fixed sensor ``device_id`` (``sen-<road>-01``, ``sen-block-01``) stands, as the
        ``(lat, lon)`` it publishes; None when the fleet has no such sensor."""
        for sensor in (*self.sensors, *self.off_road_sensors):
            if sensor.device_id == device_id:
                return round(sensor.spot.lat, 6), round(sensor.spot.lon, 6)
        return None

    def place_key(self, road_id: str | None, lat: float, lon: float) -> str:
        """The place the worker gives a report: its road, the nearest road, or the grid cell."""
        if road_id is not None:
            return road_id
        found = self.index.nearest(lat, lon)
        return found[0].road_id if found is not None else grid_cell(lat, lon)


@functools.cache
def demo_district() -> District:
    """The Jiulong demo district (:data:`~streams.registry.DEMO_REGISTRY`), loaded once."""
    roads = tuple(load_registry_file(DEMO_REGISTRY))
    index = RoadIndex(roads)
    points = [p for road in roads for line in road.segments for p in line]
    lons, lats = [p[0] for p in points], [p[1] for p in points]
    bounds = (min(lats), max(lats), min(lons), max(lons))
    # A sensor stays where it was installed whatever the seed: each has its own generator.
    sensors = tuple(
        _Sensor(
            f"sen-{road.road_id}-{n:02d}",
            _near_road(random.Random(f"{road.road_id}/{n}"), road),  # noqa: S311
        )
        for road in roads
        for n in range(1, _SENSORS_PER_ROAD + 1)
    )
    off_road_sensors = tuple(
        _Sensor(
            f"sen-block-{n:02d}",
            _off_road(random.Random(f"block/{n}"), index, bounds),  # noqa: S311
        )
        for n in range(1, _OFF_ROAD_SENSORS + 1)
    )
    return District(roads, index, bounds, sensors, off_road_sensors)


def _pieces(road: Road) -> list[tuple[Point, Point, float]]:
    return [(a, b, _length_m(a, b)) for line in road.segments for a, b in pairwise(line)]


def _on_road(rng: random.Random, road: Road) -> _Spot:
    """A point on ``road``, uniformly along its length."""
    pieces = _pieces(road)
    return _along(road, pieces, rng.uniform(0.0, sum(length for _, _, length in pieces)))


def point_on_road(road: Road, fraction: float = 0.5) -> tuple[float, float]:
    """The ``(lat, lon)`` at ``fraction`` of ``road``'s length, rounded as published."""
    pieces = _pieces(road)
    spot = _along(road, pieces, fraction * sum(length for _, _, length in pieces))
    return round(spot.lat, 6), round(spot.lon, 6)


def _along(road: Road, pieces: list[tuple[Point, Point, float]], at: float) -> _Spot:
    for a, b, length in pieces:  # noqa: B007 - the piece the loop stops on is the one wanted
        if at <= length:
            break
        at -= length
    t = min(at / length, 1.0) if length else 0.0
    return _Spot(road.road_id, a[1] + (b[1] - a[1]) * t, a[0] + (b[0] - a[0]) * t)


def _near_road(rng: random.Random, road: Road) -> _Spot:
    """A point within :data:`_SENSOR_OFFSET_M` of ``road`` (uniform over a disc around a point on
    it), without the road's id."""
    on = _on_road(rng, road)
    distance = _SENSOR_OFFSET_M * math.sqrt(rng.random())
    bearing = rng.uniform(0.0, 2 * math.pi)
    return _Spot(
        None,
        on.lat + distance * math.cos(bearing) / METRES_PER_DEGREE,
        on.lon + distance * math.sin(bearing) / _metres_per_degree_lon(on.lat),
    )


def _off_road(
    rng: random.Random, index: RoadIndex, bounds: tuple[float, float, float, float]
) -> _Spot:
    """A point within ``bounds`` further than the placing radius from every road."""
    south, north, west, east = bounds
    for _ in range(100):
        # Rounded as published, so that the published point is the one checked.
        lat, lon = round(rng.uniform(south, north), 6), round(rng.uniform(west, east), 6)
        if index.nearest(lat, lon) is None:
            return _Spot(None, lat, lon)
    # Hardly any room between the roads: step outside the district instead.
    return _Spot(None, north + 2 * index.radius_m / METRES_PER_DEGREE, east)


def _length_m(a: Point, b: Point) -> float:
    return math.hypot(
        (b[0] - a[0]) * _metres_per_degree_lon(a[1]), (b[1] - a[1]) * METRES_PER_DEGREE
    )


def _metres_per_degree_lon(lat: float) -> float:
    return METRES_PER_DEGREE * math.cos(math.radians(lat))


def _event(rng: random.Random, seq: int, now: datetime) -> dict[str, Any]:
    district = demo_district()
    category = rng.choice(list(CATEGORIES.values()))
    sensor_capable = category.sensor is not None
    # Where a sensor can see the problem, most reports come from one.
    by_sensor = sensor_capable and rng.random() < 0.6  # noqa: PLR2004
    off_road = rng.random() < _OFF_ROAD_SHARE
    if by_sensor:
        source = Source.SENSOR
        device_id, spot = rng.choice(district.off_road_sensors if off_road else district.sensors)
    else:
        source = rng.choice(_MANUAL_SOURCES)
        if off_road:
            spot = _off_road(rng, district.index, district.bounds)
            device_id = f"{source.value[:3]}-block-{rng.randrange(1, 6):02d}"
        else:
            spot = _on_road(rng, rng.choice(district.roads))
            device_id = f"{source.value[:3]}-{spot.road_id}-{rng.randrange(1, 6):02d}"
    location: dict[str, Any] = {"lat": round(spot.lat, 6), "lon": round(spot.lon, 6)}
    if spot.road_id is not None:
        location["road_id"] = spot.road_id
    event: dict[str, Any] = {
        "event_id": f"sim-{seq:09d}",
        "domain": category.domain.value,
        "source": source.value,
        "device_id": device_id,
        "category": category.code,
        "occurred_at": (now - timedelta(seconds=rng.uniform(0, 3))).isoformat(),
        "location": location,
    }
    if source is Source.SENSOR:
        event["reading"] = _sensor_reading(rng, category)
    if source is Source.TERMINAL:
        event["officer_id"] = f"officer-{rng.randrange(1, 40):03d}"
        event["description"] = f"{category.name_zh} / {category.name_en}"
    if source in (Source.TERMINAL, Source.CAMERA, Source.DRONE):
        digest = hashlib.sha256(f"{device_id}/{seq}".encode()).hexdigest()
        event["evidence"] = [{"sha256": digest, "media_type": "image/jpeg"}]
    return event


def _slot(event: dict[str, Any]) -> str:
    location = event["location"]
    place = demo_district().place_key(location.get("road_id"), location["lat"], location["lon"])
    return slot_key(place, event["category"])


def messages(
    config: SimulatorConfig, clock: Callable[[], datetime] | None = None
) -> Iterator[Message]:
    """The simulated messages in order; endless unless ``config.count`` is set."""
    rng = random.Random(config.seed)  # noqa: S311 - simulation, not cryptography
    now = clock or (lambda: datetime.now(UTC))
    seq = 0
    while config.count is None or seq < config.count:
        event = _event(rng, seq, now())
        # Redrawn, not dropped, so the rate and the count hold; the stream stays seeded.
        while config.reserved and _slot(event) in config.reserved:
            event = _event(rng, seq, now())
        domain = Domain(event["domain"])
        bad = rng.random() < config.bad_ratio
        value = rng.choice(_MALFORMED)(event) if bad else dumps_kept(event)
        key = config.keys.signing_key(event["device_id"])
        headers = ((SIGNATURE_HEADER, sign(key, value)),) if key is not None else ()
        yield Message(domain, event["device_id"].encode(), value, headers)
        seq += 1


class Plan(NamedTuple):
    """What one person will do to one task, and when."""

    task_id: str
    action: Action
    actor_id: str
    due: datetime
    note: str | None = None


_HANDLED_NOTE = "现场已处置 / dealt with on site"
_FAILED_NOTE = "复核未通过 请返工 / not fixed on re-inspection, rework"
_SUPERVISORS = 5


def plan_feedback(
    task: Task, *, seen_at: datetime, seed: int = 7, pace: Pace = Pace()
) -> Plan | None:
    """What happens next to ``task``, shown in its current status at ``seen_at``.

    The road chief it is dispatched to accepts it and later reports it handled; a supervisor then
    verifies the work, and sends back a share of it (``pace.verify_fail``) for the chief to handle
    again. A registered task waits for a dispatcher and a suspended one for a resume: None, as for
    closed and cancelled tasks. Pure: the action, the actor and the delay are drawn from a
    generator seeded by ``seed``, the task id, its status and its rework count.
    """
    if task.assignee is None:
        return None
    rng = random.Random(  # noqa: S311 - simulation, not cryptography
        f"{seed}/{task.task_id}/{task.status.value}/{task.rework_count}"
    )

    def after(span: tuple[float, float]) -> datetime:
        return seen_at + timedelta(seconds=rng.uniform(*span))

    if task.status is Status.DISPATCHED:
        return Plan(task.task_id, Action.ACCEPT, task.assignee, after(pace.accept))
    if task.status is Status.ACCEPTED:
        return Plan(task.task_id, Action.HANDLE, task.assignee, after(pace.handle), _HANDLED_NOTE)
    if task.status is Status.HANDLED:
        supervisor = f"supervisor-{rng.randrange(1, _SUPERVISORS + 1):02d}"
        due = after(pace.verify)
        if task.rework_count < pace.max_reworks and rng.random() < pace.verify_fail:
            return Plan(task.task_id, Action.VERIFY_FAIL, supervisor, due, _FAILED_NOTE)
        return Plan(task.task_id, Action.VERIFY_PASS, supervisor, due)
    return None


def feedback_message(plan: Plan, at: datetime) -> bytes:
    """The feedback message (CONTRACT.md) carrying out ``plan``, stamped ``at``."""
    message: dict[str, Any] = {
        "task_id": plan.task_id,
        "action": plan.action.value,
        "actor_id": plan.actor_id,
        "at": at.isoformat(),
    }
    if plan.note is not None:
        message["note"] = plan.note
    return dumps_kept(message)


class _Planned(NamedTuple):
    stage: tuple[Status, int, str | None]
    plan: Plan | None
    """None once carried out: nothing more until the task moves on."""


class Crew:
    """Everyone who answers tasks in the simulation: one plan per task, made when the task
    reaches a new stage (status, rework count, assignee), handed out once due. No I/O."""

    def __init__(
        self,
        *,
        seed: int = 7,
        pace: Pace = Pace(),
        ignore: Callable[[str], bool] = lambda task_id: False,
    ) -> None:
        self.seed = seed
        self.pace = pace
        self._ignore = ignore
        self._plans: dict[str, _Planned] = {}

    def observe(self, task: Task, now: datetime) -> None:
        """Take in a task's latest state, seen at ``now``."""
        if self._ignore(task.task_id):
            return
        stage = (task.status, task.rework_count, task.assignee)
        current = self._plans.get(task.task_id)
        # Merged reports and deadline flags change the task, not what anyone is about to do.
        if current is not None and current.stage == stage:
            return
        plan = plan_feedback(task, seen_at=now, seed=self.seed, pace=self.pace)
        if plan is None:
            self._plans.pop(task.task_id, None)
        else:
            self._plans[task.task_id] = _Planned(stage, plan)

    def due(self, now: datetime) -> list[Plan]:
        """The plans due at ``now``, earliest first; each is handed out once."""
        ready = sorted(
            (p.plan for p in self._plans.values() if p.plan is not None and p.plan.due <= now),
            key=lambda plan: plan.due,
        )
        for plan in ready:
            self._plans[plan.task_id] = self._plans[plan.task_id]._replace(plan=None)
        return ready

    def __len__(self) -> int:
        """How many tasks someone is about to act on."""
        return sum(p.plan is not None for p in self._plans.values())


class TaskView(TaskBook):
    """The task book (every task's latest state, from ``city.tasks.state``) with a way to wait
    until it shows something, and a callback for each task taken in."""

    def __init__(self, settings: Settings, on_task: Callable[[Task], None] | None = None) -> None:
        super().__init__(settings)
        self._on_task = on_task
        self._changed = asyncio.Event()

    def apply(self, key: bytes | None, value: bytes | None) -> Task | None:
        """Take in one task state record and wake whoever waits."""
        task = super().apply(key, value)
        if task is not None:
            self._changed.set()
            if self._on_task is not None:
                self._on_task(task)
        return task

    async def wait(self, check: Callable[[Mapping[str, Task]], bool], within: float) -> bool:
        """Wait until ``check(tasks)`` holds; False when ``within`` seconds pass first."""
        deadline = time.monotonic() + within
        while not check(self.tasks):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        return True

    async def run(self) -> None:
        """Follow the task states until cancelled."""
        await self._follower.run()


class Sent(NamedTuple):
    """What :func:`publish` sent."""

    events: int
    """Event messages, malformed ones included."""
    feedback: int


async def _respond(
    settings: Settings,
    producer: AIOKafkaProducer,
    config: SimulatorConfig,
    on_feedback: Callable[[Plan], None],
) -> None:
    """Follow the tasks and send each person's feedback when it is due, until cancelled."""
    crew = Crew(
        seed=config.seed,
        pace=config.pace,
        ignore=lambda task_id: slot_of_task(task_id) in config.reserved,
    )
    view = TaskView(settings, on_task=lambda task: crew.observe(task, datetime.now(UTC)))
    follower = asyncio.create_task(view.run(), name="simulator.tasks")
    topic = topic_name(settings, FEEDBACK_TOPIC)
    try:
        while True:
            await asyncio.sleep(0.25)
            if follower.done():
                follower.result()  # the follower failed: let its error end the simulation
            now = datetime.now(UTC)
            for plan in crew.due(now):
                await producer.send(topic, feedback_message(plan, now), key=plan.task_id.encode())
                on_feedback(plan)
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower


async def publish(
    settings: Settings,
    config: SimulatorConfig,
    on_sent: Callable[[int], None] | None = None,
    on_feedback: Callable[[Plan], None] | None = None,
) -> Sent:
    """Publish simulated messages at ``config.rate`` until the count or duration is reached, and
    (with ``config.feedback``) the feedback of the people answering the tasks meanwhile.

    ``on_sent`` is called with the running total of events, ``on_feedback`` with each feedback
    plan carried out.
    """
    producer = AIOKafkaProducer(**kafka_client_options(settings), acks="all", linger_ms=5)
    await producer.start()
    sent = 0
    feedback = 0

    def count_feedback(plan: Plan) -> None:
        nonlocal feedback
        feedback += 1
        if on_feedback is not None:
            on_feedback(plan)

    crew = (
        asyncio.create_task(
            _respond(settings, producer, config, count_feedback), name="simulator.crew"
        )
        if config.feedback
        else None
    )
    started = time.monotonic()
    try:
        for message in messages(config):
            elapsed = time.monotonic() - started
            if config.duration is not None and elapsed >= config.duration:
                break
            if crew is not None and crew.done():
                crew.result()
            # Pace against the schedule, not the previous send, so the rate does not drift.
            ahead = sent / config.rate - elapsed
            if ahead > 0:
                await asyncio.sleep(ahead)
            topic = topic_name(settings, EVENT_TOPICS[message.domain])
            await producer.send(
                topic, message.value, key=message.key, headers=list(message.headers)
            )
            sent += 1
            if on_sent is not None:
                on_sent(sent)
        await producer.flush()
    finally:
        if crew is not None:
            crew.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await crew
        await producer.stop()
    return Sent(sent, feedback)
