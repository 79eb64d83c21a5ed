"""The pipeline's own health, for ops: the group's consumer lag per input topic and whether this
worker is ready, refreshed every ``CITYGRID_OVERDUE_CHECK``."""

from __future__ import annotations

import logging
from typing import Any

from agents.stages import ingest
from streams import metrics
from streams.app import app, is_ready, settings
from streams.lag import LagProbe
from streams.topics import EVENT_TOPICS, topic_name

__all__ = ["measure_pipeline"]

logger = logging.getLogger(__name__)

_CONTRACT_NAMES = (*EVENT_TOPICS.values(), "city.feedback")
_probe = LagProbe(
    settings, [topic_name(settings, name) for name in _CONTRACT_NAMES], ingest.group_id
)


@app.timer(interval=settings.overdue_check)  # type: ignore[untyped-decorator]  # faust is untyped
async def measure_pipeline() -> None:
    """Refresh the lag and readiness gauges (labels are contract names, without the prefix)."""
    is_ready(app)
    lag = await _probe.measure()
    for name in _CONTRACT_NAMES:
        measured = lag.get(topic_name(settings, name))
        if measured is not None:
            metrics.CONSUMER_LAG.labels(name).set(measured)


@app.on_before_shutdown.connect  # type: ignore[arg-type]  # mode types handlers too narrowly
async def _close_probe(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
    await _probe.close()
