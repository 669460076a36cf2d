"""The `frlite` command: a thin argparse layer over the Python API.

Errors of frlite's own types become one line on stderr and a non-zero exit; `--debug` shows the
traceback instead.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Sequence

from frlite.converter.core.errors import FrliteError, UsageError
from frlite.converter.core.progress import Progress, silent
from frlite.converter.core.stderr_filter import filtered_stderr
from frlite.cli_args import OneLineParser, non_negative_float, non_negative_int, positive_int


def _cmd_inspect(args: argparse.Namespace) -> int:
    from frlite.converter.checkpoints.checkpoint_reader import read_checkpoint
    from frlite.converter.models.model_loading import load_fr_model
    from frlite.converter.models.summary import format_summary, summarize_checkpoint, summarize_model

    if args.mode == "factorized":
        return _inspect_factorized(args)
    if args.input:
        raise UsageError("--input applies to --mode factorized only (the coefficient table does not depend on it)")
    if args.model:
        summary = summarize_model(load_fr_model(args.model, args.checkpoint).model)
    else:
        ckpt = read_checkpoint(args.checkpoint)
        summary = summarize_checkpoint(ckpt)
        if not summary.layers and not args.json:
            print(f"{args.checkpoint}: no FR layers: its {len(ckpt.tensors)} tensors are stored dense and the file marks "
                  "none as FR coefficients; with --model SPEC the model's FR layers are listed")
            return 0
    if args.json:
        print(json.dumps(summary.to_json(), indent=2))
    else:
        print(format_summary(summary))
    return 0


def _inspect_factorized(args: argparse.Namespace) -> int:
    """Per FR layer: the cost model's choice between factorized and dense, at the given input."""
    import torch

    from frlite.converter.forms.factorized import plan_as_json, plan_factorization
    from frlite.converter.models.model_loading import load_fr_model
    from frlite.converter.core.shape_spec import parse_input_shapes

    if not args.model or not args.input:
        raise UsageError("--mode factorized needs --model SPEC and --input NAME:DIMS (the cost depends on the input size)")
    from frlite.converter.models.memory_estimate import check_forward_fits

    model = load_fr_model(args.model, args.checkpoint).model
    shapes = parse_input_shapes(args.input)
    check_forward_fits(model, shapes)  # before a tensor of that size is allocated
    example = tuple(torch.rand(s.shape) for s in shapes)
    plan = plan_factorization(model, example)
    if args.json:
        print(json.dumps(plan_as_json(plan), indent=2))
        return 0
    width = max(len(c.name) for c in plan)
    print(f"{'layer'.ljust(width)}  {'choice':10s} {'dense MACs':>16s} {'factorized MACs':>16s} {'dense w':>10s} {'fact. w':>8s}"
          "  fused with")
    for c in plan:
        fused = f"norm {c.fused_norm}" if c.fused_norm else f"projection of {c.merged_into}" if c.merged_into else "-"
        print(f"{c.name.ljust(width)}  {c.choice:10s} {c.dense_macs:>16,d} {c.factorized_macs:>16,d} {c.dense_weights:>10,d} {c.factorized_weights:>8,d}"
              f"  {fused}")
    dense = sum(c.dense_macs for c in plan)
    best = sum(min(c.dense_macs, c.factorized_macs) for c in plan)
    print(f"\n{sum(c.choice == 'factorized' for c in plan)} of {len(plan)} FR layers factorized; "
          f"FR-layer MACs {dense:,} dense -> {best:,} ({dense / max(best, 1):,.0f}x fewer)\n"
          f"{sum(bool(c.fused_norm) for c in plan)} batch-statistics norms fused into the conv before them; "
          f"{sum(bool(c.merged_into) for c in plan)} upsampling convs merged into the next conv's projection (no concat)")
    return 0


