"""Axis layouts of model tensors and the permutation onnx2tf applies to them.

onnx2tf's documented rule: inputs and outputs of rank 3-5 are moved from channels-first to
channels-last; other ranks are untouched. frlite records that permutation in the manifest and
verifies it against the converted file's shapes, and the parity check that follows every
conversion proves it on data.
"""
from __future__ import annotations

_MODEL = {1: "N", 2: "NC", 3: "NCW", 4: "NCHW", 5: "NCDHW"}
_LAST = {3: ("NWC", [0, 2, 1]), 4: ("NHWC", [0, 2, 3, 1]), 5: ("NDHWC", [0, 2, 3, 4, 1])}


def model_layout(rank: int) -> str:
    return _MODEL.get(rank, f"ND{rank}")


def onnx2tf_layout(rank: int) -> tuple[str, list[int] | None]:
    """(layout name, permutation from the model's layout) of a tensor after onnx2tf."""
    if rank in _LAST:
        name, perm = _LAST[rank]
        return name, list(perm)
    return model_layout(rank), None
