"""The worker's HTTP API and the dispatch board it serves: tasks, live task changes as Server-Sent
Events, the road ranking with its red flags and the road map, all read from what every worker
already follows (the task states, the road registry) or holds (its slots).

``GET /tasks/{task_id}`` comes from the task's slot when the asked worker holds it (the freshest
copy), else from the task states every worker follows (a moment behind); every endpoint is
answered by whichever worker is asked. The contract of
each endpoint is ``streams/web/openapi.json``, served at ``/openapi.json``. With
``CITYGRID_API_TOKEN`` set, everything but the ops pages and the board's static shell (which holds
no data) needs ``Authorization: Bearer <token>``; ``/stream/tasks`` also takes ``?token=``, since a
browser's EventSource cannot send headers.

Importing this module mounts it on :data:`streams.app.app` (``streams/app.py`` imports it last).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import heapq
import hmac
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Final, TypeVar

import faust
from aiohttp import web as aioweb
from aiohttp.typedefs import Handler as AiohttpHandler
from faust.web import Request, View

from schemas.categories import CATEGORIES
from schemas.enums import Domain, Priority, Status
from schemas.json import JSONDecodeError, dumps, loads
from schemas.task import Task
from streams.app import app, registry, settings, slots, taskbook
from streams.domain.kpi import KpiReport
from streams.domain.merge import slot_of_task
from streams.engine import SlotStore
from streams.finished import FinishedTasks
from streams.registry_feed import RegistryFeed
from streams.settings import Settings
from streams.taskbook import TaskBook, report_of

__all__ = [
    "DEFAULT_LIMIT",
    "FILTER_PARAMS",
    "MAX_LIMIT",
    "PAGE_PARAMS",
    "PUBLIC_ROUTES",
    "QUERY_TOKEN_ROUTES",
    "WEB_DIR",
    "Api",
    "BadRequest",
    "Endpoint",
    "Page",
    "Selection",
    "TaskFilter",
    "TaskWatch",
    "api",
    "authorized",
    "bearer_token",
    "check_task_id",
    "decode_cursor",
    "encode_cursor",
    "find_task",
    "mount",
    "parse_filter",
    "parse_page",
    "query_params",
    "select",
    "sort_key",
    "sse_comment",
    "sse_event",
]

logger = logging.getLogger(__name__)

_KPI_REUSE_SECONDS = 5.0
"""How long one computed KPI report answers ``/kpi/roads`` requests."""

WEB_DIR: Final = Path(__file__).resolve().parent / "web"
"""The board's static files and the OpenAPI document."""

FILTER_PARAMS: Final = (
    "community",
    "road",
    "domain",
    "status",
    "priority",
    "assignee",
    "overdue",
    "rebound",
)
"""Query parameters that select tasks, on ``/tasks`` and ``/stream/tasks``."""
PAGE_PARAMS: Final = ("limit", "offset", "cursor")
DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 500
MAX_TASK_ID_LENGTH: Final = 512
MAX_ROADS_LIMIT: Final = 100_000

PUBLIC_ROUTES: Final = frozenset({"/", "/static/{name}", "/health", "/ready", "/metrics"})
"""Routes (as registered) served without a token: the ops pages, and the board's shell, which a
browser loads by navigating, so with no header, and which holds no data."""
QUERY_TOKEN_ROUTES: Final = frozenset({"/stream/tasks"})
"""Routes that also take the token as ``?token=``: EventSource cannot send headers."""

