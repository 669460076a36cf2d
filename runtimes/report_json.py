"""parity.json: every number of a parity run (schema in docs/parity.md, `schema_version`)."""
from __future__ import annotations

import json
import math
from pathlib import Path

from frlite.runtimes.parity_run import ParityReport


def _clean(x):  # type: ignore[no-untyped-def]
    """JSON has no inf/nan: write them as strings a reader recognises."""
    if isinstance(x, float) and not math.isfinite(x):
        return "inf" if x > 0 else ("-inf" if x < 0 else "nan")
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


def write_json(report: ParityReport, path: Path) -> Path:
    path.write_text(json.dumps(_clean(report.to_json()), indent=2) + "\n")
    return path
