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


REPORT_LIMIT = 64 << 20  # parity.json holds numbers only: the UNet's, 4 images x 13 runs, is ~200 KB


def read_json(path: Path) -> ParityReport:
    """A parity.json read back (e.g. by `frlite bench` to add a phone's runs): a bounded read of a
    regular file, then validated as strictly as a manifest; ManifestError (one line) otherwise."""
    from frlite.converter.core.bounded_read import read_bounded
    from frlite.converter.core.errors import ManifestError
    from frlite.converter.core.manifest_schema import dataclass_from_json
    from frlite.runtimes.parity_run import SCHEMA_VERSION

    hint = "it is not a parity report this frlite writes; re-run `frlite parity`"
    data = read_bounded(path, "parity report", ManifestError, REPORT_LIMIT)
    try:
        parsed = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ManifestError(f"{path} is not valid JSON; {hint}") from exc
    version = parsed.get("schema_version") if isinstance(parsed, dict) else None
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise ManifestError(f"{path}: schema_version is {version!r}, this frlite reads {SCHEMA_VERSION}; {hint}")
    return dataclass_from_json(ParityReport, parsed, str(path), hint, nonfinite_strings=True)
