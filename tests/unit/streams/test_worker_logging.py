"""The worker's root logger after startup: at the level asked for, not Faust's spinner's DEBUG."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from faust.utils.terminal.spinners import SpinnerHandler

from streams.app import Worker, create_app
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
