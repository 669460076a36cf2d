"""Write a whole output folder or nothing: build in a temp sibling, rename at the end."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .errors import FrliteError


class AtomicFolder:
    """`with AtomicFolder(out) as tmp:` builds in tmp; on success tmp becomes `out`.

    On any exception the temp folder is removed and `out` is untouched. An existing `out` is
    replaced only when `overwrite` is set (and then only after everything succeeded).
    """

    def __init__(self, out: Path, overwrite: bool = False) -> None:
        self.out = Path(out)
        self.overwrite = overwrite
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        if self.out.exists() and not (self.out.is_dir() and self.overwrite):
            what = "folder" if self.out.is_dir() else "file"
            raise FrliteError(f"output {what} {self.out} already exists; choose a new --out or pass --overwrite")
        parent = self.out.parent if str(self.out.parent) else Path(".")
        if not parent.is_dir():
            raise FrliteError(f"cannot write {self.out}: folder {parent} does not exist; create it first")
        try:
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.partial-", dir=parent))
        except OSError as exc:
            raise FrliteError(f"cannot write to {parent}: {exc.strerror or exc}; choose a writable --out") from exc
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> bool:  # type: ignore[no-untyped-def]
        assert self.tmp is not None
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            if isinstance(exc, OSError) and not isinstance(exc, FrliteError):
                raise FrliteError(f"writing {self.out} failed: {exc.strerror or exc} (disk full or not writable?); "
                                  "nothing was written") from exc
            return False
        try:
            if self.out.exists():
                trash = self.out.with_name(f".{self.out.name}.old-{os.getpid()}")
                self.out.rename(trash)
                self.tmp.rename(self.out)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                self.tmp.rename(self.out)
        except OSError as exc:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise FrliteError(f"cannot move the result into {self.out}: {exc.strerror or exc}") from exc
        return False
