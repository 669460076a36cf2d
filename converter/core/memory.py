"""Process memory: give freed heap back to the OS, and measure peak RSS per stage.

Shared by convert's pass driver and the parity runner, so both free and measure the same way.
"""
from __future__ import annotations

import ctypes
import gc
import resource
from pathlib import Path

import psutil

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def release_memory(first: bool = False) -> None:
    """Hand freed heap back to the OS between steps, so one step's peak is not the next one's
    floor (activations of a 640x959 UNet forward pass are ~150 MB each; glibc keeps freed pages)."""
    gc.collect()
    try:
        libc = ctypes.CDLL("libc.so.6")
        if first:
            libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD: blocks over 1 MiB mapped apart, freed at once
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _vm_hwm() -> int | None:
    """The kernel's RSS high-water mark (VmHWM) in bytes, or None where /proc has none."""
    try:
        with _STATUS.open() as f:
            for line in f.read(1 << 16).splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def reset_high_water() -> bool:
    """Reset the kernel's RSS high-water mark (Linux >= 4.0: write 5 to clear_refs), so the next
    reading is the peak of the stage that follows alone. False where that is not possible."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak RSS of this process (children are measured by their runner). `stage_peak` reads the
    high-water mark since the last `start_stage`; `peak` keeps the whole run's maximum, since
    resetting the kernel's mark also resets ru_maxrss."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self._resettable = False

    def sample(self) -> int:
        high_water = _vm_hwm() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
        self.peak = max(self.peak, self.proc.memory_info().rss, high_water)
        return self.peak

    def start_stage(self) -> None:
        self.sample()
        self._resettable = reset_high_water()

    def stage_peak(self) -> int:
        """Peak RSS since start_stage (the whole run's peak where the mark cannot be reset)."""
        before = self.peak
        now = self.sample()
        if not self._resettable:
            return now
        stage = _vm_hwm()
        return max(stage, self.proc.memory_info().rss) if stage is not None else max(before, now)
