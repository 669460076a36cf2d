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


def fr_layer_of(module: str | None, fr_layers: set[str]) -> str | None:
    """The FR layer (its weight key, as the manifest names it) an op of `module` belongs to: the
    nearest enclosing module whose weight is an FR layer (a factorized conv's factors sit inside
    it); else "module <path>"."""
    if not module:
        return None
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n]) + ".weight"
        if key in fr_layers:
            return key
    return f"module {module}"


def check_pte_fp16(folder: Path, artifacts: list[Artifact], graphs: dict[str, tuple], samples: list[dict[str, np.ndarray]],
                   ref_outputs: list[list[np.ndarray]], out_names: list[str], tolerance: float, threads: int,
                   log: Callable[[str], None], inputs: str = "", fr_layers: set[str] | None = None) -> None:
    """Set `fp16_arith` on every fp16 .pte: its exported program walked op by op in the phone's
    arithmetic (runtimes/fp16_executor/aten_graph.py: fp16 storage, and fp16 accumulation in conv /
    linear while the multiply-adds stay within FP16_ACC_MAX_MACS), then its delegation report
    rewritten with the verdict. The .pte itself already ran in quick parity (x86 XNNPACK: fp16
    storage, fp32 accumulators)."""
    import time

    from frlite.converter.core.manifest import FP16_ACCUMULATION, STORAGE_ONLY
    from frlite.converter.core.tolerances import FP16_ACC_MAX_MACS
    from frlite.converter.executorch.pte_delegation import write_delegation_report
    from frlite.runtimes.fp16_executor.aten_graph import AtenGraphExecutor
    from frlite.runtimes.fp16_verdict import measure

    refs = [dict(zip(out_names, r)) for r in ref_outputs]
    for art in artifacts:
        if art.path not in graphs:
            continue
        graph, rep = graphs[art.path]
        t0 = time.perf_counter()
        executor = AtenGraphExecutor(graph, "fp16", threads)
        macs = executor.accumulated_macs()
        arithmetic = FP16_ACCUMULATION
        if macs > FP16_ACC_MAX_MACS:
            executor = AtenGraphExecutor(graph, "fp32", threads)
            arithmetic = STORAGE_ONLY
            log(f"  {art.path}: {macs / 1e9:.0f} G multiply-adds per run is over the {FP16_ACC_MAX_MACS / 1e9:.0f} G "
                "the fp16-accumulation emulation takes: storage rounded to fp16, accumulators kept fp32")
        runs = [executor.run([s[i.model_name] for i in art.inputs]) for s in samples]
        for run in runs:
            for st in run.stats:
                st.layer = fr_layer_of(st.layer, fr_layers or set())
        outs = [dict(zip([o.model_name for o in art.outputs], run.outputs)) for run in runs]
        art.fp16_arith = measure([r.stats for r in runs], refs, outs, tolerance, inputs=inputs, arithmetic=arithmetic,
                                 remedy="ship the fp32 .pte instead")
        log(f"  {art.path} (XNNPACK fp16, {time.perf_counter() - t0:.0f} s): {art.fp16_arith.message}")
        rep.fp16_arith = dataclasses.asdict(art.fp16_arith)
        art.extra_files.update(write_delegation_report(folder, folder / art.path, rep))
