"""citygrid's Faust agents. Importing this package registers every agent on ``streams.app.app``."""

from agents import deadlines, feedback, ingest, merge

__all__ = ["deadlines", "feedback", "ingest", "merge"]
