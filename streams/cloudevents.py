"""CloudEvents 1.0 Kafka protocol binding, binary mode: attributes in ``ce_*`` headers, data in
the value (https://github.com/cloudevents/spec, kafka-protocol-binding)."""

from __future__ import annotations

from datetime import datetime

__all__ = ["SPEC_VERSION", "binary_headers"]

SPEC_VERSION = "1.0"

_SPEC_VERSION = ("ce_specversion", SPEC_VERSION.encode())
_CONTENT_TYPE = ("content-type", b"application/json")


def binary_headers(
    *,
    id: str,  # noqa: A002 - the CloudEvents attribute names
    type: str,  # noqa: A002
    source: str,
    time: datetime,
    subject: str | None = None,
) -> list[tuple[str, bytes]]:
    """The headers of one CloudEvent whose data is the JSON message value."""
    headers = [
        _SPEC_VERSION,
        ("ce_id", id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", type.encode()),
        ("ce_time", time.isoformat().encode()),
        _CONTENT_TYPE,
    ]
    if subject is not None:
        headers.append(("ce_subject", subject.encode()))
    return headers
