"""The Faust application: built from :class:`~streams.settings.Settings`, and nothing else.

Faust reads its own environment variables (``BROKER_URL``, ``WEB_PORT``, ...) and lets them override
``App(...)`` arguments. citygrid passes Faust an empty environment instead, so the ``CITYGRID_*``
variables are the only configuration and a stray ``WEB_PORT`` cannot silently move a worker.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from types import MappingProxyType
from typing import Any, cast

import faust
from faust.types import ConsumerT, ProducerT
from faust.utils.terminal.spinners import SpinnerHandler
from faust.web import Request, Response, View
from mode import Service

from streams import metrics
from streams.domain.calendar import Calendar, calendar_from_setting
from streams.domain.merge import MergeConfig
from streams.engine import Outbox, SlotStore
from streams.logs import RepeatFilter, logging_config
from streams.registry_feed import RegistryFeed
from streams.settings import Settings
from streams.taskbook import TaskBook
from streams.topics import kafka_client_options, topic_name

__all__ = [
    "GC_THRESHOLDS",
    "STOP_SECONDS",
    "App",
    "Worker",
    "app",
    "calendar",
    "create_app",
    "failures",
    "is_ready",
    "kpi_topic",
    "merge_config",
    "outbox",
    "ready_checks",
    "registry",
    "settings",
    "slots",
    "taskbook",
]

logger = logging.getLogger(__name__)

VERSION = "0.1.0"


def _credentials(settings: Settings) -> Any:
    if settings.security_protocol == "PLAINTEXT":
        return None
    ssl_context = kafka_client_options(settings).get("ssl_context")
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password,
            mechanism=settings.sasl_mechanism,
            ssl_context=ssl_context,
        )
    return faust.SSLCredentials(ssl_context)


failures: list[str] = []
"""Why this worker can no longer do its job (a pipeline stage died); /health reports them."""
ready_checks: list[Callable[[], bool]] = []
"""What else must hold for the worker to be ready (the pipeline's stages register theirs)."""


def is_ready(app: faust.App) -> bool:
    """Stages running with their partitions (slots restored), registry loaded."""
    ready = (
        bool(ready_checks) and all(check() for check in ready_checks) and registry.ready.is_set()
    )
    metrics.WORKER_READY.set(1 if ready else 0)
    return ready


GC_THRESHOLDS = (50_000, 20, 20)
"""The cyclic garbage collector's thresholds in a started worker (CPython's: 700, 10, 10).

A stage decides a batch of up to ``CITYGRID_BATCH_SIZE`` records at once, and each record's
objects live until the batch's end. At 700 allocations a young collection ran many times per
batch, each one promoting the batch's live objects, until they filled the oldest generation and
set off full collections: 17-18 of them, 0.2-0.3 s each with the event loop stopped, and 4.4-5.2 s
of garbage collection in all, in a latency run of the pipeline bench at 5,000 reports/s. At
50,000 most of a batch is freed by reference counting before a young collection sees it: the same
runs spent 0.14-0.38 s collecting, with at most one full collection (three alternating runs each;
the rate handled moved less than the noise). Reference counting frees everything not in a cycle
at once either way: only cyclic garbage waits longer."""


STOP_SECONDS = 5.0
"""How long a stopping app waits for each of Faust's Kafka clients (Faust and mode: 60 s for its
consumer thread, no bound for its producer's flush and stop).

Without a broker none of them can finish: aiokafka's consumer waits for a group coordinator it
cannot find, and the producer for a KPI batch it cannot send (Faust keeps a batch for 20
minutes). A SIGTERM then took 62 s to end a worker whose broker had just gone, and had not ended
one 120 s after a 35 s outage; Kubernetes gives a pod 30 s before SIGKILL. With a broker each
finishes in well under a second. Only the road KPIs go through Faust's producer (the stages have
producers of their own, which their stops bound), and the next leader publishes them afresh, so
giving up on them loses nothing that matters."""


class App(faust.App):
    """Faust's app, with a bound (:data:`STOP_SECONDS`) on each wait for its Kafka clients when
    it stops."""

    async def _producer_flush(self, logger: Any) -> None:
        await self._bounded(super()._producer_flush(logger), "flushing the producer")

    def _new_producer(self) -> ProducerT:
        producer = super()._new_producer()
        service = cast(Service, producer)
        stop = service.on_stop

        async def on_stop() -> None:
            await self._bounded(stop(), "stopping the producer")

        # Faust's Producer.stop awaits on_stop: the bound applies to this instance only.
        service.on_stop = on_stop  # type: ignore[method-assign]
        return producer

    def _new_consumer(self) -> ConsumerT:
        consumer = super()._new_consumer()
        thread = getattr(consumer, "_thread", None)
        if thread is not None:
            # mode waits this long for the consumer's thread to stop, then goes on without it.
            thread.shutdown_timeout = STOP_SECONDS
        return consumer

    async def _bounded(self, step: Awaitable[None], what: str) -> None:
        try:
            async with asyncio.timeout(STOP_SECONDS):
                await step
        except TimeoutError:
            self.log.warning(
                "gave up %s after %.0f s (is the broker reachable?); unsent KPIs are published "
                "afresh by the next leader",
                what,
                STOP_SECONDS,
            )


class Worker(faust.Worker):
    """Faust's worker, with the root logger back at the chosen level once it has started, the
    garbage collector's thresholds for batches (:data:`GC_THRESHOLDS`), and log handlers that hold
    back repeats of the Kafka clients' warnings and errors (:class:`~streams.logs.RepeatFilter`).

    With a level of WARN or above (the default) Faust turns a progress spinner on every log
    record while the worker starts, and lowers the root logger to DEBUG for it, for good: every
    ``logger.debug`` of aiokafka and Faust, and every ``logger.info`` of citygrid, then built a
    ``LogRecord`` that no handler wrote, which was 4% of a loaded worker's samples. Once the
    spinner is finished it has nothing left to turn.
    """

    _chosen_level = logging.WARNING

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self._chosen_level = level or logging.WARNING
        repeats = RepeatFilter()
        for handler in logger.handlers:
            handler.addFilter(repeats)
        super().on_setup_root_logger(logger, level)

    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        gc.set_threshold(*GC_THRESHOLDS)

    def _on_startup_end_spinner(self) -> None:
        super()._on_startup_end_spinner()
        root = logging.getLogger()
        for handler in list(root.handlers):
            if isinstance(handler, SpinnerHandler):
                root.removeHandler(handler)
        root.setLevel(self._chosen_level)


def create_app(settings: Settings) -> faust.App:
    """A Faust app configured from ``settings``, with the ops pages mounted."""
    app = App(
        settings.app_id,
        env={},
        version=1,
        broker=settings.broker_url,
        broker_credentials=_credentials(settings),
        store=settings.store,
        datadir=str(settings.data_dir),
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        # Faust declares only its internal topics (changelogs, repartitions); the contract's
        # topics come from `citygrid topics create`, with the catalogue's configuration.
        topic_allow_declare=True,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=min(3.0, settings.session_timeout / 4),
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # at-least-once with idempotent processing (STYLE.md): exactly_once needs broker
        # transactions, which the embedded broker lacks and upstream Faust handles poorly.
        processing_guarantee="at_least_once",
        # Gauges of open and overdue tasks are computed from each worker's own slots; a standby
        # copy would count them twice. A failed worker's slots are rebuilt from the changelog.
        table_standby_replicas=0,
        web_enabled=True,
        autodiscover=False,
        logging_config=logging_config(settings.log_format),
        Worker=Worker,
    )
    metrics.BUILD_INFO.info({"version": VERSION})

    @app.page("/metrics")
    async def _metrics(web: View, request: Request) -> Response:
        # aiohttp refuses a charset inside content_type, so the header is set whole.
        return web.bytes(
            metrics.exposition(), headers={"Content-Type": metrics.CONTENT_TYPE_LATEST}
        )

    @app.page("/health")
    async def _health(web: View, request: Request) -> Response:
        if failures:
            return web.json({"status": "failed", "reasons": failures}, status=503)
        return web.json({"status": "ok"})

    @app.page("/ready")
    async def _ready(web: View, request: Request) -> Response:
        ready = is_ready(app)
        return web.json({"ready": ready}, status=200 if ready else 503)

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]  # mode types handlers too narrowly
    async def _rebalanced(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        metrics.REBALANCES.inc()

    return app


settings = Settings.from_env()
app = create_app(settings)


registry = RegistryFeed(settings)


calendar: Calendar = calendar_from_setting(settings.calendar)

merge_config = MergeConfig(
    merge_window=timedelta(seconds=settings.merge_window),
    rebound_horizon=timedelta(seconds=settings.rebound_horizon),
    dedup_horizon=timedelta(seconds=settings.dedup_horizon),
    time_limits=MappingProxyType(settings.time_limit_minutes),
    calendar=calendar,
    max_task_reports=settings.max_task_reports,
)

kpi_topic = app.topic(
    topic_name(settings, "city.kpi.roads"), key_serializer="raw", value_serializer="raw"
)

taskbook = TaskBook(settings, on_disk=True, latest_only=True)
"""Every task's latest state, the finished ones on local disk (the API's and the KPIs' input)."""

outbox = Outbox(settings)
"""The worker's producer, shared by the pipeline's stages and the deadline clock."""
slots = SlotStore(settings, outbox.sink(), merge_config)
"""The merge state of the slots on this worker's partitions (the merge stage's store)."""


@app.task  # type: ignore[untyped-decorator]  # faust is untyped
async def _follow_registry() -> None:
    await registry.run()


@app.task  # type: ignore[untyped-decorator]  # faust is untyped
async def _follow_tasks() -> None:
    try:
        await taskbook.run()
    finally:
        taskbook.close()


import streams.api  # noqa: E402, F401 - mounts the dispatch board and the HTTP API on app
