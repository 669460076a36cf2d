"""One call from (MODEL SPEC, checkpoint) to a ready FR model, and back to frlite's format."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from frlite.converter.checkpoints.checkpoint_reader import Checkpoint, read_checkpoint
from frlite.converter.checkpoints.compact_format import CompactCheckpoint, LayerInfo
from frlite.converter.fr.fr_layers import fr_layers, fr_weight_key, layer_config
from frlite.converter.models.model_spec import build_model
from frlite.converter.checkpoints.weights_loader import apply_checkpoint


@dataclass
class LoadedModel:
    model: nn.Module
    spec: str
    checkpoint: Checkpoint | None


def load_fr_model(spec: str, weights: str | Path | None = None) -> LoadedModel:
    """Build `spec` and, when given, load `weights` into it (checked for fit first)."""
    model = build_model(spec)
    ckpt = None
    if weights is not None:
        ckpt = read_checkpoint(weights)
        apply_checkpoint(model, ckpt, spec)
    return LoadedModel(model.eval(), spec, ckpt)


def compact_from_model(model: nn.Module, meta: dict | None = None) -> CompactCheckpoint:
    """The model's state_dict with FR weights marked for sparse storage with kind and options."""
    layers = {}
    for name, layer in fr_layers(model):
        key = fr_weight_key(name)
        layers[key] = LayerInfo(layer.kind, layer_config(layer))
    tensors = {k: v.detach() for k, v in model.state_dict().items()}
    return CompactCheckpoint(tensors, layers, dict(meta or {}))
