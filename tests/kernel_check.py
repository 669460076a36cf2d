"""Validate the fp16 executor's kernels against LiteRT itself (fp32 mode: no rounding).

Two checks per file on seeded inputs:
- per op: each op's kernel fed LiteRT's own input tensors (builtin kernels, all tensors kept)
  gives LiteRT's output to 1e-5 of that output's max |value| (measured <= 4.3e-6: long conv
  sums in another order). A wrong padding, layout or option is > 1e-2.
- end to end vs XNNPACK: 1e-5 of scale, or twice what LiteRT's own builtin kernels differ from
  XNNPACK on the same input when that is larger: the UNet's batch-statistics norms amplify
  fp32 summation noise (factorized UNet at 64x96: builtin vs XNNPACK 2.0e-5, executor 1.5e-5).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from frlite.runtimes.fp16_executor import GraphExecutor

KERNEL_TOLERANCE = 1e-5


def _litert(path: Path, feeds: dict[str, np.ndarray], builtin: bool = False):  # type: ignore[no-untyped-def]
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(path), num_threads=1, experimental_preserve_all_tensors=builtin,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if builtin
                     else OpResolverType.AUTO)
    it.allocate_tensors()
    if it.get_signature_list():
        return {k: np.asarray(v) for k, v in it.get_signature_runner()(**feeds).items()}, it
    for d in it.get_input_details():  # a file without a signature: tensors by name
        it.set_tensor(d["index"], feeds[d["name"]])
    it.invoke()
    return {d["name"]: np.array(it.get_tensor(d["index"])) for d in it.get_output_details()}, it


REDUCTIONS = ("MEAN", "SUM")


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max()) / (float(np.abs(b).max()) or 1.0)


def assert_kernels_match_litert(path: Path, samples: int = 2) -> float:
    """Both checks on `path`; returns the worst end-to-end |error| / scale vs XNNPACK."""
    ex = GraphExecutor(path, "fp32")
    rng = np.random.default_rng(1)
    worst = 0.0
    for _ in range(samples):
        feeds = {n: rng.random(ex.graph.tensors[i].shape, dtype=np.float32) for n, i in ex.input_indices().items()}
        want, _ = _litert(path, feeds)
        builtin, it = _litert(path, feeds, builtin=True)
        for op in ex.graph.ops:
            args = [None if i < 0 else (ex.constant(i) if ex.constant(i) is not None
                                        else torch.from_numpy(np.array(it.get_tensor(i)))) for i in op.inputs]
            for idx, out in zip(op.outputs, ex.run_op(op.index, args)):
                ref = it.get_tensor(idx)
                rel = _rel(out.numpy(), ref)
                if op.kind in REDUCTIONS:
                    # a reduction's rounding scales with its input, not its output: the fp16-safe
                    # factorized norms average centred values whose mean is ~0 (1.8e-5 of the
                    # output's scale, 1e-9 of the input's, seen on the UNet at 64x96)
                    scale = max(float(np.abs(ref).max()), float(args[0].abs().max()))
                    rel = float(np.abs(out.numpy() - ref).max()) / (scale or 1.0)
                assert rel <= KERNEL_TOLERANCE, f"{path.name} op {op.index} {op.kind}: {rel:.2e} of scale off LiteRT"
        del it
        got, stats = ex.run(feeds)
        assert stats and not any(s.nonfinite for s in stats)  # fp32: values past 65,504 are fine here
        for name, w in want.items():
            rel = _rel(got[name], w)
            floor = 2 * _rel(builtin[name], w)
            assert rel <= max(KERNEL_TOLERANCE, floor), f"{path.name} output {name}: {rel:.2e} of scale off LiteRT"
            worst = max(worst, rel)
    return worst
