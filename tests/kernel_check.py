"""Validate the fp16 executor's kernels against LiteRT itself (fp32 mode: no rounding)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from runtimes.fp16_executor import GraphExecutor

# fp32-mode executor vs LiteRT, max |error| / max |LiteRT output|: measured <= 6e-6 on every UNet
# and small-model file (torch conv vs XNNPACK summation order); a wrong padding or layout is >1e-2
KERNEL_TOLERANCE = 1e-5


def litert_outputs(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    return {k: np.asarray(v) for k, v in it.get_signature_runner()(**feeds).items()}


def assert_kernels_match_litert(path: Path, samples: int = 2) -> float:
    """Run `path` in the executor (fp32) and in LiteRT on seeded inputs; returns the worst
    |error| / scale, failing above KERNEL_TOLERANCE."""
    ex = GraphExecutor(path, "fp32")
    rng = np.random.default_rng(1)
    worst = 0.0
    for _ in range(samples):
        feeds = {n: rng.random(ex.graph.tensors[i].shape, dtype=np.float32) for n, i in ex.input_indices().items()}
        want = litert_outputs(path, feeds)
        got, stats = ex.run(feeds)
        assert stats and not any(s.bad for s in stats)
        for name, w in want.items():
            rel = float(np.abs(got[name] - w).max()) / (float(np.abs(w).max()) or 1.0)
            assert rel <= KERNEL_TOLERANCE, f"{path.name} output {name}: {rel:.2e} of scale off LiteRT"
            worst = max(worst, rel)
    return worst
