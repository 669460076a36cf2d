"""What every bench script shares: paths, the model options, running a step, fixture inputs.

The scripts run on a fresh clone beside ../shared: every folder they write is created here
(absolute paths, so the child's working directory does not matter), a convert folder a script
reads is converted first when it is missing, and a failing step stops the script with the
child's own error lines, never just an exit code.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO.parent / "shared" / "fixtures" / "frereg_unet"
FRLITE = str(Path(sys.executable).with_name("frlite"))
if str(REPO) not in sys.path:  # `frlite` imports work when the script runs from any folder
    sys.path.insert(0, str(REPO))

from frlite.converter.core.stderr_filter import filtered_stderr as quiet_third_party  # noqa: E402,F401 (for the scripts)


@dataclass
class Measured:
    seconds: float
    peak_bytes: int   # RSS of the whole process tree, sampled every 0.1 s
    code: int
    stderr: str       # the child's stderr, for a failing step's message


def run_measured(cmd: list[str]) -> Measured:
    """Run a command (output to a temp file, never a pipe that could fill) and measure it."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=REPO)
        ps = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            try:
                peak = max(peak, ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True)))
            except psutil.Error:
                pass
            time.sleep(0.1)
        seconds = time.perf_counter() - start
        err.seek(0)
        text = err.read().decode(errors="replace")
    return Measured(seconds, peak, proc.returncode, text)


def run_step(cmd: list[str], what: str, ok_codes: tuple[int, ...] = (0,)) -> Measured:
    """run_measured, stopping the script with the child's last error lines when it fails."""
    m = run_measured(cmd)
    if m.code not in ok_codes:
        tail = "\n".join("    " + line for line in m.stderr.strip().splitlines()[-8:]) or "    (no output on stderr)"
        raise SystemExit(f"{what} failed (exit {m.code}):\n{tail}\n  command: {' '.join(cmd)}")
    return m


def latency(runtime, feeds: dict[str, np.ndarray], runs: int = 5) -> float:  # type: ignore[no-untyped-def]
    """Median seconds of `runs` runs after one warm-up (which also takes any load-time work)."""
    runtime.run_native(feeds)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        runtime.run_native(feeds)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def hxw(text: str) -> tuple[int, int]:
    """`HxW` -> (H, W), for argparse."""
    try:
        h, w = (int(v) for v in text.split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not HxW, e.g. 320x480") from None
    return h, w


def add_model_options(ap: argparse.ArgumentParser) -> None:
    """--fixture, --model, --weights: the authors' UNet by default; a tiny model for a quick check."""
    ap.add_argument("--fixture", default=str(FIXTURE), help="folder with unet_fr.tar.xz and the images (default ../shared/...)")
    ap.add_argument("--model", default="unet", help="MODEL SPEC (default unet, the authors' UNet)")
    ap.add_argument("--weights", help="its checkpoint (default: FIXTURE/unet_fr.tar.xz for unet, none otherwise)")


def weights_args(args: argparse.Namespace) -> list[str]:
    """The `--weights` part of a `frlite convert` command for these options."""
    weights = args.weights or (str(Path(args.fixture) / "unet_fr.tar.xz") if args.model == "unet" else None)
    return ["--weights", str(Path(weights).resolve())] if weights else []


def out_dir(path: str) -> Path:
    """The output folder, absolute and created (with its parents)."""
    out = Path(path).resolve()
    out.mkdir(parents=True, exist_ok=True)
    return out


# what `make demo` converts (scripts/demo.sh step 4): scripts reading its folder convert the same
DEMO_MODES = "dense,idct,factorized"
DEMO_TARGETS = ["onnx", "tflite-cpu", "tflite-gpu", "tflite-nnapi"]
DEMO_PRECISIONS = ["fp32", "fp16"]


def add_folder_options(ap: argparse.ArgumentParser) -> None:
    """--folder (make demo's by default) and how to convert it when it is missing: --size, --modes."""
    ap.add_argument("--folder", default=str(REPO / "out" / "demo" / "unet"),
                    help="a convert folder (default out/demo/unet, what make demo writes; converted if missing)")
    ap.add_argument("--size", type=hxw, default=(640, 959), help="HxW when the folder must be converted (default 640x959)")
    ap.add_argument("--modes", default=DEMO_MODES, help=f"modes to convert when the folder is missing (default {DEMO_MODES})")


def ensure_converted(args: argparse.Namespace) -> Path:
    """The convert folder to read: --folder, converted now (as make demo does) when it does not exist yet."""
    folder = Path(args.folder).resolve()
    if (folder / "manifest.json").exists():
        return folder
    h, w = args.size
    print(f"no convert folder at {folder}: converting {args.model} at 1x3x{h}x{w} first", flush=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    run_step([FRLITE, "convert", args.model, *weights_args(args), "--input", f"input:1x3x{h}x{w}",
              "--mode", *args.modes.split(","), "--target", *DEMO_TARGETS, "--precision", *DEMO_PRECISIONS,
              "--out", str(folder), "--quiet"], f"converting {args.model} into {folder}")
    return folder


def reference_args(args: argparse.Namespace) -> list[str]:
    """`--model` / `--weights` for `frlite parity`: the same model the folder was converted from."""
    return ["--model", args.model, *weights_args(args)]


def fixture_images(fixture: Path, count: int, hw: tuple[int, int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The first `count` fixture images (1x3xHxW float32) and masks (HxW bool), resized to hw when
    they are another size (bilinear for images, nearest for masks)."""
    import torch
    import torch.nn.functional as F

    from frlite.converter.models.segmentation import load_image, load_mask

    out = []
    for i in range(count):
        x = load_image(fixture / f"in{i:04d}.png")
        truth = load_mask(fixture / f"gt{i:04d}.png")
        if tuple(x.shape[2:]) != hw:
            x = F.interpolate(torch.from_numpy(x), size=hw, mode="bilinear", align_corners=False).numpy()
            truth = F.interpolate(torch.from_numpy(truth)[None, None].float(), size=hw).numpy()[0, 0] > 0.5
        out.append((x, truth))
    return out
