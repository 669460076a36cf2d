"""The one output writer: every command that writes (convert's folder, pack's file, parity's and
bench's report folders) builds its result in a hidden temp sibling and moves it into place at the
end with a rename that cannot replace anything.

Rules, checked before any work starts and again at the end:
- `--out` must name something new in an existing folder: not `.`, `..`, `/`, the current folder
  or one of its ancestors, and never equal to or an ancestor of an input (checkpoint, spec file,
  input folder or file), compared as resolved paths.
- An existing `--out` is replaced only with `--overwrite`, and only if frlite wrote it: a folder
  holding frlite's marker (MARKER, listing every file frlite put there) and nothing else, or a
  file frlite recognises (e.g. a `.frl` by its magic). The thing replaced must still be the very
  one validated at the start (same device and inode); one that appeared meanwhile is left alone
  and this run fails.
- The final move is renameat2(RENAME_NOREPLACE): of two runs writing the same `--out`, the later
  fails with one line and the earlier's output stays intact.
"""
from __future__ import annotations

import ctypes
import errno
import json
import os
import secrets
import shutil
import signal
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

from frlite.converter.core.errors import FrliteError, UsageError

MARKER = ".frlite-output.json"
MARKER_MAX_BYTES = 4 * 2**20      # the file list of a convert folder is a few KB
MAX_WALK_ENTRIES = 100_000        # bound on the check of a folder before replacing it
_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


# ---------------------------------------------------------------- no-clobber rename

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
try:  # glibc >= 2.28 exports renameat2; Linux >= 3.15 implements it (ext4, xfs, btrfs, tmpfs, overlayfs)
    _renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    _renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
except (AttributeError, OSError):
    _renameat2 = None


def rename_noreplace(src: Path, dst: Path) -> None:
    """Move `src` to `dst`; FileExistsError if `dst` exists, never replacing it."""
    if _renameat2 is not None:
        if _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise FileExistsError(err, os.strerror(err), str(dst))
        if err not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EPERM):
            raise OSError(err, os.strerror(err), str(src))
    _rename_noreplace_fallback(src, dst)


def _rename_noreplace_fallback(src: Path, dst: Path) -> None:
    """Without renameat2: a file is hard-linked (link fails on an existing name); a folder first
    reserves `dst` with mkdir (fails on an existing name), then replaces that empty reservation
    (rename onto a non-empty folder fails with ENOTEMPTY, so nothing written meanwhile is lost)."""
    if stat.S_ISDIR(os.lstat(src).st_mode):
        os.mkdir(dst)
        try:
            os.rename(src, dst)
        except OSError:
            try:
                os.rmdir(dst)  # only succeeds while it is still our empty reservation
            except OSError:
                pass
            raise
    else:
        os.link(src, dst)
        os.unlink(src)


# ---------------------------------------------------------------- --out checks

def resolve_out(out: str | Path, option: str = "--out") -> Path:
    """Absolute `--out` with its parent resolved (the last part is kept, so a link is seen as one)."""
    text = str(out)
    raw = Path(text)
    if not text.strip() or raw.name in ("", ".", ".."):
        raise UsageError(f"{option} {text!r} does not name a new file or folder; give a name such as {option} results")
    parent = raw.parent.resolve()
    if not parent.is_dir():
        raise UsageError(f"{option} {text}: folder {raw.parent} does not exist; create it first")
    path = parent / raw.name
    cwd = Path.cwd().resolve()
    if path == cwd or path in cwd.parents:
        raise UsageError(f"{option} {text} is the current folder or holds it; give a new folder name")
    return path


def refuse_inputs(path: Path, inputs: Sequence[str | Path | None], option: str = "--out") -> None:
    """An output never equals or contains an input (it would be deleted or overwritten)."""
    targets = {path}
    try:
        targets.add(path.resolve())  # --out may be a link to a folder holding an input
    except OSError:
        pass
    for inp in inputs:
        if inp is None or str(inp) == "":
            continue
        real = Path(inp).resolve()
        for t in targets:
            if real == t or t in real.parents:
                how = "is" if real == t else "contains"
                raise UsageError(f"{option} {path} {how} the input {inp}; choose an {option} outside the inputs")


