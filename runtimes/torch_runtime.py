"""The PyTorch FR model itself behind the Runtime interface (the reference for parity)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from frlite.runtimes.base import RunOptions, Runtime, TensorSpec


class TorchRuntime(Runtime):
    name = "torch"

    def __init__(self, model: nn.Module, inputs: list[TensorSpec], outputs: list[TensorSpec],
                 options: RunOptions | None = None) -> None:
        self.model = model.eval()
        self.threads = (options or RunOptions()).threads
        self._inputs = inputs
        self._outputs = outputs

    def inputs(self) -> list[TensorSpec]:
        return list(self._inputs)

    def outputs(self) -> list[TensorSpec]:
        return list(self._outputs)

    def run_native(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.no_grad():
                args = [torch.from_numpy(np.ascontiguousarray(feeds[s.name])) for s in self._inputs]
                out = self.model(*args)
        finally:
            torch.set_num_threads(previous)
        outs = out if isinstance(out, (tuple, list)) else [out]
        if len(outs) != len(self._outputs):
            raise ValueError(f"model returned {len(outs)} outputs, expected {len(self._outputs)}")
        return {s.name: o.detach().cpu().numpy() for s, o in zip(self._outputs, outs)}
