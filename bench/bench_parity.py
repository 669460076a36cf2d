"""Time and memory of `frlite parity` on the authors' UNet: four fixture images at 640x959
through every file of a convert folder (make demo writes one to out/demo/unet; converted here
first when it is missing).

    .venv/bin/python bench/bench_parity.py [--folder out/demo/unet] [--fixture ../shared/fixtures/frereg_unet]
        [--images 4] [--size 640x959] [--modes dense,idct,factorized] [--model SPEC --weights CKPT]

Peak memory is that of the whole process tree (the parity run starts one process per file),
sampled every 0.1 s. Images of another size than the folder's input are resized (and passed as
.npy). Prints figures; no thresholds. `--folder /tmp/x --model tests.models.small_fr:unet_small
--size 32x48 --images 1` is a quick check.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (FRLITE, add_folder_options, add_model_options, ensure_converted,  # noqa: E402
                          fixture_images, out_dir, quiet_third_party, reference_args, run_step)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_folder_options(ap)
    add_model_options(ap)
    ap.add_argument("--images", type=int, default=4, help="fixture images to compare on (default 4)")
    args = ap.parse_args()
    folder = ensure_converted(args)
    from frlite.converter.core.manifest import read_manifest

    shape = tuple(read_manifest(folder).model_inputs[0].shape)
    report = folder.parent / "parity_bench"
    inputs = out_dir(str(folder.parent / "parity_bench_inputs"))
    files = []
    for i, (x, _) in enumerate(fixture_images(Path(args.fixture), args.images, shape[2:])):
        np.save(inputs / f"in{i:04d}.npy", x.reshape(shape))
        files.append(str(inputs / f"in{i:04d}.npy"))
    m = run_step([FRLITE, "parity", str(folder), *reference_args(args), "--inputs", *files, "--out", str(report),
                  "--overwrite", "--quiet"], "frlite parity", ok_codes=(0, 1))
    print(f"frlite parity, {args.images} images x every file of {folder}: {m.seconds:.1f} s, peak {m.peak_bytes / 1e9:.2f} GB "
          f"(process tree), exit code {m.code} ({'all pass' if m.code == 0 else 'some comparisons fail'}); report {report}")


if __name__ == "__main__":
    with quiet_third_party():  # LiteRT's INFO lines off the terminal, as in the frlite command
        main()
