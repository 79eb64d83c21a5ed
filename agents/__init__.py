"""citygrid's Faust agents. Importing this package registers every agent on ``streams.app.app``."""

from agents import ingest, merge

__all__ = ["ingest", "merge"]
