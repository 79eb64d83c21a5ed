"""The dispatch console without a broker: which tasks a view shows and in what order, how each
row reads in both languages, how state and transition records become changes, and the JSON
lines scripts read."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rich.console import Console
from rich.table import Table

from schemas.categories import CATEGORIES
from schemas.enums import Domain, Priority, Source, Status, TaskEventType
from schemas.json import dumps, loads
from schemas.task import Task, TaskEvent
from streams.console import (
    OPEN_STATUSES,
    Board,
    Entry,
    TaskFilter,
    filter_from_options,
    json_line,
    render,
    rows,
    select,
    short_id,
    span,
)

NOW = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)
TASK_ID = "yulong-st~4001~a1b2c3d4e5f6"


def _task(**overrides: Any) -> Task:
    task = Task(
        task_id=TASK_ID,
        status=Status.DISPATCHED,
        domain=Domain.CITYMGMT,
        category="4001",
        priority=Priority.P4,
        place="yulong-st",
        road_id="yulong-st",
        community="九龙社区",
        assignee="chief-yulong",
        created_at=NOW - timedelta(minutes=30),
        updated_at=NOW - timedelta(minutes=29),
        due_at=NOW + timedelta(hours=1),
        event_ids=("evt-1",),
        sources=(Source.CAMERA,),
    )
    return replace(task, **overrides)


def _entry(last: TaskEventType | None = TaskEventType.DISPATCHED, **overrides: Any) -> Entry:
    return Entry(_task(**overrides), seq=2, last_event=last)


def _text(table: Table) -> str:
    console = Console(record=True, width=240, color_system=None, file=io.StringIO())
    console.print(table)
    return console.export_text()


# Filters ----------------------------------------------------------------------------------


def test_by_default_a_view_shows_the_open_tasks_only() -> None:
    view = TaskFilter()
    assert all(view.matches(_task(status=s)) for s in OPEN_STATUSES)
    assert not view.matches(_task(status=Status.CLOSED))
    assert not view.matches(_task(status=Status.CANCELLED))


def test_every_filter_narrows_and_an_empty_one_lets_everything_through() -> None:
    task = _task()
    assert TaskFilter(roads=frozenset({"yulong-st"})).matches(task)
    assert not TaskFilter(roads=frozenset({"longshan-st"})).matches(task)
    assert TaskFilter(communities=frozenset({"九龙社区"})).matches(task)
    assert not TaskFilter(domains=frozenset({Domain.FIRE})).matches(task)
    assert TaskFilter(priorities=frozenset({Priority.P4})).matches(task)
    assert not TaskFilter(assignees=frozenset({"chief-longshan"})).matches(task)
    assert not TaskFilter(assignees=frozenset({"chief-yulong"})).matches(_task(assignee=None))


def test_a_grid_cell_task_is_found_by_its_place() -> None:
    cell = _task(place="cell:12:34", road_id=None, community=None)
    assert TaskFilter(roads=frozenset({"cell:12:34"})).matches(cell)
    assert not TaskFilter(communities=frozenset({"九龙社区"})).matches(cell)


def test_options_repeat_and_take_comma_lists() -> None:
    view = filter_from_options(
        road=("yulong-st,longshan-st", "sihai-rd"),
        domain=("fire, citymgmt",),
        status=("handled", "suspended"),
        priority=("P1,P2",),
    )
    assert view.roads == {"yulong-st", "longshan-st", "sihai-rd"}
    assert view.domains == {Domain.FIRE, Domain.CITYMGMT}
    assert view.statuses == {Status.HANDLED, Status.SUSPENDED}
    assert view.priorities == {Priority.P1, Priority.P2}


def test_status_shortcuts_open_and_all() -> None:
    assert filter_from_options().statuses == OPEN_STATUSES
    assert filter_from_options(status=("open",)).statuses == OPEN_STATUSES
    assert filter_from_options(status=("all",)).statuses == set(Status)
    assert filter_from_options(status=("open,closed",)).statuses == OPEN_STATUSES | {Status.CLOSED}


@pytest.mark.parametrize(
    ("option", "value"),
    [("domain", "water"), ("status", "done"), ("priority", "P5")],
)
def test_an_unknown_value_is_refused_naming_the_option_and_the_choices(
    option: str, value: str
) -> None:
    with pytest.raises(ValueError, match=f"--{option}: {value}: not one of") as refused:
        filter_from_options(**{option: (value,)})
    if option == "priority":
        assert "P1, P2, P3, P4" in str(refused.value)


# Order and rows ---------------------------------------------------------------------------


def test_tasks_are_sorted_by_priority_then_oldest_first() -> None:
    newer_p1 = _entry(task_id="a~1002~1", priority=Priority.P1, created_at=NOW)
    older_p1 = _entry(task_id="a~1002~2", priority=Priority.P1, created_at=NOW - timedelta(1))
    p3 = _entry(task_id="a~4001~3", priority=Priority.P3, created_at=NOW - timedelta(days=9))
    p2 = _entry(task_id="a~4001~4", priority=Priority.P2)
    shown = select([p3, newer_p1, p2, older_p1], TaskFilter())
    assert [e.task.task_id for e in shown] == ["a~1002~2", "a~1002~1", "a~4001~4", "a~4001~3"]


def test_a_row_reads_in_chinese_by_default_terms() -> None:
    (row,) = rows([_entry()], TaskFilter(), "zh-CN", NOW)
    assert row.task == "a1b2c3d4"
    assert row.category == CATEGORIES["4001"].name_zh
    assert row.place == "yulong-st / 九龙社区"
    assert row.status == "派遣"
    assert row.priority == "P4 一般"
    assert row.assignee == "chief-yulong"
    assert row.age == "30m"
    assert row.due == "剩 1h00m"
    assert not row.late
    assert row.rework == ""
    assert row.rebound == ""
    assert row.last == "派遣"


def test_the_same_row_in_english() -> None:
    (row,) = rows([_entry()], TaskFilter(), "en", NOW)
    assert row.category == CATEGORIES["4001"].name_en
    assert row.status == "Dispatched"
    assert row.priority == "P4 normal"
    assert row.due == "in 1h00m"
    assert row.last == "Dispatched"


@pytest.mark.parametrize(("language", "mark"), [("zh-CN", "⏰ 超期 25m"), ("en", "⏰ OVERDUE 25m")])
def test_a_task_past_its_deadline_is_marked_overdue(language: Any, mark: str) -> None:
    entry = _entry(due_at=NOW - timedelta(minutes=25), overdue=True)
    (row,) = rows([entry], TaskFilter(), language, NOW)
    assert row.due == mark
    assert row.late


def test_the_mark_shows_before_the_worker_flags_the_task() -> None:
    (row,) = rows([_entry(due_at=NOW - timedelta(seconds=5))], TaskFilter(), "en", NOW)
    assert row.due == "⏰ OVERDUE 5s"
    assert row.late


def test_a_handled_task_keeps_its_overdue_flag_but_no_running_clock() -> None:
    late = _entry(status=Status.HANDLED, due_at=NOW - timedelta(hours=1), overdue=True)
    on_time = _entry(status=Status.HANDLED, due_at=NOW - timedelta(hours=1))
    parked = _entry(status=Status.SUSPENDED, due_at=NOW - timedelta(hours=1))
    assert [r.due for r in rows([late], TaskFilter(), "zh-CN", NOW)] == ["⏰ 超期"]
    assert [r.due for r in rows([on_time], TaskFilter(), "zh-CN", NOW)] == ["—"]
    assert [(r.due, r.late) for r in rows([parked], TaskFilter(), "en", NOW)] == [("—", False)]


@pytest.mark.parametrize(
    ("language", "mark"),
    [("zh-CN", "返 反弹自 0f0e0d0c"), ("en", "返 rebound of 0f0e0d0c")],
)
def test_a_rebound_names_the_task_it_repeats(language: Any, mark: str) -> None:
    entry = _entry(rebound_of="yulong-st~4001~0f0e0d0c0b0a", rework_count=2)
    (row,) = rows([entry], TaskFilter(), language, NOW)
    assert row.rebound == mark
    assert row.rework == "2"


def test_a_task_without_a_chief_or_a_road_reads_plainly() -> None:
    entry = _entry(
        last=None,
        status=Status.REGISTERED,
        assignee=None,
        place="cell:12:34",
        road_id=None,
        community=None,
    )
    (row,) = rows([entry], TaskFilter(), "en", NOW)
    assert row.assignee == "unassigned"
    assert row.place == "cell:12:34"
    assert row.last == "—"


def test_durations_read_in_at_most_two_units() -> None:
    assert span(timedelta(seconds=45)) == "45s"
    assert span(timedelta(minutes=12, seconds=59)) == "12m"
    assert span(timedelta(hours=2, minutes=5)) == "2h05m"
    assert span(timedelta(days=3, hours=4, minutes=5)) == "3d04h"
    assert span(timedelta(seconds=-3)) == "0s"
    assert short_id("cell:1:2~2003~abcdef012345") == "abcdef01"


# The rich table ---------------------------------------------------------------------------


def test_the_table_counts_what_it_shows_and_what_is_late() -> None:
    entries = [
        _entry(task_id="a~1002~p1", priority=Priority.P1, due_at=NOW - timedelta(minutes=1)),
        _entry(task_id="a~4001~p4"),
        _entry(task_id="a~4001~closed", status=Status.CLOSED),
    ]
    text = _text(render(entries, TaskFilter(), "en", NOW, source="city.tasks.state @ broker"))
    assert "citygrid dispatch console · live · 2 matching · 1 overdue" in text
    assert "filters: open tasks · city.tasks.state @ broker · Ctrl-C quits" in text
    assert "⏰ OVERDUE 1m" in text
    assert "closed" not in text
    assert text.index("p1") < text.index("p4")


def test_the_table_in_chinese_has_chinese_headers() -> None:
    text = _text(render([_entry()], TaskFilter(roads=frozenset({"yulong-st"})), "zh-CN", NOW))
    for header in ("任务", "类别", "道路 / 社区", "状态", "优先级", "处置人", "时限", "最近事件"):
        assert header in text
    assert "筛选: 未结任务 · 道路 yulong-st" in text


def test_a_long_list_is_cut_with_a_count_of_the_rest() -> None:
    entries = [_entry(task_id=f"a~4001~{n:012d}") for n in range(10)]
    table = render(entries, TaskFilter(), "en", NOW, limit=4)
    assert table.row_count == 4
    assert "… 6 more · filters: open tasks" in _text(table)
    assert (
        render(entries, TaskFilter(), "en", NOW, limit=10).caption
        == "filters: open tasks · Ctrl-C quits"
    )


def test_an_empty_view_says_so_once_loaded() -> None:
    assert "no tasks match" in _text(render([], TaskFilter(), "en", NOW))
    loading = _text(render([], TaskFilter(), "en", NOW, loading=True))
    assert "reading the tasks" in loading
    assert "no tasks match" not in loading


def test_priorities_have_their_colours() -> None:
    entries = [_entry(task_id=f"a~4001~{p.value}", priority=p, created_at=NOW) for p in Priority]
    table = render(entries, TaskFilter(), "en", NOW)
    cells = list(table.columns[4].cells)
    assert [str(c.style) for c in cells] == ["bold red", "dark_orange", "yellow", "dim"]


# The board: state and transition records to changes --------------------------------------


def _state(task: Task, seq: int | None) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    headers = [] if seq is None else [("ce_id", f"{task.task_id}:{seq}:state".encode())]
    return task.task_id.encode(), dumps(task.to_wire()), headers


def _event(task: Task, seq: int, kind: TaskEventType) -> tuple[bytes, bytes]:
    event = TaskEvent(
        id=f"{task.task_id}:{seq}",
        task_id=task.task_id,
        seq=seq,
        type=kind,
        at=task.updated_at,
        status=task.status,
        priority=task.priority,
    )
    return task.task_id.encode(), dumps(event.to_wire())


def test_a_new_task_is_one_change_with_its_transitions_whichever_topic_comes_first() -> None:
    task = _task()
    for order in ("state first", "events first"):
        board = Board()
        changes = []
        if order == "state first":
            changes += board.apply_state(*_state(task, 2), now=0.0)
        changes += board.apply_event(*_event(task, 1, TaskEventType.CREATED))
        changes += board.apply_event(*_event(task, 2, TaskEventType.DISPATCHED))
        if order == "events first":
            changes += board.apply_state(*_state(task, 2), now=0.0)
        assert len(changes) == 1, order
        assert changes[0].task == task
        assert changes[0].previous is None
        assert changes[0].events == (TaskEventType.CREATED, TaskEventType.DISPATCHED)
        assert board.entries[task.task_id].last_event is TaskEventType.DISPATCHED


def test_the_next_change_carries_only_its_own_transitions_and_the_previous_state() -> None:
    board = Board()
    first = _task()
    board.apply_event(*_event(first, 1, TaskEventType.CREATED))
    board.apply_event(*_event(first, 2, TaskEventType.DISPATCHED))
    board.apply_state(*_state(first, 2), now=0.0)
    accepted = replace(first, status=Status.ACCEPTED)
    assert board.apply_state(*_state(accepted, 3), now=1.0) == []
    (change,) = board.apply_event(*_event(accepted, 3, TaskEventType.ACCEPTED))
    assert change.previous == first
    assert change.task == accepted
    assert change.events == (TaskEventType.ACCEPTED,)


def test_a_state_written_again_after_a_replay_is_no_change() -> None:
    board = Board()
    task = _task()
    board.apply_event(*_event(task, 1, TaskEventType.CREATED))
    assert len(board.apply_state(*_state(task, 1), now=0.0)) == 1
    assert board.apply_state(*_state(task, 1), now=5.0) == []
    assert board.apply_event(*_event(task, 1, TaskEventType.CREATED)) == []


def test_a_state_whose_transition_never_comes_is_reported_after_the_grace() -> None:
    board = Board(grace=2.0)
    task = _task()
    assert board.apply_state(*_state(task, 4), now=10.0) == []
    assert board.expire(11.0) == []
    (change,) = board.expire(12.0)
    assert change.task == task
    assert change.events == ()
    assert board.expire(20.0) == []


def test_a_state_without_its_cloudevents_id_is_reported_at_once() -> None:
    board = Board()
    (change,) = board.apply_state(*_state(_task(), None), now=0.0)
    assert change.events == ()
    assert board.entries[TASK_ID].seq is None


def test_records_the_console_cannot_read_are_skipped() -> None:
    board = Board()
    assert board.apply_state(b"x", b"{not json", [], now=0.0) == []
    assert board.apply_state(None, b"{}", [], now=0.0) == []
    assert board.apply_event(b"x", b'{"task_id": "x"}') == []
    assert board.entries == {}


# JSON lines ------------------------------------------------------------------------------


def test_a_json_line_is_the_task_state_plus_the_change() -> None:
    task = _task()
    line = json_line(task, (TaskEventType.CREATED, TaskEventType.DISPATCHED), snapshot=False)
    assert b"\n" not in line
    obj = loads(line)
    assert obj["event"] == "dispatched"
    assert obj["events"] == ["created", "dispatched"]
    assert obj["snapshot"] is False
    assert {k: v for k, v in obj.items() if k not in ("event", "events", "snapshot")} == (
        task.to_wire()
    )
    assert loads(json_line(task, (), snapshot=True))["event"] is None


def test_the_caption_names_the_filters_in_the_chosen_language() -> None:
    view = filter_from_options(status=("all",), priority=("P1",), domain=("fire",))
    assert view.describe("en") == "domain Fire · priority P1 · status all"
    assert view.describe("zh-CN") == "领域 消防 · 优先级 P1 · 状态 全部"
    suspended = filter_from_options(status=("suspended",), assignee=("chief-yulong",))
    assert suspended.describe("zh-CN") == "处置人 chief-yulong · 状态 挂账"
