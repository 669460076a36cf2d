"""Which CPU a `benchmark_model` binary is built for, read from its ELF header."""
from __future__ import annotations

from pathlib import Path

from frlite.converter.core.bounded_read import read_head
from frlite.converter.core.errors import FrliteError

_MACHINES = {0xB7: "arm64-v8a", 0x28: "armeabi-v7a", 0x3E: "x86_64", 0x03: "x86"}


def binary_abi(path: Path) -> str:
    head = read_head(path, 20, "benchmark binary", FrliteError)  # a FIFO or /dev/zero is refused, not read
    if len(head) < 20:
        raise FrliteError(f"{path} is too short to be an executable; pass the benchmark_model binary for Android")
    if head[:4] != b"\x7fELF":
        raise FrliteError(f"{path} is not an executable (no ELF header); pass the benchmark_model binary for Android")
    machine = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
    return _MACHINES.get(machine, f"machine-0x{machine:x}")
