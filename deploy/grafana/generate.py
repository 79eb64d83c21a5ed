"""Generate citygrid's Grafana dashboards (dashboards as code) into ``deploy/grafana/dashboards/``.

The dashboards are built with Grafana's Foundation SDK on citygrid's raw metrics only, with fixed
uids and panel ids, and written as sorted, indented JSON. ``make dashboards`` rewrites them; a unit
test fails when the committed files drift from this module or query a metric citygrid does not
export.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.builders import (
    bargauge,
    common,
    dashboard,
    prometheus,
    stat,
    table,
    text,
    timeseries,
)
from grafana_foundation_sdk.cog import variants
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.common import (
    BarGaugeDisplayMode,
    BigValueColorMode,
    BigValueGraphMode,
    BigValueTextMode,
    LegendDisplayMode,
    LegendPlacement,
    StackingMode,
    VizOrientation,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from schemas.enums import Domain
from streams.metrics import UNKNOWN_SOURCE

__all__ = [
    "DASHBOARDS",
    "DASHBOARDS_DIR",
    "DATASOURCE_TYPE",
    "DATASOURCE_UID",
    "KPIS",
    "main",
    "pipeline",
    "rendered",
    "roads",
    "tasks",
]

DASHBOARDS_DIR = Path(__file__).parent / "dashboards"

DATASOURCE_TYPE = "prometheus"
DATASOURCE_UID = "citygrid-prometheus"
"""The uid ``provisioning/datasources/prometheus.yml`` gives the Prometheus data source."""

KPIS = {
    "on_time_handling": "On-time handling 按期处置率",
    "on_time_closure": "On-time closure 按期结案率",
    "rework": "Rework 返工率",
    "rebound": "Rebound 反弹率",
}
"""The ``kpi`` label values of ``citygrid_kpi_ratio`` (README, KPIs), with their display names."""

_LOWER_IS_BETTER = frozenset({"rework", "rebound"})

_DS = model.DataSourceRef(type_val=DATASOURCE_TYPE, uid="${datasource}")
_DOMAIN = 'domain=~"$domain"'
# Tasks open, close and move a few times an hour per domain: a window of $__rate_interval
# (a few scrapes) would mostly see no change at all.
_TASK_WINDOW = "1h"


# --- panels ---------------------------------------------------------------------------------------


def _q(expr: str, legend: str = "__auto") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend)


def _instant(expr: str, legend: str = "__auto") -> prometheus.Dataquery:
    return _q(expr, legend).instant()


def _refs(queries: tuple[prometheus.Dataquery, ...]) -> list[Builder[variants.Dataquery]]:
    # A panel's queries are A, B, C... in the order they are listed.
    return [q.ref_id(chr(ord("A") + i)) for i, q in enumerate(queries)]


def _thresholds(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    return (
        dashboard.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )


_NEUTRAL = _thresholds((None, "green"))
_HIGH_IS_GOOD = _thresholds((None, "red"), (0.8, "orange"), (0.9, "green"))
_LOW_IS_GOOD = _thresholds((None, "green"), (0.05, "orange"), (0.1, "red"))


def _series(
    title: str,
    description: str,
    *queries: prometheus.Dataquery,
    unit: str = "short",
    width: int = 12,
    height: int = 8,
    stacked: bool = False,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(_DS)
        .targets(_refs(queries))
        .unit(unit)
        .min(0)
        .span(width)
        .height(height)
        .legend(
            common.VizLegendOptions()
            .display_mode(LegendDisplayMode.TABLE)
            .placement(LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
        )
    )
    if stacked:
        panel = panel.stacking(common.StackingConfig().mode(StackingMode.NORMAL)).fill_opacity(30)
    return panel


def _stat(
    title: str,
    description: str,
    *queries: prometheus.Dataquery,
    unit: str = "short",
    thresholds: dashboard.ThresholdsConfig = _NEUTRAL,
    width: int = 6,
    height: int = 5,
) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(_DS)
        .targets(_refs(queries))
        .unit(unit)
        .thresholds(thresholds)
        .span(width)
        .height(height)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .text_mode(BigValueTextMode.VALUE_AND_NAME)
        .color_mode(BigValueColorMode.VALUE)
        .graph_mode(BigValueGraphMode.NONE)
    )


def _ranking(
    title: str,
    description: str,
    query: prometheus.Dataquery,
    *,
    thresholds: dashboard.ThresholdsConfig,
) -> bargauge.Panel:
    return (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(_DS)
        .targets(_refs((query,)))
        .unit("percentunit")
        .min(0)
        .max(1)
        .thresholds(thresholds)
        .span(6)
        .height(10)
        .orientation(VizOrientation.HORIZONTAL)
        .display_mode(BarGaugeDisplayMode.GRADIENT)
        .show_unfilled(True)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )


def _matrix(title: str, description: str, expr: str, row_name: str) -> table.Panel:
    # One instant query of citygrid_kpi_ratio as a table, folded into a row per `name` (community
    # or domain) and a column per `kpi`; Grafana names the first column "name\kpi".
    corner = "name\\kpi"
    return (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(_DS)
        .targets(_refs((_instant(expr).format(PromQueryFormat.TABLE),)))
        .unit("percentunit")
        .decimals(1)
        .span(12)
        .height(9)
        .with_transformation(
            model.DataTransformerConfig(
                id_val="groupingToMatrix",
                options={
                    "rowField": "name",
                    "columnField": "kpi",
                    "valueField": "Value",
                    "emptyValue": "null",
                },
            )
        )
        .with_transformation(
            model.DataTransformerConfig(
                id_val="organize",
                options={
                    "renameByName": {corner: row_name, **KPIS},
                    "indexByName": {
                        corner: 0,
                        **{kpi: i + 1 for i, kpi in enumerate(KPIS)},
                    },
                },
            )
        )
    )


# --- dashboards -----------------------------------------------------------------------------------


def _base(uid: str, title: str, description: str) -> dashboard.Dashboard:
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["citygrid"])
        .time("now-6h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .link(
            dashboard.DashboardLink("citygrid")
            .type(model.DashboardLinkType.DASHBOARDS)
            .tags(["citygrid"])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
        .with_variable(
            dashboard.DatasourceVariable("datasource")
            .label("Data source")
            .type(DATASOURCE_TYPE)
            .current(model.VariableOption(text="Prometheus", value=DATASOURCE_UID))
        )
    )


def _domain_variable() -> dashboard.CustomVariable:
    return (
        dashboard.CustomVariable("domain")
        .label("Domain 领域")
        .values(",".join(d.value for d in Domain))
        .multi(True)
        .include_all(True)
        .current(model.VariableOption(text=["All"], value=["$__all"]))
    )


def _numbered(board: dashboard.Dashboard) -> model.Dashboard:
    # Panel ids in layout order: stable across runs, unique within the dashboard.
    built = board.build()
    for number, panel in enumerate(built.panels or [], start=1):
        panel.id_val = number
    return built


def pipeline() -> model.Dashboard:
    """Ingest, dead letters, duplicates, lag and the workers' health."""
    rate = "[$__rate_interval]"
    consumed = f"citygrid_events_consumed_total{{{_DOMAIN}}}"
    refused = f'citygrid_events_consumed_total{{{_DOMAIN},source="{UNKNOWN_SOURCE}"}}'
    lag = "citygrid_event_lag_seconds_bucket"
    board = (
        _base(
            "citygrid-pipeline",
            "citygrid · Pipeline 数据管道",
            "Events in, dead letters, duplicates, consumer and event lag, and the workers.",
        )
        .with_variable(_domain_variable())
        .with_row(dashboard.Row("Ingest 接入"))
        .with_panel(
            _series(
                "Events consumed by domain",
                "Messages read from the four domain topics per second, accepted or not.",
                _q(f"sum by (domain) (rate({consumed}{rate}))", "{{domain}}"),
                unit="reqps",
                width=8,
                stacked=True,
            )
        )
        .with_panel(
            _series(
                "Events consumed by source",
                f'Messages per second by source; "{UNKNOWN_SOURCE}" is a message refused '
                "before its source could be read.",
                _q(f"sum by (source) (rate({consumed}{rate}))", "{{source}}"),
                unit="reqps",
                width=8,
                stacked=True,
            )
        )
        .with_panel(
            _series(
                "Events accepted by domain",
                "Valid events that changed a slot (merged, opened a task or moved a sensor's "
                "run), counted after the repartition hop.",
                _q(
                    f"sum by (domain) (rate(citygrid_events_accepted_total{{{_DOMAIN}}}{rate}))",
                    "{{domain}}",
                ),
                unit="reqps",
                width=8,
                stacked=True,
            )
        )
        .with_row(dashboard.Row("Dead letters and duplicates 死信与重复"))
        .with_panel(
            _series(
                "Dead-lettered by reason",
                "Messages written to city.events.dlq per second, by reason (events and feedback; "
                "not filtered by domain: the reason has no domain).",
                _q(
                    "sum by (reason) (rate(citygrid_events_rejected_total[$__rate_interval]))",
                    "{{reason}}",
                ),
                unit="reqps",
                width=8,
                stacked=True,
            )
        )
        .with_panel(
            _series(
                "Dead-lettered share of events",
                "Refused events / events consumed, per domain and overall (feedback excluded).",
                _q(
                    f"sum by (domain) (rate({refused}{rate}))"
                    f" / sum by (domain) (rate({consumed}{rate}))",
                    "{{domain}}",
                ),
                _q(f"sum(rate({refused}{rate})) / sum(rate({consumed}{rate}))", "all"),
                unit="percentunit",
                width=8,
            )
        )
        .with_panel(
            _series(
                "Duplicates by domain",
                "Valid events already seen (same device_id and event_id, or an older sensor "
                "reading) per second; a burst usually follows a replay after a worker crash.",
                _q(
                    f"sum by (domain) (rate(citygrid_events_duplicate_total{{{_DOMAIN}}}{rate}))",
                    "{{domain}}",
                ),
                unit="reqps",
                width=8,
            )
        )
        .with_panel(
            _series(
                "Feedback by outcome",
                "Feedback messages from city.feedback per second, applied or dead-lettered.",
                _q(
                    "sum by (outcome) (rate(citygrid_feedback_consumed_total[$__rate_interval]))",
                    "{{outcome}}",
                ),
                unit="reqps",
                width=24,
                height=6,
                stacked=True,
            )
        )
        .with_row(dashboard.Row("Lag 延迟"))
        .with_panel(
            _series(
                "Consumer lag by topic",
                "Messages the worker group has not committed yet, per input topic. The gauge is "
                "group-wide and every worker reports it, so the panel takes the max, not the sum.",
                _q("max by (topic) (citygrid_consumer_lag_messages)", "{{topic}}"),
                width=8,
            )
        )
        .with_panel(
            _series(
                "Event lag (occurred_at to merge)",
                "Quantiles of the time from an event's occurred_at to its merge. Devices that "
                "buffer offline raise the upper quantiles without any backlog here.",
                *(
                    _q(
                        f"histogram_quantile({q}, sum by (le) (rate({lag}[$__rate_interval])))",
                        f"p{round(q * 100)}",
                    )
                    for q in (0.5, 0.95, 0.99)
                ),
                unit="s",
                width=8,
            )
        )
        .with_panel(
            _stat(
                "Time since last event",
                "Seconds since a worker last processed an event of the domain. Quiet domains "
                "(fire) go hours without one; a busy domain going quiet is the alarm.",
                _instant(
                    "time() - max by (domain) "
                    f"(citygrid_last_event_processed_timestamp_seconds{{{_DOMAIN}}})",
                    "{{domain}}",
                ),
                unit="s",
                thresholds=_thresholds((None, "green"), (900, "orange"), (3600, "red")),
                width=8,
                height=8,
            )
        )
        .with_row(dashboard.Row("Workers 工作进程"))
        .with_panel(
            _stat(
                "Workers ready",
                "Workers ready (partitions assigned, slots restored, road registry loaded) "
                "out of the workers Prometheus scrapes.",
                _instant("sum(citygrid_worker_ready)", "ready"),
                _instant("count(citygrid_worker_ready)", "workers"),
                width=8,
            )
        )
        .with_panel(
            _stat(
                "Rebalances in the time range",
                "Consumer group rebalances counted by all workers over the dashboard's range; "
                "each one pauses processing while partitions move.",
                _instant("sum(increase(citygrid_rebalances_total[$__range]))", "rebalances"),
                thresholds=_thresholds((None, "green"), (5, "orange"), (20, "red")),
                width=8,
            )
        )
        .with_panel(
            _stat(
                "Build",
                "Workers per citygrid version: more than one version is a rolling upgrade.",
                _instant("count by (version) (citygrid_build_info)", "{{version}}"),
                width=8,
            )
        )
    )
    return _numbered(board)


