"""The worker's two batch stages, started and stopped with the Faust app.

``ingest`` (consumer group ``<app_id>.ingest``) reads the domain topics and ``city.feedback``;
``merge`` (group ``<app_id>.merge``) reads the repartition hop and owns the slots. Both share one
:class:`~streams.engine.Outbox`. See :mod:`streams.engine` for why they are not Faust agents.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Sequence

import mode
from aiokafka.structs import TopicPartition

from agents.ingest import Ingest
from agents.merge import Merge
from streams.app import (
    app,
    failures,
    merge_config,
    outbox,
    ready_checks,
    registry,
    settings,
    slots,
    taskbook,
)
from streams.device_keys import device_keys_from_settings
from streams.engine import Stage, ensure_internal_topics, placed_topic_name
from streams.topics import EVENT_TOPICS, topic_name

__all__ = ["Pipeline", "ingest", "merge", "pipeline"]

logger = logging.getLogger(__name__)

_ingest_sink = outbox.sink()


async def _restore(partitions: Sequence[TopicPartition]) -> None:
    await slots.restore([tp.partition for tp in partitions])


async def _drop(partitions: Sequence[TopicPartition]) -> None:
    slots.drop([tp.partition for tp in partitions])


ingest = Stage(
    "ingest",
    settings,
    [
        *(topic_name(settings, name) for name in EVENT_TOPICS.values()),
        topic_name(settings, "city.feedback"),
    ],
    Ingest(settings, registry, _ingest_sink, device_keys_from_settings(settings)),
    _ingest_sink,
)
merge = Stage(
    "merge",
    settings,
    [placed_topic_name(settings)],
    Merge(settings, merge_config, slots, slots.sink, on_state=taskbook.sent),
    slots.sink,
    on_assigned=_restore,
    on_revoked=_drop,
)


class Pipeline(mode.Service):
    """Starts merge, then ingest once the road registry is loaded; stops ingest first."""

    _stages: asyncio.Task[None] | None = None

    async def on_start(self) -> None:
        await ensure_internal_topics(settings)
        await outbox.start()
        await merge.start()
        self._stages = asyncio.create_task(self._start_ingest())

    async def _start_ingest(self) -> None:
        # Placing events against a half-loaded registry would split one road's tasks in two.
        await registry.ready.wait()
        await ingest.start()
        # A stage that fails (its outputs could not be delivered after the producer's retries)
        # takes the worker down: /health fails, the worker stops as on SIGTERM, the supervisor
        # restarts it, and it resumes from the last committed batch.
        done, _ = await asyncio.wait(
            [asyncio.ensure_future(ingest.wait()), asyncio.ensure_future(merge.wait())],
            return_when=asyncio.FIRST_EXCEPTION,
        )
        for task in done:
            failure = task.exception()
            if failure is not None:
                logger.critical("pipeline stage failed, stopping the worker: %r", failure)
                failures.append(f"pipeline stage failed: {failure!r}")
                os.kill(os.getpid(), signal.SIGTERM)

    async def on_stop(self) -> None:
        if self._stages is not None:
            self._stages.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._stages
        await ingest.stop()
        await merge.stop()
        await outbox.stop()
        slots.close()


pipeline = app.service(Pipeline)
ready_checks.append(lambda: ingest.ready and merge.ready)
