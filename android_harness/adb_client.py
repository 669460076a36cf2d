"""Run `adb` safely: argument lists only (never a shell string built from user paths), a timeout
on every call, and adb's failure modes turned into one-line errors of frlite's own type."""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from converter.errors import FrliteError


class AdbError(FrliteError):
    """adb or the device failed in a way the user must fix."""


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
        cmd = [self.exe] + (["-s", serial] if serial else []) + args
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
        return self.run(["shell", *args], serial, timeout_s, check)

    def push(self, serial: str, local: str, remote: str) -> None:
        self.run(["push", local, remote], serial, timeout_s=max(self.timeout_s, 300))

    def pull(self, serial: str, remote: str, local: str) -> None:
        self.run(["pull", remote, local], serial, timeout_s=max(self.timeout_s, 300))
