"""Put a checkpoint's tensors into a model, after checking that they fit.

The checks run before anything is copied so a failure leaves the model untouched, and the
message names the first offending key (in the model's own order) with both shapes.
"""
from __future__ import annotations

from torch import nn

from frlite.converter.checkpoints.checkpoint_reader import Checkpoint
from frlite.converter.core.errors import CheckpointMismatchError
from frlite.converter.fr.fr_layers import fr_layers, fr_weight_key
from frlite.converter.checkpoints.frereg_import import FREREG_BUFFERS


def _fmt(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def apply_checkpoint(model: nn.Module, ckpt: Checkpoint, spec: str = "model") -> nn.Module:
    expected = model.state_dict()
    fr_weights = {fr_weight_key(name): layer for name, layer in fr_layers(model)}
    # frereg's bookkeeping buffers ride along in checkpoints saved from frereg models
    fr_prefixes = {k[: -len("weight")] for k in fr_weights}
    tensors = {
        k: v for k, v in ckpt.tensors.items()
        if not (k.rsplit(".", 1)[-1] in FREREG_BUFFERS and k[: len(k) - len(k.rsplit(".", 1)[-1])] in fr_prefixes)
    }
    where = f"checkpoint {ckpt.path} does not fit {spec}"
    for key, value in expected.items():
        if key not in tensors:
            raise CheckpointMismatchError(
                f"{where}: key {key!r} (model shape {_fmt(tuple(value.shape))}) is missing from the checkpoint; "
                "check that the checkpoint belongs to this model")
        got = tuple(tensors[key].shape)
        if got != tuple(value.shape):
            raise CheckpointMismatchError(
                f"{where}: key {key!r} has shape {_fmt(got)} in the checkpoint but {_fmt(tuple(value.shape))} "
                "in the model; check the model's configuration (channels, kernel size)")
        info = ckpt.layers.get(key)
        if info is not None:
            layer = fr_weights.get(key)
            if layer is None:
                raise CheckpointMismatchError(
                    f"{where}: key {key!r} is an FR {info.kind} weight in the checkpoint but an ordinary tensor in the model")
            if layer.kind != info.kind:
                raise CheckpointMismatchError(
                    f"{where}: key {key!r} is an FR {info.kind} weight in the checkpoint but an FR {layer.kind} in the model")
    for key, value in tensors.items():
        if key not in expected:
            raise CheckpointMismatchError(
                f"{where}: the checkpoint has key {key!r} (shape {_fmt(tuple(value.shape))}) that the model does not have; "
                "check that the checkpoint belongs to this model")
    model.load_state_dict({k: tensors[k].to(expected[k].dtype) for k in expected}, strict=True)
    return model
