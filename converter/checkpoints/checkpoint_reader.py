"""Read the checkpoints users already have into one record, never unpickling arbitrary code.

Accepted: the authors' sparse state_dicts (`unet_fr.pt`: key -> sparse COO tensor), ordinary
state_dicts (also nested under 'state_dict' / 'model_state_dict'), frlite's compact format, and
a .tar/.tar.gz/.tar.xz archive holding exactly one of those (the form the authors publish).
PyTorch files are read with `torch.load(weights_only=True)`; every byte comes through
bounded_read (regular files only, size-limited, archives bounded while they decompress).
"""
from __future__ import annotations

import hashlib
import io
import lzma
import pickle
import tarfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from frlite.converter.core.bounded_read import LimitExceeded, decompressed_stream, limit_text, max_file_bytes, read_bounded, read_member
from frlite.converter.checkpoints.compact_format import MAGIC, LayerInfo, decode_compact
from frlite.converter.core.errors import CheckpointError

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
    """The one checkpoint inside a .tar(.gz/.xz/.bz2), read as a stream: the whole archive may
    decompress to at most the file limit, and a member's declared size is checked before its
    bytes are read (a 30 KB .tar.xz can hold 200 MB of zeros)."""
    limit = max_file_bytes()
    found: tuple[str, bytes] | None = None
    try:
        with tarfile.open(fileobj=decompressed_stream(data, limit), mode="r|") as tar:
            for m in tar:
                if not (m.isfile() and m.name.endswith(_CKPT_SUFFIXES)):
                    continue
                if found is not None:
                    raise CheckpointError(
                        f"{path}: an archive must hold exactly one checkpoint file ({'/'.join(_CKPT_SUFFIXES)}), "
                        f"found {found[0]}, {m.name}; extract the one you mean and pass it directly")
                if m.size > limit:
                    raise CheckpointError(f"{path}: member {m.name} declares {m.size:,} bytes, over the limit of "
                                          f"{limit_text(limit)}")
                extracted = tar.extractfile(m)
                assert extracted is not None
                found = (m.name, read_member(extracted, limit))  # type: ignore[arg-type]
    except LimitExceeded:
        raise CheckpointError(f"{path}: archive decompresses to more than the limit of {limit_text(limit)}; "
                              "refusing to read further") from None
    except (tarfile.TarError, EOFError, OSError, ValueError, lzma.LZMAError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(":")
        raise CheckpointError(f"{path}: archive is truncated or corrupt ({first}); re-download it") from exc
    if found is None:
        raise CheckpointError(
            f"{path}: an archive must hold exactly one checkpoint file ({'/'.join(_CKPT_SUFFIXES)}), "
            "found none; extract the one you mean and pass it directly")
    return found


def _torch_load(data: bytes, source: str) -> object:
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols on stderr: not one line
            warnings.simplefilter("ignore")
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message advises weights_only=False, i.e. running the file's code: never quote it
        text = str(exc)
        detail = ""
        if "WeightsUnpickler error:" in text:
            rest = text.split("WeightsUnpickler error:", 1)[1].strip().splitlines()
            detail = rest[0].strip() if rest else ""
        detail = detail.split(". ")[0][:200] or type(exc).__name__  # its next sentence suggests allowing globals
        raise CheckpointError(
            f"{source}: the safe loader refused it ({detail}): the file is corrupt, or it pickles Python objects, "
            "which frlite never runs; re-download it, or save the model's state_dict() with torch.save") from exc
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


def _check_finite(tensors: Mapping[str, torch.Tensor], source: str) -> None:
    """NaN / Inf weights make every output NaN, and NaN compares false with any tolerance: refuse
    them at load rather than let a conversion 'pass' on garbage."""
    for name, t in tensors.items():
        if t.is_floating_point() or t.is_complex():
            bad = int((~torch.isfinite(t)).sum())
            if bad:
                raise CheckpointError(f"{source}: tensor {name!r} holds {bad:,} NaN/Inf value(s); "
                                      "the checkpoint is damaged or training diverged, use an earlier checkpoint")


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read `path` into a Checkpoint; raise CheckpointError with a one-line reason otherwise."""
    path = Path(path)
    data = read_bounded(path, "checkpoint", CheckpointError)
    if not data:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); re-download or re-save it")
    sha = hashlib.sha256(data).hexdigest()
    member = None
    if _is_archive(path):
        member, data = _read_archive(path, data)
    source = f"{path}" if member is None else f"{path}:{member}"

    if data.startswith(MAGIC):
        compact = decode_compact(data, source)
        _check_finite(compact.tensors, source)
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
    _check_finite(tensors, source)
    fmt = "torch-sparse" if sparse else "torch-dense"
    return Checkpoint(path, sha, len(data), fmt, tensors, {}, sparse, member)
