"""frlite: FR-trained PyTorch models onto mobile runtimes, provably intact and fast.

The Python API; the `frlite` command is a thin layer over it. Names load on first use (PEP 562),
so `python -m frlite.converter...` workers and `frlite --help` do not import torch up front.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "Checkpoint": "frlite.converter.checkpoints.checkpoint_reader",
    "CheckpointError": "frlite.converter.core.errors",
    "CheckpointMismatchError": "frlite.converter.core.errors",
    "CompactCheckpoint": "frlite.converter.checkpoints.compact_format",
    "DataError": "frlite.converter.core.errors",
    "FRConv2d": "frlite.converter.fr.fr_layers",
    "FRConvTranspose2d": "frlite.converter.fr.fr_layers",
    "FRLinear": "frlite.converter.fr.fr_layers",
    "FRUNet": "frlite.converter.models.unet",
    "FrliteError": "frlite.converter.core.errors",
    "LoadedModel": "frlite.converter.models.model_loading",
    "ModelSpecError": "frlite.converter.core.errors",
    "UnsupportedLayerError": "frlite.converter.core.errors",
    "UsageError": "frlite.converter.core.errors",
    "build_model": "frlite.converter.models.model_spec",
    "build_unet": "frlite.converter.models.unet",
    "compact_from_model": "frlite.converter.models.model_loading",
    "convert_frereg_layers": "frlite.converter.checkpoints.frereg_import",
    "dct_nd": "frlite.converter.fr.idct",
    "decode_compact": "frlite.converter.checkpoints.compact_format",
    "encode_compact": "frlite.converter.checkpoints.compact_format",
    "fr_layers": "frlite.converter.fr.fr_layers",
    "idct_basis": "frlite.converter.fr.idct",
    "idct_nd": "frlite.converter.fr.idct",
    "kept_box": "frlite.converter.fr.idct",
    "load_fr_model": "frlite.converter.models.model_loading",
    "read_checkpoint": "frlite.converter.checkpoints.checkpoint_reader",
    "summarize_checkpoint": "frlite.converter.models.summary",
    "summarize_model": "frlite.converter.models.summary",
    "write_compact": "frlite.converter.checkpoints.compact_format",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'frlite' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
