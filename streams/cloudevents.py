"""CloudEvents 1.0 Kafka protocol binding, binary mode: attributes in ``ce_*`` headers, data in
the value (https://github.com/cloudevents/spec, kafka-protocol-binding)."""

from __future__ import annotations

from datetime import datetime

__all__ = ["SPEC_VERSION", "binary_headers"]

SPEC_VERSION = "1.0"


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
        ("ce_specversion", SPEC_VERSION.encode()),
        ("ce_id", id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", type.encode()),
        ("ce_time", time.isoformat().encode()),
        ("content-type", b"application/json"),
    ]
    if subject is not None:
        headers.append(("ce_subject", subject.encode()))
    return headers