def _increase(counter: str) -> str:
    return f"increase({counter}{{{_DOMAIN}}}[{_TASK_WINDOW}])"


def _quantiles(bucket: str) -> list[prometheus.Dataquery]:
    rate = f"rate({bucket}{{{_DOMAIN}}}[{_TASK_WINDOW}])"
    return [
        _q(
            f"histogram_quantile({q}, sum by (domain, le) ({rate}))",
            f"p{round(q * 100)} {{{{domain}}}}",
        )
        for q in (0.5, 0.95)
    ]


def tasks() -> model.Dashboard:
    """Open, overdue and waiting tasks, latency, transitions, rework and rebounds."""
    board = (
        _base(
            "citygrid-tasks",
            "citygrid · Tasks 任务处置",
            "Unified dispatch tasks: backlog, deadlines, dispatch and resolution latency, "
            "the GB/T 30428 workflow, rework and rebounds.",
        )
        .with_variable(_domain_variable())
        .with_row(dashboard.Row("Backlog 积压"))
        .with_panel(
            _series(
                "Open tasks by community",
                'Tasks not closed or cancelled, summed over workers; "none" is grid cells '
                "outside any registered road.",
                _q(f"sum by (community) (citygrid_tasks_open{{{_DOMAIN}}})", "{{community}}"),
                stacked=True,
            )
        )
        .with_panel(
            _series(
                "Open tasks by domain",
                "Tasks not closed or cancelled, summed over workers.",
                _q(f"sum by (domain) (citygrid_tasks_open{{{_DOMAIN}}})", "{{domain}}"),
                stacked=True,
            )
        )
        .with_panel(
            _series(
                "Overdue tasks by domain",
                "Open tasks past their deadline (working time on CITYGRID_CALENDAR).",
                _q(f"sum by (domain) (citygrid_tasks_overdue{{{_DOMAIN}}})", "{{domain}}"),
                stacked=True,
            )
        )
        .with_panel(
            _series(
                "Waiting for dispatch by priority",
                "Open tasks still registered, dispatched to nobody (a grid cell, no road chief "
                "or a vacant post): a dispatcher must assign them by hand.",
                _q(
                    f"sum by (priority) (citygrid_tasks_waiting_dispatch{{{_DOMAIN}}})",
                    "{{priority}}",
                ),
                stacked=True,
            )
        )
        .with_row(dashboard.Row("Latency 时效"))
        .with_panel(
            _series(
                "Dispatch latency p50 / p95 by domain",
                "First report to first dispatch, over tasks dispatched in the last "
                f"{_TASK_WINDOW}.",
                *_quantiles("citygrid_task_dispatch_seconds_bucket"),
                unit="s",
            )
        )
        .with_panel(
            _series(
                "Resolution latency p50 / p95 by domain",
                f"First report to closure, over tasks closed in the last {_TASK_WINDOW}.",
                *_quantiles("citygrid_task_resolution_seconds_bucket"),
                unit="s",
            )
        )
        .with_row(dashboard.Row("Workflow 流程"))
        .with_panel(
            _series(
                f"Transitions by type (per {_TASK_WINDOW})",
                "TaskEvents written, by type, over a sliding window.",
                _q(
                    f"sum by (type) ({_increase('citygrid_task_transitions_total')})",
                    "{{type}}",
                ),
                width=24,
            )
        )
        .with_panel(
            _series(
                f"Tasks created, merged and late (per {_TASK_WINDOW})",
                "Tasks opened (rebounds included) and reports merged into an open task, and "
                "tasks that missed their deadline, over a sliding window.",
                _q(f"sum({_increase('citygrid_tasks_created_total')})", "created"),
                _q(f"sum({_increase('citygrid_task_merges_total')})", "merged"),
                _q(
                    f"sum({_increase('citygrid_task_deadlines_missed_total')})",
                    "deadline missed",
                ),
                width=8,
            )
        )
        .with_panel(
            _series(
                f"Reworks and rebounds by domain (per {_TASK_WINDOW})",
                "Failed verifications (返工) and tasks opened within the rebound horizon of a "
                "closed one (反弹), over a sliding window.",
                _q(
                    f"sum by (domain) ({_increase('citygrid_task_reworks_total')})",
                    "rework {{domain}}",
                ),
                _q(
                    f"sum by (domain) ({_increase('citygrid_task_rebounds_total')})",
                    "rebound {{domain}}",
                ),
                width=8,
            )
        )
        .with_panel(
            _series(
                "Rework and rebound rates by domain (KPI window)",
                "The assessment's rates over CITYGRID_KPI_WINDOW (30 days), from the leader: "
                "rework = reworked / due for closure, rebound = rebounds / (closed + rebounds).",
                _q(
                    'citygrid_kpi_ratio{level="domain",kpi=~"rework|rebound",name=~"$domain"}',
                    "{{kpi}} {{name}}",
                ),
                unit="percentunit",
                width=8,
            )
        )
    )
    return _numbered(board)


