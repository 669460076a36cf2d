"""Conversion cost and host latency of the authors' FR UNet, measured side by side in one run.

    .venv/bin/python bench/bench_convert.py [--fixture ../shared/fixtures/frereg_unet] [--out out/bench]

1. `frlite convert` at 1x3x640x959, once per mode (dense; idct), each in its own process:
   wall time and peak memory of the whole process tree (psutil, sampled every 0.1 s).
   The bare pipeline a user writes today (dense-bake, torch.onnx, onnx2tf) took 593 s and
   12.9 GB on this machine kind (issue 4); the ratios against it are printed.
2. `frlite convert` at 1x3x320x480 (dense + idct, onnx + tflite, fp32 + fp16), then host latency
   of every artifact: LiteRT (XNNPACK, 1 and 2 threads) and ONNX Runtime (1 and 2 threads),
   median of 5 runs after one warm-up, and the idct/dense ratio per runtime.
Figures go to stdout and to OUT/bench_convert.json. Nothing here is a test: no thresholds.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
BARE_SECONDS, BARE_BYTES = 9 * 60 + 53, 12.9e9


def run_measured(cmd: list[str]) -> tuple[float, int, int]:
    """(wall seconds, peak RSS of the process tree in bytes, exit code)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True)))
        except psutil.Error:
            pass
        time.sleep(0.1)
    return time.perf_counter() - start, peak, proc.returncode


def latency(runtime, feeds: dict[str, np.ndarray], runs: int = 5) -> float:  # type: ignore[no-untyped-def]
    runtime.run_native(feeds)  # warm-up (and any load-time work)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        runtime.run_native(feeds)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fixture", default=str(REPO.parent / "shared" / "fixtures" / "frereg_unet"))
    ap.add_argument("--out", default=str(REPO / "out" / "bench"))
    ap.add_argument("--skip-full-size", action="store_true", help="skip the 640x959 conversion timing")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = str(Path(args.fixture) / "unet_fr.tar.xz")
    frlite = str(Path(sys.executable).with_name("frlite"))
    results: dict = {"conversion_640x959": {}, "latency_320x480": {}}

    if not args.skip_full_size:
        print("== conversion cost, authors' UNet at 1x3x640x959 (targets onnx + tflite-cpu, fp32 + fp16)")
        for mode in ("dense", "idct"):
            dst = out / f"convert_{mode}_640"
            secs, peak, code = run_measured([frlite, "convert", "unet", "--weights", ckpt, "--input", "input:1x3x640x959",
                                             "--mode", mode, "--target", "onnx", "tflite-cpu", "--precision", "fp32", "fp16",
                                             "--out", str(dst), "--overwrite", "--quiet"])
            if code != 0:
                raise SystemExit(f"conversion ({mode}) failed with exit code {code}")
            results["conversion_640x959"][mode] = {"seconds": secs, "peak_bytes": peak}
            print(f"  {mode:5s}: {secs:6.1f} s ({BARE_SECONDS / secs:4.1f}x faster than the bare pipeline's {BARE_SECONDS} s), "
                  f"peak {peak / 1e9:5.2f} GB ({BARE_BYTES / peak:4.1f}x less than its 12.9 GB)")

    print("== artifacts at 1x3x320x480: size and host latency (median of 5)")
    dst = out / "convert_320"
    secs, peak, code = run_measured([frlite, "convert", "unet", "--weights", ckpt, "--input", "input:1x3x320x480",
                                     "--mode", "dense", "idct", "--target", "onnx", "tflite-cpu",
                                     "--precision", "fp32", "fp16", "--out", str(dst), "--overwrite", "--quiet"])
    if code != 0:
        raise SystemExit(f"conversion at 320x480 failed with exit code {code}")
    sys.path.insert(0, str(REPO))
    from frlite.converter.core.manifest import read_manifest
    from frlite.runtimes.base import RunOptions
    from frlite.runtimes.loader import open_artifact

    manifest = read_manifest(dst)
    x = np.random.default_rng(0).random((1, 3, 320, 480), dtype=np.float32)
    rows = []
    for art in manifest.artifacts:
        variants = [("xnnpack", 1), ("xnnpack", 2)] if art.runtime == "tflite" else [("default", 1), ("default", 2)]
        for variant, threads in variants:
            rt = open_artifact(dst, art, RunOptions(threads=threads, variant=variant))
            feeds = {s.name: s.to_runtime(x) for s in rt.inner.inputs()}  # type: ignore[attr-defined]
            med = latency(rt.inner, feeds)  # type: ignore[attr-defined]
            rows.append({"mode": art.mode, "runtime": art.runtime, "precision": art.precision, "path": art.path,
                         "size_bytes": art.size_bytes, "threads": threads, "median_ms": med * 1000})
    results["latency_320x480"] = rows
    results["conversion_320x480"] = {"seconds": secs, "peak_bytes": peak}
    print(f"  conversion of all 6 files: {secs:.1f} s, peak {peak / 1e9:.2f} GB")
    print(f"  {'mode':5s} {'runtime':12s} {'prec':5s} {'size':>13s} {'thr':>3s} {'median ms':>10s}  idct/dense")
    for r in rows:
        dense = next(d for d in rows if d["mode"] == "dense" and d["runtime"] == r["runtime"]
                     and d["precision"] == r["precision"] and d["threads"] == r["threads"])
        ratio = r["median_ms"] / dense["median_ms"]
        print(f"  {r['mode']:5s} {r['runtime']:12s} {r['precision']:5s} {r['size_bytes']:>13,d} {r['threads']:>3d} "
              f"{r['median_ms']:>10.1f}  {ratio:5.2f}x" if r["mode"] == "idct" else
              f"  {r['mode']:5s} {r['runtime']:12s} {r['precision']:5s} {r['size_bytes']:>13,d} {r['threads']:>3d} {r['median_ms']:>10.1f}")
    (out / "bench_convert.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {out / 'bench_convert.json'}")


if __name__ == "__main__":
    main()
