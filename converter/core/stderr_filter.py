"""Third-party log noise kept off the terminal, at the file-descriptor level.

LiteRT's C++ runtime writes `INFO: Created TensorFlow Lite XNNPACK delegate for CPU.` straight to
fd 2 each time an interpreter is built (in frlite's process and in every spawned worker, which
inherits fd 2); no environment variable silences it (TF_CPP_MIN_LOG_LEVEL=3 does not: measured
with ai-edge-litert 2.1.0), and Python-level filters never see it. So `filtered_stderr()` points
fd 2 at a pipe for the length of a command, and a thread copies every line to the real stderr
except the known INFO / WARNING lines of LiteRT, TensorFlow and absl. Errors (`ERROR:`, absl `E`
and `F` lines, Python tracebacks, frlite's own messages) pass unchanged. Child processes inherit
the pipe, so one filter in the command's process covers them all.
"""
from __future__ import annotations

import contextlib
import os
import re
import select
import sys
import threading
from typing import Iterator

# Only informational lines with a known third-party shape; anything else is shown.
NOISE = re.compile(
    rb"^(?:"
    rb"INFO: |WARNING: "                                            # TFLite / LiteRT minimal logging
    rb"|[IW]\d{4} [\d:.]+ +\d+ \S+:\d+\] "                     # absl (C++ and Python), TF >= 2.16
    rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IW] \S+:\d+\] "       # TensorFlow's older C++ log format
    rb"|To enable the following instructions: .* rebuild TensorFlow"  # second line of TF's CPU-feature notice
    rb"|\[(?:cpuinfo_utils|threadpool)\.cpp:\d+\] "                  # ExecuTorch runtime: CPU probe, thread count
    rb"|Failed to load \S+/torchao/_C\w*\.\S+\.so: Could not load"   # torchao's CUDA kernels, absent on CPU
    rb")")


def is_noise(line: bytes) -> bool:
    """True for a third-party INFO / WARNING line the terminal does not need."""
    return NOISE.match(line) is not None


class _Pump(threading.Thread):
    """Copies the pipe to the real stderr line by line, dropping noise. Stops when asked and the
    pipe has been quiet for a moment: helpers such as multiprocessing's resource tracker keep
    the pipe open until this process exits, so waiting for end-of-file would never finish."""

    QUIET_S = 0.05
    MAX_LINE = 1 << 16  # a "line" without a newline is passed on once it reaches this size

    def __init__(self, read_fd: int, out_fd: int) -> None:
        super().__init__(name="frlite-stderr-filter", daemon=True)
        self.read_fd, self.out_fd = read_fd, out_fd
        self.stop = threading.Event()

    def run(self) -> None:
        pending = b""
        while True:
            stopping = self.stop.is_set()  # read before select: what was written before the stop is seen
            ready, _, _ = select.select([self.read_fd], [], [], self.QUIET_S)
            if not ready:
                if stopping:
                    break
                continue
            chunk = os.read(self.read_fd, 65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            self._write(b"".join(line + b"\n" for line in lines if not is_noise(line)))
            if len(pending) >= self.MAX_LINE:
                self._write(pending)
                pending = b""
        if pending and not is_noise(pending):
            self._write(pending)

    def _write(self, data: bytes) -> None:
        while data:
            try:
                data = data[os.write(self.out_fd, data):]
            except OSError:
                return  # the terminal went away: nothing left to show it to


@contextlib.contextmanager
def filtered_stderr(enabled: bool = True) -> Iterator[None]:
    """fd 2 (this process's and its children's) filtered by `is_noise` inside the block."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    real = os.dup(2)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    pump = _Pump(read_fd, real)
    pump.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(real, 2)  # later writes (a traceback after the block) go straight to the terminal
        pump.stop.set()
        pump.join(timeout=5.0)
        if not pump.is_alive():  # a child still writing keeps the pump (a daemon thread) and its fds
            os.close(read_fd)
            os.close(real)
