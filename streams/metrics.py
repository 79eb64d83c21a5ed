"""citygrid's Prometheus metrics: names and labels of CONTRACT.md, base units, one registry.

Label values come only from the schema enums (and community names), never from ids.
"""

from __future__ import annotations

from prometheus_client import (
    GC_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from schemas.enums import Domain, Priority, RejectReason, Source

__all__ = [
    "BATCH_PHASE_SECONDS",
    "BATCH_RECORDS",
    "BATCH_SECONDS",
    "BUILD_INFO",
    "CONSUMER_LAG",
    "CONTENT_TYPE_LATEST",
    "EVENTS_ACCEPTED",
    "EVENTS_CONSUMED",
    "EVENTS_DUPLICATE",
    "EVENTS_REJECTED",
    "EVENT_LAG",
    "FEEDBACK_CONSUMED",
    "KPI_RATE",
    "LAST_EVENT",
    "REBALANCES",
    "REGISTRY",
    "SENSOR_READINGS",
    "SLOTS",
    "TASKS_CREATED",
    "TASKS_MERGED",
    "TASKS_OPEN",
    "TASKS_OVERDUE",
    "TASKS_OVERDUE_TOTAL",
    "TASKS_WAITING_DISPATCH",
    "TASK_BOOK",
    "TASK_DISPATCH_SECONDS",
    "TASK_REBOUNDS",
    "TASK_RESOLUTION_SECONDS",
    "TASK_REWORKS",
    "TASK_TRANSITIONS",
    "UNKNOWN_SOURCE",
    "WORKER_READY",
    "exposition",
]

# The `_created` series double every counter for a feature Prometheus does not use by default.
disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated

REGISTRY = CollectorRegistry(auto_describe=True)
# The process's CPU, memory and file descriptors (process_*) and its garbage collections
# (python_gc_*), as prometheus_client's default registry has them.
REGISTRY.register(PROCESS_COLLECTOR)
REGISTRY.register(GC_COLLECTOR)

UNKNOWN_SOURCE = "unknown"
"""The ``source`` label of a consumed message whose source could not be read (it was refused)."""

EVENTS_CONSUMED = Counter(
    "citygrid_events_consumed_total",
    "Input event messages read from the four domain topics, accepted or not.",
    ["domain", "source"],
    registry=REGISTRY,
)
EVENTS_ACCEPTED = Counter(
    "citygrid_events_accepted_total",
    "Valid events that changed a slot: merged, opened a task, or moved a sensor's run.",
    ["domain", "source"],
    registry=REGISTRY,
)
EVENTS_DUPLICATE = Counter(
    "citygrid_events_duplicate_total",
    "Valid events already seen: the same (device_id, event_id) again, or an older sensor reading.",
    ["domain"],
    registry=REGISTRY,
)
SENSOR_READINGS = Counter(
    "citygrid_sensor_readings_total",
    "Sensor readings that made no report: under the threshold (below) or not yet sustained "
    "(pending).",
    ["domain", "outcome"],
    registry=REGISTRY,
)
TASKS_CREATED = Counter(
    "citygrid_tasks_created_total",
    "Tasks opened, rebounds included.",
    ["domain"],
    registry=REGISTRY,
)
TASK_REBOUNDS = Counter(
    "citygrid_task_rebounds_total",
    "Tasks opened at a place within the rebound horizon after a task there was closed.",
    ["domain"],
    registry=REGISTRY,
)
TASKS_MERGED = Counter(
    "citygrid_task_merges_total",
    "Reports merged into an existing task instead of opening one.",
    ["domain"],
    registry=REGISTRY,
)
FEEDBACK_CONSUMED = Counter(
    "citygrid_feedback_consumed_total",
    "Feedback messages read from city.feedback, by outcome (applied, duplicate or dead_lettered).",
    ["outcome"],
    registry=REGISTRY,
)
TASK_TRANSITIONS = Counter(
    "citygrid_task_transitions_total",
    "Task transitions applied, by domain and TaskEvent type.",
    ["domain", "type"],
    registry=REGISTRY,
)
TASK_REWORKS = Counter(
    "citygrid_task_reworks_total",
    "Failed verifications that sent a task back to its assignee (返工).",
    ["domain"],
    registry=REGISTRY,
)
TASKS_OVERDUE_TOTAL = Counter(
    "citygrid_task_deadlines_missed_total",
    "Tasks that passed their deadline without being handled.",
    ["domain"],
    registry=REGISTRY,
)
TASKS_OPEN = Gauge(
    "citygrid_tasks_open",
    "Open tasks (not closed or cancelled) held by this worker, by domain and community.",
    ["domain", "community"],
    registry=REGISTRY,
)
SLOTS = Gauge(
    "citygrid_slots",
    "Slots this worker holds: in memory (open tasks, sensor runs) or on local disk (closed "
    "tasks, kept for rebounds and repeats until their horizons pass).",
    ["where"],
    registry=REGISTRY,
)
TASK_BOOK = Gauge(
    "citygrid_task_book",
    "Task states this worker keeps for the API and the KPIs: memory (open tasks, and the "
    "latest finished ones: the last hour's, at most 2,000), disk (finished tasks of the KPI "
    "window and a day).",
    ["where"],
    registry=REGISTRY,
)
TASKS_OVERDUE = Gauge(
    "citygrid_tasks_overdue",
    "Open tasks past their deadline held by this worker.",
    ["domain"],
    registry=REGISTRY,
)
_LATENCY_BUCKETS = (1, 5, 15, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 8 * 3600, 86400, 3 * 86400)
TASK_DISPATCH_SECONDS = Histogram(
    "citygrid_task_dispatch_seconds",
    "From a task's first report to its (first) dispatch.",
    ["domain"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
TASK_RESOLUTION_SECONDS = Histogram(
    "citygrid_task_resolution_seconds",
    "From a task's first report to its closure.",
    ["domain"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
TASKS_WAITING_DISPATCH = Gauge(
    "citygrid_tasks_waiting_dispatch",
    "Open tasks still registered: nobody has been dispatched (no road chief, or a vacant post).",
    ["domain", "priority"],
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "citygrid_consumer_lag_messages",
    "Messages the worker group has not yet committed on each input topic (group-wide).",
    ["topic"],
    registry=REGISTRY,
)
LAST_EVENT = Gauge(
    "citygrid_last_event_processed_timestamp_seconds",
    "Unix time this worker last processed an event of the domain.",
    ["domain"],
    registry=REGISTRY,
)
REBALANCES = Counter(
    "citygrid_rebalances_total",
    "Consumer group rebalances this worker went through.",
    registry=REGISTRY,
)
WORKER_READY = Gauge(
    "citygrid_worker_ready",
    "1 when the worker has its partitions, its tables recovered and the registry loaded.",
    registry=REGISTRY,
)
KPI_RATE = Gauge(
    "citygrid_kpi_ratio",
    "Evaluation rates over the KPI window, published by the leader worker.",
    ["level", "name", "kpi"],
    registry=REGISTRY,
)
EVENTS_REJECTED = Counter(
    "citygrid_events_rejected_total",
    "Input messages dead-lettered to city.events.dlq, by reason.",
    ["reason"],
    registry=REGISTRY,
)
EVENT_LAG = Histogram(
    "citygrid_event_lag_seconds",
    "Time from an event's occurred_at to its processing by citygrid.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
    registry=REGISTRY,
)
BATCH_SECONDS = Histogram(
    "citygrid_batch_seconds",
    "Time to handle one batch in a stage (ingest, merge): decide, send, wait for acks, commit.",
    ["stage"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
BATCH_RECORDS = Histogram(
    "citygrid_batch_records",
    "Records handled per batch in a stage.",
    ["stage"],
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000),
    registry=REGISTRY,
)
BATCH_PHASE_SECONDS = Histogram(
    "citygrid_batch_phase_seconds",
    "Where a stage's batch time goes: decide (CPU, on the event loop), acks (handing its outputs "
    "to the producer and the broker acknowledging them; the next batch is decided meanwhile), "
    "commit (its offsets).",
    ["stage", "phase"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
BUILD_INFO = Info("citygrid_build", "Version of the running citygrid.", registry=REGISTRY)


def _prime() -> None:
    # Series that exist at zero from the start make rate() and absence alerts meaningful.
    for domain in Domain:
        for source in (*Source, UNKNOWN_SOURCE):
            EVENTS_CONSUMED.labels(domain.value, str(source))
        for source in Source:
            EVENTS_ACCEPTED.labels(domain.value, source.value)
        EVENTS_DUPLICATE.labels(domain.value)
        TASKS_CREATED.labels(domain.value)
        TASK_REBOUNDS.labels(domain.value)
        TASKS_MERGED.labels(domain.value)
        TASK_REWORKS.labels(domain.value)
        for priority in Priority:
            TASKS_WAITING_DISPATCH.labels(domain.value, priority.value)
        TASKS_OVERDUE_TOTAL.labels(domain.value)
        TASKS_OVERDUE.labels(domain.value)
        for outcome in ("below", "pending"):
            SENSOR_READINGS.labels(domain.value, outcome)
    for outcome in ("applied", "dead_lettered"):
        FEEDBACK_CONSUMED.labels(outcome)
    for reason in RejectReason:
        EVENTS_REJECTED.labels(reason.value)


_prime()


def exposition() -> bytes:
    """The registry in the Prometheus text format."""
    return generate_latest(REGISTRY)
