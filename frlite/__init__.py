"""frlite: FR-trained PyTorch models onto mobile runtimes, provably intact and fast.

The Python API; the `frlite` command is a thin layer over it.
"""
from converter.checkpoint_reader import Checkpoint, read_checkpoint
from converter.compact_format import CompactCheckpoint, decode_compact, encode_compact, write_compact
from converter.errors import (CheckpointError, CheckpointMismatchError, DataError, FrliteError,
                              ModelSpecError, UnsupportedLayerError, UsageError)
from converter.fr_layers import FRConv2d, FRConvTranspose2d, FRLinear, fr_layers
from converter.frereg_import import convert_frereg_layers
from converter.idct import dct_nd, idct_basis, idct_nd, kept_box
from converter.model_loading import LoadedModel, compact_from_model, load_fr_model
from converter.model_spec import build_model
from converter.summary import summarize_checkpoint, summarize_model
from converter.unet import FRUNet, build_unet

__version__ = "0.1.0"

__all__ = [
    "Checkpoint", "CheckpointError", "CheckpointMismatchError", "CompactCheckpoint", "DataError",
    "FRConv2d", "FRConvTranspose2d", "FRLinear", "FRUNet", "FrliteError", "LoadedModel",
    "ModelSpecError", "UnsupportedLayerError", "UsageError", "build_model", "build_unet",
    "compact_from_model", "convert_frereg_layers", "dct_nd", "decode_compact", "encode_compact",
    "fr_layers", "idct_basis", "idct_nd", "kept_box", "load_fr_model", "read_checkpoint",
    "summarize_checkpoint", "summarize_model", "write_compact",
]
