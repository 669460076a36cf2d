"""A convert folder opened for use: its validated manifest and the one check on its files.

Every consumer (parity, parity --layers, evaluate --converted, bench on the host or a phone,
bench --parity) goes through here before it opens, runs or pushes a file the manifest names:
the path must stay inside the folder once symlinks are resolved, name a regular file, and the
file's size and sha256 must be those the manifest records. A file is hashed once per command
(the result is cached on the ConvertFolder).
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from frlite.converter.core.errors import IntegrityError, ManifestError
from frlite.converter.core.manifest import Artifact, Manifest, read_manifest
from frlite.converter.core.bounded_read import sha256_file


def member_path(folder: Path, relative: str, what: str = "file") -> Path:
    """`folder / relative` resolved, refused unless it is a regular file inside `folder`.

    The manifest's letters were checked already (no absolute path, no ..); this catches a
    symlink that leads out of the folder, and a FIFO or device in place of a file."""
    root = Path(folder).resolve()
    if Path(relative).is_absolute() or ".." in Path(relative).parts:
        raise ManifestError(f"{what} {relative!r} of {folder} is not a path inside the folder")
    try:
        real = (root / relative).resolve(strict=True)
    except FileNotFoundError as exc:
        raise ManifestError(f"{what} {relative} named by {folder}/manifest.json is missing; re-convert") from exc
    except (OSError, RuntimeError) as exc:  # symlink loop
        raise ManifestError(f"{what} {relative} of {folder} cannot be resolved ({exc}); re-convert") from exc
    if real != root and root not in real.parents:
        raise ManifestError(f"{what} {relative} of {folder} leads outside the folder (to {real}); "
                            "frlite reads only files inside a convert folder")
    try:
        st = os.stat(real)
    except OSError as exc:
        raise ManifestError(f"{what} {relative} of {folder} cannot be read: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise ManifestError(f"{what} {relative} of {folder} is not a regular file (a folder, device or FIFO)")
    return real


@dataclass
class ConvertFolder:
    root: Path
    manifest: Manifest
    _verified: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def open(cls, folder: str | Path) -> "ConvertFolder":
        folder = Path(folder)
        return cls(folder, read_manifest(folder))

    def artifact_file(self, art: Artifact) -> Path:
        """The artifact's file, after its size and sha256 were found equal to the manifest's."""
        if art.path in self._verified:
            return self._verified[art.path]
        real = member_path(self.root, art.path, "artifact")
        digest, size = sha256_file(real, "artifact", ManifestError)
        if size != art.size_bytes or digest != art.sha256:
            raise IntegrityError(
                f"artifact {art.path} of {self.root} was modified after conversion: sha256 {digest[:12]}, "
                f"{size:,} B; the manifest records {art.sha256[:12]}, {art.size_bytes:,} B; re-convert or restore it")
        self._verified[art.path] = real
        return real

    def extra_file(self, art: Artifact, key: str) -> Path:
        """An artifact's side file (compat report, ORT operator config), inside the folder."""
        if key not in art.extra_files:
            raise ManifestError(f"artifact {art.path} of {self.root} records no {key}; re-convert")
        return member_path(self.root, art.extra_files[key], key)

    def verify_all(self, artifacts: list[Artifact] | None = None) -> None:
        """Check every (or the given) artifact before any runs: a bad file stops the command up front."""
        for art in self.manifest.artifacts if artifacts is None else artifacts:
            self.artifact_file(art)
