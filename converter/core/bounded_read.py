"""The one way frlite reads a file it did not write: regular files only, never more than a limit.

Checkpoints, archives, images, masks, arrays and model files come from colleagues and the
internet. A FIFO blocks `open()` forever and `/dev/zero` never ends, so the kind of file is
checked with `os.stat` before opening, the file is opened non-blocking and checked again on the
open descriptor (a path swapped in between is caught), and no read returns more than the limit.
Archives are bounded by what they decompress to, counted while streaming: a 30 KB .tar.xz can
hold 200 MB of zeros.

The limit is FRLITE_MAX_FILE_MB (MiB, default DEFAULT_MAX_FILE_MB), also settable with
`frlite --max-file-mb N`; every refusal names it.
"""
from __future__ import annotations

import hashlib
import io
import os
import stat
from pathlib import Path
from typing import BinaryIO

from frlite.converter.core.errors import DataError, UsageError

ENV_VAR = "FRLITE_MAX_FILE_MB"
# 4 GiB: the largest file a real FR workflow reads is a dense model (the authors' UNet as a dense
# .onnx is 124 MB), so this leaves a wide margin while stopping a bomb long before RAM runs out
DEFAULT_MAX_FILE_MB = 4096
_CHUNK = 1 << 20


def max_file_bytes() -> int:
    """The current limit in bytes (FRLITE_MAX_FILE_MB, a positive whole number of MiB)."""
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return DEFAULT_MAX_FILE_MB << 20
    try:
        mb = int(raw)
    except ValueError:
        mb = 0
    if mb <= 0:
        raise UsageError(f"{ENV_VAR}={raw!r} is not a positive whole number of MiB; set it like {ENV_VAR}=4096")
    return mb << 20


def limit_text(limit: int | None = None) -> str:
    """'4096 MiB (FRLITE_MAX_FILE_MB)': how every message names the limit and how to raise it."""
    mb = (limit if limit is not None else max_file_bytes()) / (1 << 20)
    shown = f"{mb:g}" if mb >= 1 else f"{mb:.3g}"
    return f"{shown} MiB (raise it with {ENV_VAR} or frlite --max-file-mb)"


_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def check_regular_file(path: str | Path, what: str = "file", error: type[Exception] = DataError,
                       limit: int | None = None) -> int:
    """Refuse anything but an existing regular file of at most `limit` bytes; return its size.

    Uses os.stat only: opening a FIFO to look at it would block."""
    path = Path(path)
    limit = max_file_bytes() if limit is None else limit
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist; check the path") from None
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(st.st_mode):
        hint = "pass the file inside it" if stat.S_ISDIR(st.st_mode) else "pass a regular file"
        raise error(f"{what} {path} is {_kind(st.st_mode)}, not a regular file; {hint}")
    if st.st_size > limit:
        raise error(f"{what} {path} is {st.st_size:,} bytes, over the limit of {limit_text(limit)}")
    return int(st.st_size)


def _open_regular(path: Path, what: str, error: type[Exception]) -> int:
    """A non-blocking fd on `path`, checked again on the descriptor (a path replaced by a FIFO
    between the stat and the open is caught here)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise error(f"{what} {path} is {_kind(st.st_mode)}, not a regular file; pass a regular file")
    return fd


def read_bounded(path: str | Path, what: str = "file", error: type[Exception] = DataError,
                 limit: int | None = None, limit_hint: str | None = None) -> bytes:
    """The whole file, after the checks of `check_regular_file`, reading at most `limit` bytes
    even if the file grows or is swapped while it is read. `limit_hint` replaces the default
    "how to raise the limit" text for files with a limit of their own (the manifest)."""
    path = Path(path)
    limit = max_file_bytes() if limit is None else limit
    shown = limit_text(limit) if limit_hint is None else f"{limit:,} bytes{limit_hint}"
    try:
        check_regular_file(path, what, error, limit)
    except error as exc:
        if limit_hint is not None and "over the limit" in str(exc):
            raise error(f"{what} {path} is over the limit of {shown}") from None
        raise
    fd = _open_regular(path, what, error)
    try:
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    if len(data) > limit:
        raise error(f"{what} {path} grew past the limit of {shown} while being read")
    return data


def sha256_file(path: str | Path, what: str = "file", error: type[Exception] = DataError) -> tuple[str, int]:
    """sha256 hex digest and byte count of a regular file, streamed in 1 MiB chunks (no size
    limit: memory stays one chunk whatever the file's size)."""
    path = Path(path)
    check_regular_file(path, what, error, limit=1 << 62)
    fd = _open_regular(path, what, error)
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


class LimitExceeded(Exception):
    """Raised by BoundedStream when more than its limit would be returned."""


class BoundedStream(io.RawIOBase):
    """A read-only stream that fails once more than `limit` bytes have come out of `inner`
    (wraps a decompressor, so a bomb is stopped after `limit` bytes, not at its end)."""

    def __init__(self, inner: BinaryIO, limit: int) -> None:
        super().__init__()
        self.inner = inner
        self.limit = limit
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        want = min(len(buffer), self.limit + 1 - self.count)
        if want <= 0:
            raise LimitExceeded(self.count)
        data = self.inner.read(want)
        self.count += len(data)
        if self.count > self.limit:
            raise LimitExceeded(self.count)
        buffer[: len(data)] = data
        return len(data)


def decompressed_stream(data: bytes, limit: int) -> BoundedStream:
    """The bytes of a .tar(.gz/.xz/.bz2) as they decompress, recognised by their magic bytes,
    capped at `limit` decompressed bytes."""
    raw: BinaryIO = io.BytesIO(data)
    if data.startswith(b"\xfd7zXZ\x00"):
        import lzma

        raw = lzma.LZMAFile(raw)  # type: ignore[assignment]
    elif data.startswith(b"\x1f\x8b"):
        import gzip

        raw = gzip.GzipFile(fileobj=raw)  # type: ignore[assignment]
    elif data.startswith(b"BZh"):
        import bz2

        raw = bz2.BZ2File(raw)  # type: ignore[assignment]
    return BoundedStream(raw, limit)


def read_member(stream: BinaryIO, limit: int) -> bytes:
    """Read one archive member in chunks, never more than `limit` bytes (its declared size is
    checked by the caller first; this catches a header that lies)."""
    chunks, total = [], 0
    while True:
        chunk = stream.read(min(_CHUNK, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise LimitExceeded(total)
    return b"".join(chunks)


def read_head(path: str | Path, n: int, what: str = "file", error: type[Exception] = DataError) -> bytes:
    """The first `n` bytes of a regular file (e.g. an ELF header), without reading the rest."""
    check_regular_file(path, what, error)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise error(f"{what} {path} is not a regular file; pass a regular file")
        return os.read(fd, n)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
