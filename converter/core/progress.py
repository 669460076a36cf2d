"""Progress lines for long commands: `[  12.3s] message`, as convert.log stamps its steps.

`frlite parity` and `frlite bench` run one file after another for minutes; each finished step
prints a line with its time and, from the mean so far, an estimate of what is left. The
commands route the lines to stderr (stdout keeps the results) and `--quiet` passes `silent`.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

Emit = Callable[[str], None]


def silent(msg: str) -> None:
    """The progress sink of `--quiet`."""


def format_duration(seconds: float) -> str:
    """12.3 s, 4 min 05 s, 1 h 02 min: short and readable on a terminal."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def plural(n: int, word: str) -> str:
    """`1 file`, `3 files`."""
    return f"{n} {word}{'' if n == 1 else 's'}"


@dataclass
class Progress:
    """Stamps each message with the seconds since the command started."""

    emit: Emit = silent
    start: float = field(default_factory=time.perf_counter)

    def __call__(self, msg: str) -> None:
        self.emit(f"[{time.perf_counter() - self.start:7.1f}s] {msg}")

    def steps(self, total: int, what: str) -> "CountedSteps":
        """A counter for `total` similar steps (files, file x variant runs)."""
        return CountedSteps(self, total, what)


@dataclass
class CountedSteps:
    """`i/N label: 3.2 s; about 40 s left`, the estimate being the mean step time so far (steps
    running in parallel threads, one per phone, may report; the count is kept under a lock)."""

    progress: Progress
    total: int
    what: str
    done: int = 0
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def finished(self, label: str, seconds: float, outcome: str = "") -> None:
        with self.lock:
            self.done += 1
            self.seconds += seconds
            left = (self.total - self.done) * self.seconds / self.done
            tail = f"; about {format_duration(left)} left" if self.done < self.total else ""
            self.progress(f"{self.what} {self.done}/{self.total} {label}: {outcome + ', ' if outcome else ''}"
                          f"{format_duration(seconds)}{tail}")
