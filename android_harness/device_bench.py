"""Benchmark .tflite files on a phone over adb with the official tools the user supplies.

Protocol (as Google's litert-cli drives a phone): read device facts with
`getprop`, `mkdir -p /data/local/tmp/frlite`, push the model(s) and the `benchmark_model`
binary, `chmod +x`, run it once per model x delegate with explicit flags, parse its output,
and remove what was pushed. With the benchmark APK instead: `am start` the activity with the
flags and read the result from logcat (tag `tflite`). On-device parity pushes the inputs as raw
files, runs with --input_layer_value_files and --output_filepath and pulls the outputs.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frlite.converter.core.errors import FrliteError, UsageError

from frlite.android_harness.adb_client import Adb, AdbError, check_serial
from frlite.android_harness.bench_result import BenchResult, LatencyStats
from frlite.android_harness.binary_abi import binary_abi
from frlite.android_harness.pte_device_bench import bench_pte, check_runner
from frlite.android_harness.output_parser import BenchmarkOutput, parse_benchmark_output

REMOTE_DIR = "/data/local/tmp/frlite"
APK_ACTIVITY = "org.tensorflow.lite.benchmark/.BenchmarkModelActivity"
DEVICE_DELEGATES = ("cpu", "xnnpack", "gpu", "nnapi")
SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def delegate_flags(delegate: str, allow_fp16: bool) -> list[str]:
    """Flags per delegate; the GPU precision is always stated, never left to the tool's fp16 default.
    `allow_fp16` comes from the measured fp16-arithmetic verdict (precision_policy.py)."""
    fp16 = allow_fp16
    if delegate == "cpu":
        return ["--use_xnnpack=false"]
    if delegate == "xnnpack":
        return ["--use_xnnpack=true"]
    if delegate == "gpu":
        return ["--use_gpu=true", f"--gpu_precision_loss_allowed={'true' if fp16 else 'false'}"]
    if delegate == "nnapi":
        return ["--use_nnapi=true", f"--nnapi_allow_fp16={'true' if fp16 else 'false'}"]
    raise UsageError(f"--delegate {delegate!r} is not one of: {', '.join(DEVICE_DELEGATES)}")


@dataclass
class DeviceFacts:
    serial: str
    model: str
    abi: str
    sdk: int
    soc: str

    def as_dict(self) -> dict[str, str]:
        return {"serial": self.serial, "model": self.model, "abi": self.abi, "sdk": str(self.sdk), "soc": self.soc}


def select_devices(adb: Adb, wanted: list[str] | None) -> list[str]:
    for serial in wanted or []:
        check_serial(serial)
    devices = adb.devices()
    if not devices:
        raise AdbError("no Android device found: connect a phone with USB debugging on (adb devices lists none)")
    states = {d.serial: d.state for d in devices}
    if wanted:
        for serial in wanted:
            if serial not in states:
                raise AdbError(f"device {serial} is not connected (connected: {', '.join(states)})")
    elif len(devices) > 1:
        raise UsageError(f"several devices are connected ({', '.join(states)}); choose with --device SERIAL (repeatable)")
    chosen = wanted or [devices[0].serial]
    for serial in chosen:
        if states[serial] == "unauthorized":
            raise AdbError(f"device {serial} is unauthorized: accept the USB debugging prompt on the phone")
        if states[serial] != "device":
            raise AdbError(f"device {serial} is {states[serial]}; reconnect it")
    return chosen


def device_facts(adb: Adb, serial: str) -> DeviceFacts:
    def prop(name: str) -> str:
        return adb.shell(serial, ["getprop", name]).stdout.strip()

    sdk = prop("ro.build.version.sdk")
    return DeviceFacts(serial, prop("ro.product.model") or "unknown", prop("ro.product.cpu.abi") or "unknown",
                       int(sdk) if sdk.isdigit() else 0, prop("ro.soc.model") or prop("ro.board.platform") or "unknown")


@dataclass
class DeviceJob:
    """One model to run: local file, and what the manifest says about it (for parity)."""

    local: Path
    label: str
    precision: str | None = None
    mode: str | None = None
    inputs: list | None = None    # manifest TensorInfo list (file layout), for --parity
    outputs: list | None = None
    fp16_arith: object | None = None  # manifest Fp16Arith: the verdict measured at conversion
    allow_fp16: bool = False          # set by run_bench from precision_policy.choose
    numerics: str | None = None       # why: the line shown and stored in bench.json
    runtime: str = "tflite"           # tflite (benchmark_model) | executorch (executor_runner)


class DeviceBench:
    def __init__(self, adb: Adb, serial: str, binary: Path | None, apk: bool, timeout_s: float = 600.0,
                 runner: Path | None = None, runtimes: set[str] | None = None) -> None:
        runtimes = runtimes or {"tflite"}
        self.runner = check_runner(runner) if "executorch" in runtimes else None
        if "tflite" not in runtimes:
            binary, apk = None, False  # only .pte files: benchmark_model is not needed
        elif binary is None and not apk:
            raise UsageError("give --benchmark-binary PATH (the arm64 benchmark_model from the LiteRT/TFLite releases) "
                             "or --apk (org.tensorflow.lite.benchmark installed on the phone); frlite downloads nothing")
        if binary is not None and not binary.is_file():
            raise UsageError(f"benchmark binary {binary} does not exist; download benchmark_model for android_arm64 "
                             "from the LiteRT / TensorFlow Lite releases (see docs/android.md)")
        self.adb, self.serial, self.binary, self.apk, self.timeout_s = adb, serial, binary, apk, timeout_s
        self.facts = device_facts(adb, serial)
        self.warnings: list[str] = []
        for tool in (binary, self.runner):
            abi = binary_abi(tool) if tool is not None else None
            if abi is not None and self.facts.abi.startswith("arm64") and abi != "arm64-v8a":
                raise UsageError(f"{tool} is built for {abi}, device {serial} is {self.facts.abi}; "
                                 f"use the android_arm64 {tool.name}")
        self.pushed: list[str] = []

    def __enter__(self) -> "DeviceBench":
        self.adb.shell(self.serial, ["mkdir", "-p", REMOTE_DIR])
        self.pushed.append(REMOTE_DIR)
        if self.binary is not None:
            self.adb.push(self.serial, str(self.binary), f"{REMOTE_DIR}/benchmark_model")
            self.adb.shell(self.serial, ["chmod", "+x", f"{REMOTE_DIR}/benchmark_model"])
        if self.runner is not None:
            self.adb.push(self.serial, str(self.runner), f"{REMOTE_DIR}/executor_runner")
            self.adb.shell(self.serial, ["chmod", "+x", f"{REMOTE_DIR}/executor_runner"])
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.adb.shell(self.serial, ["rm", "-rf", REMOTE_DIR], check=False)
        except AdbError:
            pass

    def remote_path(self, name: str) -> str:
        return f"{REMOTE_DIR}/{SAFE_NAME.sub('_', name)}"

    def push_once(self, local: Path) -> str:
        """The file's path on the phone, pushed on first use."""
        remote = self.remote_path(local.name)
        if remote not in self.pushed:
            self.adb.push(self.serial, str(local), remote)
            self.pushed.append(remote)
        return remote

    def run_tool(self, args: list[str]) -> tuple[str, int]:
        if self.binary is not None:
            proc = self.adb.shell(self.serial, [f"{REMOTE_DIR}/benchmark_model", *args], timeout_s=self.timeout_s, check=False)
            return proc.stdout + proc.stderr, proc.returncode
        self.adb.run(["logcat", "-c"], self.serial)
        # one `--es args` value; the APK splits it on spaces, and every piece is ours (flags and
        # sanitised /data/local/tmp paths); the adb client quotes it for the device's shell
        self.adb.shell(self.serial, ["am", "start", "-S", "-n", APK_ACTIVITY, "--es", "args", " ".join(args)])
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            log = self.adb.run(["logcat", "-d", "-s", "tflite:*"], self.serial).stdout
            if "Inference timings" in log or "Error" in log or "error" in log.lower():
                return log, 0
            time.sleep(1.0)
        raise AdbError(f"the benchmark APK printed no result in {self.timeout_s:.0f} s on {self.serial}")

    def bench(self, job: DeviceJob, delegate: str, threads: int, runs: int, warmup: int, min_seconds: float,
              extra: list[str] | None = None) -> tuple[BenchResult, BenchmarkOutput | None]:
        if job.runtime == "executorch":
            return bench_pte(self, job, threads, runs, warmup), None
        if delegate == "nnapi" and self.facts.sdk >= 35:
            self.warnings.append(f"{self.serial}: NNAPI is deprecated from Android 15 (API 35); this device has API {self.facts.sdk}")
        remote = self.push_once(job.local)
        flags = [f"--graph={remote}", f"--num_threads={threads}", f"--warmup_runs={warmup}", f"--num_runs={runs}",
                 f"--min_secs={min_seconds}", "--report_peak_memory_footprint=true", *delegate_flags(delegate, job.allow_fp16),
                 *(extra or [])]
        text, code = self.run_tool(flags)
        out = parse_benchmark_output(text)
        base = dict(backend="device", device=self.facts.as_dict(), artifact=job.label, mode=job.mode, precision=job.precision,
                    delegate=delegate, threads=threads, flags=flags, warnings=list(self.warnings),
                    numerics=job.numerics if delegate in ("gpu", "nnapi") else None)
        if code != 0 or not out.complete:
            last = [ln for ln in text.strip().splitlines() if ln.strip()][-1:] or ["no output"]
            return BenchResult(**base, init_us=None, first_inference_us=None, warmup_avg_us=None, latency=None,
                               peak_memory_mb=None, error=f"benchmark_model failed (exit code {code}): {last[0][:200]}"), None
        inf = out.inference
        latency = LatencyStats(inf.count, inf.min or 0.0, inf.median if inf.median is not None else (inf.avg or 0.0),
                               inf.avg or 0.0, inf.p95, inf.std or 0.0) if inf else None
        return BenchResult(**base, init_us=out.init_us, first_inference_us=out.first_inference_us,
                           warmup_avg_us=out.warmup_avg_us, latency=latency, peak_memory_mb=out.peak_memory_mb,
                           delegated_nodes=out.delegated_nodes, total_nodes=out.total_nodes), out