def folder_is_frlites(folder: Path) -> str | None:
    """None if `folder` holds frlite's marker and only files that marker lists (sub-folders with
    their own marker, e.g. a parity report inside a convert folder, are checked the same way);
    else what makes it not frlite's."""
    listed = _read_marker(folder)
    if isinstance(listed, str):
        return listed
    seen = 0
    stack = [folder]
    while stack:
        here = stack.pop()
        try:
            entries = list(os.scandir(here))
        except OSError as exc:
            return f"{here} cannot be listed ({exc.strerror})"
        for e in entries:
            seen += 1
            if seen > MAX_WALK_ENTRIES:
                return f"it holds more than {MAX_WALK_ENTRIES:,} entries"
            rel = os.path.relpath(e.path, folder)
            if e.is_symlink():
                return f"it holds the link {rel}, which frlite never writes"
            if e.is_dir(follow_symlinks=False):
                if os.path.lexists(os.path.join(e.path, MARKER)):
                    reason = folder_is_frlites(Path(e.path))
                    if reason is not None:
                        return f"{rel}: {reason}"
                else:
                    stack.append(Path(e.path))
            elif not (e.is_file(follow_symlinks=False) and (rel in listed or rel == MARKER)):
                return f"it holds {rel}, which frlite did not write"
    return None


def _read_marker(folder: Path) -> set[str] | str:
    path = folder / MARKER
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return f"it has no {MARKER} (the marker frlite writes into every output folder)"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return f"its {MARKER} is not a regular file"
        data = os.read(fd, MARKER_MAX_BYTES + 1)
    finally:
        os.close(fd)
    try:
        doc = json.loads(data) if len(data) <= MARKER_MAX_BYTES else None
    except (ValueError, UnicodeDecodeError):
        doc = None
    if not (isinstance(doc, dict) and doc.get("written_by") == "frlite" and isinstance(doc.get("files"), list)
            and all(isinstance(f, str) for f in doc["files"])):
        return f"its {MARKER} is not frlite's"
    return set(doc["files"])


def write_marker(folder: Path, kind: str) -> None:
    """List every file under `folder` (written last, so the list is complete)."""
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not os.path.lexists(os.path.join(root, d, MARKER))]  # nested outputs own theirs
        files += [os.path.relpath(os.path.join(root, n), folder) for n in names]
    doc = {"written_by": "frlite", "kind": kind, "files": sorted(files)}
    (folder / MARKER).write_text(json.dumps(doc, indent=1) + "\n")


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


@contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT/SIGTERM/SIGHUP wait while a result is moved or a temp output removed, so a second
    Ctrl-C cannot leave half a rename or half a temp folder behind."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


# ---------------------------------------------------------------- the writer

class _AtomicOutput:
    """Shared logic of AtomicFolder / AtomicFile; see the module docstring."""

    noun = "output"

    def __init__(self, out: str | Path, overwrite: bool = False, inputs: Sequence[str | Path | None] = (),
                 option: str = "--out") -> None:
        self.raw = str(out)
        self.overwrite = overwrite
        self.inputs = list(inputs)
        self.option = option
        self.out = Path(out)
        self.tmp: Path | None = None
        self._replace: tuple[int, int] | None = None

    # subclasses
    def _kind_ok(self, st: os.stat_result) -> str | None:
        raise NotImplementedError

    def _is_frlites(self, path: Path) -> str | None:
        raise NotImplementedError

    def _make_tmp(self, parent: Path) -> Path:
        raise NotImplementedError

    def _finish(self, tmp: Path) -> None:
        pass

    def check(self) -> Path:
        """Validate `--out` (callable before any work, and again on entering)."""
        self.out = resolve_out(self.raw, self.option)
        refuse_inputs(self.out, self.inputs, self.option)
        self._replace = None
        try:
            st = os.lstat(self.out)
        except FileNotFoundError:
            return self.out
        shown = f"{self.option} {self.raw}"
        if stat.S_ISLNK(st.st_mode):
            raise UsageError(f"{shown} is a symbolic link; frlite does not replace links, choose a new {self.option}")
        wrong = self._kind_ok(st)
        if wrong:
            raise UsageError(f"{shown} {wrong}")
        reason = self._is_frlites(self.out)
        if reason is not None:
            raise UsageError(f"{shown} already exists and frlite did not write it ({reason}); "
                             f"choose a new {self.option} (--overwrite replaces only frlite's own output)")
        if not self.overwrite:
            raise UsageError(f"{shown} already exists; choose a new {self.option} or pass --overwrite to replace it")
        self._replace = _identity(st)
        return self.out

    def __enter__(self) -> Path:
        self.check()
        try:
            # a signal waits until self.tmp is known; one handled as the mask lifts lands in the
            # except below (seen under load: SIGINT right after mkdtemp left a .partial folder)
            with _signals_held():
                self.tmp = self._make_tmp(self.out.parent)
        except OSError as exc:
            raise UsageError(f"cannot write to {self.out.parent}: {exc.strerror or exc}; choose a writable {self.option}") from exc
        except BaseException:
            if self.tmp is not None:
                _remove(self.tmp)
            raise
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> bool:  # type: ignore[no-untyped-def]
        assert self.tmp is not None
        with _signals_held():
            if exc_type is not None:
                _remove(self.tmp)
                if isinstance(exc, OSError):
                    raise FrliteError(f"writing {self.out} failed: {exc.strerror or exc} (disk full or not writable?); "
                                      "nothing was written") from exc
                return False
            try:
                self._finish(self.tmp)
                self._commit(self.tmp)
            except BaseException:
                _remove(self.tmp)
                raise
        return False

    def _commit(self, tmp: Path) -> None:
        old: Path | None = None
        if self._replace is not None:
            old = self.out.with_name(f".{self.out.name}.old-{os.getpid()}-{secrets.token_hex(4)}")
            try:
                rename_noreplace(self.out, old)
            except FileNotFoundError:
                old = None  # removed meanwhile: nothing left to replace
            except OSError as exc:
                raise FrliteError(f"cannot move the old {self.out} aside: {exc.strerror or exc}; nothing was written") from exc
            if old is not None and (_identity(os.lstat(old)) != self._replace or self._is_frlites(old) is not None):
                try:
                    rename_noreplace(old, self.out)
                except OSError:
                    raise FrliteError(f"{self.out} was replaced by something else during the run; it is kept as {old}, "
                                      "this run's result was discarded") from None
                raise FrliteError(f"{self.out} changed during the run (it is no longer the frlite {self.noun} "
                                  "checked at the start); it was left as it is and this run's result discarded")
        try:
            rename_noreplace(tmp, self.out)
        except FileExistsError:
            kept = f"; the {self.noun} it replaced is kept as {old}" if old is not None else ""
            raise FrliteError(f"{self.out} appeared during the run (another frlite run writing the same "
                              f"{self.option}?); it was left as it is and this run's result discarded{kept}") from None
        except OSError as exc:
            if old is not None:
                try:
                    rename_noreplace(old, self.out)
                except OSError:
                    pass
            raise FrliteError(f"cannot move the result into {self.out}: {exc.strerror or exc}; nothing was written") from exc
        if old is not None:
            _remove(old)