_ROADS_NOTE = """\
#### Per-road ranking 道路排名与红旗

Roads are too many for Prometheus labels, so the leader worker publishes each road's KPIs, score
(0-100), rank (1 is the best) and red flag (红旗) to the compacted Kafka topic
**`city.kpi.roads`**, keyed by road id, whenever they change (every `CITYGRID_KPI_INTERVAL`).
Read it with [kcat](https://github.com/edenhill/kcat):

```
kcat -b <broker> -C -t city.kpi.roads -f '%k %s\\n'
```

Each value is `{road_id, community, score, rank, red_flag, window: {...}, today: {...}}`:
`window` holds the counts and rates of the rolling window (`CITYGRID_KPI_WINDOW`, 30 days),
`today` those since local midnight (China Standard Time). The ranking, best first, one line per
road (a compacted topic can still hold a road's older values, so keep the last one per key):

```
kcat -b <broker> -C -t city.kpi.roads -e -f '%s\\n' \\
  | jq -rs 'group_by(.road_id) | map(last) | sort_by(.rank) | .[]
            | [.rank, .road_id, .community, .score, .red_flag] | @tsv'
```

**Score** = 40 * on-time handling + 30 * on-time closure + 15 * (1 - rework) + 15 * (1 - rebound),
a missing rate counting as perfect. Roads rank by score, then fewer overdue tasks, then road id;
the best `CITYGRID_RED_FLAGS` (5) roads with a task due in the window hold the red flag. With
`CITYGRID_TOPIC_PREFIX` set, prefix the topic name; add `-X security.protocol=...` and the SASL
options on a secured cluster.
"""


