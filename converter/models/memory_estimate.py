"""Will a forward pass at the asked input size fit in memory? Answered before anything is allocated.

The model runs once under PyTorch's FakeTensorMode: every tensor has its real shape and dtype
but no storage, so `--input x:1x3x99999x99999` is traced in a fraction of a second instead of
asking for 112 GiB for the input alone. The estimate is a lower bound on the real peak (the
inputs plus the largest layer's input and output alive together); the authors' UNet at 640x959
estimates 0.32 GB against a measured 1.7 GB peak, so a refusal is never a false alarm.

The same trace catches a rank the model does not expect: torch's convolutions accept an
unbatched (C, H, W) sample, which no exporter or converter handles.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import psutil
import torch
from torch import nn

from frlite.converter.core.errors import UsageError
from frlite.converter.fr.fr_layers import fr_layers
from frlite.converter.core.shape_spec import InputShape

_FLOAT_BYTES = 4
# Trace only when inputs x this factor exceed the available memory. The authors' UNet peaks at
# 1.7 GB on a 7.4 MB input at 640x959 (230x); a model expanding its input over 1000x before a
# real forward pass of that size would be the exception, and it would fail with MemoryError.
_TRACE_FACTOR = 1000


@dataclass
class ForwardEstimate:
    """What one forward pass needs at least, from a storage-free trace."""

    input_bytes: int
    largest_bytes: int = 0        # the largest single layer output
    largest_layer: str = ""
    traced: bool = False          # False: the model could not run on fake tensors (inputs only counted)
    unbatched: list[str] = field(default_factory=list)  # conv layers that got one rank too few

    @property
    def peak_bytes(self) -> int:
        return self.input_bytes + 2 * self.largest_bytes


def _gb(n: float) -> str:
    return f"{n / 1e9:,.1f} GB" if n >= 1e8 else f"{n / 1e6:,.1f} MB"


def _shapes_text(shapes: list[InputShape]) -> str:
    return ", ".join(f"{s.name}:{'x'.join(map(str, s.shape))}" for s in shapes)


class UnbatchedRecorder:
    """Forward hooks noting every conv layer that receives one dimension too few (torch treats
    (C, H, W) as one unbatched sample; exporters and converters do not)."""

    def __init__(self, model: nn.Module) -> None:
        self.layers: list[str] = []
        names = {m: n for n, m in model.named_modules()}
        self._hooks = [m.register_forward_hook(self._hook(names[m])) for m in model.modules()
                       if isinstance(m, nn.modules.conv._ConvNd)]

    def _hook(self, name: str):  # type: ignore[no-untyped-def]
        def hook(module: nn.Module, inputs: tuple, output: object) -> None:
            if inputs and isinstance(inputs[0], torch.Tensor) and inputs[0].dim() == len(module.kernel_size) + 1:
                self.layers.append(name)
        return hook

    def remove(self) -> None:
        for h in self._hooks:
            h.remove()

    def check(self, shapes: list[InputShape]) -> None:
        if self.layers:
            raise UsageError(f"--input {_shapes_text(shapes)}: layer {self.layers[0]} gets an unbatched input (one "
                             "dimension short); give the batch dimension too, e.g. 1xCxHxW for an image model")


def estimate_forward(model: nn.Module, shapes: list[InputShape]) -> ForwardEstimate:
    """Trace `model` on storage-free tensors of `shapes`; FR layers report their weight's shape
    instead of running the IDCT (which reads coefficient values)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    est = ForwardEstimate(sum(math.prod(s.shape) for s in shapes) * _FLOAT_BYTES)
    names = {m: n for n, m in model.named_modules()}
    hooks = []

    def record(module: nn.Module, inputs: tuple, output: object) -> None:
        outs = output if isinstance(output, (tuple, list)) else [output]
        size = sum(o.numel() * o.element_size() for o in outs if isinstance(o, torch.Tensor))
        if size > est.largest_bytes:
            est.largest_bytes, est.largest_layer = size, names.get(module, "?")

    unbatched = UnbatchedRecorder(model)
    for module in model.modules():
        if not list(module.children()):
            hooks.append(module.register_forward_hook(record))
    fr = [layer for _, layer in fr_layers(model)]
    for layer in fr:  # an instance attribute shadows the method for this trace only
        layer.spatial_weight = (lambda w=layer.weight: torch.zeros(w.shape, dtype=w.dtype))  # type: ignore[method-assign]
    fake_log = logging.getLogger("torch._subclasses.fake_tensor")
    level = fake_log.level
    fake_log.setLevel(logging.CRITICAL)  # it logs a traceback for every op that fails on fake tensors
    try:
        with torch.no_grad(), FakeTensorMode(allow_non_fake_inputs=True):
            model(*[torch.empty(s.shape) for s in shapes])
        est.traced = True
    except Exception:  # noqa: BLE001 - an op FakeTensorMode cannot run, or a shape the model rejects:
        pass           # the real (checked) forward pass reports the latter
    finally:
        fake_log.setLevel(level)
        unbatched.remove()
        est.unbatched = unbatched.layers
        for layer in fr:
            del layer.spatial_weight
        for h in hooks:
            h.remove()
    return est


def check_forward_fits(model: nn.Module, shapes: list[InputShape], available: int | None = None) -> ForwardEstimate | None:
    """Raise UsageError when the inputs alone, or the traced forward pass, cannot fit in the memory
    this machine has available, or when a conv layer would get an unbatched input. The trace runs
    only for inputs big enough to matter (its first use imports torch._dynamo: 2-5 s); the
    estimate, or None when no trace was needed."""
    available = psutil.virtual_memory().available if available is None else available
    what = _shapes_text(shapes)
    inputs = sum(math.prod(s.shape) for s in shapes) * _FLOAT_BYTES
    if inputs > available:  # no trace needed (and none of its bookkeeping)
        raise UsageError(f"--input {what}: the input tensors alone need {_gb(inputs)}, this machine has "
                         f"{_gb(available)} available; give a smaller input size")
    if inputs * _TRACE_FACTOR <= available:
        return None  # a real forward pass is safe: the caller runs one (and checks ranks in it)
    est = estimate_forward(model, shapes)
    if est.unbatched:
        raise UsageError(f"--input {what}: layer {est.unbatched[0]} gets an unbatched input (one dimension short); "
                         "give the batch dimension too, e.g. 1xCxHxW for an image model")
    if est.peak_bytes > available:
        raise UsageError(f"--input {what}: one forward pass needs at least {_gb(est.peak_bytes)} (largest activation "
                         f"{_gb(est.largest_bytes)} at layer {est.largest_layer}), this machine has {_gb(available)} available; "
                         "give a smaller input size")
    return est
