"""The survey's JSON (tests/zoo/survey.py) as the markdown table of docs/coverage.md.

    .venv/bin/python -m tests.zoo.coverage_table /tmp/zoo.json [more.json ...] > table.md
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from frlite.converter.passes.convert_pipeline import planned_files
from tests.zoo.survey import MODES, PRECISIONS, TARGETS
from tests.zoo.zoo_models import CASES

_SHORT = {"repair_strided_dilated_conv": "strided-dilated repair", "repair_same_pads": "same-pads repair",
          "repair_conv_transpose_depth_to_space": "DepthToSpace repair", "repair_erf": "Erf repair",
          "repair_layer_norm": "LayerNorm repair", "repair_dilated_conv_transpose": "dilated-ConvTranspose repair"}
# cases this change fixed outside the repair passes (so `--before` cannot re-measure them): the
# fp16-arith check of the GPU / NNAPI files had no kernel for an op onnx2tf writes, which
# refused those targets; the onnx and tflite-cpu files converted (3 of 7 files per mode)
KERNEL_FIXES = {"conv_reflect": "MIRROR_PAD", "conv_replicate": "MIRROR_PAD", "tconv_k2_s2_g2": "SPLIT",
                "up_nearest": "RESIZE_NEAREST_NEIGHBOR", "up_bilinear": "RESIZE_BILINEAR",
                "up_bilinear_ac": "RESIZE_BILINEAR"}


def _cell(result: dict, case: str = "") -> str:
    if result["ok"]:
        fired = [_SHORT.get(r, r) for r in result.get("repairs", [])]
        if case in KERNEL_FIXES:
            fired.append(f"{KERNEL_FIXES[case]} kernel of the fp16 executor")
        return "converts" + (f" ({', '.join(fired)})" if fired else "")
    return "refused: " + result["reason"].replace("|", "\\|")[:160]


def _files(result: dict, mode: str) -> int:
    return len(planned_files([mode], TARGETS, PRECISIONS)) if result["ok"] else 0


def table(rows: list[dict]) -> str:
    order = {c.name: i for i, c in enumerate(CASES)}
    rows = sorted(rows, key=lambda r: order.get(r["case"], len(order)))
    lines = ["| case | option combination | dense | idct | factorized |", "| --- | --- | --- | --- | --- |"]
    after = before = 0
    for r in rows:
        modes = r["modes"]
        lines.append(f"| `{r['case']}` | {r['covers']} | " + " | ".join(_cell(modes[m], r["case"]) for m in MODES) + " |")
        after += sum(_files(modes[m], m) for m in MODES)
        prior = r.get("before")
        if r["case"] in KERNEL_FIXES:
            before += sum(3 for m in MODES if modes[m]["ok"])
        else:
            before += sum(_files(prior[m] if prior else modes[m], m) for m in MODES)
    per_case = len(planned_files(MODES, TARGETS, PRECISIONS))
    total = per_case * len(rows)
    seconds = sum(r["all_modes"]["seconds"] for r in rows)
    head = (f"{len(rows)} models x {len(MODES)} modes x {len(TARGETS)} targets x {len(PRECISIONS)} precisions "
            f"= {total} files ({per_case} per model: ONNX files are fp32 only). "
            f"Converted and parity-checked: **{before} of {total} before the repair passes and executor kernels, {after} of {total} "
            f"after**. Survey time {seconds / 60:.1f} min for the all-modes conversions (2 cores shared with other sessions).")
    fixed = [f"`{r['case']}` {m}: {_cell(r['before'][m])}" for r in rows if r.get("before")
             for m in MODES if not r["before"][m]["ok"] and r["modes"][m]["ok"]]
    fixed += [f"`{case}` every mode: tflite-gpu / tflite-nnapi refused (the fp16 executor had no {op} kernel)"
              for case, op in KERNEL_FIXES.items() if any(r["case"] == case for r in rows)]
    return "\n".join([head, "", *lines, "", "Before the repair passes (the same cases, convert without `repair_*`):", "",
                      *[f"- {f}" for f in fixed]]) + "\n"


if __name__ == "__main__":  # one or more survey JSON files (a survey split over processes)
    sys.stdout.write(table([row for f in sys.argv[1:] for row in json.loads(Path(f).read_text())]))
