"""ExecuTorch .pte vs LiteRT .tflite vs ONNX Runtime on this host, dense and factorized, one run.

    .venv/bin/python bench/bench_executorch.py [--fixture ../shared/fixtures/frereg_unet] [--out out/bench]
        [--size 320x480] [--threads 1,2] [--runs 5] [--model SPEC --weights CKPT]

Converts the model (default: the authors' UNet) at 1x3xHxW to dense and factorized files for
onnx, tflite-cpu and executorch (fp32), then prints per file and thread count the median of
`--runs` latencies after a warm-up (ONNX Runtime at the file's own optimization level, LiteRT
with XNNPACK, ExecuTorch with its XNNPACK subgraphs), the file size and, for .pte files, how many
ops XNNPACK took. `--model tests.models.small_fr:unet_small --size 32x48 --threads 1 --runs 1`
is a quick check.
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
    ap.add_argument("--size", type=hxw, default=(320, 480), help="HxW (default 320x480)")
    ap.add_argument("--threads", default="1,2", help="thread counts, comma-separated (default 1,2)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per latency (median; default 5)")
    args = ap.parse_args()
    h, w = args.size
    out = out_dir(args.out)
    from frlite.converter.core.manifest import read_manifest
    from frlite.runtimes.base import RunOptions
    from frlite.runtimes.loader import open_artifact

    dst = out / f"executorch_{h}x{w}"
    m = run_step([FRLITE, "convert", args.model, *weights_args(args), "--input", f"input:1x3x{h}x{w}",
                  "--mode", "dense", "factorized", "--target", "onnx", "tflite-cpu", "executorch",
                  "--precision", "fp32", "--out", str(dst), "--overwrite", "--quiet"], f"conversion at {h}x{w}")
    print(f"== 1x3x{h}x{w}, conversion {m.seconds:.0f} s, peak {m.peak_bytes / 1e9:.1f} GB; median of {args.runs} runs")
    manifest = read_manifest(dst)
    x = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
    rows = []
    for art in manifest.artifacts:
        delegated = ""
        if art.runtime == "executorch":
            rep = json.loads((dst / art.extra_files["compat_json"]).read_text())
            delegated = f"{rep['ops_delegated']}/{rep['ops_total']} ops on XNNPACK, {rep['xnnpack_subgraphs']} subgraph(s)"
        for threads in [int(t) for t in args.threads.split(",")]:
            variant = "xnnpack" if art.runtime == "tflite" else "default"
            rt = open_artifact(dst, art, RunOptions(threads=threads, variant=variant)).inner  # type: ignore[attr-defined]
            feeds = {s.name: s.to_runtime(x).astype(s.dtype) for s in rt.inputs()}
            ms = latency(rt, feeds, args.runs) * 1e3
            del rt
            rows.append({"file": art.path, "mode": art.mode, "runtime": art.runtime, "threads": threads,
                         "median_ms": ms, "size_bytes": art.size_bytes, "delegation": delegated})
            print(f"  {art.mode:10s} {art.runtime:11s} {threads}t {ms:9.1f} ms  {art.size_bytes:>13,d} B  {delegated}")
    path = out / "bench_executorch.json"
    path.write_text(json.dumps({f"{h}x{w}": rows}, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    with quiet_third_party():  # LiteRT's and ExecuTorch's INFO lines off the terminal, as in the frlite command
        main()
