"""citygrid's stages and timers. Importing this package registers them on ``streams.app.app``."""

from agents import deadlines, kpi, pipeline, stages

__all__ = ["deadlines", "kpi", "pipeline", "stages"]
