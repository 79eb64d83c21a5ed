"""Generate the JSON Schema (draft 2020-12) files device vendors validate against.

The schemas are built from the same enums, category table and field limits the codec uses, and
written to ``schemas/json/``. ``python -m schemas.generate`` rewrites them; a unit test fails when
the committed files drift from the code. Rules JSON Schema cannot express (an ``occurred_at`` at
most five minutes ahead of the receiver's clock) are stated in the descriptions.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from schemas.categories import CATEGORIES, categories_of
from schemas.codec import DEFAULT_MAX_MESSAGE_BYTES, RFC3339_PATTERN
from schemas.enums import Action, Domain, Severity, Source
from schemas.event import (
    DESCRIPTION_MAX,
    DEVICE_ID_MAX,
    EVENT_ID_MAX,
    EVIDENCE_MAX,
    FUTURE_SKEW_SECONDS,
    ID_MAX,
    MEDIA_TYPE_MAX,
    URI_MAX,
)
from schemas.feedback import NOTE_MAX, TASK_ID_MAX
from schemas.json import dumps_pretty

__all__ = ["JSON_DIR", "event_schema", "feedback_schema", "main", "rendered"]

JSON_DIR = Path(__file__).parent / "json"
_BASE_URI = "https://citygrid.dev/schemas/v1"


def _string(max_len: int, description: str) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": max_len, "description": description}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    # The codec reads null as "absent" for optional fields, as many device serialisers write it.
    return {"anyOf": [schema, {"type": "null"}]}


def _present(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": [name], "properties": {name: schema}}


def _timestamp(description: str) -> dict[str, Any]:
    return {
        "type": "string",
        "format": "date-time",
        "pattern": RFC3339_PATTERN,
        "description": description,
    }


def _evidence() -> dict[str, Any]:
    return _nullable(
        {
            "type": "array",
            "maxItems": EVIDENCE_MAX,
            "description": "Photos or clips proving the report, identified by content hash.",
            "items": {
                "type": "object",
                "required": ["sha256", "media_type"],
                "properties": {
                    "sha256": {
                        "type": "string",
                        "minLength": 64,
                        "maxLength": 64,
                        "pattern": "^[0-9a-fA-F]{64}$",
                    },
                    "media_type": _string(MEDIA_TYPE_MAX, "IANA media type, e.g. image/jpeg."),
                    "uri": _nullable(
                        _string(URI_MAX, "Where the media can be fetched, if anywhere.")
                    ),
                },
            },
        }
    )


def _category_rule(domain: Domain) -> dict[str, Any]:
    codes = [c.code for c in categories_of(domain)]
    return {
        "if": {"properties": {"domain": {"const": domain.value}}, "required": ["domain"]},
        "then": {"properties": {"category": {"enum": codes}}},
    }


def event_schema() -> dict[str, Any]:
    """The Event of CONTRACT.md as a JSON Schema."""
    categories = "; ".join(f"{c.code} {c.domain.value}: {c.name_en}" for c in CATEGORIES.values())
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{_BASE_URI}/event.schema.json",
        "title": "citygrid Event",
        "description": (
            "One observation published to city.events.<domain> by a terminal, sensor, camera, "
            f"drone or the hotline. At most {DEFAULT_MAX_MESSAGE_BYTES} bytes of UTF-8 JSON. "
            "Unknown extra fields are kept, not rejected."
        ),
        "type": "object",
        "required": [
            "event_id",
            "domain",
            "source",
            "device_id",
            "category",
            "occurred_at",
            "location",
        ],
        "properties": {
            "event_id": _string(
                EVENT_ID_MAX, "Unique per device; (device_id, event_id) is the idempotency key."
            ),
            "domain": {
                "enum": [d.value for d in Domain],
                "description": "Must match the topic the event is published to.",
            },
            "source": {"enum": [s.value for s in Source]},
            "device_id": _string(DEVICE_ID_MAX, "The publishing device."),
            "officer_id": _nullable(
                _string(ID_MAX, "The officer using the terminal; required when source is terminal.")
            ),
            "category": {
                "type": "string",
                "enum": sorted(CATEGORIES),
                "description": f"MMNN code from the category table: {categories}.",
            },
            "occurred_at": _timestamp(
                "RFC 3339 with an offset; at most "
                f"{FUTURE_SKEW_SECONDS} seconds ahead of the receiver's clock."
            ),
            "location": {
                "type": "object",
                "description": "road_id, or lat and lon (WGS84), or both.",
                "properties": {
                    "road_id": _nullable(_string(ID_MAX, "A road of the registry.")),
                    "lat": _nullable({"type": "number", "minimum": -90, "maximum": 90}),
                    "lon": _nullable({"type": "number", "minimum": -180, "maximum": 180}),
                },
                "anyOf": [
                    {
                        "required": ["lat", "lon"],
                        "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
                    },
                    {
                        "required": ["road_id"],
                        "properties": {
                            "road_id": {"type": "string"},
                            "lat": {"type": "null"},
                            "lon": {"type": "null"},
                        },
                    },
                ],
            },
            "severity": {
                "enum": [*(s.value for s in Severity), None],
                "description": "Optional; the category's default severity when absent.",
            },
            "reading": _nullable(
                {
                    "type": "object",
                    "description": "A fixed sensor's measurement; required when source is sensor.",
                    "required": ["metric", "value", "unit"],
                    "properties": {
                        "metric": _string(ID_MAX, "e.g. pm25, pm10, noise_db, bin_fill, smoke."),
                        "value": {"type": "number"},
                        "unit": _string(ID_MAX, "e.g. ug/m3, dB, ratio."),
                    },
                }
            ),
            "description": _nullable(_string(DESCRIPTION_MAX, "What the observer saw.")),
            "evidence": _evidence(),
        },
        "allOf": [
            {
                "if": {"properties": {"source": {"const": "terminal"}}, "required": ["source"]},
                "then": _present("officer_id", {"type": "string"}),
            },
            {
                "if": {"properties": {"source": {"const": "sensor"}}, "required": ["source"]},
                "then": _present("reading", {"type": "object"}),
            },
            *(_category_rule(d) for d in Domain),
        ],
    }


def feedback_schema() -> dict[str, Any]:
    """The Feedback of CONTRACT.md as a JSON Schema."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{_BASE_URI}/feedback.schema.json",
        "title": "citygrid Feedback",
        "description": (
            "An action on a task, published to city.feedback by a terminal or a dispatch console. "
            f"At most {DEFAULT_MAX_MESSAGE_BYTES} bytes of UTF-8 JSON. An action not allowed in "
            "the task's current status changes nothing and is dead-lettered as "
            "invalid_transition."
        ),
        "type": "object",
        "required": ["task_id", "action", "actor_id", "at"],
        "properties": {
            "task_id": _string(TASK_ID_MAX, "The task acted on."),
            "action": {"enum": [a.value for a in Action]},
            "actor_id": _string(ID_MAX, "The officer, supervisor or dispatcher acting."),
            "at": _timestamp("When the action was taken: RFC 3339 with an offset."),
            "note": _nullable(_string(NOTE_MAX, "Free text from the actor.")),
            "evidence": _evidence(),
            "assignee": _nullable(
                _string(ID_MAX, "Who the task goes to; required when action is dispatch.")
            ),
            "reason": _nullable(_string(NOTE_MAX, "Why, for cancel (duplicate, invalid).")),
        },
        "allOf": [
            {
                "if": {"properties": {"action": {"const": "dispatch"}}, "required": ["action"]},
                "then": _present("assignee", {"type": "string"}),
            }
        ],
    }


def rendered() -> dict[str, bytes]:
    """File name to file bytes, exactly as they are committed under ``schemas/json/``."""
    return {
        "event.schema.json": dumps_pretty(event_schema()),
        "feedback.schema.json": dumps_pretty(feedback_schema()),
    }


def main() -> int:
    """Write the schema files; prints nothing and returns 0 so it can run in ``make``."""
    JSON_DIR.mkdir(exist_ok=True)
    for name, data in rendered().items():
        (JSON_DIR / name).write_bytes(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
