"""argparse `type=` checkers shared by every sub-command, and a parser whose errors are one line.

A bad number on the command line is bad usage (exit 2) named with the flag, never a traceback
deep in a runtime, and never silently accepted: `--atol nan` would make every comparison pass
or fail by accident (`x <= nan` is False), `--runs 0` would report a median of nothing.
"""
from __future__ import annotations

import argparse
import math
import sys
from typing import NoReturn


def positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number >= 1")
    return value


def non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number >= 0")
    return value


def non_negative_float(text: str) -> float:
    """Finite and >= 0: rejects nan, inf and negatives (a tolerance or a duration)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number >= 0")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


class OneLineParser(argparse.ArgumentParser):
    """argparse prints the usage block and the error on separate lines; frlite prints one line
    naming the sub-command (and exits 2, as argparse does)."""

    def error(self, message: str) -> NoReturn:
        one_line = " ".join(message.split())
        print(f"{self.prog}: error: {one_line} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)
