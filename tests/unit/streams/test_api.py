"""The worker's HTTP API without a broker: what a console gets for its filters and pages, the 400s
it gets for bad ones, who the token keeps out, what the event stream sends, and that the OpenAPI
document describes every route the worker serves, no more and no fewer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

import streams.api  # noqa: F401 - the worker's app with the API mounted, as a worker has it
from schemas.enums import Domain, Priority, Source, Status
from schemas.json import dumps, loads
from schemas.task import Task
from streams.api import (
    DEFAULT_LIMIT,
    FILTER_PARAMS,
    MAX_LIMIT,
    PAGE_PARAMS,
    PUBLIC_ROUTES,
    WEB_DIR,
    BadRequest,
    Page,
    TaskFilter,
    TaskWatch,
    authorized,
    bearer_token,
    check_task_id,
    decode_cursor,
    encode_cursor,
    find_task,
    mount,
    parse_filter,
    parse_page,
    query_params,
    select,
    sort_key,
    sse_event,
)
from streams.app import app as worker_app
from streams.app import create_app
from streams.domain.kpi import Counts, RoadKpi
from streams.registry_feed import RegistryFeed
from streams.settings import Settings
from streams.taskbook import TaskBook

T0 = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)
TOKEN = "s3cret-token"  # noqa: S105 - a test token
OPENAPI = loads((WEB_DIR / "openapi.json").read_bytes())


def make_task(
    task_id: str = "yulong-st~4001~aaaaaaaaaaaa",
    *,
    minutes: int = 0,
    priority: Priority = Priority.P4,
    status: Status = Status.DISPATCHED,
    **fields: Any,
) -> Task:
    """A street-vending task on Yulong St, created ``minutes`` after T0."""
    created = T0 + timedelta(minutes=minutes)
    task = Task(
        task_id=task_id,
        status=status,
        domain=Domain.CITYMGMT,
        category="4001",
        priority=priority,
        place="yulong-st",
        road_id="yulong-st",
        community="锦龙社区",
        assignee="chief-yulong",
        created_at=created,
        updated_at=created,
        due_at=created + timedelta(hours=2),
        event_ids=("e1",),
        sources=(Source.CAMERA,),
    )
    return replace(task, **fields)


def params(**query: str) -> dict[str, str]:
    return query_params(query.items(), FILTER_PARAMS + PAGE_PARAMS)


# --- parameters -----------------------------------------------------------------------------------


def test_an_unknown_or_repeated_parameter_is_refused_and_an_empty_one_ignored() -> None:
    with pytest.raises(BadRequest, match="unknown parameter 'staus'"):
        params(staus="closed")
    with pytest.raises(BadRequest, match="'road' given twice"):
        query_params([("road", "a"), ("road", "b")], FILTER_PARAMS)
    assert params(road="", community=" 锦龙社区 ") == {"community": "锦龙社区"}


def test_list_filters_take_comma_separated_values_of_their_vocabulary() -> None:
    task_filter = parse_filter(params(status="dispatched,accepted", priority="P1", domain="fire"))
    assert task_filter.statuses == {Status.DISPATCHED, Status.ACCEPTED}
    assert task_filter.priorities == {Priority.P1}
    assert task_filter.domains == {Domain.FIRE}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"status": "done"}, "status: 'done' is not one of registered, dispatched, accepted"),
        ({"priority": "P5"}, "priority: 'P5' is not one of P1, P2, P3, P4"),
        ({"domain": "police"}, "domain: 'police' is not one of fire, environment"),
        ({"overdue": "yes"}, "overdue must be true or false, got 'yes'"),
        ({"rebound": "2"}, "rebound must be true or false"),
    ],
)
def test_a_bad_filter_value_names_what_is_allowed(query: dict[str, str], message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_filter(params(**query))


@pytest.mark.parametrize(
    ("task_filter", "matching"),
    [
        (TaskFilter(), True),
        (TaskFilter(community="锦龙社区"), True),
        (TaskFilter(community="九龙社区"), False),
        (TaskFilter(road="yulong-st"), True),
        (TaskFilter(road="yuhe-rd"), False),
        (TaskFilter(domains=frozenset({Domain.FIRE, Domain.CITYMGMT})), True),
        (TaskFilter(statuses=frozenset({Status.CLOSED})), False),
        (TaskFilter(priorities=frozenset({Priority.P2})), True),
        (TaskFilter(assignee="chief-yuhe"), False),
        (TaskFilter(overdue=True), True),
        (TaskFilter(overdue=False), False),
        (TaskFilter(rebound=True), False),
        (TaskFilter(rebound=False), True),
        (TaskFilter(road="yulong-st", statuses=frozenset({Status.ACCEPTED})), False),
    ],
)
def test_filters_combine_with_and(task_filter: TaskFilter, matching: bool) -> None:
    task = make_task(priority=Priority.P2, overdue=True)
    assert task_filter.matches(task) is matching


def test_a_rebound_filter_selects_tasks_with_rebound_of() -> None:
    rebound = make_task(rebound_of="yulong-st~4001~bbbbbbbbbbbb")
    assert parse_filter(params(rebound="true")).matches(rebound)
    assert not parse_filter(params(rebound="false")).matches(rebound)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"limit": "0"}, "limit must be a whole number from 1 to 500, got '0'"),
        ({"limit": str(MAX_LIMIT + 1)}, "limit must be a whole number from 1 to 500"),
        ({"limit": "ten"}, "limit must be a whole number"),
        ({"offset": "-1"}, "offset must be a whole number"),
        ({"offset": "1", "cursor": encode_cursor(("P1", 0, "x"))}, "cursor or offset, not both"),
        ({"cursor": "not-a-cursor"}, "cursor is not one this API issued"),
        ({"cursor": encode_cursor(("P9", 0, "x"))}, "cursor is not one this API issued"),
    ],
)
def test_bad_paging_is_refused(query: dict[str, str], message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_page(params(**query))


def test_paging_defaults_to_fifty_from_the_start() -> None:
    assert parse_page({}) == Page(limit=DEFAULT_LIMIT, offset=0, after=None)
    assert decode_cursor(encode_cursor(("P2", 123, "a~1~b"))) == ("P2", 123, "a~1~b")


# --- sorting and pages ----------------------------------------------------------------------------


def test_tasks_come_most_urgent_first_then_longest_waiting_then_by_id() -> None:
    tasks = [
        make_task("b~4001~1", minutes=5, priority=Priority.P3),
        make_task("a~4001~1", minutes=1, priority=Priority.P4),
        make_task("c~4001~2", minutes=9, priority=Priority.P1),
        make_task("c~4001~1", minutes=9, priority=Priority.P1),
        make_task("d~4001~1", minutes=0, priority=Priority.P3),
    ]
    chosen = select(tasks, TaskFilter(), Page())
    assert [t.task_id for t in chosen.tasks] == [
        "c~4001~1", "c~4001~2", "d~4001~1", "b~4001~1", "a~4001~1",
    ]  # fmt: skip
    assert chosen.total == 5
    assert chosen.next_cursor is None


def test_cursor_pages_cover_every_task_once_while_new_tasks_arrive() -> None:
    book = {f"r~4001~{i:03}": make_task(f"r~4001~{i:03}", minutes=i) for i in range(0, 25)}
    seen: list[str] = []
    cursor: str | None = None
    while True:
        query = {"limit": "10"} | ({"cursor": cursor} if cursor else {})
        page = select(book.values(), TaskFilter(), parse_page(params(**query)))
        seen.extend(t.task_id for t in page.tasks)
        assert page.total == len(book)
        # A task reported meanwhile, more urgent than all: it sorts before the cursor.
        urgent = make_task(f"u~4001~{len(seen)}", minutes=99, priority=Priority.P1)
        book[urgent.task_id] = urgent
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [f"r~4001~{i:03}" for i in range(25)]


def test_offset_pages_and_filters_and_total() -> None:
    tasks = [make_task(f"r~4001~{i}", minutes=i, overdue=i % 2 == 0) for i in range(7)]
    page = select(
        tasks, parse_filter(params(overdue="true")), parse_page(params(offset="1", limit="2"))
    )
    assert [t.task_id for t in page.tasks] == ["r~4001~2", "r~4001~4"]
    assert page.total == 4
    assert page.next_cursor == encode_cursor(sort_key(tasks[4]))


# --- task ids and lookups -------------------------------------------------------------------------


@pytest.mark.parametrize("task_id", ["not-a-task", "a~b", "~4001~abc", "yulong-st~~abc", "x" * 600])
def test_a_string_that_is_not_a_task_id_is_a_bad_request(task_id: str) -> None:
    with pytest.raises(BadRequest, match="is not a citygrid task id"):
        check_task_id(task_id)


def test_a_task_id_leads_to_its_slot() -> None:
    assert check_task_id("yulong-st~4001~0123456789ab") == "yulong-st~4001"
    assert check_task_id("cell:12:34~3001~0123456789ab") == "cell:12:34~3001"


def test_a_task_is_read_from_its_slot_and_an_earlier_one_from_the_task_states() -> None:
    earlier = make_task("yulong-st~4001~aaaaaaaaaaaa", status=Status.CLOSED)
    current = make_task("yulong-st~4001~bbbbbbbbbbbb", rebound_of=earlier.task_id)
    book = {earlier.task_id: earlier, current.task_id: replace(current, status=Status.REGISTERED)}
    assert find_task(current.task_id, current, book.get) == current  # the slot is fresher
    assert find_task(earlier.task_id, current, book.get) == earlier
    assert find_task(current.task_id, None, book.get) == book[current.task_id]  # another worker's
    assert find_task("yulong-st~4001~cccccccccccc", current, book.get) is None
    assert find_task(earlier.task_id, None, {}.get) is None


# --- authentication -------------------------------------------------------------------------------


def test_without_a_configured_token_everything_is_open() -> None:
    assert authorized("", "/tasks", None, None)


@pytest.mark.parametrize("route", sorted(PUBLIC_ROUTES))
def test_ops_pages_and_the_board_shell_need_no_token(route: str) -> None:
    assert authorized(TOKEN, route, None, None)


@pytest.mark.parametrize(
    ("authorization", "allowed"),
    [
        (f"Bearer {TOKEN}", True),
        (f"bearer  {TOKEN} ", True),
        ("Bearer wrong", False),
        (f"Basic {TOKEN}", False),
        ("Bearer", False),
        (None, False),
    ],
)
def test_data_needs_the_bearer_token(authorization: str | None, allowed: bool) -> None:
    assert authorized(TOKEN, "/tasks/{task_id}", authorization, None) is allowed
    assert authorized(TOKEN, None, authorization, None) is allowed  # unknown paths too


def test_the_query_token_counts_on_the_event_stream_only() -> None:
    assert authorized(TOKEN, "/stream/tasks", None, TOKEN)
    assert not authorized(TOKEN, "/stream/tasks", None, "wrong")
    assert not authorized(TOKEN, "/tasks", None, TOKEN)
    assert bearer_token("Bearer abc") == "abc"


# --- the change feed ------------------------------------------------------------------------------


async def test_the_watch_reports_new_changed_and_forgotten_tasks_once() -> None:
    book: dict[str, Task] = {"a~4001~1": make_task("a~4001~1"), "b~4001~1": make_task("b~4001~1")}
    watch = TaskWatch(lambda: book, interval=3600)
    snapshot, subscriber = watch.subscribe()
    assert snapshot == book
    book["a~4001~1"] = replace(book["a~4001~1"])  # equal copy: a replayed state, not a change
    book["b~4001~1"] = replace(book["b~4001~1"], status=Status.ACCEPTED)
    book["c~4001~1"] = make_task("c~4001~1")
    del book["a~4001~1"]
    changes = dict(watch.scan())
    assert changes == {"b~4001~1": book["b~4001~1"], "c~4001~1": book["c~4001~1"], "a~4001~1": None}
    assert watch.scan() == []
    watch.unsubscribe(subscriber)


async def test_a_client_too_far_behind_is_dropped_and_closing_ends_every_stream() -> None:
    watch = TaskWatch(dict, interval=3600, backlog=2)
    _, slow = watch.subscribe()
    _, fine = watch.subscribe()
    for _ in range(3):
        watch.publish([("a~4001~1", None)])
        fine.queue.get_nowait()
    assert slow.dropped and not fine.dropped
    watch.close()
    assert fine.queue.get_nowait() is None
    snapshot, late = watch.subscribe()
    assert snapshot == {}
    assert late.queue.get_nowait() is None


def test_an_event_is_one_data_line() -> None:
    frame = sse_event("task", make_task().to_wire())
    event, data, blank, end = frame.split(b"\n")
    assert event == b"event: task"
    assert loads(data.removeprefix(b"data: "))["task_id"] == "yulong-st~4001~aaaaaaaaaaaa"
    assert blank == end == b""


# --- the OpenAPI document -------------------------------------------------------------------------


def _served_routes() -> set[tuple[str, str]]:
    """(method, path) of every route the worker's app registers (Faust's own blueprints are
    added only when the server starts, so they are not here)."""
    router = worker_app.web.web_app.router
    return {
        (route.method, resource.canonical)
        for resource in router.resources()
        for route in resource
        if route.method not in ("HEAD", "OPTIONS")
    }


def test_every_route_is_in_the_openapi_document_and_nothing_else() -> None:
    assert OPENAPI["openapi"].startswith("3.1.")
    documented = {
        (method.upper(), path)
        for path, operations in OPENAPI["paths"].items()
        for method in operations
    }
    assert _served_routes() == documented


def test_public_operations_are_the_routes_that_need_no_token() -> None:
    public = {
        path
        for path, operations in OPENAPI["paths"].items()
        for operation in operations.values()
        if operation.get("security") == []
    }
    assert public == PUBLIC_ROUTES


def _parameter_names(path: str) -> list[str]:
    names = []
    shared = OPENAPI["components"]["parameters"]
    for given in OPENAPI["paths"][path]["get"].get("parameters", []):
        parameter = shared[given["$ref"].rsplit("/", 1)[1]] if "$ref" in given else given
        names.append(parameter["name"])
    return names


def test_the_document_lists_the_parameters_the_code_accepts() -> None:
    assert _parameter_names("/tasks") == [*FILTER_PARAMS, *PAGE_PARAMS]
    assert _parameter_names("/stream/tasks") == [*FILTER_PARAMS, "token"]


def test_the_documented_task_and_road_kpi_have_the_fields_the_code_writes() -> None:
    schemas = OPENAPI["components"]["schemas"]
    assert set(schemas["Task"]["properties"]) == set(make_task().to_wire())
    zero = Counts(0, 0, 0, 0, 0, 0, 0, 0, 0, None)
    road = RoadKpi("r", None, zero, zero, 100.0, 1, False, T0, T0, T0)
    assert set(schemas["RoadKpi"]["properties"]) == {*road.to_wire(), "name"}
    assert set(schemas["Counts"]["properties"]) == set(zero.to_wire())


def test_the_board_loads_nothing_from_elsewhere() -> None:
    for name in ("index.html", "board.js", "board.css"):
        text = (WEB_DIR / name).read_text()
        assert "//cdn" not in text and "https://" not in text, name
        assert "@import" not in text, name


# --- over HTTP, without a broker ------------------------------------------------------------------


@pytest.fixture
def worker_settings(tmp_path: Path) -> Settings:
    return Settings.from_env({}, api_token=TOKEN, data_dir=tmp_path, store="memory://")


@pytest.fixture
def book(worker_settings: Settings) -> Iterator[TaskBook]:
    taskbook = TaskBook(worker_settings)
    taskbook.tasks.update({"yulong-st~4001~aaaaaaaaaaaa": make_task(priority=Priority.P2)})
    taskbook.ready.set()
    yield taskbook


@pytest.fixture
async def client(worker_settings: Settings, book: TaskBook) -> AsyncIterator[TestClient[Any, Any]]:
    feed = RegistryFeed(worker_settings)
    feed.apply(
        b"yulong-st",
        dumps(
            {
                "road_id": "yulong-st",
                "name": "宇龙街 (Yulong St)",
                "community": "锦龙社区",
                "chief_id": "chief-yulong",
                "segments": [[[113.78, 34.72], [113.79, 34.72]]],
            }
        ),
    )
    feed.ready.set()
    app = create_app(worker_settings)
    mount(
        app,
        settings=worker_settings,
        slots=SimpleNamespace(name="slots", get=lambda key: None),
        taskbook=book,
        registry=feed,
        poll_interval=0.02,
        heartbeat=0.2,
    )
    async with TestClient(TestServer(app.web.web_app)) as test_client:
        yield test_client


BEARER = {"Authorization": f"Bearer {TOKEN}"}


async def _json(response: ClientResponse, status: int) -> Any:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    return await response.json()


async def test_http_the_token_is_asked_for_data_but_not_for_health_or_the_board(
    client: TestClient[Any, Any],
) -> None:
    refused = await _json(await client.get("/tasks"), 401)
    assert "bearer token" in refused["error"]
    assert (await client.get("/openapi.json")).status == 401
    assert (await client.get("/health")).status == 200
    board = await client.get("/")
    assert board.status == 200
    assert "default-src 'self'" in board.headers["Content-Security-Policy"]
    assert "static/board.js" in await board.text()
    script = await client.get("/static/board.js")
    assert script.headers["Content-Type"].startswith("text/javascript")
    assert (await client.get("/static/secrets.txt")).status == 404


async def test_http_tasks_are_listed_and_bad_filters_get_a_400(
    client: TestClient[Any, Any], book: TaskBook
) -> None:
    book.tasks["yuhe-rd~3001~bbbbbbbbbbbb"] = make_task(
        "yuhe-rd~3001~bbbbbbbbbbbb", road_id="yuhe-rd", place="yuhe-rd", priority=Priority.P1
    )
    listed = await _json(await client.get("/tasks", headers=BEARER), 200)
    assert [t["task_id"] for t in listed["tasks"]] == [
        "yuhe-rd~3001~bbbbbbbbbbbb",
        "yulong-st~4001~aaaaaaaaaaaa",
    ]
    assert listed["total"] == 2 and listed["next_cursor"] is None
    on_yulong = await _json(await client.get("/tasks?road=yulong-st", headers=BEARER), 200)
    assert [t["task_id"] for t in on_yulong["tasks"]] == ["yulong-st~4001~aaaaaaaaaaaa"]
    bad = await _json(await client.get("/tasks?status=done", headers=BEARER), 400)
    assert bad["error"].startswith("status: 'done' is not one of")
    bad_id = await _json(await client.get("/tasks/not-a-task", headers=BEARER), 400)
    assert "not a citygrid task id" in bad_id["error"]


async def test_http_roads_categories_names_and_the_ranking(client: TestClient[Any, Any]) -> None:
    roads = await _json(await client.get("/roads", headers=BEARER), 200)
    assert [r["road_id"] for r in roads["roads"]] == ["yulong-st"]
    categories = await _json(await client.get("/categories", headers=BEARER), 200)
    assert {"code": "4001", "name_zh": "占道经营"}.items() <= categories["categories"][-5].items()
    ranking = await _json(await client.get("/kpi/roads", headers=BEARER), 200)
    (road,) = ranking["roads"]
    assert road["road_id"] == "yulong-st" and road["name"] == "宇龙街 (Yulong St)"
    assert road["rank"] == 1 and road["window"]["due"] == 1
    assert (await client.get("/kpi/roads?limit=0", headers=BEARER)).status == 400
    names = await _json(await client.get("/i18n.json", headers=BEARER), 200)
    assert set(names["status"]) == {status.value for status in Status}


async def _next_event(response: ClientResponse) -> tuple[str, Any]:
    event = ""
    while True:
        line = (await asyncio.wait_for(response.content.readline(), 5)).decode().rstrip("\n")
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: "):
            return event, loads(line.removeprefix("data: "))


async def test_http_the_stream_sends_the_snapshot_then_changes(
    client: TestClient[Any, Any], book: TaskBook
) -> None:
    assert (await client.get("/stream/tasks?road=yulong-st")).status == 401
    assert (await client.get(f"/stream/tasks?status=nope&token={TOKEN}")).status == 400
    response = await client.get(f"/stream/tasks?road=yulong-st&token={TOKEN}")
    assert response.headers["Content-Type"].startswith("text/event-stream")
    first = "yulong-st~4001~aaaaaaaaaaaa"
    assert await _next_event(response) == ("task", book.tasks[first].to_wire())
    assert await _next_event(response) == ("ready", {"count": 1})

    accepted = replace(book.tasks[first], status=Status.ACCEPTED)
    book.tasks[first] = accepted
    assert await _next_event(response) == ("task", accepted.to_wire())
    book.tasks["yuhe-rd~3001~1"] = make_task("yuhe-rd~3001~1", road_id="yuhe-rd")  # filtered out
    second = make_task("yulong-st~4002~1", minutes=3)
    book.tasks[second.task_id] = second
    assert await _next_event(response) == ("task", second.to_wire())
    book.tasks[first] = replace(accepted, road_id="yuhe-rd")  # no longer matches
    assert await _next_event(response) == ("gone", {"task_id": first})
    line = b"\n"
    while line == b"\n":
        line = await asyncio.wait_for(response.content.readline(), 5)
    assert line == b": heartbeat\n"
    response.close()
