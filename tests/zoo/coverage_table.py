"""The survey's JSON (tests/zoo/survey.py) as the markdown table of docs/coverage.md.

    .venv/bin/python -m tests.zoo.coverage_table /tmp/zoo.json > table.md
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from frlite.converter.passes.convert_pipeline import planned_files
from tests.zoo.survey import MODES, PRECISIONS, TARGETS

_SHORT = {"repair_strided_dilated_conv": "strided-dilated repair",
          "repair_conv_transpose_depth_to_space": "DepthToSpace repair"}


def _cell(result: dict) -> str:
    if result["ok"]:
        fired = [_SHORT.get(r, r) for r in result.get("repairs", [])]
        return "converts" + (f" ({', '.join(fired)})" if fired else "")
    return "refused: " + result["reason"].replace("|", "\\|")[:160]


def _files(result: dict, mode: str) -> int:
    return len(planned_files([mode], TARGETS, PRECISIONS)) if result["ok"] else 0


def table(rows: list[dict]) -> str:
    lines = ["| case | option combination | dense | idct | factorized |", "| --- | --- | --- | --- | --- |"]
    after = before = 0
    for r in rows:
        modes = r["modes"]
        lines.append(f"| `{r['case']}` | {r['covers']} | " + " | ".join(_cell(modes[m]) for m in MODES) + " |")
        after += sum(_files(modes[m], m) for m in MODES)
        prior = r.get("before")
        before += sum(_files(prior[m] if prior else modes[m], m) for m in MODES)
    per_case = len(planned_files(MODES, TARGETS, PRECISIONS))
    total = per_case * len(rows)
    seconds = sum(r["all_modes"]["seconds"] for r in rows)
    head = (f"{len(rows)} models x {len(MODES)} modes x {len(TARGETS)} targets x {len(PRECISIONS)} precisions "
            f"= {total} files ({per_case} per model: ONNX files are fp32 only). "
            f"Converted and parity-checked: **{before} of {total} before the repair passes, {after} of {total} "
            f"after**. Survey time {seconds / 60:.1f} min for the all-modes conversions (2 shared cores).")
    fixed = [f"`{r['case']}` {m}: {_cell(r['before'][m])}" for r in rows if r.get("before")
             for m in MODES if not r["before"][m]["ok"] and r["modes"][m]["ok"]]
    return "\n".join([head, "", *lines, "", "Before the repair passes (the same cases, convert without `repair_*`):", "",
                      *[f"- {f}" for f in fixed]]) + "\n"


if __name__ == "__main__":
    sys.stdout.write(table(json.loads(Path(sys.argv[1]).read_text())))
