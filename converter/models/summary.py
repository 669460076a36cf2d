"""What `frlite inspect` shows: per FR layer its shape, kept coefficients and corner box."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from torch import nn

from frlite.converter.checkpoints.checkpoint_reader import Checkpoint
from frlite.converter.fr.fr_layers import FRLayerMixin, fr_layers, fr_weight_key
from frlite.converter.fr.idct import box_idct_cost, kept_box


@dataclass
class LayerSummary:
    name: str        # weight key, e.g. "inc.double_conv.0.weight"
    kind: str        # conv2d / conv_transpose2d / linear, or "tensor" without a model
    shape: tuple[int, ...]
    kept: int
    box: tuple[int, ...]
    dense: int
    idct_macs_full: int
    idct_macs_box: int


@dataclass
class ModelSummary:
    layers: list[LayerSummary]

    @property
    def kept(self) -> int:
        return sum(layer.kept for layer in self.layers)

    @property
    def dense(self) -> int:
        return sum(layer.dense for layer in self.layers)

    @property
    def ratio(self) -> float:
        return self.dense / self.kept if self.kept else math.inf

    def to_json(self) -> dict:
        # JSON has no Infinity: no kept coefficient (or no FR layer) gives null, not "infx"
        return {"layers": [asdict(layer) for layer in self.layers], "fr_layers": len(self.layers),
                "kept": self.kept, "dense": self.dense,
                "compression_ratio": self.ratio if math.isfinite(self.ratio) else None}


def _summary(name: str, kind: str, coeffs) -> LayerSummary:  # type: ignore[no-untyped-def]
    shape = tuple(int(s) for s in coeffs.shape)
    box = kept_box(coeffs)
    return LayerSummary(name, kind, shape, int((coeffs != 0).sum()), box, math.prod(shape),
                        box_idct_cost(shape, shape), box_idct_cost(shape, box))


def summarize_model(model: nn.Module) -> ModelSummary:
    layers = []
    for name, layer in fr_layers(model):
        assert isinstance(layer, FRLayerMixin)
        layers.append(_summary(fr_weight_key(name), layer.kind, layer.weight.detach()))
    return ModelSummary(layers)


def summarize_checkpoint(ckpt: Checkpoint) -> ModelSummary:
    """Without a model: FR weights are the ones the file marks (compact kinds, or stored sparse)."""
    layers = []
    for name, t in ckpt.tensors.items():
        if name in ckpt.layers:
            layers.append(_summary(name, ckpt.layers[name].kind, t))
        elif name in ckpt.stored_sparse:
            layers.append(_summary(name, f"{t.dim()}-D tensor", t))
    return ModelSummary(layers)


def format_summary(summary: ModelSummary) -> str:
    rows = [("layer", "kind", "shape", "kept", "box", "dense")]
    for s in summary.layers:
        rows.append((s.name, s.kind, "x".join(map(str, s.shape)), f"{s.kept:,}",
                     "x".join(map(str, s.box)), f"{s.dense:,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for i, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if j < 3 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths))))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    full = sum(s.idct_macs_full for s in summary.layers)
    boxed = sum(s.idct_macs_box for s in summary.layers)
    lines.append("")
    if not summary.layers:
        return "no FR layers: nothing here is stored as FR coefficients"
    ratio = f"compression {summary.ratio:,.0f}x" if math.isfinite(summary.ratio) else "every coefficient is zero"
    lines.append(f"{len(summary.layers)} FR layers, {summary.kept:,} kept coefficients of "
                 f"{summary.dense:,} dense weights ({ratio})")
    if boxed:
        lines.append(f"IDCT cost: {full:,} MACs full, {boxed:,} MACs from the kept boxes ({full / boxed:,.1f}x less)")
    return "\n".join(lines)
