"""frlite's own exception types.

Every failure a user can cause (bad file, bad spec, a model that does not fit) is raised as a
FrliteError subclass carrying one sentence that names what is wrong and what to do; the CLI
prints that sentence alone and exits non-zero. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations


class FrliteError(Exception):
    """Base class: its message is shown to the user as a single line."""

    exit_code: int = 1


class UsageError(FrliteError):
    """The command line itself is wrong (bad shape string, unknown option value)."""

    exit_code = 2


class CheckpointError(FrliteError):
    """A checkpoint is missing, unreadable, or of an unknown kind."""


class CheckpointMismatchError(CheckpointError):
    """A readable checkpoint whose keys or shapes do not fit the model."""


class ModelSpecError(FrliteError):
    """A MODEL SPEC that cannot be resolved to an nn.Module: the command line names it, so it is
    bad usage."""

    exit_code = 2


class UnsupportedLayerError(FrliteError):
    """A layer frlite cannot represent or convert."""


class DataError(FrliteError):
    """Input images, masks or arrays that cannot be read or do not fit the model."""

    exit_code = 2


class ManifestError(FrliteError):
    """A convert folder or its manifest.json that is malformed, unsafe, or does not match its files.

    Exit 2: the folder is the user's input, like a bad command line."""

    exit_code = 2


class IntegrityError(ManifestError):
    """A file whose sha256 (or size) differs from what the manifest records."""
