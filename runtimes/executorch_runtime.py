"""ExecuTorch programs (.pte) on this host through `executorch.runtime`, behind the Runtime interface.

A .pte's method takes and returns tensors by position; the manifest lists them in that order
(the export module's arguments and outputs), with the model's NCHW layout (no permutation) and
the program's dtype (float16 for fp16 programs). XNNPACK subgraphs run with `threads` threads.
Intermediates are not exposed: the XNNPACK delegate runs each subgraph as one opaque call, so
`frlite parity --layers` cannot compare per-layer outputs of a .pte.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from frlite.converter.core.bounded_read import check_regular_file
from frlite.converter.core.errors import FrliteError

from frlite.runtimes.base import RunOptions, Runtime, TensorSpec

VARIANTS = ("default",)  # XNNPACK delegate + portable kernels: the program decides, nothing to choose
LAYERS_NOTE = "ExecuTorch runs each XNNPACK subgraph as one opaque call: a .pte exposes no intermediate tensors"


class ExecutorchRuntime(Runtime):
    name = "executorch"

    def __init__(self, path: str | Path, options: RunOptions | None = None,
                 io_specs: dict[str, TensorSpec] | None = None, order: tuple[list[str], list[str]] | None = None) -> None:
        check_regular_file(path, "ExecuTorch program")
        try:
            from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
            from executorch.runtime import Runtime as EtRuntime
        except ImportError as exc:
            raise FrliteError(f"running a .pte needs the executorch package ({exc}); "
                              "rerun scripts/setup_venv.sh (requirements/lock.txt pins it)") from exc

        opts = options or RunOptions()
        if opts.variant not in VARIANTS:
            raise ValueError(f"unknown ExecuTorch variant {opts.variant!r}; use one of {list(VARIANTS)}")
        if order is None or io_specs is None:
            raise ValueError("an ExecuTorch program's tensors are positional: pass the manifest's input and output order")
        self.variant = opts.variant
        _unsafe_reset_threadpool(max(1, opts.threads))  # process-wide; parity runs each file in its own process
        self.program = EtRuntime.get().load_program(Path(path))
        self.method = self.program.load_method("forward")
        self._inputs = [io_specs[n] for n in order[0]]
        self._outputs = [io_specs[n] for n in order[1]]

    def inputs(self) -> list[TensorSpec]:
        return list(self._inputs)

    def outputs(self) -> list[TensorSpec]:
        return list(self._outputs)

    def run_native(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [torch.from_numpy(np.ascontiguousarray(feeds[s.name], dtype=s.dtype)) for s in self._inputs]
        outs = self.method.execute(args)
        if len(outs) != len(self._outputs):
            raise ValueError(f"the program returned {len(outs)} outputs, the manifest lists {len(self._outputs)}")
        return {s.name: o.detach().numpy().copy() for s, o in zip(self._outputs, outs)}
