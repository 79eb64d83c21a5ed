"""citygrid's Faust agents. Importing this package registers every agent on ``streams.app.app``."""

from agents import ingest

__all__ = ["ingest"]
