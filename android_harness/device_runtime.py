"""The phone as a Runtime: one .tflite file run by the user's `benchmark_model` over adb (a .pte
goes to pte_device_runtime.py through the same `open_on_device`).

Parity compares every runtime through `Runtime.run` (arrays in the model's layout, keyed by the
model's names; layouts from the manifest), so the phone's outputs go through the same
transposes and the same comparison as LiteRT's on the host. Each call pushes the inputs as raw
float32 files, runs the tool once with `--output_filepath`, pulls the outputs back through the
bounded reader and splits them by the manifest's output shapes.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np

from frlite.converter.core.bounded_read import read_bounded
from frlite.converter.core.errors import FrliteError, UsageError
from frlite.runtimes.base import Runtime, TensorSpec
from frlite.runtimes.loader import tensor_spec, with_model_names

from frlite.android_harness.adb_client import AdbError
from frlite.android_harness.device_bench import SAFE_NAME, DeviceBench, DeviceJob, delegate_flags

LIST_SEPARATORS = re.compile(r"[,:\s]")  # benchmark_model splits --input_layer* values on these


class PhoneRuntime(Runtime):
    """What every phone runtime shares: the bench's device, the job, its tensors as the manifest
    lists them (file layout and order) and a call counter that keeps each sample's files apart."""

    def __init__(self, device: DeviceBench, job: DeviceJob, name: str) -> None:
        if job.inputs is None or job.outputs is None:
            raise FrliteError(f"{job.label}: the manifest gives no input / output layouts; re-run `frlite convert`")
        self.device, self.job, self.name = device, job, name
        self._inputs = [tensor_spec(i) for i in job.inputs]
        self._outputs = [tensor_spec(i) for i in job.outputs]
        self._calls = 0

    def inputs(self) -> list[TensorSpec]:
        return list(self._inputs)

    def outputs(self) -> list[TensorSpec]:
        return list(self._outputs)

    def next_call(self) -> int:
        self._calls += 1
        return self._calls - 1


class DeviceRuntime(PhoneRuntime):
    """`job`'s file on `device` with `delegate`, under the file's own tensor names and layouts."""

    def __init__(self, device: DeviceBench, job: DeviceJob, delegate: str) -> None:
        if device.binary is None:
            raise UsageError("--parity needs --benchmark-binary (the APK cannot write output files)")
        super().__init__(device, job, f"tflite@{device.serial}/{delegate}")
        for info in job.inputs or []:
            if LIST_SEPARATORS.search(info.name):
                raise FrliteError(f"input name {info.name!r} holds a character benchmark_model uses to separate "
                                  "its --input_layer lists (, : or whitespace); re-run `frlite convert` with plain names")
        self.delegate = delegate

    def run_native(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        dev, k = self.device, self.next_call()
        with tempfile.TemporaryDirectory() as d:
            value_files, names, shapes = [], [], []
            for spec in self._inputs:
                local = Path(d) / f"in{k}_{SAFE_NAME.sub('_', spec.name)}.raw"
                np.ascontiguousarray(feeds[spec.name], dtype=np.float32).tofile(local)
                remote = dev.remote_path(local.name)
                dev.adb.push(dev.serial, str(local), remote)
                value_files.append(f"{spec.name}:{remote}")
                names.append(spec.name)
                shapes.append(",".join(str(s) for s in spec.shape))
            remote_out = dev.remote_path(f"out{k}.raw")
            text, code = dev.run_tool([f"--graph={dev.remote_path(self.job.local.name)}", "--num_runs=1",
                                       "--warmup_runs=0", f"--input_layer={','.join(names)}",
                                       f"--input_layer_shape={':'.join(shapes)}",
                                       f"--input_layer_value_files={','.join(value_files)}",
                                       f"--output_filepath={remote_out}",
                                       *delegate_flags(self.delegate, self.job.allow_fp16)])
            if code != 0:
                raise AdbError(f"benchmark_model failed on {dev.serial} while writing outputs (exit code {code})")
            local_out = Path(d) / f"out{k}.raw"
            dev.adb.pull(dev.serial, remote_out, str(local_out))
            flat = _floats_from_device(local_out, dev.serial)
        outs, pos = {}, 0
        for spec in self._outputs:
            n = int(np.prod(spec.shape))
            if pos + n > flat.size:
                raise FrliteError(f"{dev.serial}: output file holds {flat.size} values, expected at least {pos + n}")
            outs[spec.name] = flat[pos:pos + n].reshape(spec.shape)
            pos += n
        return outs


def open_on_device(device: DeviceBench, job: DeviceJob, delegate: str, threads: int = 1) -> Runtime:
    """The phone run under the model's tensor names (the manifest maps them), like open_artifact:
    a .tflite through benchmark_model with `delegate`, a .pte through executor_runner with
    `threads` CPU threads (its delegation is fixed in the program)."""
    assert job.inputs is not None and job.outputs is not None
    if job.runtime == "executorch":
        from frlite.android_harness.pte_device_runtime import PteDeviceRuntime

        return with_model_names(PteDeviceRuntime(device, job, threads), job.inputs + job.outputs)
    return with_model_names(DeviceRuntime(device, job, delegate), job.inputs + job.outputs)


def _floats_from_device(path: Path, serial: str) -> np.ndarray:
    """The phone's output file as float32, read through the bounded reader (device output is
    untrusted: its size is whatever the phone wrote)."""
    data = read_bounded(path, f"output file pulled from {serial}", FrliteError)
    if len(data) % 4:
        raise FrliteError(f"{serial}: output file holds {len(data)} bytes, not whole float32 values; "
                          "the benchmark binary wrote something else")
    return np.frombuffer(data, dtype="<f4")
