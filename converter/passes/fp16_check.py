"""The fp16-arithmetic check of `frlite convert --target tflite-gpu|tflite-nnapi`.

Host parity runs every .tflite on x86 XNNPACK in fp32; the GPU delegate with precision loss
allowed and NNAPI with allow_fp16 store every tensor in fp16. Each file meant for those targets
is run once more through the fp16 executor on the quick-parity inputs (`--inputs`, else seeded); the verdict goes into the
manifest, the compat report and convert.log. An unsafe file is still written (it is right in
fp32 and runs with precision loss off); it is not called delegate-ready, and `frlite bench`
turns precision loss off for it.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np

from frlite.converter.core.manifest import Artifact
from frlite.converter.passes.context import targets_by_file


def check_fp16_arithmetic(folder: Path, artifacts: list[Artifact], samples: list[dict[str, np.ndarray]],
                          ref_outputs: list[list[np.ndarray]], out_names: list[str], tolerance: float,
                          threads: int, log: Callable[[str], None], inputs: str = "") -> None:
    """Set `fp16_arith` on every gpu/nnapi .tflite artifact (one executor run per file) and
    rewrite its compat report with the verdict."""
    from frlite.runtimes.base import RunOptions
    from frlite.runtimes.fp16_arith_runtime import Fp16ArithRuntime
    from frlite.runtimes.fp16_verdict import measure
    from frlite.runtimes.loader import open_artifact

    from frlite.converter.delegates.delegate_compat import write_compat_report

    verdicts: dict[str, object] = {}
    refs = [dict(zip(out_names, r)) for r in ref_outputs]
    checked = [a for a in artifacts if a.computes_in_fp16_on_delegates]
    targets = targets_by_file(checked)  # one file serves gpu and nnapi: run and logged once
    for art in checked:
        if art.path not in verdicts:
            rt = open_artifact(folder, art, RunOptions(threads=threads, variant="fp16-arith"))
            outs = [rt.run(s) for s in samples]
            inner = rt.inner  # type: ignore[attr-defined]
            assert isinstance(inner, Fp16ArithRuntime)
            verdicts[art.path] = measure(inner.runs, refs, outs, tolerance, art.layer_outputs, inner.producers(),
                                         inputs=inputs)
            del rt, inner, outs
            log(f"  {art.path} ({', '.join(targets[(art.path, art.runtime)])}): {verdicts[art.path].message}")  # type: ignore[attr-defined]
        art.fp16_arith = verdicts[art.path]  # type: ignore[assignment]
        if "compat_json" in art.extra_files:
            write_compat_report(folder, folder / art.path, art.target, art.precision,
                                dataclasses.asdict(art.fp16_arith))  # type: ignore[arg-type]
