"""The worker after startup: the root logger at the level asked for, not Faust's spinner's DEBUG;
the garbage collector at thresholds for batches."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator

import pytest
from faust.utils.terminal.spinners import SpinnerHandler

from streams.app import GC_THRESHOLDS, Worker, create_app
from streams.logs import RepeatFilter
from streams.settings import Settings


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield root
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.mark.parametrize(("asked", "level"), [("warn", logging.WARNING), ("info", logging.INFO)])
def test_the_root_logger_is_back_at_the_chosen_level_once_started(
    root_logger: logging.Logger, asked: str, level: int
) -> None:
    app = create_app(Settings.from_env({}))
    assert app.conf.Worker is Worker
    worker = Worker(app, loglevel=asked, redirect_stdouts=False, quiet=True)
    worker._setup_logging()
    if level >= logging.WARNING:
        # Faust's premise: its startup spinner turns on every record, down to DEBUG.
        assert root_logger.level == logging.DEBUG
    worker._on_startup_end_spinner()
    assert root_logger.level == level
    assert not any(isinstance(h, SpinnerHandler) for h in root_logger.handlers)
    assert not logging.getLogger("agents.merge").isEnabledFor(level - 1)
    # Every handler holds back the Kafka clients' repeated complaints, with one shared memory.
    filters = {
        id(f) for h in root_logger.handlers for f in h.filters if isinstance(f, RepeatFilter)
    }
    assert root_logger.handlers and len(filters) == 1


@pytest.fixture
def gc_thresholds() -> Iterator[tuple[int, int, int]]:
    thresholds = gc.get_threshold()
    yield thresholds
    gc.set_threshold(*thresholds)


async def test_a_started_worker_collects_garbage_at_batch_thresholds(
    root_logger: logging.Logger, gc_thresholds: tuple[int, int, int]
) -> None:
    app = create_app(Settings.from_env({}))
    worker = Worker(app, loglevel="warn", redirect_stdouts=False, quiet=True)
    worker._setup_logging()
    assert gc.get_threshold() == gc_thresholds
    await worker.on_startup_finished()
    assert gc.get_threshold() == GC_THRESHOLDS
