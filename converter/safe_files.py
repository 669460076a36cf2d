"""Reading files frlite did not write: regular files only, a size limit, hashes streamed.

A FIFO or a device (`/dev/zero`) named by a manifest would hang a read or never end, so the
type is checked with stat before opening, and again on the open descriptor (opened without
blocking, so a file swapped for a FIFO in between cannot hang the open).
"""
from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path

from .errors import FrliteError, ManifestError

_CHUNK = 1 << 20


def _open_regular(path: Path, what: str, error: type[FrliteError]) -> tuple[int, os.stat_result]:
    """An fd on `path` after checking it is a regular file (raises `error` otherwise)."""
    try:
        st = os.stat(path)
    except FileNotFoundError as exc:
        raise error(f"{what} {path} does not exist") from exc
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{what} {path} is not a regular file (a folder, device or FIFO); frlite reads only regular files")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):  # swapped after the first check
        os.close(fd)
        raise error(f"{what} {path} is not a regular file (a folder, device or FIFO); frlite reads only regular files")
    return fd, st


def read_bounded(path: Path, limit: int, what: str, error: type[FrliteError] = ManifestError,
                 limit_hint: str = "") -> bytes:
    """The whole of a regular file of at most `limit` bytes; larger files are refused unread."""
    fd, st = _open_regular(path, what, error)
    try:
        if st.st_size > limit:
            raise error(f"{what} {path} is {st.st_size:,} bytes, over the limit of {limit:,}{limit_hint}")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or errno.errorcode.get(exc.errno or 0, exc)}") from exc
    finally:
        os.close(fd)
    if len(data) > limit:  # grew while being read
        raise error(f"{what} {path} is over the limit of {limit:,} bytes{limit_hint}")
    return data


def sha256_file(path: Path, what: str, error: type[FrliteError] = ManifestError) -> tuple[str, int]:
    """sha256 hex digest and byte count of a regular file, read in 1 MiB chunks."""
    fd, _ = _open_regular(path, what, error)
    digest, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "rb", closefd=False) as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    return digest.hexdigest(), size