def _cmd_pack(args: argparse.Namespace) -> int:
    from frlite.converter.checkpoints.compact_format import MAGIC, encode_compact
    from frlite.converter.models.model_loading import compact_from_model, load_fr_model
    from frlite.converter.models.model_spec import spec_file
    from frlite.converter.core.output_folder import AtomicFile, file_starts_with

    writer = AtomicFile(args.out, args.overwrite, inputs=[args.checkpoint, spec_file(args.model)],
                        recognise=file_starts_with(MAGIC, "an frlite compact checkpoint (.frl)"))
    writer.check()  # before loading anything: a bad --out is bad usage
    loaded = load_fr_model(args.model, args.checkpoint)
    assert loaded.checkpoint is not None
    meta = {"model_spec": args.model, "source_sha256": loaded.checkpoint.sha256}
    data = encode_compact(compact_from_model(loaded.model, meta))
    with writer as tmp:
        tmp.write_bytes(data)
    print(f"wrote {writer.out}: {len(data):,} bytes (source {loaded.checkpoint.size_bytes:,} bytes)")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from frlite.converter.models.model_loading import load_fr_model
    from frlite.converter.models.segmentation import argmax_mask, dice, load_image, load_mask

    if len(args.images) != len(args.masks):
        raise UsageError(f"--images has {len(args.images)} files but --masks has {len(args.masks)}; give one mask per image")
    loaded = load_fr_model(args.model, args.weights)
    runtimes = []
    converted_shape: tuple[int, ...] | None = None
    if args.converted:
        from frlite.converter.core.convert_folder import ConvertFolder
        from frlite.runtimes.base import RunOptions
        from frlite.runtimes.loader import open_artifact

        folder = ConvertFolder.open(args.converted)
        manifest = folder.manifest
        if len(manifest.model_inputs) != 1:
            raise UsageError(f"--converted {args.converted} is a model with {len(manifest.model_inputs)} inputs; "
                             "evaluate feeds one image per run")
        converted_shape = tuple(manifest.model_inputs[0].shape)
        arts = list({(a.path, a.runtime): a for a in manifest.artifacts}.values())  # one file, several targets
        folder.verify_all(arts)  # sha256 of every file before any runs
        runtimes = [(a.path, open_artifact(folder.root, a, RunOptions(threads=args.threads))) for a in arts]
    totals: dict[str, list[float]] = {"pytorch": []}
    for image, mask in zip(args.images, args.masks):
        x = load_image(image)
        truth = load_mask(mask)
        if converted_shape is not None and tuple(x.shape) != converted_shape:
            raise UsageError(f"{image} is {_dims(x.shape)} but --converted {args.converted} was converted for "
                             f"{_dims(converted_shape)}; convert at the images' size or resize the images")
        start = time.perf_counter()
        with torch.no_grad():
            logits = loaded.model(torch.from_numpy(x))
        _check_segmentation(args.model, logits, x.shape)
        ref = argmax_mask(logits.numpy())
        totals["pytorch"].append(dice(ref == 1, truth))
        print(f"{Path(image).name}: pytorch Dice {totals['pytorch'][-1]:.6f}  ({time.perf_counter() - start:.1f} s)")
        for name, rt in runtimes:
            start = time.perf_counter()
            out = argmax_mask(rt.run({rt.inputs()[0].name: x})[rt.outputs()[0].name])
            totals.setdefault(name, []).append(dice(out == 1, truth))
            agree = float(np.mean(out == ref))
            print(f"  {name:28s} Dice {totals[name][-1]:.6f}  pixels equal to pytorch {agree * 100:8.4f}%"
                  f"  ({time.perf_counter() - start:.1f} s)")
    print(f"mean Dice over {len(args.images)} images: " + ", ".join(f"{k} {sum(v) / len(v):.6f}" for k, v in totals.items()))
    return 0


def _dims(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape))


def _check_segmentation(spec: str, out: object, in_shape: Sequence[int]) -> None:
    """evaluate computes Dice of per-pixel classes: the model must give (N, C>=2, H, W) at the input's H, W."""
    import torch

    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else None
    if shape is None or len(shape) != 4 or shape[1] < 2 or shape[2:] != tuple(in_shape[2:]):
        got = _dims(shape) if shape is not None else type(out).__name__
        raise UsageError(f"evaluate measures segmentation Dice, but {spec} outputs {got} for a {_dims(in_shape)} image, "
                         f"not per-pixel class scores Nx(C>=2)x{_dims(in_shape[2:])}; it is not a segmentation model")


def _split(values: list[str], dedupe: bool = True) -> list[str]:
    """`--mode dense idct` and `--mode dense,idct` both work. Names (`--output-name`) keep their
    repeats, so a name given twice is reported, not silently merged."""
    out: list[str] = []
    for v in values:
        out += [p for p in v.split(",") if p]
    return list(dict.fromkeys(out)) if dedupe else out


def _to_stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _progress(args: argparse.Namespace) -> Progress:
    """Progress lines on stderr (stdout keeps the results); none with --quiet."""
    return Progress(silent if args.quiet else _to_stderr)