def roads() -> model.Dashboard:
    """The assessment (综合评价): district, domain and community KPI rates, and per-road ranks."""
    ratio = "citygrid_kpi_ratio"
    # A rate with a zero denominator is NaN; `>= 0` drops it, so rankings list only real rates.
    board = (
        _base(
            "citygrid-roads",
            "citygrid · Roads 道路考核",
            "The assessment over CITYGRID_KPI_WINDOW: district, domain and community rates from "
            "Prometheus; per-road scores, ranks and red flags on the topic city.kpi.roads.",
        )
        .with_variable(_domain_variable())
        .with_variable(
            dashboard.CustomVariable("kpi")
            .label("KPI 指标")
            .values(",".join(f"{name} : {kpi}" for kpi, name in KPIS.items()))
            .current(
                model.VariableOption(text="On-time handling 按期处置率", value="on_time_handling")
            )
        )
        .with_row(dashboard.Row("District 全区"))
        .with_panel(
            _stat(
                "District KPIs 全区指标",
                "The whole district over the KPI window. Missing means no task was due.",
                _instant(f'{ratio}{{level="district"}} >= 0', "{{kpi}}"),
                unit="percentunit",
                width=12,
                height=6,
            )
        )
        .with_panel(
            _series(
                "District KPIs over time",
                "The window's rates as the leader recomputes them (every CITYGRID_KPI_INTERVAL).",
                _q(f'{ratio}{{level="district"}}', "{{kpi}}"),
                unit="percentunit",
                height=6,
            )
        )
        .with_row(dashboard.Row("Communities and domains 社区与领域"))
        .with_panel(
            _matrix(
                "Communities 社区",
                "Every community's rates over the KPI window.",
                f'{ratio}{{level="community"}} >= 0',
                "Community 社区",
            )
        )
        .with_panel(
            _matrix(
                "Domains 领域",
                "Every domain's rates over the KPI window.",
                f'{ratio}{{level="domain",name=~"$domain"}} >= 0',
                "Domain 领域",
            )
        )
        .with_panel(
            _series(
                "Communities over time: $kpi",
                "The selected KPI of each community (choose it with the KPI variable).",
                _q(f'{ratio}{{level="community",kpi="$kpi"}}', "{{name}}"),
                unit="percentunit",
            )
        )
        .with_panel(
            _series(
                "Domains over time: $kpi",
                "The selected KPI of each domain (choose it with the KPI variable).",
                _q(f'{ratio}{{level="domain",kpi="$kpi",name=~"$domain"}}', "{{name}}"),
                unit="percentunit",
            )
        )
        .with_row(dashboard.Row("Community ranking 社区排名"))
    )
    for panel in _community_rankings(ratio):
        board = board.with_panel(panel)
    board = board.with_row(dashboard.Row("Roads 道路")).with_panel(
        text.Panel()
        .title("Per-road ranking and red flags 道路排名与红旗")
        .content(_ROADS_NOTE)
        # Wide and tall enough for both commands without scrolling.
        .span(24)
        .height(15)
    )
    return _numbered(board)


