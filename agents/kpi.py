"""The road KPIs (综合评价): every ``CITYGRID_KPI_INTERVAL`` the leader worker recomputes the
evaluation of every road, community, domain and the district from the task states, publishes each
road's KPIs, score, rank and red flag to the compacted ``city.kpi.roads`` (only when they changed),
and exposes the community, domain and district rates as Prometheus gauges (roads are too many for
labels). The computation runs in a thread, off the event loop that serves the stages."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from schemas.json import dumps, dumps_kept
from streams import metrics
from streams.app import app, kpi_topic, registry, settings, taskbook
from streams.domain.kpi import Counts, KpiReport
from streams.taskbook import report_of

__all__ = ["publish_kpis"]

logger = logging.getLogger(__name__)

_published: dict[str, bytes] = {}
"""What this worker last wrote per road, so an unchanged road is not written again."""

_RATES = ("on_time_handling_rate", "on_time_closure_rate", "rework_rate", "rebound_rate")


def _set_rates(level: str, name: str, counts: Counts) -> None:
    for rate in _RATES:
        value = getattr(counts, rate)
        gauge = metrics.KPI_RATE.labels(level, name, rate.removesuffix("_rate"))
        gauge.set(float("nan") if value is None else value)


def _gauges(report: KpiReport) -> None:
    metrics.KPI_RATE.clear()
    _set_rates("district", "all", report.district.window)
    for community, kpi in report.communities.items():
        _set_rates("community", community, kpi.window)
    for domain, kpi in report.domains.items():
        _set_rates("domain", domain, kpi.window)


def _step_down() -> None:
    # A former leader must not keep exporting its last figures beside the new leader's.
    metrics.KPI_RATE.clear()
    _published.clear()


@app.timer(interval=settings.kpi_interval)  # type: ignore[untyped-decorator]  # faust is untyped
async def publish_kpis() -> None:
    """Recompute and publish the KPIs (leader only: one writer for city.kpi.roads)."""
    now = datetime.now(UTC)
    if taskbook.ready.is_set():
        # Every worker keeps a task book (the API reads it), so every worker prunes its own.
        await taskbook.prune(now)
        stored = taskbook.finished
        metrics.TASK_BOOK.labels("memory").set(len(taskbook.tasks))
        on_disk = 0 if stored is None else await asyncio.to_thread(len, stored)
        metrics.TASK_BOOK.labels("disk").set(on_disk)
    if not app.is_leader():
        _step_down()
        return
    if not (taskbook.ready.is_set() and registry.ready.is_set()):
        return
    # The thread reads copies: the loop goes on changing the task book and the registry. The
    # tasks themselves are frozen, so a shallow copy is a consistent snapshot; the finished tasks
    # on disk are read as of the same instant.
    tasks, finished = await taskbook.kpi_inputs()
    roads = {road.road_id: road.community for road in registry.index}
    # Seconds of arithmetic at 100,000 tasks: run on the loop, they would stall the stages. Faust
    # awaits a timer's run before it sleeps towards the next one, so two runs never overlap.
    report = await asyncio.to_thread(
        report_of,
        tasks,
        finished,
        now=now,
        window=timedelta(seconds=settings.kpi_window),
        red_flags=settings.red_flags,
        roads=roads,
    )
    if not app.is_leader():
        # Leadership moved while the thread computed: the new leader publishes its own.
        _step_down()
        return
    written = 0
    for road in report.roads:
        wire = road.to_wire()
        # as_of and window_start move every run; compare the rest, so unchanged roads stay put.
        fingerprint = dumps_kept(
            {k: v for k, v in wire.items() if k not in ("as_of", "window_start")}
        )
        if _published.get(road.road_id) == fingerprint:
            continue
        await kpi_topic.send(key=road.road_id.encode(), value=dumps(wire))
        _published[road.road_id] = fingerprint
        written += 1
    _gauges(report)
    if written:
        logger.info("published KPIs of %d road(s)", written)