_STATIC: Final = {
    "board.js": "text/javascript; charset=utf-8",
    "board.css": "text/css; charset=utf-8",
}
_BOARD_HEADERS: Final = {
    # Everything the board loads comes from this worker: no CDN, no inline code.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    # The first URL may carry ?token=: never hand it on.
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


_E = TypeVar("_E", Domain, Status, Priority)


class BadRequest(ValueError):
    """A request the API cannot answer as asked; the message is the ``error`` of the 400."""


# --- parameters -----------------------------------------------------------------------------------


def query_params(pairs: Iterable[tuple[str, str]], allowed: Collection[str]) -> dict[str, str]:
    """The query as a dict: a parameter outside ``allowed`` or given twice is refused, an empty
    one is left out (an HTML form sends empty fields)."""
    params: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in pairs:
        if name not in allowed:
            raise BadRequest(f"unknown parameter {name!r}; expected {', '.join(allowed)}")
        if name in seen:
            raise BadRequest(f"parameter {name!r} given twice; list values with commas instead")
        seen.add(name)
        if value.strip():
            params[name] = value.strip()
    return params


def _choices(params: Mapping[str, str], name: str, vocabulary: type[_E]) -> frozenset[_E]:
    raw = params.get(name)
    if raw is None:
        return frozenset()
    chosen: set[_E] = set()
    for item in filter(None, (part.strip() for part in raw.split(","))):
        try:
            chosen.add(vocabulary(item))
        except ValueError:
            allowed = ", ".join(v.value for v in vocabulary)
            raise BadRequest(f"{name}: {item!r} is not one of {allowed}") from None
    return frozenset(chosen)


def _flag(params: Mapping[str, str], name: str) -> bool | None:
    raw = params.get(name)
    if raw is None:
        return None
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise BadRequest(f"{name} must be true or false, got {raw!r}")


def _whole(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}, got {raw!r}")
    return int(raw)


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """Which tasks a request asks for; an empty field selects everything. Sets are alternatives
    (``status=dispatched,accepted``); fields combine with AND."""

    community: str | None = None
    road: str | None = None
    domains: frozenset[Domain] = frozenset()
    statuses: frozenset[Status] = frozenset()
    priorities: frozenset[Priority] = frozenset()
    assignee: str | None = None
    overdue: bool | None = None
    rebound: bool | None = None

    def matches(self, task: Task) -> bool:
        """Whether ``task`` is one of the tasks asked for."""
        return (
            (self.community is None or task.community == self.community)
            and (self.road is None or task.road_id == self.road)
            and (not self.domains or task.domain in self.domains)
            and (not self.statuses or task.status in self.statuses)
            and (not self.priorities or task.priority in self.priorities)
            and (self.assignee is None or task.assignee == self.assignee)
            and (self.overdue is None or task.overdue is self.overdue)
            and (self.rebound is None or (task.rebound_of is not None) is self.rebound)
        )


def parse_filter(params: Mapping[str, str]) -> TaskFilter:
    """The filter of a query (from :func:`query_params`); raises :class:`BadRequest`."""
    return TaskFilter(
        community=params.get("community"),
        road=params.get("road"),
        domains=_choices(params, "domain", Domain),
        statuses=_choices(params, "status", Status),
        priorities=_choices(params, "priority", Priority),
        assignee=params.get("assignee"),
        overdue=_flag(params, "overdue"),
        rebound=_flag(params, "rebound"),
    )


SortKey = tuple[str, int, str]
"""Priority (``P1`` first), created_at in microseconds since the epoch, task id."""


def sort_key(task: Task) -> SortKey:
    """The order of task lists: most urgent first, then the longest waiting, then by id."""
    return (task.priority.value, (task.created_at - _EPOCH) // _MICROSECOND, task.task_id)


def encode_cursor(key: SortKey) -> str:
    """An opaque cursor for the page that follows the task of sort key ``key``."""
    return base64.urlsafe_b64encode(dumps(list(key))).decode().rstrip("=")


def decode_cursor(text: str) -> SortKey:
    """The sort key inside a cursor from :func:`encode_cursor`; raises :class:`BadRequest`."""
    try:
        raw = loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, JSONDecodeError, ValueError):
        raw = None
    if (
        isinstance(raw, list)
        and len(raw) == 3  # noqa: PLR2004 - the three parts of a SortKey
        and raw[0] in {p.value for p in Priority}
        and type(raw[1]) is int
        and isinstance(raw[2], str)
    ):
        return (raw[0], raw[1], raw[2])
    raise BadRequest("cursor is not one this API issued (use next_cursor of the previous page)")


@dataclass(frozen=True, slots=True)
class Page:
    """Which slice of the sorted tasks to answer: after a cursor, or from an offset."""

    limit: int = DEFAULT_LIMIT
    offset: int = 0
    after: SortKey | None = None


def parse_page(params: Mapping[str, str]) -> Page:
    """The page of a query (from :func:`query_params`); raises :class:`BadRequest`."""
    if "cursor" in params and "offset" in params:
        raise BadRequest("give cursor or offset, not both")
    after = decode_cursor(params["cursor"]) if "cursor" in params else None
    return Page(
        limit=_whole(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
        offset=_whole(params, "offset", 0, 0, 10**9),
        after=after,
    )


@dataclass(frozen=True, slots=True)
class Selection:
    """One page of tasks, how many match in all, and the cursor of the next page (None at the
    end)."""

    tasks: list[Task]
    total: int
    next_cursor: str | None


def select(
    tasks: Iterable[Task],
    task_filter: TaskFilter,
    page: Page,
    stored: tuple[Sequence[Task], int] = ((), 0),
) -> Selection:
    """The page of the tasks ``task_filter`` matches, in :func:`sort_key` order.

    ``stored`` adds tasks kept elsewhere (the finished ones on disk), none of them in ``tasks``:
    the first ``page.offset + page.limit + 1`` of them that match, after the page's cursor, in
    list order (:func:`stored_page` asks for them), and how many match in all.
    """
    matching = sorted((t for t in tasks if task_filter.matches(t)), key=sort_key)
    remaining = matching
    if page.after is not None:
        after = page.after
        remaining = [t for t in matching if sort_key(t) > after]
    stored_tasks, stored_total = stored
    if stored_tasks:
        remaining = list(heapq.merge(remaining, stored_tasks, key=sort_key))
    chunk = remaining[page.offset : page.offset + page.limit]
    more = len(remaining) > page.offset + page.limit
    return Selection(
        tasks=chunk,
        total=len(matching) + stored_total,
        next_cursor=encode_cursor(sort_key(chunk[-1])) if more and chunk else None,
    )


def stored_page(
    finished: FinishedTasks, task_filter: TaskFilter, page: Page
) -> tuple[list[Task], int]:
    """What :func:`select` needs of the finished tasks on disk for ``page``. Blocking: call it in
    a thread."""
    return finished.page(
        community=task_filter.community,
        road_id=task_filter.road,
        domains=[d.value for d in task_filter.domains],
        statuses=[s.value for s in task_filter.statuses],
        priorities=[p.value for p in task_filter.priorities],
        assignee=task_filter.assignee,
        overdue=task_filter.overdue,
        rebound=task_filter.rebound,
        after=page.after,
        limit=page.offset + page.limit + 1,
    )


def check_task_id(task_id: str) -> str:
    """The slot of a task id; raises :class:`BadRequest` when it is not a citygrid task id."""
    slot = slot_of_task(task_id) if len(task_id) <= MAX_TASK_ID_LENGTH else None
    if slot is None:
        raise BadRequest(f"{task_id[:100]!r} is not a citygrid task id (place~category~digest)")
    return slot


def find_task(
    task_id: str, current: Task | None, book: Callable[[str], Task | None]
) -> Task | None:
    """Task ``task_id`` from its slot's current task (the freshest copy, on the slot's owner), or
    from the task states, ``book`` (another worker's slot, or a rebound's predecessor)."""
    if current is not None and current.task_id == task_id:
        return current
    return book(task_id)


# --- authentication -------------------------------------------------------------------------------


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _same(expected: str, given: str | None) -> bool:
    if given is None:
        return False
    # Digests first, so the comparison takes the same time whatever the lengths.
    return hmac.compare_digest(
        hashlib.sha256(expected.encode()).digest(), hashlib.sha256(given.encode()).digest()
    )


def authorized(
    token: str, route: str | None, authorization: str | None, query_token: str | None
) -> bool:
    """Whether a request may proceed: no token configured, a public route, the right bearer
    token, or, on the routes of :data:`QUERY_TOKEN_ROUTES`, the right ``?token=``. ``route`` is
    the matched route as registered (``/tasks/{task_id}``), None when nothing matched."""
    if not token or route in PUBLIC_ROUTES:
        return True
    if _same(token, bearer_token(authorization)):
        return True
    return route in QUERY_TOKEN_ROUTES and _same(token, query_token)


# --- live changes ---------------------------------------------------------------------------------

Changes = list[tuple[str, Task | None]]
"""Task id and its new state, None when the task was forgotten."""


@dataclass(eq=False, slots=True)
class _Subscriber:
    queue: asyncio.Queue[Changes | None]
    dropped: bool = False


@dataclass(eq=False)
class TaskWatch:
    """Turns the task states a worker follows into a feed of changes for every SSE client.

    The task book is filled by its follower and offers no hook, so one loop, shared by all
    clients and running only while any is connected, compares it every ``interval`` with what it
    saw before (the book replaces a Task when it changes, so an unchanged task costs an identity
    check). A client that falls ``backlog`` batches behind is dropped; its browser reconnects and
    starts again from a fresh snapshot.
    """

    tasks: Callable[[], Mapping[str, Task]]
    interval: float = 0.5
    backlog: int = 64
    _seen: dict[str, Task] = field(default_factory=dict)
    _subscribers: list[_Subscriber] = field(default_factory=list)
    _loop: asyncio.Task[None] | None = None
    _closed: bool = False

    def scan(self) -> Changes:
        """What changed since the last scan (or since the first subscriber came)."""
        current = self.tasks()
        seen = self._seen
        changes: Changes = [
            (task_id, task)
            for task_id, task in current.items()
            if (old := seen.get(task_id)) is not task and old != task
        ]
        changes.extend((task_id, None) for task_id in seen.keys() - current.keys())
        self._seen = dict(current)
        return changes

    def subscribe(self) -> tuple[dict[str, Task], _Subscriber]:
        """The tasks as of now, and the subscription that carries every change after them."""
        subscriber = _Subscriber(asyncio.Queue(self.backlog))
        if self._closed:
            subscriber.queue.put_nowait(None)
            return {}, subscriber
        if not self._subscribers:
            self._seen = dict(self.tasks())
        self._subscribers.append(subscriber)
        if self._loop is None or self._loop.done():
            self._loop = asyncio.get_running_loop().create_task(self._run())
        return dict(self._seen), subscriber

    def unsubscribe(self, subscriber: _Subscriber) -> None:
        with contextlib.suppress(ValueError):
            self._subscribers.remove(subscriber)

    def publish(self, changes: Changes) -> None:
        """Hand one batch of changes to every subscriber."""
        for subscriber in list(self._subscribers):
            try:
                subscriber.queue.put_nowait(changes)
            except asyncio.QueueFull:
                subscriber.dropped = True
                self.unsubscribe(subscriber)
                logger.info("dropped an event stream %d batches behind", self.backlog)

    def close(self) -> None:
        """End every subscription (the web server is stopping)."""
        self._closed = True
        for subscriber in self._subscribers:
            while not subscriber.queue.empty():  # make room for the end
                subscriber.queue.get_nowait()
            subscriber.queue.put_nowait(None)
        self._subscribers.clear()

    async def _run(self) -> None:
        while self._subscribers:
            await asyncio.sleep(self.interval)
            changes = self.scan()
            if changes:
                self.publish(changes)


def sse_event(event: str, data: Any) -> bytes:
    """One Server-Sent Event: compact JSON has no line breaks, so the data is one line."""
    return b"event: " + event.encode() + b"\ndata: " + dumps(data) + b"\n\n"


def sse_comment(text: str) -> bytes:
    """An SSE comment line: clients ignore it, proxies see traffic."""
    return b": " + text.encode() + b"\n\n"


# --- the web layer --------------------------------------------------------------------------------


def _json(
    value: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> aioweb.Response:
    return aioweb.Response(
        body=dumps(value), status=status, content_type="application/json", headers=headers
    )


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> aioweb.Response:
    return _json({"error": message}, status, headers)


def _unavailable(message: str) -> aioweb.Response:
    return _error(503, message, {"Retry-After": "1"})


def _web_file(name: str) -> bytes | None:
    try:
        return (WEB_DIR / name).read_bytes()
    except FileNotFoundError:
        return None


def _translations() -> bytes | None:
    try:
        return resources.files("schemas").joinpath("data", "i18n.json").read_bytes()
    except FileNotFoundError:
        return None


Endpoint = Callable[..., Awaitable[aioweb.StreamResponse]]
"""``(request, **match_info)`` to a response; may raise :class:`BadRequest`."""


class Api:
    """The endpoints, over one worker's app, settings, slots, task states and registry."""

    def __init__(
        self,
        app: faust.App,
        *,
        settings: Settings,
        slots: SlotStore,
        taskbook: TaskBook,
        registry: RegistryFeed,
        watch: TaskWatch,
        heartbeat: float,
    ) -> None:
        self.app = app
        self.settings = settings
        self.slots = slots
        self.taskbook = taskbook
        self.registry = registry
        self.watch = watch
        self.heartbeat = heartbeat
        self._kpi_lock = asyncio.Lock()
        self._kpi: tuple[float, KpiReport] | None = None

    def routes(self) -> dict[str, Endpoint]:
        """Every path this API serves (aiohttp patterns), with its GET handler."""
        return {
            "/": self.board,
            "/static/{name}": self.static,
            "/openapi.json": self.openapi,
            "/tasks": self.tasks,
            "/tasks/{task_id}": self.task,
            "/stream/tasks": self.stream_tasks,
            "/kpi/roads": self.kpi_roads,
            "/roads": self.roads,
            "/categories": self.categories,
            "/i18n.json": self.i18n,
        }

    @aioweb.middleware
    async def auth(self, request: aioweb.Request, handler: AiohttpHandler) -> aioweb.StreamResponse:
        """Refuse a request without the token where :func:`authorized` asks for it."""
        resource = request.match_info.route.resource
        if authorized(
            self.settings.api_token,
            None if resource is None else resource.canonical,
            request.headers.get("Authorization"),
            request.query.get("token"),
        ):
            return await handler(request)
        return _error(
            401,
            "missing or wrong bearer token (Authorization: Bearer <CITYGRID_API_TOKEN>)",
            {"WWW-Authenticate": 'Bearer realm="citygrid"'},
        )

    async def end_streams(self, _: aioweb.Application) -> None:
        """End the event streams, so the web server can stop without waiting for clients."""
        self.watch.close()

    async def board(self, request: aioweb.Request) -> aioweb.StreamResponse:
        body = _web_file("index.html")
        if body is None:
            return _error(404, "the dispatch board is not installed with this worker")
        return aioweb.Response(
            body=body, content_type="text/html", charset="utf-8", headers=_BOARD_HEADERS
        )

    async def static(self, request: aioweb.Request, name: str) -> aioweb.StreamResponse:
        content_type = _STATIC.get(name)
        body = None if content_type is None else _web_file(name)
        if content_type is None or body is None:
            return _error(404, f"no static file {name!r}")
        return aioweb.Response(body=body, headers={**_BOARD_HEADERS, "Content-Type": content_type})

    async def openapi(self, request: aioweb.Request) -> aioweb.StreamResponse:
        body = _web_file("openapi.json")
        if body is None:
            return _error(404, "the API description is not installed with this worker")
        return aioweb.Response(body=body, content_type="application/json")

    async def tasks(self, request: aioweb.Request) -> aioweb.StreamResponse:
        params = query_params(request.query.items(), FILTER_PARAMS + PAGE_PARAMS)
        task_filter, page = parse_filter(params), parse_page(params)
        if not self.taskbook.ready.is_set():
            return _unavailable("the task states are still loading")
        stored: tuple[Sequence[Task], int] = ((), 0)
        finished = self.taskbook.finished
        if finished is not None:
            await finished.cut()
            stored = await asyncio.to_thread(stored_page, finished, task_filter, page)
        # The tasks in memory are taken after those on disk: a task that finished meanwhile is
        # then on disk only, never listed twice (at worst missing from this one answer).
        chosen = select(self.taskbook.listed(), task_filter, page, stored)
        return _json(
            {
                "tasks": [task.wire_fields() for task in chosen.tasks],
                "total": chosen.total,
                "limit": page.limit,
                "offset": page.offset,
                "next_cursor": chosen.next_cursor,
            }
        )

    async def task(self, request: aioweb.Request, task_id: str) -> aioweb.StreamResponse:
        query_params(request.query.items(), ())
        key = check_task_id(task_id).encode()
        # The slot's owner has the freshest copy; any other worker answers from the task states
        # it follows, a moment behind.
        state = self.slots.lookup(key)
        task = find_task(task_id, None if state is None else state.task, self.taskbook.get)
        if task is None:
            return _error(404, f"no task {task_id!r}")
        return _json(task.wire_fields())

    async def stream_tasks(self, request: aioweb.Request) -> aioweb.StreamResponse:
        params = query_params(request.query.items(), (*FILTER_PARAMS, "token"))
        task_filter = parse_filter(params)
        response = aioweb.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        # A client that goes away shows up as a failed write.
        with contextlib.suppress(ConnectionError):
            await self._follow(request, response, task_filter)
        return response

    async def _follow(
        self, request: aioweb.Request, response: aioweb.StreamResponse, task_filter: TaskFilter
    ) -> None:
        await response.write(b"retry: 3000\n\n")
        ready = self.taskbook.ready
        while not ready.is_set():
            try:
                async with asyncio.timeout(self.heartbeat):
                    await ready.wait()
            except TimeoutError:
                await response.write(sse_comment("loading task states"))
        snapshot, subscriber = self.watch.subscribe()
        try:
            shown = sorted((t for t in snapshot.values() if task_filter.matches(t)), key=sort_key)
            for task in shown:
                await response.write(sse_event("task", task.wire_fields()))
            await response.write(sse_event("ready", {"count": len(shown)}))
            held = {task.task_id for task in shown}
            loop = asyncio.get_running_loop()
            next_beat = loop.time() + self.heartbeat
            while not subscriber.dropped:
                if request.transport is None or request.transport.is_closing():
                    return
                try:
                    async with asyncio.timeout(min(1.0, max(0.0, next_beat - loop.time()))):
                        changes = await subscriber.queue.get()
                except TimeoutError:
                    changes = []
                if changes is None:
                    return
                for task_id, changed in changes:
                    if changed is not None and task_filter.matches(changed):
                        held.add(task_id)
                        await response.write(sse_event("task", changed.wire_fields()))
                    elif task_id in held:
                        held.discard(task_id)
                        await response.write(sse_event("gone", {"task_id": task_id}))
                if loop.time() >= next_beat:
                    await response.write(sse_comment("heartbeat"))
                    next_beat = loop.time() + self.heartbeat
        finally:
            self.watch.unsubscribe(subscriber)

    async def kpi_roads(self, request: aioweb.Request) -> aioweb.StreamResponse:
        params = query_params(request.query.items(), ("community", "limit"))
        limit = _whole(params, "limit", MAX_ROADS_LIMIT, 1, MAX_ROADS_LIMIT)
        if not (self.taskbook.ready.is_set() and self.registry.ready.is_set()):
            return _unavailable("the task states or the road registry are still loading")
        report = await self._kpi_report()
        names = {road.road_id: road.name for road in self.registry.index}
        community = params.get("community")
        roads = [
            {**road.to_wire(), "name": names.get(road.road_id)}
            for road in report.roads
            if community is None or road.community == community
        ]
        return _json(
            {
                "as_of": report.as_of.isoformat(),
                "window_start": report.window_start.isoformat(),
                "today_start": report.today_start.isoformat(),
                "red_flags": self.settings.red_flags,
                "district": report.district.to_wire(),
                "roads": roads[:limit],
            }
        )

    async def _kpi_report(self) -> KpiReport:
        """The KPIs as the leader's timer computes them (agents/kpi.py), on this worker's copy of
        the task states: in a thread, since it takes a second per 100,000 tasks, and shared by the
        requests that arrive within a few seconds of each other."""
        async with self._kpi_lock:
            loop = asyncio.get_running_loop()
            if self._kpi is not None and loop.time() - self._kpi[0] < _KPI_REUSE_SECONDS:
                return self._kpi[1]
            tasks, finished = await self.taskbook.kpi_inputs()
            report = await asyncio.to_thread(
                report_of,
                tasks,
                finished,
                now=datetime.now(UTC),
                window=timedelta(seconds=self.settings.kpi_window),
                red_flags=self.settings.red_flags,
                roads={road.road_id: road.community for road in self.registry.index},
            )
            self._kpi = (loop.time(), report)
            return report

    async def roads(self, request: aioweb.Request) -> aioweb.StreamResponse:
        query_params(request.query.items(), ())
        if not self.registry.ready.is_set():
            return _unavailable("the road registry is still loading")
        roads = sorted(self.registry.index, key=lambda road: road.road_id)
        return _json({"roads": [road.to_wire() for road in roads]})

    async def categories(self, request: aioweb.Request) -> aioweb.StreamResponse:
        query_params(request.query.items(), ())
        rows = [
            {
                "code": c.code,
                "domain": c.domain.value,
                "name_zh": c.name_zh,
                "name_en": c.name_en,
                "default_severity": c.default_severity.value,
                "time_limit_minutes": c.time_limit_minutes,
            }
            for _, c in sorted(CATEGORIES.items())
        ]
        return _json({"categories": rows})

    async def i18n(self, request: aioweb.Request) -> aioweb.StreamResponse:
        query_params(request.query.items(), ())
        body = _translations()
        if body is None:
            return _error(404, "no translation table (schemas/data/i18n.json) in this build")
        return aioweb.Response(body=body, content_type="application/json")


def _view(endpoint: Endpoint) -> Callable[..., Awaitable[Any]]:
    """A Faust page handler calling ``endpoint``, with :class:`BadRequest` as a 400."""

    async def get(view: View, request: Request, *args: Any, **match_info: Any) -> Any:
        try:
            return await endpoint(request, **match_info)
        except BadRequest as exc:
            return _error(400, str(exc))

    get.__name__ = get.__qualname__ = endpoint.__name__
    return get


def mount(
    app: faust.App,
    *,
    settings: Settings,
    slots: SlotStore,
    taskbook: TaskBook,
    registry: RegistryFeed,
    poll_interval: float = 0.5,
    heartbeat: float = 15.0,
) -> Api:
    """Add the board and the API to ``app``'s web server. ``slots`` is this worker's slot
    store; ``poll_interval`` is how often the event streams look for changed tasks."""
    api = Api(
        app,
        settings=settings,
        slots=slots,
        taskbook=taskbook,
        registry=registry,
        watch=TaskWatch(lambda: taskbook.tasks, interval=poll_interval),
        heartbeat=heartbeat,
    )
    web_app: aioweb.Application = app.web.web_app  # type: ignore[attr-defined]  # aiohttp driver
    web_app.middlewares.append(api.auth)
    web_app.on_shutdown.append(api.end_streams)
    for path, endpoint in api.routes().items():
        app.page(path, name=f"citygrid-{endpoint.__name__}")(_view(endpoint))
    return api


api = mount(app, settings=settings, slots=slots, taskbook=taskbook, registry=registry)
"""This worker's API (``streams/app.py`` imports this module last, which mounts it)."""
