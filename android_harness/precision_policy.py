"""Which GPU / NNAPI precision `frlite bench` asks for, from the measured fp16-arithmetic verdict.

benchmark_model's GPU delegate defaults to fp16 (precision loss allowed); a file whose
intermediates overflow fp16 there gives wrong outputs at full speed. So precision loss is
allowed only for an fp16 file whose fp16-arithmetic verdict is "safe": the manifest's (measured
against PyTorch at conversion), else measured here against the file's own fp32 arithmetic on a
seeded random input (a lone .tflite has no PyTorch reference). fp32 files keep fp32 on the
delegate: their storage says the app wants fp32 numerics.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frlite.converter.core.manifest import Fp16Arith

# the fp16 tolerance of the parity checker (runtimes/parity_metrics.py DEFAULT_TOLERANCES)
LONE_FILE_TOLERANCE = 3e-2


@dataclass(frozen=True)
class PrecisionChoice:
    allow_fp16: bool
    reason: str           # shown in the output and bench.json
    verdict: Fp16Arith | None


def measure_lone_file(path: Path, threads: int = 1) -> Fp16Arith:
    """fp16 arithmetic vs the same graph in fp32 arithmetic (the executor's kernels match LiteRT
    to 1e-5 of scale), on one seeded random input in [0, 1)."""
    from frlite.runtimes.fp16_executor import GraphExecutor
    from frlite.runtimes.fp16_verdict import measure

    ex32 = GraphExecutor(path, "fp32", threads)
    rng = np.random.default_rng(0)
    tensors = ex32.graph.tensors
    feeds = {n: rng.random(tensors[i].shape, dtype=np.float32) for n, i in ex32.input_indices().items()}
    ref, _ = ex32.run(feeds)
    del ex32
    ex16 = GraphExecutor(path, "fp16", threads)
    got, stats = ex16.run(feeds)
    producers = {t: op.index for op in ex16.graph.ops for t in op.outputs}
    return measure([stats], [ref], [got], LONE_FILE_TOLERANCE, None, producers)


def choose(local: Path, precision: str | None, verdict: Fp16Arith | None) -> PrecisionChoice:
    source = "measured at conversion"
    if verdict is None:
        try:
            verdict = measure_lone_file(local)
            source = "measured now against the file's own fp32 arithmetic"
        except Exception as exc:  # a file the executor cannot run: no claim of safety
            return PrecisionChoice(False, f"precision loss off: fp16 arithmetic could not be measured "
                                   f"({str(exc).splitlines()[0][:160]})", None)
    if not verdict.safe:
        return PrecisionChoice(False, f"precision loss off: {verdict.message} ({source})", verdict)
    if precision != "fp16":
        return PrecisionChoice(False, f"precision loss off: {precision or 'fp32'} file "
                               f"(fp16 arithmetic would be safe: {verdict.message}, {source})", verdict)
    return PrecisionChoice(True, f"precision loss allowed: {verdict.message} ({source})", verdict)


def as_json(choice: PrecisionChoice) -> dict:
    return {"allow_fp16": choice.allow_fp16, "reason": choice.reason,
            "verdict": dataclasses.asdict(choice.verdict) if choice.verdict else None}