class AtomicFolder(_AtomicOutput):
    """`with AtomicFolder(out, overwrite, inputs, kind="convert") as tmp:` builds in tmp; on
    success the marker is written and tmp becomes `out`. On any exception (including
    KeyboardInterrupt from SIGINT/SIGTERM/SIGHUP) tmp is removed and `out` is untouched."""

    noun = "folder"

    def __init__(self, out: str | Path, overwrite: bool = False, inputs: Sequence[str | Path | None] = (),
                 kind: str = "output", option: str = "--out") -> None:
        super().__init__(out, overwrite, inputs, option)
        self.kind = kind

    def _kind_ok(self, st: os.stat_result) -> str | None:
        return None if stat.S_ISDIR(st.st_mode) else "is an existing file, not a folder; give a new folder name"

    def _is_frlites(self, path: Path) -> str | None:
        return folder_is_frlites(path)

    def _make_tmp(self, parent: Path) -> Path:
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.partial-", dir=parent))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; the result gets the usual mode
        return tmp

    def _finish(self, tmp: Path) -> None:
        write_marker(tmp, self.kind)


class AtomicFile(_AtomicOutput):
    """`with AtomicFile(out, overwrite, inputs, recognise=...) as tmp:` writes one file. An
    existing file is replaced only with --overwrite and only if `recognise(path)` returns None
    (it is a file frlite writes, e.g. a .frl by its magic)."""

    noun = "file"

    def __init__(self, out: str | Path, overwrite: bool = False, inputs: Sequence[str | Path | None] = (),
                 recognise: Callable[[Path], str | None] = lambda p: "frlite does not know this kind of file",
                 option: str = "--out") -> None:
        super().__init__(out, overwrite, inputs, option)
        self.recognise = recognise

    def _kind_ok(self, st: os.stat_result) -> str | None:
        if stat.S_ISDIR(st.st_mode):
            return "is an existing folder; give a file name"
        return None if stat.S_ISREG(st.st_mode) else "is not a regular file; give a new file name"

    def _is_frlites(self, path: Path) -> str | None:
        return self.recognise(path)

    def _make_tmp(self, parent: Path) -> Path:
        fd, name = tempfile.mkstemp(prefix=f".{self.out.name}.partial-", dir=parent)
        os.fchmod(fd, 0o666 & ~_umask())
        os.close(fd)
        return Path(name)


def file_starts_with(magic: bytes, what: str) -> Callable[[Path], str | None]:
    """A `recognise` for AtomicFile: the file's first bytes are `magic` (read without following
    links or blocking on a FIFO)."""
    def recognise(path: Path) -> str | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            return f"it cannot be read ({exc.strerror})"
        try:
            head = os.read(fd, len(magic)) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
        finally:
            os.close(fd)
        return None if head == magic else f"it is not {what}"
    return recognise


def _umask() -> int:
    mask = os.umask(0o22)
    os.umask(mask)
    return mask
