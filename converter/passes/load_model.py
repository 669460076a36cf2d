"""Pass load_model: build the model, load its checkpoint, run it on the check inputs.

Runs before the output folder exists: a model that rejects the input shapes, or gives NaN
itself, fails here with nothing written.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from frlite.converter.core.errors import FrliteError, UsageError
from frlite.converter.fr.fr_layers import fr_layers, fr_weight_key
from frlite.converter.models.memory_estimate import UnbatchedRecorder, check_forward_fits
from frlite.converter.models.model_loading import load_fr_model
from frlite.converter.passes.context import ConvertContext
from frlite.converter.passes.driver import BasePass


class LoadModel(BasePass):
    def __init__(self) -> None:
        super().__init__("load_model", needs=(), adds=("loaded", "model", "example", "ref_outputs", "out_names",
                                                       "layer_shapes"))

    def run(self, ctx: ConvertContext) -> None:
        req = ctx.req
        done = ctx.step(f"load {req.model_spec}" + (f" with {req.weights}" if req.weights else ""))
        ctx.loaded = load_fr_model(req.model_spec, req.weights)
        ctx.model = ctx.loaded.model
        check_forward_fits(ctx.model, req.inputs)  # before any real tensor of that size exists
        _probe(ctx, ctx.model)
        done()


def _probe(ctx: ConvertContext, model: nn.Module) -> None:
    """Run the model on the check inputs (--inputs, else seeded samples): shapes are checked, references computed once, and
    each FR layer's output shape recorded (to find that output in the converted files)."""
    req = ctx.req
    ctx.example = {s.name: torch.zeros(s.shape) for s in req.inputs}
    refs = []
    layer_shapes: dict[str, tuple[int, ...]] = {}

    def recorder(key: str):  # type: ignore[no-untyped-def]
        def hook(module: nn.Module, inputs: object, output: torch.Tensor) -> None:  # returns None: output untouched
            layer_shapes.setdefault(key, tuple(output.shape))
            module.drop_cached_weight()  # each dense weight lives only while its layer runs (124 MB for the UNet)
        return hook

    hooks = [layer.register_forward_hook(recorder(fr_weight_key(name))) for name, layer in fr_layers(model)]
    unbatched = UnbatchedRecorder(model)
    samples = ctx.samples()
    for sample in samples:
        try:
            with torch.no_grad():
                out = model(*[torch.from_numpy(sample[n]) for n in ctx.example])
            unbatched.check(req.inputs)
        except UsageError:
            raise
        except Exception as exc:
            unbatched.check(req.inputs)  # the likelier cause, named plainly
            shapes = ", ".join(f"{s.name}:{'x'.join(map(str, s.shape))}" for s in req.inputs)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UsageError(f"the model rejects input shape {shapes}: {type(exc).__name__}: {first[:200]}; "
                             "check --input against what the model expects") from exc
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        if not all(isinstance(o, torch.Tensor) for o in outs):
            raise UsageError("the model must return a tensor or a tuple of tensors")
        refs.append([o.detach().float().numpy() for o in outs])
    for h in hooks:
        h.remove()
    unbatched.remove()
    n_out = len(refs[0])
    names = req.output_names or (["output"] if n_out == 1 else [f"output_{i}" for i in range(n_out)])
    if len(names) != n_out:
        raise UsageError(f"--output-name gives {len(names)} names but the model has {n_out} outputs")
    for i, name in enumerate(names if refs else []):
        bad = sum(int(np.count_nonzero(~np.isfinite(r[i]))) for r in refs)
        if bad:  # no conversion can match a NaN, and no tolerance check catches one
            raise FrliteError(f"PyTorch itself gives {bad:,} NaN/Inf values in output {name!r} on {ctx.samples_described()}; "
                              "the model or its checkpoint is broken (check it with `frlite inspect`)")
    ctx.example = {n: torch.from_numpy(v) for n, v in samples[0].items()}
    ctx.ref_outputs, ctx.out_names, ctx.layer_shapes = refs, names, layer_shapes
