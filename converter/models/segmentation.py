"""Images in, masks out: the input convention of the authors' UNet and the Dice they report.

Inputs are PNG/JPEG as float32 / 255 in NCHW with no other normalisation; masks are argmax over
the class axis; Dice is that of the foreground class (1) against a 0/255 ground-truth mask.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from frlite.converter.core.bounded_read import read_bounded
from frlite.converter.core.errors import DataError


def load_image(path: str | Path, channels: int = 3) -> np.ndarray:
    """(1, C, H, W) float32 in [0, 1]."""
    path = Path(path)
    data = read_bounded(path, "image")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img = img.convert("RGB" if channels == 3 else "L")
            arr = np.asarray(img, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as exc:
        raise DataError(f"image {path} is not a readable PNG/JPEG ({type(exc).__name__}); check the file") from exc
    if arr.ndim == 2:
        arr = arr[None]
    else:
        arr = arr.transpose(2, 0, 1)
    return arr[None].copy()


def load_mask(path: str | Path) -> np.ndarray:
    """(H, W) bool foreground mask from a 0/255 (or 0/1) image."""
    path = Path(path)
    data = read_bounded(path, "mask")
    try:
        with Image.open(io.BytesIO(data)) as img:
            arr = np.asarray(img.convert("L"))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as exc:
        raise DataError(f"mask {path} is not a readable image ({type(exc).__name__}); check the file") from exc
    return arr > (127 if arr.max() > 1 else 0)


def argmax_mask(logits: np.ndarray, class_axis: int = 1) -> np.ndarray:
    """Per-pixel class index; for a (1, C, H, W) tensor the result is (H, W)."""
    return np.argmax(logits, axis=class_axis).squeeze()


def dice(pred: np.ndarray, truth: np.ndarray, eps: float = 1e-12) -> float:
    """Dice of two boolean masks: 2|A n B| / (|A| + |B|); 1.0 when both are empty."""
    pred = np.asarray(pred, dtype=bool)
    truth = np.asarray(truth, dtype=bool)
    if pred.shape != truth.shape:
        raise DataError(f"mask shapes differ: prediction {pred.shape} vs ground truth {truth.shape}")
    denom = pred.sum() + truth.sum()
    if denom == 0:
        return 1.0
    return float(2.0 * np.logical_and(pred, truth).sum() / (denom + eps))
