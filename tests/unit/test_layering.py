"""The domain never imports Faust (STYLE.md): the contract types and the domain rules can be
used, and tested, without the stream framework."""

from __future__ import annotations

import subprocess
import sys

PURE = [
    "schemas.codec",
    "schemas.generate",
    "schemas.i18n",
    "streams.domain.calendar",
    "streams.domain.kpi",
    "streams.domain.lifecycle",
    "streams.domain.merge",
    "streams.domain.places",
    "streams.domain.priority",
    "streams.domain.sensors",
    "streams.domain.signatures",
    "streams.domain.sla",
    "streams.domain.tasks",
]


def test_schemas_and_domain_import_without_faust() -> None:
    imports = "; ".join(f"import {module}" for module in PURE)
    check = (
        "import sys; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('faust', 'mode', 'aiokafka')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", f"{imports}; {check}"], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout
