"""Pass quick_parity: every artifact against PyTorch on the check inputs (--inputs, else seeded), with the shared
tolerance table (converter/core/tolerances.py); a mismatch fails the conversion, nothing is written.
One run per file, shared by its targets; big-input idct .tflite files run through their dense twin."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from frlite.converter.core.errors import FrliteError
from frlite.converter.core.manifest import ArtifactParity
from frlite.converter.core.memory import release_memory
from frlite.converter.core.progress import plural
from frlite.converter.core.tolerances import tolerance
from frlite.converter.fr.fr_layers import fr_layers
from frlite.converter.passes.context import QUICK_RUN, ConvertContext, targets_by_file, worst_error
from frlite.converter.passes.driver import BasePass
from frlite.converter.tflite.tflite_fold import dense_twin


class QuickParity(BasePass):
    def __init__(self) -> None:
        super().__init__("quick_parity", needs=("tmp", "work", "model", "artifacts", "ref_outputs", "out_names"), adds=())

    def run(self, ctx: ConvertContext) -> None:
        from frlite.runtimes.loader import open_artifact

        assert ctx.tmp is not None and ctx.work is not None and ctx.model is not None
        assert ctx.ref_outputs is not None and ctx.out_names is not None
        if ctx.weights is not None:
            ctx.weights.clear()  # dense copies no later pass reads: the parity runs get their memory
        for _, layer in fr_layers(ctx.model):
            layer.drop_cached_weight()
        release_memory()
        tmp, artifacts = ctx.tmp, ctx.artifacts
        targets = targets_by_file(artifacts)  # one file serves several tflite-* targets: logged once
        done = ctx.step(f"quick parity of {plural(len(targets), 'file')} ({plural(len(artifacts), 'artifact')}) on "
                        f"{ctx.samples_described()}")
        failures, failed_modes = [], set()
        broken: set[tuple[str, str]] = set()  # (file, runtime) that would not run: reported once
        logged: set[tuple[str, str]] = set()
        for art in artifacts:
            key = (art.path, art.runtime)
            if art.integer is not None:
                continue  # full-integer files: judged on the task by integer_gate
            if key in broken:
                failed_modes.add(art.mode)
                continue
            if key not in ctx.measured:
                checked = art
                if art.runtime == "tflite" and art.mode == "idct" and ctx.big_inputs:
                    # weights rebuilt once by the file's own ops, the rest run on XNNPACK (tflite_fold.py)
                    twin = ctx.work / f"twin_{Path(art.path).name}"
                    folded = dense_twin(tmp / art.path, twin)
                    checked = dataclasses.replace(art, path=str(twin.relative_to(tmp)))
                    ctx.log(f"  {art.path}: checked through its dense twin ({folded} rebuilt tensors folded by LiteRT)")
                try:
                    ctx.measured[key] = worst_error(open_artifact(tmp, checked, QUICK_RUN), ctx.samples(),
                                                    ctx.ref_outputs, ctx.out_names)
                except FrliteError:
                    raise
                except Exception as exc:  # the runtime refuses a file frlite wrote: that file failed, not frlite
                    why = " ".join(str(exc).split()) or type(exc).__name__
                    why = why if len(why) <= 200 else "..." + why[-200:]  # runtimes put the reason last
                    ctx.log(f"  {art.path}: does not run in {art.runtime}: {why}")
                    failures.append(f"{art.path} (does not run in {art.runtime}: {why})")
                    failed_modes.add(art.mode)
                    broken.add(key)
                    continue
            worst = ctx.measured[key]
            tol = tolerance(art.precision)
            ok = worst <= tol  # False for NaN too: `worst > tol` would let a NaN output pass
            art.parity = ArtifactParity(len(ctx.ref_outputs), worst * 1.0, worst, tol, ok)
            if key in logged:
                continue  # logged (and, on a mismatch, counted) with the file's first target
            logged.add(key)
            ctx.log(f"  {art.path} ({', '.join(dict.fromkeys(targets[key]))}): max |error| / scale = {worst:.2e} "
                    f"(tolerance {tol:.0e}) {'ok' if ok else 'MISMATCH'}")
            if not ok:
                failed_modes.add(art.mode)
                why = "NaN/Inf in its output" if not math.isfinite(worst) else f"{worst:.2e} > {tol:.0e}"
                if art.runtime == "executorch" and art.fp16_arith is not None and not art.fp16_arith.safe:
                    why += f"; {art.fp16_arith.message}"  # an fp16 program computes in fp16 here too: say where it breaks
                failures.append(f"{art.path} ({why})")
        done()
        if failures:
            working = sorted({a.mode for a in artifacts} - failed_modes)
            raise FrliteError(f"conversion does not match PyTorch on {ctx.samples_described()}: " + "; ".join(failures)
                              + (f"; --mode {' '.join(working)} converts it" if working else "")
                              + "; nothing was written (rerun with --debug and see the conversion log)")
