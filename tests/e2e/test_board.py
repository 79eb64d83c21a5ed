"""The dispatch console as a dispatcher uses it, on a real worker and broker with
``CITYGRID_API_TOKEN`` set: the JSON API answers for a reported task (by id, by road, live as
Server-Sent Events) and refuses bad filters and missing tokens; and the web board, opened in
headless Chromium, shows a task within seconds of its report, with its overdue and rebound marks,
the road ranking and the road map."""

from __future__ import annotations

import http.client
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from schemas.json import dumps, loads
from streams.settings import Settings
from tests.factories import event_dict, feedback_dict
from tests.harness import WorkerProcess, deploy, produce, run

pytestmark = pytest.mark.e2e

TOKEN = "board-e2e-token"  # noqa: S105 - a test token
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
NO_CHROMIUM = "Chromium is not installed (Debian: apt-get install -y chromium chromium-driver)"
SCREENSHOTS = os.environ.get("CITYGRID_SCREENSHOT_DIR")
"""Where to keep the board's screenshots too (they always go to the test's tmp_path)."""


@pytest.fixture
def deployment(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> Iterator[tuple[Settings, WorkerProcess]]:
    prefix = f"{unique_name}."
    settings, worker = deploy(
        kafka_bootstrap,
        prefix,
        tmp_path / "worker",
        {
            "CITYGRID_API_TOKEN": TOKEN,
            "CITYGRID_TIME_LIMITS": "4002=1m",
            "CITYGRID_OVERDUE_CHECK": "1s",
        },
    )
    worker.start()
    # 503 until the worker has read the task states to their end.
    _eventually(lambda: _get(worker, "/tasks?limit=1")[0] == 200, "the task states loaded")
    yield settings, worker
    assert worker.stop() == 0, worker.log_tail()


def _get(worker: WorkerProcess, path: str, *, token: str | None = TOKEN) -> tuple[int, Any]:
    """Status and decoded JSON body of GET ``path``, with the bearer token unless None."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"{worker.url}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, loads(error.read())


def _eventually(check: Callable[[], Any], what: str, within: float = 60) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {within} s")


def _report(
    settings: Settings, event_id: str, category: str, road: str, at: datetime, **fields: Any
) -> None:
    event = event_dict(
        source="camera",
        domain="citymgmt",
        event_id=event_id,
        device_id="cam-board",
        category=category,
        occurred_at=at.isoformat(),
        location={"road_id": road},
        **fields,
    )
    topic = f"{settings.topic_prefix}city.events.citymgmt"
    run(produce(settings.bootstrap_servers, [(topic, b"cam-board", dumps(event))]))


def _feedback(settings: Settings, task_id: str, action: str) -> None:
    message = feedback_dict(
        action, task_id=task_id, at=datetime.now(UTC).isoformat(), actor_id="officer-7"
    )
    topic = f"{settings.topic_prefix}city.feedback"
    run(produce(settings.bootstrap_servers, [(topic, task_id.encode(), dumps(message))]))


def _tasks_on(worker: WorkerProcess, road: str, **filters: str) -> list[dict[str, Any]]:
    status, body = _get(worker, "/tasks?" + urlencode({"road": road, **filters}))
    assert status == 200, body
    tasks: list[dict[str, Any]] = body["tasks"]
    return tasks


def _read_events(response: http.client.HTTPResponse, until: Callable[[str, Any], bool]) -> None:
    """Read SSE frames until ``until(event, data)`` holds (the socket timeout bounds the wait)."""
    event = ""
    while True:
        line = response.readline().decode()
        assert line, "the event stream ended"
        if line.startswith("event: "):
            event = line.removeprefix("event: ").strip()
        elif line.startswith("data: ") and until(event, loads(line.removeprefix("data: "))):
            return


def test_the_api_answers_for_a_reported_task_and_refuses_what_it_cannot_use(
    deployment: tuple[Settings, WorkerProcess],
) -> None:
    settings, worker = deployment
    _report(settings, "stall-1", "4001", "yulong-st", datetime.now(UTC) - timedelta(minutes=5))
    (task,) = _eventually(lambda: _tasks_on(worker, "yulong-st"), "the task on /tasks")
    assert task["status"] == "dispatched"
    assert task["assignee"] == "chief-yulong"

    # By id: the owner of the task's slot answers from its table.
    status, by_id = _get(worker, f"/tasks/{quote(task['task_id'])}")
    assert status == 200, by_id
    assert by_id["task_id"] == task["task_id"]
    assert by_id["event_ids"] == ["stall-1"]
    assert _get(worker, "/tasks/yulong-st~4001~000000000000")[0] == 404
    status, body = _get(worker, "/tasks/not-a-task")
    assert status == 400 and "not a citygrid task id" in body["error"]

    # Filters: a bad value is a 400 naming what is allowed; an unknown parameter too.
    status, body = _get(worker, "/tasks?status=done")
    assert status == 400 and body["error"].startswith("status: 'done' is not one of")
    assert _get(worker, "/tasks?staus=closed")[0] == 400
    assert _tasks_on(worker, "yulong-st", status="closed") == []
    assert _tasks_on(worker, "yuhe-rd") == []

    # The token: data needs it, the ops pages do not.
    status, body = _get(worker, "/tasks", token=None)
    assert status == 401 and "bearer token" in body["error"]
    assert _get(worker, "/tasks", token="wrong")[0] == 401  # noqa: S106 - a wrong token
    assert _get(worker, f"/tasks/{quote(task['task_id'])}", token=None)[0] == 401
    assert _get(worker, "/health", token=None) == (200, {"status": "ok"})
    with urllib.request.urlopen(f"{worker.url}/metrics", timeout=5) as response:
        assert b"citygrid_tasks_created_total" in response.read()

    # The ranking and the map's roads: the demo registry's twenty roads.
    status, ranking = _eventually(
        lambda: (r := _get(worker, "/kpi/roads"))[0] == 200 and r, "the ranking"
    )
    assert sorted(road["rank"] for road in ranking["roads"]) == list(range(1, 21))
    yulong = next(road for road in ranking["roads"] if road["road_id"] == "yulong-st")
    assert yulong["name"].startswith("宇龙街")
    status, roads = _get(worker, "/roads")
    assert status == 200 and len(roads["roads"]) == 20
    status, document = _get(worker, "/openapi.json")
    assert status == 200 and document["openapi"].startswith("3.1")

    # Live: the task first, then its change when the road chief accepts it.
    connection = http.client.HTTPConnection("127.0.0.1", worker.web_port, timeout=30)
    connection.request("GET", f"/stream/tasks?road=yulong-st&token={TOKEN}")
    stream = connection.getresponse()
    assert stream.status == 200
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    seen: list[str] = []
    _read_events(stream, lambda event, data: seen.append(event) or event == "ready")
    assert seen == ["task", "ready"]
    _feedback(settings, task["task_id"], "accept")
    _read_events(stream, lambda event, data: event == "task" and data["status"] == "accepted")

    # A client still listening does not hold up the worker's shutdown: its stream just ends.
    stopping = time.monotonic()
    assert worker.stop() == 0, worker.log_tail()
    assert time.monotonic() - stopping < 15
    assert stream.read().strip() == b""  # the rest of the last frame, then the end
    connection.close()


def _screenshot(driver: Any, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    driver.save_screenshot(str(path))
    if SCREENSHOTS:
        shutil.copy(path, Path(SCREENSHOTS) / name)
    return path


def _rebound_and_overdue(
    settings: Settings, worker: WorkerProcess
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A stall that came back after its close, and illegal parking past its one-minute limit;
    returns the closed task and its rebound."""
    now = datetime.now(UTC)
    _report(settings, "stall-old", "4001", "yuhe-rd", now - timedelta(minutes=40))
    (first,) = _eventually(lambda: _tasks_on(worker, "yuhe-rd"), "the first stall")
    for action in ("accept", "handle", "verify_pass"):
        _feedback(settings, first["task_id"], action)
    _eventually(lambda: _tasks_on(worker, "yuhe-rd", status="closed"), "the stall closed")
    _report(settings, "stall-back", "4001", "yuhe-rd", datetime.now(UTC))
    (rebound,) = _eventually(lambda: _tasks_on(worker, "yuhe-rd", rebound="true"), "the rebound")
    assert rebound["rebound_of"] == first["task_id"]
    _report(settings, "parked-1", "4002", "longshan-st", now - timedelta(seconds=90))
    _eventually(lambda: _tasks_on(worker, "longshan-st", overdue="true"), "the overdue flag")
    return first, rebound


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium driven by chromedriver, both Debian's, with a fresh profile."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip(NO_CHROMIUM)
    # Imported here: only this fixture needs a browser driver (a dev dependency).
    from selenium import webdriver  # noqa: PLC0415
    from selenium.webdriver.chrome.options import Options  # noqa: PLC0415
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    options = Options()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium'}",
        "--window-size=1600,1000",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # Both paths given, so Selenium Manager never looks for (or downloads) a browser or driver.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_the_board_shows_a_reported_task_within_seconds(
    deployment: tuple[Settings, WorkerProcess], browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.support import expected_conditions as ec  # noqa: PLC0415
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415

    settings, worker = deployment
    first, rebound = _rebound_and_overdue(settings, worker)
    wait = WebDriverWait(browser, 20)
    browser.get(f"{worker.url}/?token={TOKEN}")
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, '#conn[data-state="live"]')))
    assert "token=" not in browser.current_url, "the token stays out of the address bar"

    # The new report appears on the open board, in the dispatched column, within seconds.
    reported = time.monotonic()
    _report(settings, "stall-new", "4001", "yulong-st", datetime.now(UTC))
    card = WebDriverWait(browser, 15).until(
        ec.presence_of_element_located(
            (By.CSS_SELECTOR, '[data-status="dispatched"] .card[data-road="yulong-st"]')
        )
    )
    shown_after = time.monotonic() - reported
    assert shown_after < 10, f"the task took {shown_after:.1f} s to reach the board"
    (task,) = _tasks_on(worker, "yulong-st")
    assert card.get_attribute("data-task-id") == task["task_id"]
    assert "占道经营" in card.text and "chief-yulong" in card.text

    rebound_card = browser.find_element(
        By.CSS_SELECTOR, f'.card[data-task-id="{rebound["task_id"]}"]'
    )
    badge = rebound_card.find_element(By.CSS_SELECTOR, "a.badge.rebound")
    assert badge.text == "返"
    assert badge.get_attribute("data-rebound-of") == first["task_id"]
    overdue = browser.find_element(By.CSS_SELECTOR, '.card.overdue[data-road="longshan-st"]')
    assert "超期" in overdue.text

    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#ranking tbody tr")) == 20)
    assert browser.find_elements(By.CSS_SELECTOR, "#ranking tr.flagged")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#map path.road")) >= 20
    assert browser.find_elements(By.CSS_SELECTOR, "#map path.road.hot")
    _screenshot(browser, tmp_path, "board-zh.png")

    # The rebound badge leads to the earlier, closed task.
    badge.click()
    wait.until(ec.visibility_of_element_located((By.ID, "detail")))
    wait.until(lambda d: "核查结案" in d.find_element(By.ID, "detail-body").text)
    _screenshot(browser, tmp_path, "board-detail.png")
    browser.find_element(By.CSS_SELECTOR, "#detail button").click()

    browser.find_element(By.ID, "lang").click()
    wait.until(lambda d: d.find_element(By.TAG_NAME, "h1").text.startswith("Jiulong"))
    column = browser.find_element(By.CSS_SELECTOR, '[data-status="dispatched"] h2')
    assert column.text.startswith("Dispatched")
    _screenshot(browser, tmp_path, "board-en.png")

    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors
