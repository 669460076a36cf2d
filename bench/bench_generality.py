"""Is the factorized speed-up a property of FR models, or of frlite's own copy of the UNet?

    .venv/bin/python bench/bench_generality.py [--fixture ../shared/fixtures/frereg_unet] [--out out/bench]
        [--size 320x480] [--runs 7]

Converts the authors' checkpoint twice, dense + factorized, tflite-cpu fp32 at 1x3x320x480: once as
frlite's built-in `unet`, once as the authors' own block structure given as a `file.py:factory`
spec (tests/models/authors_unet.py; frlite knows none of its classes). Then median latencies with
LiteRT XNNPACK on 1 thread, the four files run in interleaved rounds so machine load hits all alike,
and both speed-ups and their ratio (the goal: the user's model keeps >= 95% of the built-in's).
`--size 32x48 --runs 1` is a quick check that the script runs (its figures mean nothing there).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import FIXTURE, FRLITE, REPO, hxw, out_dir, run_step, quiet_third_party  # noqa: E402

MODELS = {"built-in unet": "unet", "authors' UNet (file.py:factory)": str(REPO / "tests" / "models" / "authors_unet.py") + ":authors_unet"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fixture", default=str(FIXTURE), help="folder with unet_fr.tar.xz (default ../shared/...)")
    ap.add_argument("--out", default=str(REPO / "out" / "bench"), help="results folder, created if missing (default out/bench)")
    ap.add_argument("--size", type=hxw, default=(320, 480), help="HxW (default 320x480)")
    ap.add_argument("--runs", type=int, default=7, help="timed rounds (after one warm-up)")
    args = ap.parse_args()
    h, w = args.size
    out = out_dir(args.out)
    from frlite.converter.core.manifest import read_manifest
    from frlite.runtimes.base import RunOptions
    from frlite.runtimes.loader import open_artifact

    ckpt = str((Path(args.fixture) / "unet_fr.tar.xz").resolve())
    x = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
    runners = {}
    for label, spec in MODELS.items():
        dst = out / f"generality_{spec.rpartition(':')[2]}_{h}x{w}"
        m = run_step([FRLITE, "convert", spec, "--weights", ckpt, "--input", f"input:1x3x{h}x{w}",
                      "--mode", "dense", "factorized", "--target", "tflite-cpu", "--precision", "fp32",
                      "--out", str(dst), "--overwrite", "--quiet"], f"conversion of {label}")
        secs, peak = m.seconds, m.peak_bytes
        fusions = [line.rpartition("]")[2].strip() for line in (dst / "convert.log").read_text().splitlines()
                   if "fusion" in line]
        print(f"{label}: converted in {secs:.0f} s (peak {peak / 1e9:.1f} GB); {fusions[0] if fusions else 'no fusion line'}")
        for art in read_manifest(dst).artifacts:
            rt = open_artifact(dst, art, RunOptions(threads=1, variant="xnnpack")).inner  # type: ignore[attr-defined]
            runners[(label, art.mode)] = (rt, {s.name: s.to_runtime(x) for s in rt.inputs()})
    times: dict[tuple[str, str], list[float]] = {k: [] for k in runners}
    for k, (rt, feeds) in runners.items():
        rt.run_native(feeds)  # warm-up
    for _ in range(args.runs):
        for k, (rt, feeds) in runners.items():
            t0 = time.perf_counter()
            rt.run_native(feeds)
            times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    print(f"== LiteRT XNNPACK, 1 thread, 1x3x{h}x{w}, fp32, median of {args.runs} interleaved rounds")
    speedup = {}
    for label in MODELS:
        dense, fact = med[(label, "dense")], med[(label, "factorized")]
        speedup[label] = dense / fact
        print(f"  {label:34s} dense {dense:9.1f} ms  factorized {fact:7.1f} ms  speed-up {speedup[label]:5.1f}x")
    ours, builtin = speedup[list(MODELS)[1]], speedup[list(MODELS)[0]]
    print(f"  ratio of speed-ups (authors' / built-in): {ours / builtin:.3f}  (goal >= 0.95)")
    (out / "bench_generality.json").write_text(json.dumps(
        {"size": f"1x3x{h}x{w}", "median_ms": {f"{k[0]}/{k[1]}": v for k, v in med.items()},
         "speedup": speedup, "ratio": ours / builtin}, indent=2))


if __name__ == "__main__":
    with quiet_third_party():  # LiteRT's INFO lines off the terminal, as in the frlite command
        main()
