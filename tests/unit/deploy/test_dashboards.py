"""The Grafana dashboards and provisioning: in step with their generator, querying only metrics
citygrid exports, and wired to the provisioned Prometheus data source."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from schemas.enums import Domain
from schemas.json import loads
from streams.metrics import REGISTRY

GRAFANA = Path(__file__).resolve().parents[3] / "deploy" / "grafana"
DASHBOARDS_DIR = GRAFANA / "dashboards"
FIXED_UIDS = {"citygrid-pipeline", "citygrid-tasks", "citygrid-roads"}
"""Links, alerts and bookmarks point at these: a changed uid breaks them all."""
MOUNTED_AT = "/var/lib/grafana/dashboards"
DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}


def _generator() -> ModuleType:
    # deploy/ is not a package: load the script the way `make dashboards` runs it, by path.
    spec = importlib.util.spec_from_file_location("grafana_generate", GRAFANA / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generate = _generator()


def _committed() -> dict[str, dict[str, Any]]:
    return {p.stem: loads(p.read_bytes()) for p in sorted(DASHBOARDS_DIR.glob("*.json"))}


def _queries(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, expr) of every query of the dashboard."""
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield f"{board['uid']} / {panel['title']} / {target['refId']}", target["expr"]


# --- drift ---------------------------------------------------------------------------------------


def test_committed_dashboards_match_the_generator() -> None:
    expected = generate.rendered()
    committed = {p.name: p.read_bytes() for p in DASHBOARDS_DIR.glob("*.json")}
    assert sorted(committed) == sorted(expected), (
        "deploy/grafana/dashboards/ holds other files than the generator writes; "
        "run `make dashboards` and commit the result"
    )
    for name, data in expected.items():
        assert committed[name] == data, (
            f"deploy/grafana/dashboards/{name} is out of date with generate.py; "
            "run `make dashboards` and commit the result"
        )


def test_generating_twice_gives_the_same_bytes() -> None:
    assert generate.rendered() == generate.rendered()


# --- identity ------------------------------------------------------------------------------------


def test_each_dashboard_has_its_fixed_uid_and_a_unique_title() -> None:
    boards = _committed()
    assert set(boards) == FIXED_UIDS
    for stem, board in boards.items():
        assert board["uid"] == stem, f"{stem}.json holds the dashboard {board['uid']}"
    titles = [board["title"] for board in boards.values()]
    assert len(set(titles)) == len(titles), titles


@pytest.mark.parametrize("uid", sorted(FIXED_UIDS))
def test_panel_ids_are_set_and_unique_within_a_dashboard(uid: str) -> None:
    ids = [panel["id"] for panel in _committed()[uid]["panels"]]
    assert all(isinstance(i, int) and i > 0 for i in ids), ids
    assert len(set(ids)) == len(ids), ids


# --- data source and variables -------------------------------------------------------------------


@pytest.mark.parametrize("uid", sorted(FIXED_UIDS))
def test_every_query_panel_reads_the_datasource_variable(uid: str) -> None:
    board = _committed()[uid]
    for panel in board["panels"]:
        if panel["type"] in ("row", "text"):
            # Rows group and text explains: neither queries anything, so neither needs a source.
            assert not panel.get("targets"), panel["title"]
            continue
        assert panel.get("datasource") == DATASOURCE_REF, panel["title"]
        assert panel.get("targets"), f"{panel['title']} has no query"
        refs = [target["refId"] for target in panel["targets"]]
        assert len(set(refs)) == len(refs), panel["title"]


@pytest.mark.parametrize("uid", sorted(FIXED_UIDS))
def test_the_datasource_variable_defaults_to_the_provisioned_prometheus(uid: str) -> None:
    variables = {v["name"]: v for v in _committed()[uid]["templating"]["list"]}
    datasource = variables["datasource"]
    assert datasource["type"] == "datasource"
    assert datasource["query"] == "prometheus"
    assert datasource["current"]["value"] == _provisioned_datasource()["uid"]


@pytest.mark.parametrize("uid", sorted(FIXED_UIDS))
def test_the_domain_variable_offers_every_domain(uid: str) -> None:
    variables = {v["name"]: v for v in _committed()[uid]["templating"]["list"]}
    assert variables["domain"]["query"].split(",") == [d.value for d in Domain]
    assert variables["domain"]["includeAll"]


