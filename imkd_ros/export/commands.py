"""``imkd export --format pt2|onnx|engine``: the student (or just the bev_pool op) for deployment.

pt2: torch.export ExportedProgram (bev_pool one node). onnx: opset 20 + one imkd::BevPool node
(TensorRT plugin attributes, geometry as graph inputs), checked against PyTorch with
onnxruntime on CPU unless --no-check. engine: the ONNX is also put into the engine cache under
the checkpoint's hash (where the runtime's TensorRT backend finds it), then built into an engine
through the cache (needs TensorRT, a GPU and libimkd_trt_plugins.so from tools/build_cuda.sh).
int8: explicit quantisation only (a Q/DQ ONNX, e.g. from NVIDIA ModelOpt); otherwise a clear error.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="export the student: torch.export (.pt2), ONNX, TensorRT engine")
    p.add_argument("--format", choices=("pt2", "onnx", "engine"), required=True)
    p.add_argument("--checkpoint", default=None, help="student checkpoint (.pt); default: random weights")
    p.add_argument("--config", default="cpu", help="model config when no checkpoint (models/<name>.yaml)")
    p.add_argument("--out", default=None, help="output file (default: build/export/student.<ext>)")
    p.add_argument("--op-only", action="store_true", help="export just the imkd::bev_pool op (plugin test)")
    p.add_argument("--batch", type=int, default=1, help="batch size baked into the export")
    p.add_argument("--no-check", action="store_true", help="onnx: skip the onnxruntime comparison")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default=None,
                   help="onnx: fp32 (default) | fp16 (strongly typed half graph); engine: fp16 (default) | "
                        "fp32 | int8 (needs --onnx with an explicitly quantized Q/DQ ONNX)")
    p.add_argument("--onnx", default=None, help="engine: build from this ONNX instead of exporting "
                                                "(e.g. a Q/DQ int8 ONNX made by ModelOpt)")
    p.add_argument("--workspace-gb", type=float, default=4.0, help="engine builder workspace")
    p.add_argument("--cache-dir", default=None, help="engine cache (default: ~/.cache/imkd_ros/engines)")
    p.set_defaults(func=_export)


def _spec(args: argparse.Namespace):
    import torch

    from imkd_ros.export.exporter import bev_pool_op_spec
    from imkd_ros.export.student import example_inputs, student_spec
    from imkd_ros.model import Student, load_config, load_student

    if args.checkpoint:
        student = load_student(args.checkpoint)
        what = f"checkpoint {args.checkpoint}"
    else:
        torch.manual_seed(0)
        student = Student(load_config(args.config)).eval()
        what = f"random weights, config {args.config}"
    inputs = example_inputs(student, batch_size=args.batch)
    onnx_precision = "fp16" if args.precision == "fp16" else "fp32"  # int8: from --onnx only
    if args.op_only:
        from imkd_ros.runtime.doctor import random_case

        depth, feat, geom = random_case(batch=args.batch)
        if onnx_precision == "fp16":
            depth, feat = depth.half(), feat.half()
        return bev_pool_op_spec(depth, feat, geom), f"imkd::bev_pool op ({onnx_precision})", student, inputs
    return student_spec(student, inputs, onnx_precision), f"student ({what}, {onnx_precision})", student, inputs


def _export(args: argparse.Namespace) -> int:
    if args.precision is None:
        args.precision = "fp16" if args.format == "engine" else "fp32"
    if args.op_only and args.format == "engine" and args.precision == "int8":
        print("export: --op-only engines are fp32/fp16 (the op has nothing to quantize)", file=sys.stderr)
        return 2
    if args.format == "engine" and args.precision == "int8" and not args.onnx:
        print("export: int8 needs an explicitly quantized (Q/DQ) ONNX: export --format onnx, quantize it "
              "(e.g. NVIDIA ModelOpt) and pass it with --onnx; implicit calibration is not supported",
              file=sys.stderr)
        return 2
    from imkd_ros.export.exporter import count_bev_pool_nodes, export_onnx, export_program, onnx_max_abs_diff

    spec, what, student, inputs = _spec(args)
    ext = {"pt2": ".pt2", "onnx": ".onnx", "engine": ".engine"}[args.format]
    default_name = ("bev_pool" if args.op_only else "student") + ext
    out = Path(args.out) if args.out else Path("build") / "export" / default_name
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.onnx:
        if args.format != "engine":
            print("export: --onnx is for --format engine", file=sys.stderr)
            return 2
        onnx_path = Path(args.onnx)
    else:
        program = export_program(spec)
        print(f"export: {what}: torch.export ok, {count_bev_pool_nodes(program)} imkd::bev_pool node(s)")
        if args.format == "pt2":
            import torch

            torch.export.save(program, str(out))
            print(f"export: wrote {out}")
            return 0

        onnx_path = out if args.format == "onnx" else out.with_suffix(".onnx")
        model = export_onnx(spec, onnx_path, program=program)
        print(f"export: wrote {onnx_path} ({onnx_path.stat().st_size / 1e6:.1f} MB)")
        if not args.no_check and args.precision == "fp16" and not args.op_only:
            print("export: onnxruntime check skipped for the fp16 student (onnxruntime's CPU provider has "
                  "no fp16 scatter-add); tools/gpu_validate.py checks torch fp16 against fp32")
        elif not args.no_check:
            diffs = onnx_max_abs_diff(model, spec)
            worst = max(diffs.values())
            print(f"export: onnxruntime (CPU, BevPool in Python) vs PyTorch: max|diff| {worst:.3g}")
            if worst > (5e-2 if args.precision == "fp16" else 1e-3):
                print("export: ERROR: ONNX does not match PyTorch", file=sys.stderr)
                return 1
        if args.format == "onnx":
            return 0

    from imkd_ros.runtime.engine import (
        EngineConfig,
        UnsupportedPrecisionError,
        get_or_build_engine,
        student_onnx_path,
    )

    cfg = EngineConfig(precision=args.precision, workspace_gb=args.workspace_gb)
    if args.cache_dir:
        cfg.cache_dir = Path(args.cache_dir)
    if not args.op_only:  # where the runtime's TensorRT backend looks for this checkpoint's ONNX
        cached = student_onnx_path(cfg.cache_dir, student, args.precision)
        cached.parent.mkdir(parents=True, exist_ok=True)
        if cached.resolve() != onnx_path.resolve():
            shutil.copyfile(onnx_path, cached)
        print(f"export: ONNX for the runtime: {cached}")
    try:
        engine = get_or_build_engine(onnx_path, cfg)
    except (ImportError, RuntimeError, FileNotFoundError, UnsupportedPrecisionError) as exc:
        print(f"export: cannot build an engine here: {exc}", file=sys.stderr)
        return 2
    shutil.copyfile(engine, out)
    print(f"export: engine {engine} -> {out}")
    return 0
