"""The inputs a parity run feeds every runtime: image files, .npy/.npz arrays, or seeded random.

Arrays are in the model's own layout (as in the manifest's `model_inputs`); images are scaled
as the manifest says (float32 / 255, RGB, NCHW) and must already have the model's size.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frlite.converter.core.array_file import load_npy, load_npz
from frlite.converter.core.errors import DataError
from frlite.converter.core.manifest import TensorInfo
from frlite.converter.models.segmentation import load_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ARRAY_SUFFIXES = (".npy", ".npz")


@dataclass
class Sample:
    source: str
    arrays: dict[str, np.ndarray]

    def sha256(self) -> dict[str, str]:
        return {k: hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest() for k, v in self.arrays.items()}

    def record(self) -> dict[str, object]:
        """What reports and manifests say of a sample: its source and each array's sha256."""
        return {"source": self.source, "sha256": self.sha256()}


def describe_samples(samples: list[Sample]) -> str:
    """What a check ran on, for verdicts and logs: "2 seeded random samples" or the files."""
    if all(s.source.startswith("random(") for s in samples):
        return f"{len(samples)} seeded random sample{'s' if len(samples) != 1 else ''}"
    names = [s.source for s in samples]
    shown = ", ".join(names[:4]) + (f", ... ({len(names)} in all)" if len(names) > 4 else "")
    return f"{len(names)} input{'s' if len(names) != 1 else ''} ({shown})"


def _check(name: str, arr: np.ndarray, spec: TensorInfo, source: str) -> np.ndarray:
    if tuple(arr.shape) != tuple(spec.shape):
        raise DataError(f"{source}: input {name} has shape {tuple(arr.shape)}, the model expects {tuple(spec.shape)}")
    if arr.dtype != np.dtype(spec.dtype):
        if not np.issubdtype(arr.dtype, np.floating):
            raise DataError(f"{source}: input {name} has dtype {arr.dtype}, the model expects {spec.dtype}")
        arr = arr.astype(spec.dtype)
    return arr


def _from_file(path: Path, specs: list[TensorInfo]) -> list[Sample]:
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        if len(specs) != 1:
            raise DataError(f"{path}: an image can feed a model with one input; this one has {len(specs)}")
        spec = specs[0]
        arr = load_image(path, channels=spec.shape[1] if len(spec.shape) == 4 else 3)
        return [Sample(path.name, {spec.model_name: _check(spec.model_name, arr, spec, path.name)})]
    if suffix == ".npy":
        if len(specs) != 1:
            raise DataError(f"{path}: a .npy feeds a model with one input; use .npz keyed by input name")
        spec = specs[0]
        arr = load_npy(path)
        if arr.ndim == len(spec.shape) + 1:  # a stack of samples
            return [Sample(f"{path.name}[{i}]", {spec.model_name: _check(spec.model_name, a, spec, path.name)})
                    for i, a in enumerate(arr)]
        return [Sample(path.name, {spec.model_name: _check(spec.model_name, arr, spec, path.name)})]
    if suffix == ".npz":
        data = load_npz(path)
        missing = [s.model_name for s in specs if s.model_name not in data]
        if missing:
            raise DataError(f"{path}: missing input(s) {', '.join(missing)} (has {', '.join(data)})")
        return [Sample(path.name, {s.model_name: _check(s.model_name, data[s.model_name], s, path.name) for s in specs})]
    raise DataError(f"{path}: not an input file frlite reads (images {'/'.join(IMAGE_SUFFIXES)}, arrays .npy/.npz)")


def _check_random_fits(specs: list[TensorInfo], samples: int) -> None:
    """Seeded samples take the manifest's shapes, and a manifest is untrusted: refuse shapes that
    are not sizes, or whose samples cannot fit in the memory available, before allocating them."""
    import psutil

    total = 0
    for s in specs:
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in s.shape):
            raise DataError(f"input {s.model_name} has shape {s.shape} in the manifest, not sizes >= 1; re-convert the folder")
        total += math.prod(s.shape) * np.dtype(np.float32).itemsize * samples
    available = psutil.virtual_memory().available
    if total > available:
        raise DataError(f"{samples} seeded sample(s) of the manifest's input shapes need {total / 1e9:,.1f} GB, "
                        f"this machine has {available / 1e9:,.1f} GB available; use fewer --samples or re-convert smaller")


def load_inputs(paths: list[str] | None, specs: list[TensorInfo], samples: int, seed: int) -> list[Sample]:
    if not paths:
        _check_random_fits(specs, samples)
        rng = np.random.default_rng(seed)
        return [Sample(f"random(seed={seed})[{i}]", {s.model_name: rng.random(tuple(s.shape), dtype=np.float32)
                                                      for s in specs}) for i in range(samples)]
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES + ARRAY_SUFFIXES)
        elif p.exists():
            files.append(p)
        else:
            raise DataError(f"input {p} does not exist; check the path")
    if not files:
        raise DataError(f"no input files (images or .npy/.npz) in {', '.join(paths)}")
    out: list[Sample] = []
    for f in files:
        out += _from_file(f, specs)
    return out
