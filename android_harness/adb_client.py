"""Run `adb` safely: argument lists only (never a host shell), a timeout on every call, and adb's
failure modes turned into one-line errors of frlite's own type.

`adb shell A B C` does not pass an argv to the phone: adb joins the arguments with spaces into
one string that the device's `sh` parses again (so a manifest tensor name
`x;touch${IFS}/data/local/tmp/PWNED;` inside `--input_layer=...` would run `touch`). Every
shell argument is therefore quoted here, once, for a POSIX shell (Android's mksh/toybox sh
follow POSIX single-quote rules), and serials are checked against a strict character set.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from frlite.converter.core.errors import FrliteError, UsageError


class AdbError(FrliteError):
    """adb or the device failed in a way the user must fix."""


# what `adb devices` prints for USB (R58M123ABC), TCP (192.168.1.5:5555), emulators
# (emulator-5554) and mDNS (adb-XYZ._adb-tls-connect._tcp) devices
_SERIAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}")
# characters a POSIX shell never treats specially: such words go to the device unchanged
_PLAIN = re.compile(r"[A-Za-z0-9_@%+=:,./\-]+")


def quote_for_device(arg: str) -> str:
    """One argument as a word the device's POSIX sh reads back exactly (shlex.quote semantics):
    plain words as they are, anything else in single quotes, a single quote as '"'"'."""
    if "\0" in arg:
        raise AdbError("an argument for the phone's shell holds a NUL byte, which no shell can pass; "
                       "rename the tensor or file")
    if _PLAIN.fullmatch(arg):
        return arg
    return "'" + arg.replace("'", "'\"'\"'") + "'"


def device_command(args: list[str]) -> str:
    """The exact string the device's sh runs for `adb shell *args` (adb joins with spaces)."""
    return " ".join(quote_for_device(a) for a in args)


def check_serial(serial: str) -> str:
    if not _SERIAL.fullmatch(serial):
        raise UsageError(f"device serial {serial!r} has characters adb serials never have; "
                         "copy it from `adb devices` (letters, digits, . _ : -)")
    return serial


@dataclass
class AdbDevice:
    serial: str
    state: str  # device, unauthorized, offline, ...
    description: str = ""


class Adb:
    def __init__(self, adb: str | None = None, timeout_s: float | None = None) -> None:
        exe = adb or shutil.which("adb")
        if exe is None:
            raise AdbError("adb not found on PATH; install Android platform-tools (Debian: apt-get install adb)")
        self.exe = exe
        # every call has a limit; FRLITE_ADB_TIMEOUT (seconds) changes the default of 60
        self.timeout_s = timeout_s if timeout_s is not None else float(os.environ.get("FRLITE_ADB_TIMEOUT", "60"))

    def run(self, args: list[str], serial: str | None = None, timeout_s: float | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [self.exe] + (["-s", check_serial(serial)] if serial else []) + args
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s or self.timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise AdbError(f"adb {' '.join(args[:2])} timed out after {timeout_s or self.timeout_s:.0f} s"
                           + (f" on {serial}" if serial else "") + "; check the device and cable") from exc
        if check and proc.returncode != 0:
            msg = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
            first = msg[-1] if msg else f"exit code {proc.returncode}"
            if "unauthorized" in first:
                raise AdbError(f"device {serial} is unauthorized: accept the USB debugging prompt on the phone")
            if "No space left" in first or "No space left" in proc.stdout:
                raise AdbError(f"device {serial} has no space left in /data/local/tmp; free some and retry")
            raise AdbError(f"adb {' '.join(args[:2])} failed" + (f" on {serial}" if serial else "") + f": {first[:200]}")
        return proc

    def devices(self) -> list[AdbDevice]:
        out = self.run(["devices", "-l"]).stdout
        found = []
        for line in out.splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 2:
                found.append(AdbDevice(parts[0], parts[1], " ".join(parts[2:])))
        return found

    def shell(self, serial: str, args: list[str], timeout_s: float | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run argv `args` on the device: each word pre-quoted, so the string adb joins them into
        (client/commandline.cpp: "We don't escape here, just like ssh(1)") parses back to `args`."""
        return self.run(["shell", *(quote_for_device(a) for a in args)], serial, timeout_s, check)

    def push(self, serial: str, local: str, remote: str) -> None:
        self.run(["push", _not_an_option(local), _not_an_option(remote)], serial, timeout_s=max(self.timeout_s, 300))

    def pull(self, serial: str, remote: str, local: str) -> None:
        self.run(["pull", _not_an_option(remote), _not_an_option(local)], serial, timeout_s=max(self.timeout_s, 300))


def _not_an_option(path: str) -> str:
    """A local path such as `-x.tflite` would be read by adb as a flag."""
    return os.path.join(".", path) if path.startswith("-") else path
