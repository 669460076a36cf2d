"""Which CPU a `benchmark_model` binary is built for, read from its ELF header."""
from __future__ import annotations

from pathlib import Path

from converter.errors import FrliteError

_MACHINES = {0xB7: "arm64-v8a", 0x28: "armeabi-v7a", 0x3E: "x86_64", 0x03: "x86"}


def binary_abi(path: Path) -> str:
    try:
        head = path.read_bytes()[:20]
    except OSError as exc:
        raise FrliteError(f"cannot read benchmark binary {path}: {exc.strerror or exc}") from exc
    if head[:4] != b"\x7fELF":
        raise FrliteError(f"{path} is not an executable (no ELF header); pass the benchmark_model binary for Android")
    machine = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
    return _MACHINES.get(machine, f"machine-0x{machine:x}")
