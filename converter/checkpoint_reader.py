"""Read the checkpoints users already have into one record, never unpickling arbitrary code.

Accepted: the authors' sparse state_dicts (`unet_fr.pt`: key -> sparse COO tensor), ordinary
state_dicts (also nested under 'state_dict' / 'model_state_dict'), frlite's compact format, and
a .tar/.tar.gz/.tar.xz archive holding exactly one of those (the form the authors publish).
PyTorch files are read with `torch.load(weights_only=True)`.
"""
from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .compact_format import MAGIC, LayerInfo, decode_compact
from .errors import CheckpointError

_CKPT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".frl")
_NESTED_KEYS = ("state_dict", "model_state_dict", "model")


@dataclass
class Checkpoint:
    """A checkpoint's tensors (dense, as stored: coefficients for FR weights) and provenance."""

    path: Path
    sha256: str      # of the file on disk
    size_bytes: int  # of the checkpoint itself (the member, when inside an archive)
    format: str  # "torch-sparse", "torch-dense" or "frlite-compact"
    tensors: dict[str, torch.Tensor]
    layers: dict[str, LayerInfo] = field(default_factory=dict)
    stored_sparse: set[str] = field(default_factory=set)
    member: str | None = None  # file name inside an archive


def _is_archive(path: Path) -> bool:
    return path.name.endswith((".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2"))


def _read_archive(path: Path, data: bytes) -> tuple[str, bytes]:
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(_CKPT_SUFFIXES)]
            if len(members) != 1:
                names = ", ".join(m.name for m in members) or "none"
                raise CheckpointError(
                    f"{path}: an archive must hold exactly one checkpoint file ({'/'.join(_CKPT_SUFFIXES)}), "
                    f"found {names}; extract the one you mean and pass it directly")
            extracted = tar.extractfile(members[0])
            assert extracted is not None
            return members[0].name, extracted.read()
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(":")
        raise CheckpointError(f"{path}: archive is truncated or corrupt ({first}); re-download it") from exc


def _torch_load(data: bytes, source: str) -> object:
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{source}: not loadable with the safe loader (weights_only=True): {first[:200]}; "
            "save the model's state_dict() instead of the whole model") from exc
    except Exception as exc:  # the unpickler fails in many ways on damaged bytes
        raise CheckpointError(
            f"{source}: not a readable PyTorch checkpoint, it is truncated or corrupt "
            f"({type(exc).__name__}); re-download or re-save it") from exc


def _state_dict_of(obj: object, source: str) -> Mapping[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        for key in _NESTED_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                return inner
        if obj and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
            return obj
    raise CheckpointError(
        f"{source}: holds a {type(obj).__name__}, not a state_dict (name -> tensor); "
        "save model.state_dict() and pass that file")


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read `path` into a Checkpoint; raise CheckpointError with a one-line reason otherwise."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist; check the path")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory; pass the checkpoint file inside it")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from exc
    if not data:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); re-download or re-save it")
    sha = hashlib.sha256(data).hexdigest()
    member = None
    if _is_archive(path):
        member, data = _read_archive(path, data)
    source = f"{path}" if member is None else f"{path}:{member}"

    if data.startswith(MAGIC):
        compact = decode_compact(data, source)
        return Checkpoint(path, sha, len(data), "frlite-compact", compact.tensors,
                          compact.layers, set(compact.layers), member)

    state = _state_dict_of(_torch_load(data, source), source)
    tensors: dict[str, torch.Tensor] = {}
    sparse: set[str] = set()
    for name, t in state.items():
        if t.layout != torch.strided:
            sparse.add(name)
            t = t.to_dense()
        tensors[name] = t
    fmt = "torch-sparse" if sparse else "torch-dense"
    return Checkpoint(path, sha, len(data), fmt, tensors, {}, sparse, member)
