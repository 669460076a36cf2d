"""The PyTorch reference for `frlite parity` and `bench --parity`, chosen without running a
folder's code.

A convert folder is data: its manifest names a model spec, and a spec like `model.py:build` or
`pkg.mod:factory` is Python that importing would run. So the reference model comes from the
command line (`--model SPEC [--weights CKPT]`), from the manifest only when its spec is a
built-in name (no foreign code), or from the manifest's spec behind `--trust-model-code`. The
checkpoint is hashed and compared with the manifest's `checkpoint_sha256` before it is parsed,
and again on the bytes actually parsed (a file swapped in between is caught).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from frlite.converter.checkpoints.checkpoint_reader import read_checkpoint
from frlite.converter.core.convert_folder import ConvertFolder
from frlite.converter.core.errors import IntegrityError, ManifestError, UsageError
from frlite.converter.models.model_spec import BUILTINS, build_model
from frlite.converter.core.bounded_read import sha256_file
from frlite.converter.checkpoints.weights_loader import apply_checkpoint

from frlite.runtimes.base import TensorSpec
from frlite.runtimes.torch_runtime import TorchRuntime

TRUST_FLAG = "--trust-model-code"


@dataclass(frozen=True)
class ReferenceRequest:
    """Where the reference model comes from: the command line's choices."""

    model_spec: str | None = None   # --model: the user names the code
    weights: str | None = None      # --weights: the checkpoint (sha256 checked against the manifest)
    trust_model_code: bool = False  # --trust-model-code: import the spec the manifest names


def _spec(folder: ConvertFolder, req: ReferenceRequest) -> tuple[str, Path | None]:
    """The spec to build, and the folder to resolve a trusted relative spec against."""
    if req.model_spec:
        return req.model_spec, None
    spec = folder.manifest.model_spec.strip()
    if spec in BUILTINS:
        return spec, None
    if not req.trust_model_code:
        raise ManifestError(
            f"{folder.root}/manifest.json names the model code {spec[:120]!r}; frlite does not import code a folder "
            f"names: pass --model SPEC (and --weights CKPT) for the model you trust, or {TRUST_FLAG} to import and run it")
    return spec, folder.root.resolve()


def _trusted_spec(spec: str, base: Path) -> str:
    """A manifest's relative file spec means a file of the folder."""
    target, sep, attr = spec.rpartition(":")
    if sep and (target.endswith(".py") or "/" in target) and not Path(target).is_absolute():
        return f"{base / target}:{attr}"
    return spec


def _checkpoint(folder: ConvertFolder, req: ReferenceRequest) -> tuple[Path | None, str | None]:
    """The checkpoint to load and the sha256 it must have (None, None: the folder used none)."""
    m = folder.manifest
    if m.checkpoint_sha256 is None:
        if req.weights:
            raise UsageError(f"{folder.root} was converted without a checkpoint, so --weights {req.weights} cannot be "
                             "checked against it; drop --weights or re-convert with it")
        return None, None
    if req.weights:
        return Path(req.weights), m.checkpoint_sha256
    assert m.checkpoint is not None  # manifest_schema: both or neither
    path = Path(m.checkpoint)
    if not path.exists():
        raise ManifestError(f"the manifest's checkpoint {m.checkpoint} is gone; pass --weights CKPT "
                            f"(sha256 {m.checkpoint_sha256[:12]}...) or re-convert")
    return path, m.checkpoint_sha256


def _mismatch(path: Path, got: str, want: str) -> IntegrityError:
    return IntegrityError(f"checkpoint {path} has sha256 {got[:12]}, the manifest records {want[:12]}: it is not the "
                          "checkpoint the folder was converted from; pass that one with --weights")


def reference_runtime(folder: ConvertFolder, req: ReferenceRequest | None = None) -> TorchRuntime:
    """The FR model the folder's files are compared with, behind the Runtime interface."""
    req = req or ReferenceRequest()
    spec, trusted_base = _spec(folder, req)
    ckpt_path, want = _checkpoint(folder, req)
    ckpt = None
    if ckpt_path is not None and want is not None:
        got, _ = sha256_file(ckpt_path, "checkpoint", ManifestError)
        if got != want:
            raise _mismatch(ckpt_path, got, want)
        ckpt = read_checkpoint(ckpt_path)
        if ckpt.sha256 != want:  # replaced between the hash and the read
            raise _mismatch(ckpt_path, ckpt.sha256, want)
    if trusted_base is not None:
        spec = _trusted_spec(spec, trusted_base)
        sys.path.insert(0, str(trusted_base))  # the folder's own modules, for `module:factory`
        try:
            model = build_model(spec)
        finally:
            sys.path.remove(str(trusted_base))
    else:
        model = build_model(spec)
    if ckpt is not None:
        apply_checkpoint(model, ckpt, spec)
    m = folder.manifest
    specs = [TensorSpec(t.model_name, tuple(t.shape), t.dtype, t.layout) for t in m.model_inputs]
    outs = [TensorSpec(t.model_name, tuple(t.shape), t.dtype, t.layout) for t in m.model_outputs]
    return TorchRuntime(model.eval(), specs, outs)
