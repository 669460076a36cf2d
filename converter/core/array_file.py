"""Read .npy / .npz input arrays from untrusted files: bounded, pickle-free, header checked.

np.load trusts the .npy header: an object dtype needs pickle, and a header can claim a shape
far larger than the bytes behind it. Both are refused here, before numpy allocates anything,
and .npz members are checked by their declared (decompressed) size before they are inflated.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from frlite.converter.core.bounded_read import limit_text, max_file_bytes, read_bounded
from frlite.converter.core.errors import DataError


def array_from_npy_bytes(data: bytes, source: str) -> np.ndarray:
    """One .npy's bytes -> array, refusing object dtypes and headers that do not match the data."""
    fmt = np.lib.format
    f = io.BytesIO(data)
    try:
        version = fmt.read_magic(f)
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = read_header(f, max_header_size=10_000)
    except (ValueError, OSError, SyntaxError, TypeError) as exc:
        raise DataError(f"{source}: not a readable .npy ({str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__}); "
                        "save it with numpy.save") from exc
    if dtype.hasobject:
        raise DataError(f"{source}: holds an object-dtype array, which needs pickle and is never loaded; "
                        "save a numeric array (e.g. float32) with numpy.save")
    count = 1
    for d in shape:
        count *= int(d)
    need = count * dtype.itemsize
    have = len(data) - f.tell()
    if need != have:
        raise DataError(f"{source}: header says {tuple(shape)} {dtype} ({need:,} bytes) but the file holds {have:,}; "
                        "the file is truncated or damaged")
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{source}: not a readable .npy ({type(exc).__name__}); save it with numpy.save") from exc


def load_npy(path: str | Path) -> np.ndarray:
    return array_from_npy_bytes(read_bounded(path, "array file"), str(path))


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of a .npz, keyed by name (without '.npy')."""
    data = read_bounded(path, "array file")
    limit = max_file_bytes()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
            total = sum(i.file_size for i in infos)
            if total > limit:
                raise DataError(f"{path}: members decompress to {total:,} bytes, over the limit of {limit_text(limit)}")
            out = {}
            for info in infos:
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                out[name] = array_from_npy_bytes(z.read(info), f"{path}:{info.filename}")
            return out
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise DataError(f"{path}: not a readable .npz ({str(exc)[:120] or type(exc).__name__}); "
                        "save it with numpy.savez") from exc
