"""The phone as a Runtime for ExecuTorch programs (.pte): the user's `executor_runner` over adb.

A .pte's method takes and returns tensors by position, in the program's dtype (float16 for fp16
programs) and the model's own layout (NCHW); the manifest lists them in that order. ExecuTorch's
examples/portable/executor_runner reads `--inputs=a,b` as raw bytes, one file per method input
in order (each must be exactly the tensor's byte size), and with `--output_file=BASE` writes
each tensor output's raw bytes to `BASE-<i>.bin`. Those flags are what make phone parity
possible: runners built before them feed all-ones inputs and write nothing (see RUNNER_IO_NOTE).

Per sample this pushes one little-endian file per input into the bench's phone folder, runs the
runner once, pulls `BASE-<i>.bin` for every manifest output and reads each with a bound equal to
its exact size (device output is untrusted), then removes the files it pushed and those it
asked the runner to write, and nothing else.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from frlite.converter.core.bounded_read import read_bounded
from frlite.converter.core.errors import FrliteError, UsageError
from frlite.runtimes.base import TensorSpec

from frlite.android_harness.adb_client import AdbError
from frlite.android_harness.device_bench import DeviceBench, DeviceJob
from frlite.android_harness.device_runtime import PhoneRuntime
from frlite.android_harness.pte_device_bench import RUNNER_NAME

# The flags' history, from executor_runner.cpp: `--inputs` is in runners older than the `.ptd`
# support (pytorch/executorch PR #14833, October 2025); `--output_file` came with the versions
# that have `--data_path`, i.e. ExecuTorch 1.0 and later.
RUNNER_IO_NOTE = ("on-device parity of .pte files needs an executor_runner with --inputs and --output_file "
                  "(ExecuTorch 1.0 or later; build it from v1.5.1, the version frlite exports with, as "
                  "docs/android.md shows), or bench without --parity")
_LITTLE = {"float32": "<f4", "float16": "<f2"}  # the phone's byte order (arm64 Android is little-endian)
_UNKNOWN_FLAG = "unknown command line flag"     # what gflags prints for a flag the runner does not define


def _wire_dtype(spec: TensorSpec, label: str) -> np.dtype:
    if spec.dtype not in _LITTLE:
        raise FrliteError(f"{label}: tensor {spec.name} is {spec.dtype}; phone parity of a .pte handles "
                          f"{' and '.join(_LITTLE)} tensors")
    return np.dtype(_LITTLE[spec.dtype])


class PteDeviceRuntime(PhoneRuntime):
    """`job`'s .pte on `device` with `threads` CPU threads, tensors by the manifest's order."""

    def __init__(self, device: DeviceBench, job: DeviceJob, threads: int) -> None:
        if device.runner is None:
            raise UsageError("--parity on .pte files needs --executor-runner PATH (docs/android.md)")
        super().__init__(device, job, f"executorch@{device.serial}/xnnpack")
        self.threads = threads
        self._wire = {s.name: _wire_dtype(s, job.label) for s in self._inputs + self._outputs}

    def run_native(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        dev, k = self.device, self.next_call()
        stem = f"{Path(self.job.local).stem}_s{k}"
        remote_in = [dev.remote_path(f"{stem}_in{i}.bin") for i in range(len(self._inputs))]
        remote_base = dev.remote_path(f"{stem}_out")
        remote_out = [f"{remote_base}-{i}.bin" for i in range(len(self._outputs))]
        written: list[str] = []
        try:
            with tempfile.TemporaryDirectory() as d:
                for spec, remote in zip(self._inputs, remote_in):
                    local = Path(d) / Path(remote).name
                    np.ascontiguousarray(feeds[spec.name], dtype=self._wire[spec.name]).tofile(local)
                    written.append(remote)  # before the push: a push that fails half-way leaves a file too
                    dev.adb.push(dev.serial, str(local), remote)
                written += remote_out
                self._run_runner(remote_in, remote_base)
                return {spec.name: self._pull_output(i, spec, remote, Path(d))
                        for i, (spec, remote) in enumerate(zip(self._outputs, remote_out))}
        finally:
            if written:
                try:
                    dev.adb.shell(dev.serial, ["rm", "-f", *written], check=False)
                except AdbError:
                    pass  # a phone that stopped answering: the error being raised says more than this one

    def _run_runner(self, remote_in: list[str], remote_base: str) -> None:
        dev = self.device
        flags = [f"--model_path={dev.push_once(self.job.local)}", f"--inputs={','.join(remote_in)}",
                 f"--output_file={remote_base}", "--num_executions=1", f"--cpu_threads={self.threads}"]
        proc = dev.adb.shell(dev.serial, [dev.remote_path(RUNNER_NAME), *flags], timeout_s=dev.timeout_s, check=False)
        text = proc.stdout + proc.stderr
        if _UNKNOWN_FLAG in text:
            said = next(ln.strip() for ln in text.splitlines() if _UNKNOWN_FLAG in ln)
            raise UsageError(f"executor_runner on {dev.serial} refused a flag ({said[:120]}): {RUNNER_IO_NOTE}")
        if proc.returncode != 0:
            last = [ln for ln in text.strip().splitlines() if ln.strip()][-1:] or ["no output"]
            raise AdbError(f"executor_runner failed on {dev.serial} while writing the outputs of {self.job.label} "
                           f"(exit code {proc.returncode}): {last[0][:200]}")

    def _pull_output(self, index: int, spec: TensorSpec, remote: str, folder: Path) -> np.ndarray:
        """Output `index` as float32 in the program's shape; its file must hold exactly the bytes
        the manifest's shape and dtype give."""
        dev, wire = self.device, self._wire[spec.name]
        expected = int(np.prod(spec.shape)) * wire.itemsize
        what = f"output {index} ({spec.name}: {'x'.join(map(str, spec.shape))} {spec.dtype}, {expected:,} B)"
        local = folder / Path(remote).name
        try:
            dev.adb.pull(dev.serial, remote, str(local))
        except AdbError as exc:
            hint = f"; {RUNNER_IO_NOTE}" if index == 0 else ""  # not even the first: the runner ignored --output_file
            raise FrliteError(f"executor_runner on {dev.serial} wrote no {remote}, expected {what}{hint}") from exc
        try:
            data = read_bounded(local, f"{remote} pulled from {dev.serial}", FrliteError, limit=expected)
        except FrliteError:
            data = None  # larger than the exact size, or not a regular file: reported below by size
        if data is None or len(data) != expected:
            got = local.stat().st_size if local.is_file() else 0
            raise FrliteError(f"{dev.serial}: {remote} holds {got:,} B, expected exactly {what}; the runner or the "
                              f"program on the phone is not the one the manifest describes")
        return np.frombuffer(data, dtype=wire).astype(np.float32).reshape(spec.shape)
