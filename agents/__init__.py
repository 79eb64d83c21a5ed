"""citygrid's Faust agents. Importing this package registers every agent on ``streams.app.app``."""

from agents import deadlines, feedback, ingest, kpi, merge, pipeline

__all__ = ["deadlines", "feedback", "ingest", "kpi", "merge", "pipeline"]
