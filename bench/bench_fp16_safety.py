"""fp16 arithmetic, before and after frlite's exact rewrites: the authors' UNet, fixture images.

Each form (dense, idct, factorized) runs under frlite.runtimes.fp16_emulation (every op's output stored
in fp16, as a phone's GPU / NNAPI fp16 path does) before and after frlite.converter.forms.fp16_rescale's
rewrites, whose constants are chosen on a seeded random input as `frlite convert` does. Printed
per image: pixel agreement with PyTorch fp32, Dice against the ground truth, the first op that
overflowed; plus the time of each emulated run.

    .venv/bin/python bench/bench_fp16_safety.py [--size 640x959] [--images 4] [--forms dense,idct,factorized]
        [--before 1] [--fixtures ../shared/fixtures/frereg_unet]

`--size 32x48 --images 1` is a quick check that the script runs.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import FIXTURE, fixture_images, hxw, quiet_third_party  # noqa: E402

from frlite.converter.fr.batch_stat_norm import clone_for_export  # noqa: E402
from frlite.converter.passes.convert_pipeline import dense_export_module  # noqa: E402
from frlite.converter.forms.factorized import factorize_model  # noqa: E402
from frlite.converter.forms.fp16_rescale import make_fp16_safe, prescale_stat_norms  # noqa: E402
from frlite.converter.models.model_loading import load_fr_model  # noqa: E402
from frlite.converter.models.segmentation import argmax_mask, dice  # noqa: E402
from frlite.runtimes.fp16_emulation import run_fp16  # noqa: E402


def build(form: str, model: torch.nn.Module, example: tuple[torch.Tensor, ...], safe: bool) -> torch.nn.Module:
    if form == "dense":
        module = dense_export_module(model)
    elif form == "idct":
        module = clone_for_export(model)  # FR layers rebuild their weights inside the emulation, as the file does
    else:
        module, _ = factorize_model(model, example, fp16_safe=False)
        if safe:
            make_fp16_safe(module, example)
        return module
    if safe:
        prescale_stat_norms(module, example)
    return module


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=hxw, default=(640, 959), help="HxW; the images are resized to it (default 640x959)")
    ap.add_argument("--images", type=int, default=4, help="fixture images (default 4)")
    ap.add_argument("--forms", default="dense,idct,factorized", help="forms to run, comma-separated")
    ap.add_argument("--before", type=int, default=1, help="images to run without the rewrites (slow to fail)")
    ap.add_argument("--fixtures", default=str(FIXTURE), help="folder with unet_fr.tar.xz and the images (default ../shared/...)")
    args = ap.parse_args()
    h, w = args.size
    torch.set_num_threads(1)
    model = load_fr_model("unet", Path(args.fixtures) / "unet_fr.tar.xz").model
    example = (torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0)),)
    images = []
    for i, (image, truth) in enumerate(fixture_images(Path(args.fixtures), args.images, (h, w))):
        x = torch.from_numpy(image)
        with torch.no_grad():
            ref = model(x).numpy()
        for _, layer in [(n, m) for n, m in model.named_modules() if hasattr(m, "drop_cached_weight")]:
            layer.drop_cached_weight()
        images.append((x, truth, argmax_mask(ref)))
        print(f"in{i:04d}: PyTorch fp32 Dice {dice(argmax_mask(ref) == 1, truth):.6f}", flush=True)
    print(f"| form | rewrites | image | pixel agreement | Dice | Dice fp32 | first overflow (max abs) | seconds |")
    print("| --- | --- | --- | ---: | ---: | ---: | --- | ---: |")
    for form in args.forms.split(","):
        for safe in (False, True):
            module = build(form, model, example, safe)
            for i, (x, truth, ref_mask) in enumerate(images[: (len(images) if safe else args.before)]):
                t0 = time.perf_counter()
                run = run_fp16(module, x)
                secs = time.perf_counter() - t0
                mask = argmax_mask(run.outputs[0].numpy())
                agree = float((mask == ref_mask).mean())
                of = run.first_overflow
                where = f"{of.module}/{of.op} ({of.max_abs:.4g})" if of else "none"
                print(f"| {form} | {'after' if safe else 'before'} | in{i:04d} | {agree * 100:.3f}% | "
                      f"{dice(mask == 1, truth):.6f} | {dice(ref_mask == 1, truth):.6f} | {where} | {secs:.1f} |", flush=True)
            del module


if __name__ == "__main__":
    with quiet_third_party():  # LiteRT's INFO lines off the terminal, as in the frlite command
        main()
