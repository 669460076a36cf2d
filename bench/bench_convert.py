"""Conversion cost and host latency of the authors' FR UNet, measured side by side in one run.

    .venv/bin/python bench/bench_convert.py [--fixture ../shared/fixtures/frereg_unet] [--out out/bench]
        [--full-size 640x959 | --skip-full-size] [--size 320x480] [--runs 5] [--model SPEC --weights CKPT]

1. `frlite convert` at 1x3x640x959, once per mode (dense; idct), each in its own process:
   wall time and peak memory of the whole process tree (psutil, sampled every 0.1 s).
   The bare pipeline a user writes today (dense-bake, torch.onnx, onnx2tf) took 593 s and
   12.9 GB on this machine kind (issue 4); the ratios against it are printed.
2. `frlite convert` at 1x3x320x480 (dense + idct, onnx + tflite, fp32 + fp16), then host latency
   of every artifact: LiteRT (XNNPACK, 1 and 2 threads) and ONNX Runtime (1 and 2 threads),
   median of 5 runs after one warm-up, and the idct/dense ratio per runtime.
Figures go to stdout and to OUT/bench_convert.json. Nothing here is a test: no thresholds.
`--model tests.models.small_fr:unet_small --full-size 32x48 --size 32x48 --runs 1` is a quick check.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import FRLITE, REPO, add_model_options, hxw, latency, out_dir, quiet_third_party, run_step, weights_args  # noqa: E402

BARE_SECONDS, BARE_BYTES = 9 * 60 + 53, 12.9e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_options(ap)
    ap.add_argument("--out", default=str(REPO / "out" / "bench"), help="results folder, created if missing (default out/bench)")
    ap.add_argument("--full-size", type=hxw, default=(640, 959), help="HxW of the conversion-cost runs (default 640x959)")
    ap.add_argument("--skip-full-size", action="store_true", help="skip the conversion-cost runs")
    ap.add_argument("--size", type=hxw, default=(320, 480), help="HxW of the latency runs (default 320x480)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per latency (median; default 5)")
    args = ap.parse_args()
    out = out_dir(args.out)
    (fh, fw), (h, w) = args.full_size, args.size
    results: dict = {f"conversion_{fh}x{fw}": {}, f"latency_{h}x{w}": {}}

    if not args.skip_full_size:
        print(f"== conversion cost, {args.model} at 1x3x{fh}x{fw} (targets onnx + tflite-cpu, fp32 + fp16)")
        for mode in ("dense", "idct"):
            dst = out / f"convert_{mode}_{fh}x{fw}"
            m = run_step([FRLITE, "convert", args.model, *weights_args(args), "--input", f"input:1x3x{fh}x{fw}",
                          "--mode", mode, "--target", "onnx", "tflite-cpu", "--precision", "fp32", "fp16",
                          "--out", str(dst), "--overwrite", "--quiet"], f"conversion ({mode}) at {fh}x{fw}")
            secs, peak = m.seconds, m.peak_bytes
            results[f"conversion_{fh}x{fw}"][mode] = {"seconds": secs, "peak_bytes": peak}
            print(f"  {mode:5s}: {secs:6.1f} s ({BARE_SECONDS / secs:4.1f}x faster than the bare pipeline's {BARE_SECONDS} s), "
                  f"peak {peak / 1e9:5.2f} GB ({BARE_BYTES / peak:4.1f}x less than its 12.9 GB)")

    print(f"== artifacts at 1x3x{h}x{w}: size and host latency (median of {args.runs})")
    dst = out / f"convert_{h}x{w}"
    m = run_step([FRLITE, "convert", args.model, *weights_args(args), "--input", f"input:1x3x{h}x{w}",
                  "--mode", "dense", "idct", "--target", "onnx", "tflite-cpu",
                  "--precision", "fp32", "fp16", "--out", str(dst), "--overwrite", "--quiet"], f"conversion at {h}x{w}")
    secs, peak = m.seconds, m.peak_bytes
    from frlite.converter.core.manifest import read_manifest
    from frlite.runtimes.base import RunOptions
    from frlite.runtimes.loader import open_artifact

    manifest = read_manifest(dst)
    x = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
    rows = []
    for art in manifest.artifacts:
        variants = [("xnnpack", 1), ("xnnpack", 2)] if art.runtime == "tflite" else [("default", 1), ("default", 2)]
        for variant, threads in variants:
            rt = open_artifact(dst, art, RunOptions(threads=threads, variant=variant))
            feeds = {s.name: s.to_runtime(x) for s in rt.inner.inputs()}  # type: ignore[attr-defined]
            med = latency(rt.inner, feeds, args.runs)  # type: ignore[attr-defined]
            rows.append({"mode": art.mode, "runtime": art.runtime, "precision": art.precision, "path": art.path,
                         "size_bytes": art.size_bytes, "threads": threads, "median_ms": med * 1000})
    results[f"latency_{h}x{w}"] = rows
    results[f"conversion_all_files_{h}x{w}"] = {"seconds": secs, "peak_bytes": peak}
    print(f"  conversion of all {len({a.path for a in manifest.artifacts})} files: {secs:.1f} s, peak {peak / 1e9:.2f} GB")
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
    with quiet_third_party():  # LiteRT's INFO lines off the terminal, as in the frlite command
        main()