def _community_rankings(ratio: str) -> list[bargauge.Panel]:
    panels = []
    for kpi, name in KPIS.items():
        low = kpi in _LOWER_IS_BETTER
        order = "sort" if low else "sort_desc"
        panels.append(
            _ranking(
                name,
                f"Communities best first ({'lowest' if low else 'highest'} {kpi} rate first); "
                "a community with no task in the denominator is left out.",
                _instant(f'{order}({ratio}{{level="community",kpi="{kpi}"}} >= 0)', "{{name}}"),
                thresholds=_LOW_IS_GOOD if low else _HIGH_IS_GOOD,
            )
        )
    return panels


DASHBOARDS: dict[str, Callable[[], model.Dashboard]] = {
    "citygrid-pipeline": pipeline,
    "citygrid-tasks": tasks,
    "citygrid-roads": roads,
}
"""Each dashboard's fixed uid (also its file name) and its builder."""


def _encode(board: model.Dashboard) -> bytes:
    text_ = json.dumps(board, cls=JSONEncoder, sort_keys=True, indent=2, ensure_ascii=False)
    return (text_ + "\n").encode()


def rendered() -> dict[str, bytes]:
    """File name to file bytes, exactly as they are committed under ``dashboards/``."""
    return {f"{uid}.json": _encode(build()) for uid, build in DASHBOARDS.items()}


def main() -> int:
    """Write the dashboards, removing ones no longer generated; prints nothing, returns 0."""
    DASHBOARDS_DIR.mkdir(exist_ok=True)
    files = rendered()
    for stale in DASHBOARDS_DIR.glob("*.json"):
        if stale.name not in files:
            stale.unlink()
    for name, data in files.items():
        (DASHBOARDS_DIR / name).write_bytes(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