_VARIABLE = re.compile(r"\$(?:\{(\w+)[^}]*\}|(\w+))")


@pytest.mark.parametrize("uid", sorted(FIXED_UIDS))
def test_every_variable_a_query_uses_is_defined(uid: str) -> None:
    board = _committed()[uid]
    defined = {v["name"] for v in board["templating"]["list"]}
    for where, expr in _queries(board):
        used = {a or b for a, b in _VARIABLE.findall(expr)}
        builtin = {name for name in used if name.startswith("__")}
        assert used - builtin <= defined, f"{where}: {expr}"


# --- metrics -------------------------------------------------------------------------------------

# The series names Prometheus stores for each kind of client metric (`_created` is disabled).
_SERIES_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("", "_count", "_sum"),
    "info": ("_info",),
    "stateset": ("",),
    "enum": ("",),
}


def _exported_series() -> set[str]:
    return {
        family.name + suffix
        for family in REGISTRY.collect()
        for suffix in _SERIES_SUFFIXES[family.type]
    }


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
# A name not preceded by a word character, dot or `$` (no `e3` of 1e3, no variable) and not
# followed by `(` (a function or aggregation).
_NAMES = re.compile(r"(?<![\w.$])[A-Za-z_:][\w:]*(?!\s*\(|[\w:])")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "inf", "nan"}
)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: what is left once strings, label matchers,
    ranges, grouping labels, functions and keywords are taken out."""
    bare = _STRINGS.sub(" ", expr)
    for pattern in (_MATCHERS, _RANGES, _GROUPING):
        bare = pattern.sub(" ", bare)
    return {name for name in _NAMES.findall(bare) if name.lower() not in _KEYWORDS}


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("citygrid_worker_ready", {"citygrid_worker_ready"}),
        (
            'sum by (domain) (rate(citygrid_events_consumed_total{domain=~"$domain",'
            'source="unknown"}[$__rate_interval])) / sum by (domain) '
            "(rate(citygrid_events_accepted_total[5m] offset 1h))",
            {"citygrid_events_consumed_total", "citygrid_events_accepted_total"},
        ),
        (
            "histogram_quantile(0.95, sum by (domain, le) (rate(x_bucket{a='}'}[1h])))",
            {"x_bucket"},
        ),
        ("time() - max by (domain) (last_seconds) > bool 1e3", {"last_seconds"}),
        ("a * on (topic) group_left (version) b unless c", {"a", "b", "c"}),
        ("sort_desc(citygrid:kpi:rate >= 0)", {"citygrid:kpi:rate"}),
    ],
)
def test_metric_names_finds_exactly_the_selected_metrics(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


@pytest.mark.parametrize("uid", sorted(FIXED_UIDS))
def test_every_query_selects_only_metrics_citygrid_exports(uid: str) -> None:
    exported = _exported_series()
    unknown = {}
    for where, expr in _queries(_committed()[uid]):
        names = metric_names(expr)
        assert names, f"{where} selects no metric: {expr}"
        if missing := names - exported:
            unknown[where] = sorted(missing)
    assert not unknown, f"queries name metrics streams.metrics.REGISTRY does not have: {unknown}"


# --- provisioning --------------------------------------------------------------------------------


def _provisioned_datasource() -> dict[str, Any]:
    config = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    assert config["apiVersion"] == 1
    (datasource,) = config["datasources"]
    assert isinstance(datasource, dict)
    return datasource


def test_the_datasource_provisioning_fixes_the_uid_the_dashboards_use() -> None:
    datasource = _provisioned_datasource()
    assert datasource["type"] == "prometheus"
    assert datasource["uid"] == generate.DATASOURCE_UID
    assert datasource["url"] == "http://prometheus:9090"
    assert datasource["access"] == "proxy"


def test_the_dashboard_provisioning_loads_the_generated_folder() -> None:
    config = yaml.safe_load((GRAFANA / "provisioning/dashboards/citygrid.yml").read_text())
    assert config["apiVersion"] == 1
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == MOUNTED_AT
    assert provider["folder"]
    assert provider["allowUiUpdates"] is False
