"""The one small interface every runtime sits behind: load, describe, run named arrays.

Parity and bench use only this. Layout is part of each tensor's description and comes from the
conversion manifest, never from guessing by shape: a runtime accepts and returns arrays in the
model's own layout (that of the PyTorch model, e.g. NCHW) and converts internally.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output as the runtime holds it.

    `shape` and `layout` are the runtime's own; `perm_from_model` maps the model's (PyTorch)
    layout to it (e.g. NCHW -> NHWC is (0, 2, 3, 1)); None means identical.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    layout: str
    perm_from_model: tuple[int, ...] | None = None

    def to_runtime(self, array: np.ndarray) -> np.ndarray:
        return array if self.perm_from_model is None else np.ascontiguousarray(array.transpose(self.perm_from_model))

    def to_model(self, array: np.ndarray) -> np.ndarray:
        if self.perm_from_model is None:
            return array
        return np.ascontiguousarray(array.transpose(np.argsort(self.perm_from_model)))


@dataclass
class RunOptions:
    threads: int = 1
    variant: str = "default"  # runtime-specific kernel choice, e.g. "xnnpack", "builtin", "reference"
    extra: dict[str, object] = field(default_factory=dict)


class Runtime(ABC):
    """A loaded model in one runtime."""

    name: str = "runtime"

    @abstractmethod
    def inputs(self) -> list[TensorSpec]: ...

    @abstractmethod
    def outputs(self) -> list[TensorSpec]: ...

    @abstractmethod
    def run_native(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run with arrays already in the runtime's own layout."""

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run with arrays in the model's layout; outputs come back in the model's layout."""
        specs = {s.name: s for s in self.inputs()}
        missing = set(specs) - set(feeds)
        if missing:
            raise KeyError(f"missing inputs: {sorted(missing)}")
        native = {n: specs[n].to_runtime(np.asarray(a, dtype=specs[n].dtype)) for n, a in feeds.items()}
        raw = self.run_native(native)
        outs = {s.name: s for s in self.outputs()}
        return {n: outs[n].to_model(a) for n, a in raw.items()}
