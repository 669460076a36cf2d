"""--mode factorized vs dense for the authors' UNet, measured side by side in one run.

    .venv/bin/python bench/bench_factorized.py [--fixture ../shared/fixtures/frereg_unet] [--out out/bench]
        [--sizes 320x480,640x959] [--threads 1,2] [--runs 5] [--no-profile] [--model SPEC --weights CKPT]

At 1x3x320x480 and 1x3x640x959: convert (dense + factorized; onnx + tflite-cpu; fp32 + fp16),
then median of 5 latencies (after a warm-up) with LiteRT XNNPACK (1 and 2 threads) and ONNX
Runtime (1 and 2 threads), file sizes, and the dense/factorized speed-up. Then where the
factorized model's remaining time goes: PyTorch's op profile of the factorized module (at the
first size). `--model tests.models.small_fr:unet_small --sizes 32x48 --threads 1 --runs 1` is a quick check.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import FRLITE, REPO, add_model_options, hxw, latency, out_dir, quiet_third_party, run_step, weights_args  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_options(ap)
    ap.add_argument("--out", default=str(REPO / "out" / "bench"), help="results folder, created if missing (default out/bench)")
    ap.add_argument("--sizes", default="320x480,640x959", help="HxW list (the speed-up goal is checked at 320x480)")
    ap.add_argument("--threads", default="1,2", help="thread counts, comma-separated (default 1,2)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per latency (median; default 5)")
    ap.add_argument("--no-profile", action="store_true", help="skip the PyTorch op profile")
    args = ap.parse_args()
    sizes = [hxw(s) for s in args.sizes.split(",")]
    thread_counts = [int(t) for t in args.threads.split(",")]
    out = out_dir(args.out)
    from frlite.converter.core.manifest import read_manifest
    from frlite.runtimes.base import RunOptions
    from frlite.runtimes.loader import open_artifact

    results = {}
    for h, w in sizes:
        dst = out / f"factorized_{h}x{w}"
        m = run_step([FRLITE, "convert", args.model, *weights_args(args), "--input", f"input:1x3x{h}x{w}",
                      "--mode", "dense", "factorized", "--target", "onnx", "tflite-cpu",
                      "--precision", "fp32", "fp16", "--out", str(dst), "--overwrite", "--quiet"], f"conversion at {h}x{w}")
        secs, peak = m.seconds, m.peak_bytes
        manifest = read_manifest(dst)
        x = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
        rows = {}
        print(f"== 1x3x{h}x{w} (conversion of both modes: {secs:.0f} s, peak {peak / 1e9:.1f} GB)")
        for art in manifest.artifacts:
            for threads in thread_counts:
                variant = "xnnpack" if art.runtime == "tflite" else "default"
                rt = open_artifact(dst, art, RunOptions(threads=threads, variant=variant)).inner  # type: ignore[attr-defined]
                feeds = {s.name: s.to_runtime(x) for s in rt.inputs()}
                rows[(art.mode, art.runtime, art.precision, threads)] = (latency(rt, feeds, args.runs) * 1e3, art.size_bytes)
                del rt
        for (mode, runtime, prec, threads), (ms, size) in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][3], kv[0][0])):
            line = f"  {mode:10s} {runtime:12s} {prec:5s} {threads}t {ms:9.1f} ms  {size:>13,d} B"
            if mode == "factorized":
                dense_ms = rows[("dense", runtime, prec, threads)][0]
                line += f"   {dense_ms / ms:5.1f}x faster than dense"
            print(line)
        results[f"{h}x{w}"] = {f"{k[0]}/{k[1]}/{k[2]}/{k[3]}t": {"median_ms": v[0], "size_bytes": v[1]} for k, v in rows.items()}

    (out / "bench_factorized.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {out / 'bench_factorized.json'}")
    if args.no_profile:
        return
    h, w = sizes[0]
    print(f"== where the factorized {args.model} spends its time (PyTorch profile, 1x3x{h}x{w}, 1 thread)")
    import torch
    from torch.profiler import ProfilerActivity, profile

    from frlite.converter.forms.factorized import factorize_model
    from frlite.converter.models.model_loading import load_fr_model

    torch.set_num_threads(1)
    weights = weights_args(args)
    model = load_fr_model(args.model, weights[1] if weights else None).model
    xt = torch.rand(1, 3, h, w)
    fact, _ = factorize_model(model, (xt,))
    with torch.no_grad():
        fact(xt)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fact(xt)
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10)
    print(table)


if __name__ == "__main__":
    with quiet_third_party():  # LiteRT's INFO lines off the terminal, as in the frlite command
        main()