def _cmd_convert(args: argparse.Namespace) -> int:
    from frlite.converter.passes.convert_pipeline import ConvertRequest, convert
    from frlite.converter.core.shape_spec import parse_input_shapes

    req = ConvertRequest(
        model_spec=args.model, weights=Path(args.weights) if args.weights else None,
        inputs=parse_input_shapes(args.input or []), out=Path(args.out),
        modes=_split(args.mode), targets=_split(args.target), precisions=_split(args.precision),
        output_names=_split(args.output_name, dedupe=False) if args.output_name else None, overwrite=args.overwrite,
        input_files=args.inputs, calibration_files=args.calibration, io_dtype=args.io_dtype,
        integer_gate=args.integer_gate,
        progress=silent if args.quiet else _to_stderr,
    )
    result = convert(req)
    if not args.quiet:
        from frlite.converter.core.convert_folder import ConvertFolder
        from frlite.runtimes.report_decision import build_table, render_text

        print(render_text(build_table(ConvertFolder.open(result.out))))  # each file once, its targets joined
        print(f"wrote {result.out} in {result.seconds:.1f} s")
    return 0


def _cmd_parity(args: argparse.Namespace) -> int:
    from frlite.converter.models.model_spec import spec_file
    from frlite.converter.core.output_folder import AtomicFolder
    from frlite.runtimes.parity_run import run_parity
    from frlite.runtimes.report_html import write_html
    from frlite.runtimes.report_json import write_json
    from frlite.runtimes.report_markdown import write_markdown

    formats = _split(args.format)
    for f in formats:
        if f not in ("json", "md", "html"):
            raise UsageError(f"--format {f!r} is not one of: json, md, html")
    if args.reference != "torch":
        raise UsageError("--reference must be torch (the FR model itself)")
    folder = Path(args.folder)
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder; pass a folder written by `frlite convert`")
    writer = AtomicFolder(args.out or folder / "parity", args.overwrite, kind="parity",
                          inputs=[folder, *(args.inputs or []), args.weights, spec_file(args.model) if args.model else None])
    writer.check()  # before the run: a bad --out is bad usage
    progress = _progress(args)
    try:
        report = run_parity(args.folder, args.inputs, args.samples, args.seed, _split(args.runtimes) if args.runtimes else None,
                            _split(args.variants) if args.variants else None, args.atol, args.rtol, args.task,
                            args.threads, keep_outputs="html" in formats, layers=args.layers,
                            reference=_reference_request(args), progress=progress)
        written = []
        writers = {"json": (write_json, "parity.json"), "md": (write_markdown, "parity.md"), "html": (write_html, "parity.html")}
        progress("writing the report: " + ", ".join(writers[f][1] for f in formats))
        with writer as tmp:
            for f in formats:
                fn, name = writers[f]
                fn(report, tmp / name)
                written.append(writer.out / name)
    except FrliteError as exc:
        if exc.exit_code == 1:
            exc.exit_code = 2  # exit 1 is reserved for "a comparison failed"
        raise
    for r in report.results:
        state = "ERROR" if r.error else ("pass" if r.passed else "FAIL")
        worst = r.worst_rel_error
        print(f"{state:5s} {r.label}  worst |error|/scale {worst:.2e}" + (f"  {r.error}" if r.error else "")
              + (f"  ({r.nonfinite})" if r.nonfinite else ""))
        if r.fp16_arith is not None:
            print(f"      {r.fp16_arith.message}")
    for label, cmp in report.layers.items():
        first = cmp["first_divergent"]
        if first:
            row = next(r for r in cmp["rows"] if r["layer"] == first)
            print(f"  {label}: first layer where the error jumps: {first} (max |error| {row['max_abs_error']:.3e}, "
                  f"{row['rel_to_scale']:.2e} of the layer's scale)")
        else:
            print(f"  {label}: no single layer stands out" + (f" ({cmp['note']})" if cmp.get("note") else ""))
    print(("all comparisons pass" if report.passed else "SOME COMPARISONS FAIL") + "; report: " + ", ".join(map(str, written)))
    return 0 if report.passed else 1


