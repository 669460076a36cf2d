"""Run the zoo (tests/zoo/zoo_models.py) through `frlite convert` and record, per case and mode,
whether it converts, which repair passes fired, or the one line it is refused with.

    .venv/bin/python -m tests.zoo.survey --out /tmp/zoo.json [--cases a,b] [--before]

All modes go through one conversion; when that is refused, each mode is converted alone so the
table says which modes work. `--before` also converts, without the repair passes, every case a
repair fired on (the "before" column of docs/coverage.md). `tests.zoo.coverage_table` turns the
JSON into that table.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from frlite.converter.core.errors import FrliteError
from frlite.converter.core.shape_spec import parse_input_shape
from frlite.converter.passes.convert_pipeline import CONVERT_PASSES, ConvertRequest, convert, planned_files
from tests.zoo.zoo_models import CASES, ZooCase

MODES = ["dense", "idct", "factorized"]
# ort-mobile is left out: onnxruntime's own converter on the very ONNX files the onnx target checks,
# 13 s a case (tests/test_convert_small_models.py covers it)
TARGETS = ["onnx", "tflite-cpu", "tflite-gpu", "tflite-nnapi"]
PRECISIONS = ["fp32", "fp16"]


def convert_case(case: ZooCase, modes: list[str], work: Path, repairs: bool = True) -> dict:
    """One conversion of `case` in `modes`: {"ok", "files", "out", "repairs", "worst", "reason", "seconds"}."""
    passes = CONVERT_PASSES if repairs else [p for p in CONVERT_PASSES if not p.name.startswith("repair_")]
    out = Path(tempfile.mkdtemp(dir=work)) / "out"
    t0 = time.perf_counter()
    req = ConvertRequest(f"tests.zoo.zoo_models:{case.name}", None, [parse_input_shape(s) for s in case.inputs], out,
                         modes=modes, targets=TARGETS, precisions=PRECISIONS)
    try:
        res = convert(req, passes=passes)
    except FrliteError as exc:
        return {"ok": False, "reason": str(exc), "seconds": round(time.perf_counter() - t0, 1)}
    except Exception as exc:  # a crash is a finding too: recorded as such, the survey goes on
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return {"ok": False, "reason": f"crash {type(exc).__name__}: {msg}", "seconds": round(time.perf_counter() - t0, 1)}
    arts = res.manifest.artifacts
    return {"ok": True, "files": len(arts), "out": str(out), "seconds": round(time.perf_counter() - t0, 1),
            "repairs": [p.name for p in res.manifest.passes if p.name.startswith("repair_")],
            "worst": {f"{a.mode}/{a.target}/{a.precision}": a.parity.max_rel_to_scale if a.parity else None for a in arts}}


def survey_case(case: ZooCase, work: Path, before: bool) -> dict:
    row: dict = {"case": case.name, "covers": case.covers, "planned": len(planned_files(MODES, TARGETS, PRECISIONS))}
    together = convert_case(case, MODES, work)
    row["all_modes"] = together
    row["modes"] = ({m: {"ok": True, "repairs": together["repairs"]} for m in MODES} if together["ok"]
                    else {m: convert_case(case, [m], work) for m in MODES})
    fired = sorted({r for m in row["modes"].values() if m["ok"] for r in m.get("repairs", [])})
    if before and fired:
        row["before"] = {m: convert_case(case, [m], work, repairs=False) for m in MODES}
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cases", default="")
    ap.add_argument("--before", action="store_true")
    args = ap.parse_args()
    wanted = [c for c in CASES if not args.cases or c.name in args.cases.split(",")]
    rows = json.loads(args.out.read_text()) if args.out.exists() else []
    done = {r["case"] for r in rows}
    with tempfile.TemporaryDirectory() as tmp:
        for case in wanted:
            if case.name in done:
                continue
            t0 = time.perf_counter()
            rows.append(survey_case(case, Path(tmp), args.before))
            args.out.write_text(json.dumps(rows, indent=1))
            status = {m: v["ok"] for m, v in rows[-1]["modes"].items()}
            print(f"{case.name}: {status} {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
