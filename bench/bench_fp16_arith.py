"""The fp16-arithmetic executor on the authors' UNet: every .tflite of a convert folder (640x959,
`make demo` writes one to out/demo/unet; converted here first when it is missing) on the four
fixture images (resized when the folder's input is another size).

    .venv/bin/python bench/bench_fp16_arith.py [--folder out/demo/unet] [--fixture ../shared/fixtures/frereg_unet]
        [--threads 2] [--arith fp16|fp32] [--images 4] [--size 640x959] [--modes ...] [--model SPEC --weights CKPT]
        [--files idct_fp16.tflite ...]

Per file, in a fresh process: load time, seconds per image, the process's peak RSS, the verdict
(first op that overflows fp16), pixel agreement with PyTorch fp32 and Dice against the fixture's
ground-truth masks (README: 0.978770 0.979274 0.974674 0.980772). Prints figures; no thresholds.
`--folder /tmp/x --model tests.models.small_fr:unet_small --size 32x48 --images 1` is a quick check.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import add_folder_options, add_model_options, ensure_converted, fixture_images, weights_args, quiet_third_party  # noqa: E402

from frlite.converter.core.spawn import run_spawned  # noqa: E402


def _run(path: str, arith: str, threads: int, feeds: list[dict[str, np.ndarray]], specs: dict) -> dict:
    """In a fresh process: the file through the executor, with its own time and peak memory."""
    import resource

    from frlite.runtimes.fp16_executor import GraphExecutor

    t0 = time.perf_counter()
    ex = GraphExecutor(path, arith, threads)
    load = time.perf_counter() - t0
    outs, stats, secs = [], [], []
    for f in feeds:
        t1 = time.perf_counter()
        native = {n: np.ascontiguousarray(a.transpose(specs[n])) if specs.get(n) else a for n, a in f.items()}
        o, s = ex.run(native)
        secs.append(time.perf_counter() - t1)
        outs.append({n: np.ascontiguousarray(a.transpose(np.argsort(specs[n]))) if specs.get(n) else a for n, a in o.items()})
        stats.append(s)
    producers = {t: op.index for op in ex.graph.ops for t in op.outputs}
    return {"load": load, "secs": secs, "outs": outs, "stats": stats, "producers": producers,
            "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_folder_options(ap)
    add_model_options(ap)
    ap.add_argument("--threads", type=int, default=2, help="executor threads (default 2)")
    ap.add_argument("--arith", default="fp16", choices=["fp16", "fp32"], help="arithmetic of every op (default fp16)")
    ap.add_argument("--images", type=int, default=4, help="fixture images (default 4)")
    ap.add_argument("--files", nargs="+", default=None, help="only these .tflite file names (default all)")
    args = ap.parse_args()
    folder = ensure_converted(args)

    from frlite.converter.core.manifest import read_manifest
    from frlite.converter.models.segmentation import argmax_mask, dice
    from frlite.runtimes.fp16_verdict import measure
    from frlite.runtimes.parity_metrics import DEFAULT_TOLERANCES
    from frlite.converter.core.convert_folder import ConvertFolder
    from frlite.runtimes.reference_model import ReferenceRequest, reference_runtime

    manifest = read_manifest(folder)
    spec = manifest.model_inputs[0]
    pairs = fixture_images(Path(args.fixture), args.images, tuple(spec.shape[2:]))
    masks = [truth for _, truth in pairs]
    data = [{spec.model_name: x} for x, _ in pairs]
    weights = weights_args(args)
    # the model the folder was converted from; its checkpoint's sha256 is checked against the manifest's
    ref = reference_runtime(ConvertFolder.open(folder), ReferenceRequest(args.model, weights[1] if weights else None))
    refs = [ref.run(d) for d in data]
    del ref
    out_name = manifest.model_outputs[0].model_name
    print("PyTorch fp32 Dice vs ground truth: " + " ".join(f"{dice(argmax_mask(r[out_name]) == 1, m):.6f}"
                                                           for r, m in zip(refs, masks)))
    seen: set[str] = set()
    for art in manifest.artifacts:
        if art.runtime != "tflite" or art.path in seen or art.precision not in ("fp32", "fp16"):
            continue
        if args.files and Path(art.path).name not in args.files:
            continue
        seen.add(art.path)
        specs = {i.model_name: i.perm_from_model for i in art.inputs + art.outputs}
        names = {i.model_name: i.name for i in art.inputs + art.outputs}
        feeds = [{names[k]: v for k, v in d.items()} for d in data]
        inv = {v: k for k, v in names.items()}
        res = run_spawned(_run, str(folder / art.path), args.arith, args.threads, feeds,
                          {names[k]: v for k, v in specs.items()})
        outs = [{inv[k]: v for k, v in o.items()} for o in res["outs"]]
        v = measure(res["stats"], refs, outs, DEFAULT_TOLERANCES["fp16"][0], art.layer_outputs, res["producers"])
        dices = [dice(argmax_mask(np.nan_to_num(o[out_name], nan=-np.inf)) == 1, m) for o, m in zip(outs, masks)]
        agree = [float((argmax_mask(r[out_name]) == argmax_mask(np.nan_to_num(o[out_name], nan=-np.inf))).mean())
                 for r, o in zip(refs, outs)]
        nonfinite = sum(int((~np.isfinite(o[out_name])).sum()) for o in outs)
        print(f"{art.path} ({args.arith} arithmetic, {args.threads} threads): load {res['load']:.1f} s, "
              f"{np.mean(res['secs']):.1f} s/image (max {max(res['secs']):.1f}), peak RSS {res['peak_rss'] / 2**30:.2f} GiB")
        print(f"    pixel agreement {' '.join(f'{100 * a:.3f}%' for a in agree)}; Dice {' '.join(f'{d:.6f}' for d in dices)}; "
              f"non-finite outputs {nonfinite:,}")
        print(f"    {v.message}")


if __name__ == "__main__":
    with quiet_third_party():  # LiteRT's INFO lines off the terminal, as in the frlite command
        main()