def _reference_request(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """Where `parity` / `bench --parity` take the PyTorch reference from (runtimes/reference_model.py)."""
    from frlite.runtimes.reference_model import ReferenceRequest

    return ReferenceRequest(args.model, args.weights, args.trust_model_code)


def _add_reference_options(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--model", metavar="SPEC", help=f"{what}: the PyTorch model to compare with (unet, file.py:factory, "
                   "package.module:factory); default: the manifest's spec when it is a built-in name")
    p.add_argument("--weights", metavar="CKPT", help="its checkpoint; default the manifest's (either way its sha256 must "
                   "equal the manifest's checkpoint_sha256)")
    p.add_argument("--trust-model-code", action="store_true", help="import and run the Python file or module the "
                   "folder's manifest names as the model spec (runs code from the folder: only for folders you trust)")


def _cmd_bench(args: argparse.Namespace) -> int:
    from frlite.android_harness.bench_report import write_reports
    from frlite.android_harness.bench_run import BenchRequest, run_bench
    from frlite.converter.models.model_spec import spec_file
    from frlite.converter.core.output_folder import AtomicFolder

    if args.host and args.device:
        raise UsageError("--host and --device exclude each other")
    from frlite.android_harness.adb_client import check_serial

    for serial in args.device or []:
        check_serial(serial)  # bad usage, before anything is read or run
    delegates = _split(args.delegate) if args.delegate else (["xnnpack", "cpu"] if args.host else ["xnnpack"])
    target = Path(args.target)
    if target.is_dir() and target.resolve() in Path(args.out).resolve().parents:
        raise UsageError(f"--out {args.out} is inside TARGET {target}; bench never writes into its input folder, choose another --out")
    req = BenchRequest(target, args.device, args.host, delegates, args.threads, args.runs, args.warmup,
                       args.min_seconds, Path(args.benchmark_binary) if args.benchmark_binary else None, args.apk, args.parity,
                       reference=_reference_request(args), progress=_progress(args),
                       executor_runner=Path(args.executor_runner) if args.executor_runner else None)
    # bench never writes into its input folder (nor over the binary or the reference's files)
    writer = AtomicFolder(args.out, args.overwrite, inputs=[args.target, args.benchmark_binary, args.executor_runner, args.weights,
                                                            spec_file(args.model) if args.model else None], kind="bench")
    writer.check()  # before any benchmark runs: a bad --out is bad usage
    from frlite.android_harness.parity_merge import read_earlier, write_parity_report

    earlier = read_earlier(target)  # TARGET's parity report, checked before any benchmark runs
    results, parity = run_bench(req)
    with writer as tmp:
        written = [writer.out / p.name for p in write_reports(results, tmp)]
        written += [writer.out / p.name for p in write_parity_report(tmp, target, earlier, parity, results,
                                                                       tmp / "bench_latency.png")]
    for r in results:
        where = r.device.get("serial", "host")
        if r.error:
            print(f"{where:12s} {r.artifact:28s} {r.delegate:8s} ERROR {r.error}")
        else:
            extra = f"  {r.delegated_nodes}/{r.total_nodes} nodes on delegate" if r.total_nodes else ""
            print(f"{where:12s} {r.artifact:28s} {r.delegate:8s} {r.threads}t  median {r.latency.median_us / 1e3:9.2f} ms"
                  f"  (n={r.latency.count}){extra}")
        if r.numerics:
            print(f"{'':12s} {r.artifact:28s} {r.delegate:8s} {r.numerics}")
    for res in parity.results if parity else []:
        print(f"parity {res.label}: {'pass' if res.passed else 'FAIL'}  worst |error|/scale {res.worst_rel_error:.2e}")
    print("wrote " + ", ".join(map(str, written)))
    failed = any(r.error for r in results) or (parity is not None and not all(p.passed for p in parity.results))
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="frlite", description="Ship FR-trained PyTorch models to mobile runtimes.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--max-file-mb", type=positive_int, metavar="MIB",
                        help="largest file (or archive content) frlite reads; default 4096, or FRLITE_MAX_FILE_MB")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("inspect", help="list a checkpoint's FR layers: shape, kept coefficients, corner box")
    p.add_argument("checkpoint", help="checkpoint file (.pt, frlite .frl, or a .tar.xz holding one)")
    p.add_argument("--model", metavar="SPEC", help="MODEL SPEC to load it into: unet, file.py:factory, package.module:factory")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--mode", choices=["coefficients", "factorized"], default="coefficients",
                   help="factorized: the per-layer factorized/dense choice (needs --model and --input)")
    p.add_argument("--input", action="append", metavar="NAME:DIMS",
                   help="input size for --mode factorized, e.g. input:1x3x640x959 (repeat per input)")
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser("pack", help="write a checkpoint in frlite's compact format (kept coefficients only)")
    p.add_argument("checkpoint", help="checkpoint file (authors' .pt, state_dict, frlite .frl, or a .tar.xz holding one)")
    p.add_argument("--model", metavar="SPEC", required=True,
                   help="MODEL SPEC the checkpoint belongs to: unet, file.py:factory, package.module:factory")
    p.add_argument("--out", required=True, help="output file, e.g. model.frl")
    p.add_argument("--overwrite", action="store_true", help="replace an existing .frl file")
    p.set_defaults(func=_cmd_pack)

    p = sub.add_parser("convert", help="convert an FR model to ONNX / ORT / TFLite in dense, idct and factorized form")
    p.add_argument("model", metavar="SPEC", help="MODEL SPEC: unet, file.py:factory or package.module:factory "
                   "(a callable without arguments returning the nn.Module)")
    p.add_argument("--weights", help="checkpoint (authors' .pt, state_dict, frlite .frl, or .tar.xz holding one); "
                   "default: the weights the SPEC's factory gives")
    p.add_argument("--input", action="append", metavar="NAME:DIMS", help="input name and size, e.g. input:1x3x640x959 (repeat per input)")
    p.add_argument("--output-name", action="append", metavar="NAME", help="names for the model outputs, in order (default: output, or output_0, output_1, ...)")
    p.add_argument("--mode", nargs="+", default=["dense"], help="dense, idct, factorized (several allowed; default dense)")
    p.add_argument("--target", nargs="+", default=["onnx"],
                   help="onnx, ort-mobile, executorch, tflite-cpu, tflite-gpu, tflite-nnapi (several; default onnx)")
    p.add_argument("--precision", nargs="+", default=["fp32"], help="fp32, fp16 (TFLite files), int8-dynamic (TFLite, dense "
                   "mode only), int8 / int16x8 (full-integer TFLite for NPUs, dense and factorized, needs "
                   "--calibration); several allowed; default fp32")
    p.add_argument("--calibration", nargs="+", metavar="FILE_OR_FOLDER",
                   help="int8 / int16x8: typical inputs the activation ranges are measured on (images or .npy/.npz "
                        "at the --input size, read like --inputs); 2-8 suffice for a segmentation net, each is used once")
    p.add_argument("--integer-gate", type=float, metavar="MIN",
                   help="int8 / int16x8: least task metric a file must keep against PyTorch fp32, else nothing is "
                        "written (default: 0.99 of pixels for segmentation, 1.0 top-1 agreement, 20 dB SQNR otherwise)")
    p.add_argument("--io-dtype", default="float", choices=["float", "int8", "uint8"],
                   help="int8 files: type of the model's inputs and outputs (default float: the file quantizes them)")
    p.add_argument("--out", required=True, help="output folder (written whole or not at all)")
    p.add_argument("--inputs", nargs="+", metavar="FILE_OR_FOLDER",
                   help="your own images (.png/.jpg, scaled /255) or .npy/.npz arrays at the --input size: quick "
                        "parity, the fp16 rewrites' constants and the fp16-arithmetic verdicts run on all of them "
                        "instead of seeded random samples (2-4 typical ones suffice)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder frlite wrote")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr and no closing table")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("parity", help="compare every converted file with PyTorch; JSON / Markdown / HTML report")
    p.add_argument("folder", metavar="DIR", help="a `frlite convert` output folder")
    p.add_argument("--inputs", nargs="+", metavar="FILE_OR_FOLDER", help="images (.png/.jpg) or .npy/.npz arrays, or folders of them "
                   "(default: --samples seeded random inputs)")
    p.add_argument("--samples", type=positive_int, default=2, help="seeded random samples when no --inputs (default 2)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the random samples (default 0)")
    p.add_argument("--runtimes", nargs="+", help="torch,onnxruntime,tflite,executorch (default all; torch, the reference, is required)")
    p.add_argument("--variants", nargs="+", help="default,no-opt (onnxruntime); xnnpack,builtin,reference,fp16-arith,fp32-arith (tflite); default (executorch); "
                   "default: default + xnnpack, plus fp16-arith for files meant for tflite-gpu / tflite-nnapi")
    p.add_argument("--reference", default="torch", help="what the files are compared with: torch, the FR model itself "
                   "(the only choice today)")
    p.add_argument("--atol", type=non_negative_float, help="absolute tolerance (default per precision, relative to the output's scale)")
    p.add_argument("--rtol", type=non_negative_float, help="relative tolerance (default 0)")
    p.add_argument("--task", help="segmentation, classification or none (default: guessed from the output shape)")
    p.add_argument("--threads", type=positive_int, default=2, help="threads for ONNX Runtime and LiteRT (default 2)")
    p.add_argument("--layers", action="store_true", help="for a file that diverges, compare every FR layer's output and name the first bad one")
    p.add_argument("--format", nargs="+", default=["json", "md", "html"], help="report formats: json,md,html (default all)")
    p.add_argument("--out", metavar="REPORT_DIR", help="report folder (default DIR/parity)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report folder frlite wrote")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    _add_reference_options(p, "the reference")
    p.set_defaults(func=_cmd_parity)

    p = sub.add_parser("bench", help="benchmark .tflite and .pte files on a phone over adb, or on this host")
    p.add_argument("target", metavar="TARGET", help="a .tflite file or a `frlite convert` folder")
    p.add_argument("--device", action="append", metavar="SERIAL", help="phone to use (repeat for several, run in parallel); "
                   "default: the one phone adb lists")
    p.add_argument("--host", action="store_true", help="benchmark here with the LiteRT interpreter (.pte: executorch.runtime)")
    p.add_argument("--delegate", nargs="+", help="cpu, xnnpack, gpu, nnapi (host: cpu, xnnpack); default xnnpack, "
                   "on the host xnnpack and cpu")
    p.add_argument("--threads", type=positive_int, default=4, help="threads per run (default 4)")
    p.add_argument("--runs", type=positive_int, default=50, help="timed runs, at least (default 50)")
    p.add_argument("--warmup", type=non_negative_int, default=5, help="untimed runs before the timed ones (default 5)")
    p.add_argument("--min-seconds", type=non_negative_float, default=1.0,
                   help="keep timing until this many seconds have passed, even after --runs (default 1)")
    p.add_argument("--benchmark-binary", metavar="PATH", help="the android_arm64 benchmark_model you downloaded "
                   "(docs/android.md)")
    p.add_argument("--apk", action="store_true", help="use the installed benchmark APK instead of the binary")
    p.add_argument("--executor-runner", metavar="PATH", help="ExecuTorch's executor_runner for android arm64 with "
                   "XNNPACK, for the folder's .pte files (docs/android.md)")
    p.add_argument("--parity", action="store_true", help="also run seeded inputs on the phone and compare with PyTorch")
    p.add_argument("--out", default="bench-results", help="folder for bench.json, bench.md, bench_latency.png "
                   "(and parity.html: TARGET's parity report with the latency chart); never inside TARGET")
    p.add_argument("--overwrite", action="store_true", help="replace an existing results folder frlite wrote")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    _add_reference_options(p, "with --parity")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("evaluate", help="segmentation Dice of the PyTorch FR model on images with masks")
    p.add_argument("model", metavar="SPEC", help="MODEL SPEC of a segmentation model: unet, file.py:factory, package.module:factory")
    p.add_argument("--weights", required=True, help="its checkpoint (authors' .pt, state_dict, frlite .frl, or .tar.xz)")
    p.add_argument("--images", nargs="+", required=True, metavar="IMG", help="input images (.png / .jpg)")
    p.add_argument("--masks", nargs="+", required=True, metavar="MASK",
                   help="ground-truth masks, one per image in the same order (0/255 or 0/1 images; bright = foreground)")
    p.add_argument("--converted", metavar="DIR", help="also run every artifact of this `frlite convert` folder")
    p.add_argument("--threads", type=positive_int, default=2, help="threads for the converted artifacts' runtimes (default 2)")
    p.set_defaults(func=_cmd_evaluate)
    return parser


class _Terminated(KeyboardInterrupt):
    """SIGTERM / SIGHUP turned into the same unwinding as Ctrl-C, so every output writer removes
    its temp folder (a kill used to leave `.out.partial-*` behind)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated(signum)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.max_file_mb is not None:  # the environment carries it into the worker processes too
        os.environ["FRLITE_MAX_FILE_MB"] = str(args.max_file_mb)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, _raise_terminated)
    try:
        with filtered_stderr(enabled=not args.debug):  # LiteRT / TF / absl INFO lines: shown with --debug
            return _run(args)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args))
    except FrliteError as exc:
        if args.debug:
            raise
        one_line = " ".join(str(exc).split())
        print(f"frlite {args.command}: error: {one_line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        if args.debug:
            raise
        signum = exc.signum if isinstance(exc, _Terminated) else signal.SIGINT
        print(f"frlite {args.command}: interrupted ({signal.Signals(signum).name})", file=sys.stderr)
        return 128 + int(signum)


if __name__ == "__main__":
    sys.exit(main())
