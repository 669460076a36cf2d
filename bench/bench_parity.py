"""Time and memory of `frlite parity` on the authors' UNet: four fixture images at 640x959
through every file of a convert folder (make demo writes one to out/demo/unet).

    .venv/bin/python bench/bench_parity.py [--folder out/demo/unet] [--fixture ../shared/fixtures/frereg_unet]

Peak memory is that of the whole process tree (the parity run starts one process per file),
sampled every 0.1 s. Prints figures; no thresholds.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_convert import REPO, run_measured  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", default=str(REPO / "out" / "demo" / "unet"))
    ap.add_argument("--fixture", default=str(REPO.parent / "shared" / "fixtures" / "frereg_unet"))
    args = ap.parse_args()
    images = [str(Path(args.fixture) / f"in000{i}.png") for i in range(4)]
    frlite = str(Path(sys.executable).with_name("frlite"))
    secs, peak, code = run_measured([frlite, "parity", args.folder, "--inputs", *images, "--out",
                                     str(Path(args.folder).parent / "parity_bench"), "--overwrite"])
    print(f"frlite parity, 4 images x every file of {args.folder}: {secs:.1f} s, peak {peak / 1e9:.2f} GB "
          f"(process tree), exit code {code}")


if __name__ == "__main__":
    main()
