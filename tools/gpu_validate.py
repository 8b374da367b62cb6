#!/usr/bin/env python3
"""One prepared GPU check of the deployment code; writes one JSON of results.

    python tools/gpu_validate.py [--out build/gpu_validate.json] [--quick]

Sized for a bare GPU box with PyTorch (CUDA), CuPy and nvcc, and no TensorRT, rclpy or
nuscenes-devkit (bring PyYAML if it is missing): well under 7 minutes on one H200, most of it the
torch extension build. Steps (each ok / fail / skip with a reason, timed):

1. env: torch, CUDA, GPU, compute capability, CuPy, nvcc.
2. cases (CPU): geometries + fp64 CPU references. ``random_paper``: paper-size random frustum
   (6 x 59 x 16 x 44 points, 80 channels, 128 x 128 BEV, nearly every cell occupied);
   ``frustum_paper`` / ``frustum_shipped``: the real frustum geometry of models/paper.yaml and of
   the shipped checkpoint's config on a synthetic rig (many empty cells). Every geometry validated.
3. kernels (GPU, CuPy on the nvcc PTX of bev_pool_kernel.cu): sparse + dense x fp32 + fp16 vs the
   fp64 CPU op; empty cells must be exact zeros; ms per call.
4. torch_extension (GPU): the cpp_extension build of the same .cu, forward + backward, fp32 + fp16
   vs the fp64 CPU op.
5. backends (GPU): the shipped checkpoint, torch-cuda fp32 / fp16 x eager / CUDA graph vs
   torch-cpu fp32 (max |diff| of the head maps, detections), ms per frame.
6. tensorrt (GPU + TensorRT + libimkd_trt_plugins.so): the BevPool plugin alone, op ONNX ->
   engine -> run vs the fp64 CPU op; skipped (with the reason) where TensorRT is missing.

On a machine without CUDA every GPU step is skipped with the reason and the CPU steps still run
(CI dry-runs it: tests/deploy/test_gpu_validate.py). Exit status 1 when a step fails.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

SHIPPED = ROOT / "models" / "imkd_student_cpu.pt"
TOL_FP32 = 1e-5  # relative to max |ref|
TOL_FP16 = 5e-3


class Skip(Exception):
    """A step cannot run here; the message says why."""


@dataclass
class Step:
    name: str
    status: str = "ok"
    reason: str = ""
    seconds: float = 0.0
    results: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Case:
    name: str
    depth: torch.Tensor
    feat: torch.Tensor
    geometry: Any
    ref: torch.Tensor  # fp64 CPU op on the fp32 inputs
    occupied: torch.Tensor  # (batch, bev_h, bev_w) bool


def gpu_reason() -> str | None:
    from imkd_ros.ops.bev_pool_cuda import cuda_unavailable_reason

    return cuda_unavailable_reason()


def need_gpu() -> None:
    reason = gpu_reason()
    if reason:
        raise Skip(reason)


def rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    scale = float(ref.abs().max()) or 1.0
    return float((got.detach().double().cpu() - ref.double().cpu()).abs().max()) / scale


def cuda_ms(fn: Callable[[], object], iters: int) -> float:
    """Median ms per call with CUDA events (after 3 warm-up calls)."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2]


# ---------------------------------------------------------------------------------------------


def step_env(_: argparse.Namespace, __: dict) -> list[dict[str, Any]]:
    from imkd_ros.ops.bev_pool_cuda import find_nvcc

    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "torch_cuda": torch.version.cuda, "nvcc": find_nvcc(), "gpu": None}
    if gpu_reason() is None:
        cap = torch.cuda.get_device_capability(0)
        info["gpu"] = torch.cuda.get_device_name(0)
        info["compute_capability"] = f"{cap[0]}.{cap[1]}"
    try:
        import cupy

        info["cupy"] = cupy.__version__
    except Exception as exc:  # ImportError or a CUDA mismatch inside cupy
        info["cupy"] = f"unavailable ({type(exc).__name__}: {exc})"
    from imkd_ros.runtime.base import tensorrt_status

    info["tensorrt"] = tensorrt_status() or "available"
    return [info]


def _random_paper(quick: bool) -> tuple[torch.Tensor, torch.Tensor, Any]:
    from imkd_ros.ops import BevGrid, compute_bev_pool_geometry

    n_cam, d, h, w, c = (2, 8, 8, 22, 16) if quick else (6, 59, 16, 44, 80)
    g = torch.Generator().manual_seed(0)
    pts = (torch.rand(n_cam, d, h, w, 3, generator=g) - 0.5) * torch.tensor([110.0, 110.0, 9.0])
    geom = compute_bev_pool_geometry(pts, BevGrid(), 1)
    depth = torch.rand(n_cam, d, h, w, generator=g).softmax(1)
    feat = torch.randn(n_cam, h, w, c, generator=g)
    return depth, feat, geom


def _frustum(config: str, quick: bool) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """The real frustum geometry of a model config on the synthetic rig (as Student.geometry)."""
    import dataclasses

    from imkd_ros.model import load_config
    from imkd_ros.model.preprocess import Preprocessor
    from imkd_ros.model.synthetic import random_frame
    from imkd_ros.model.view_transform import depth_bin_centers, frustum_to_ego, make_frustum
    from imkd_ros.ops import compute_bev_pool_geometry

    cfg = load_config(config)
    if quick:  # fewer depth bins for the CPU dry run
        cfg = dataclasses.replace(cfg, depth=dataclasses.replace(cfg.depth, d_step=cfg.depth.d_step * 4))
    batch = Preprocessor(cfg, train=False)([random_frame(0)], targets=False)
    s = cfg.backbone.out_stride
    img_hw = (cfg.image.height, cfg.image.width)
    feat_hw = (cfg.image.height // s, cfg.image.width // s)
    b, n = batch["intrinsics"].shape[:2]
    frustum = make_frustum(img_hw, feat_hw, depth_bin_centers(cfg.depth))
    pts = frustum_to_ego(frustum.double(), batch["intrinsics"].reshape(b * n, 3, 3).double(),
                         batch["cam_to_ego"].reshape(b * n, 4, 4).double(),
                         batch["img_aug"].reshape(b * n, 3, 3).double())
    geom = compute_bev_pool_geometry(pts, cfg.grid.bev_grid(), b)
    g = torch.Generator().manual_seed(1)
    depth = torch.rand(b * n, cfg.depth.num_bins, *feat_hw, generator=g).softmax(1)
    feat = torch.randn(b * n, *feat_hw, cfg.depth.context_channels + 1, generator=g)
    return depth, feat, geom


def step_cases(args: argparse.Namespace, state: dict) -> list[dict[str, Any]]:
    from imkd_ros.ops.bev_pool import bev_pool

    makers = {"random_paper": lambda: _random_paper(args.quick),
              "frustum_paper": lambda: _frustum("paper", args.quick),
              "frustum_shipped": lambda: _frustum(str(ROOT / "models" / "cpu.yaml"), args.quick)}
    cases, out = [], []
    for name, make in makers.items():
        depth, feat, geom = make()
        geom.validate()
        g = geom.tensors()
        ref = bev_pool(depth.double(), feat.double(), *g, geom.batch, geom.bev_h, geom.bev_w)
        cells = geom.batch * geom.bev_h * geom.bev_w
        occ = torch.zeros(cells, dtype=torch.bool)
        occ[geom.ranks_bev.long()] = True
        occ = occ.view(geom.batch, geom.bev_h, geom.bev_w)
        cases.append(Case(name, depth, feat, geom, ref, occ))
        out.append({"case": name, "depth": list(depth.shape), "channels": int(feat.shape[-1]),
                    "points": geom.num_points, "intervals": int(geom.interval_starts.numel()), "cells": cells,
                    "empty_cells": int((~occ).sum())})
    state["cases"] = cases
    return out


def _check_kernel(case: Case, got: torch.Tensor, dtype: torch.dtype) -> dict[str, Any]:
    err = rel_err(got, case.ref)
    empty = got.detach().cpu()[~case.occupied]
    exact_zeros = bool((empty == 0).all()) and not bool(torch.isnan(got).any())
    ok = exact_zeros and err < (TOL_FP32 if dtype == torch.float32 else TOL_FP16)
    return {"rel_err": err, "empty_cells_exact_zero": exact_zeros, "ok": ok}


def step_kernels(args: argparse.Namespace, state: dict) -> list[dict[str, Any]]:
    need_gpu()
    from imkd_ros.ops.bev_pool_cuda import CupyBevPool, build_ptx, device_arch

    try:
        import cupy  # noqa: F401
    except ImportError as exc:
        raise Skip(f"cupy not installed ({exc})") from exc
    arch = device_arch()
    ptx = build_ptx(arch, ROOT / "build" / "gpu_validate")
    kern = CupyBevPool(ptx)
    out = []
    for case in state["cases"]:
        gd = case.geometry.to("cuda")
        for dtype in (torch.float32, torch.float16):
            d, f = case.depth.to("cuda", dtype), case.feat.to("cuda", dtype)
            for dense in (False, True):
                run = functools.partial(kern.forward, d, f, *gd.tensors(), gd.batch, gd.bev_h, gd.bev_w,
                                        dense=dense)
                res = _check_kernel(case, run(), dtype)
                res.update(case=case.name, dtype=str(dtype)[6:], kernel="dense" if dense else "sparse",
                           arch=f"sm_{arch}", ms=cuda_ms(run, args.iters))
                out.append(res)
    return out


def step_torch_extension(args: argparse.Namespace, state: dict) -> list[dict[str, Any]]:
    need_gpu()
    from imkd_ros.ops import bev_pool_cuda
    from imkd_ros.ops.bev_pool import bev_pool_backward

    cap = torch.cuda.get_device_capability(0)
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", f"{cap[0]}.{cap[1]}")
    why = bev_pool_cuda.try_register_cuda_kernels()
    if why:
        raise RuntimeError(why)
    out = []
    for case in state["cases"]:
        g = case.geometry
        grad = torch.randn(case.ref.shape, generator=torch.Generator().manual_seed(2))
        ref_d, ref_f = bev_pool_backward(grad.double(), case.depth.double(), case.feat.double(), *g.tensors())
        gd = g.to("cuda")
        for dtype in (torch.float32, torch.float16):
            d, f = case.depth.to("cuda", dtype), case.feat.to("cuda", dtype)
            fwd = torch.ops.imkd.bev_pool(d, f, *gd.tensors(), g.batch, g.bev_h, g.bev_w)
            g_d, g_f = torch.ops.imkd.bev_pool_backward(grad.to("cuda", dtype), d, f, *gd.tensors())
            res = _check_kernel(case, fwd, dtype)
            tol = TOL_FP32 if dtype == torch.float32 else TOL_FP16
            res.update(case=case.name, dtype=str(dtype)[6:], d_depth_rel_err=rel_err(g_d, ref_d),
                       d_feat_rel_err=rel_err(g_f, ref_f),
                       ms=cuda_ms(functools.partial(torch.ops.imkd.bev_pool, d, f, *gd.tensors(), g.batch,
                                                    g.bev_h, g.bev_w), args.iters))
            res["ok"] = bool(res["ok"] and res["d_depth_rel_err"] < tol and res["d_feat_rel_err"] < tol)
            out.append(res)
    return out


def step_backends(args: argparse.Namespace, state: dict) -> list[dict[str, Any]]:
    need_gpu()
    from imkd_ros.model import load_student
    from imkd_ros.model.synthetic import random_frame
    from imkd_ros.runtime.base import Detector
    from imkd_ros.runtime.torch_backend import TorchBackend

    if not SHIPPED.exists():
        raise Skip(f"shipped checkpoint {SHIPPED} missing")
    student = load_student(SHIPPED)
    ref_det = Detector(student, TorchBackend("cpu"))
    frames = [random_frame(s) for s in range(3)]
    inputs = [ref_det.inputs([fr]) for fr in frames]
    refs = [ref_det.backend.infer(i) for i in inputs]
    t0 = time.perf_counter()
    for i in inputs:
        ref_det.backend.infer(i)
    cpu_ms = (time.perf_counter() - t0) * 1e3 / len(inputs)
    ref_boxes = [len(ref_det.detect(fr)[0]) for fr in frames]
    out: list[dict[str, Any]] = [{"backend": "torch-cpu fp32", "ms_per_frame": cpu_ms,
                                  "threads": torch.get_num_threads(), "boxes": ref_boxes, "ok": True}]
    for precision, tol in (("fp32", 1e-3), ("fp16", 5e-2)):
        for graph in (False, True):
            label = f"torch-cuda {precision} {'cuda-graph' if graph else 'eager'}"
            backend = TorchBackend("cuda", precision, cuda_graph=graph)
            det = Detector(student, backend, "gpu_validate")
            diffs = []
            for inp, ref in zip(inputs, refs):
                got = backend.infer(inp)
                diffs.append(max(float((g[k].float().cpu() - r[k]).abs().max())
                                 for g, r in zip(got, ref) for k in ("heatmap", "box", "attr")))
            ms = cuda_ms(functools.partial(backend.infer, inputs[0]), args.iters)
            boxes = [len(det.detect(fr)[0]) for fr in frames]
            still_graph = backend.cuda_graph == graph  # falls back to eager (logged) if capture fails
            out.append({"backend": label, "max_abs_diff_vs_cpu": max(diffs), "ms_per_frame": ms, "boxes": boxes,
                        "kernel": backend.kernel_note, "graph_captured": still_graph if graph else None,
                        "ok": max(diffs) < tol and still_graph})
    return out


def step_tensorrt(args: argparse.Namespace, state: dict) -> list[dict[str, Any]]:
    need_gpu()
    import tempfile

    from imkd_ros.runtime.base import tensorrt_status

    why = tensorrt_status()
    if why:
        raise Skip(why)
    from imkd_ros.export.exporter import bev_pool_op_spec, export_onnx
    from imkd_ros.runtime.engine import EngineConfig, get_or_build_engine
    from imkd_ros.runtime.trt_runner import TensorRTRunner

    out = []
    with tempfile.TemporaryDirectory(prefix="imkd_gpu_validate_") as tmp:
        for case in state["cases"]:
            for dtype in (torch.float32, torch.float16):
                spec = bev_pool_op_spec(case.depth.to(dtype), case.feat.to(dtype), case.geometry)
                onnx_path = Path(tmp) / f"{case.name}_{str(dtype)[6:]}.onnx"
                export_onnx(spec, onnx_path)
                precision = "fp32" if dtype == torch.float32 else "fp16"
                engine = get_or_build_engine(onnx_path, EngineConfig(precision=precision, cache_dir=Path(tmp)))
                runner = TensorRTRunner(engine)
                got = runner.infer(spec.feeds_tensors())["bev"]
                res = _check_kernel(case, got, dtype)
                res.update(case=case.name, dtype=str(dtype)[6:],
                           ms=cuda_ms(functools.partial(runner.infer, spec.feeds_tensors()), args.iters))
                out.append(res)
    return out


STEPS: tuple[tuple[str, Callable[[argparse.Namespace, dict], list[dict[str, Any]]]], ...] = (
    ("env", step_env), ("cases", step_cases), ("kernels", step_kernels),
    ("torch_extension", step_torch_extension), ("backends", step_backends), ("tensorrt", step_tensorrt),
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "build" / "gpu_validate.json"), help="JSON results file")
    p.add_argument("--quick", action="store_true", help="small cases (CPU dry run in CI)")
    p.add_argument("--iters", type=int, default=20, help="timed iterations per measurement")
    p.add_argument("--only", default="", help="comma-separated step names (default: all)")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    only = {s for s in args.only.split(",") if s}
    state: dict[str, Any] = {}
    steps: list[Step] = []
    t_all = time.perf_counter()
    for name, fn in STEPS:
        if only and name not in only and name not in ("env", "cases"):
            continue
        step = Step(name)
        t0 = time.perf_counter()
        try:
            step.results = fn(args, state)
            if any(r.get("ok") is False for r in step.results):
                step.status = "fail"
        except Skip as exc:
            step.status, step.reason = "skip", str(exc)
        except Exception as exc:
            step.status, step.reason = "fail", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"
        step.seconds = round(time.perf_counter() - t0, 2)
        steps.append(step)
        why = ": " + step.reason.splitlines()[0] if step.reason else ""
        print(f"[{step.status.upper():4}] {name} ({step.seconds:.1f} s){why}", flush=True)
        for r in step.results:
            print("       " + json.dumps(r, default=str), flush=True)
    report = {"tool": "tools/gpu_validate.py", "quick": args.quick, "seconds": round(time.perf_counter() - t_all, 1),
              "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "steps": [asdict(s) for s in steps]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str))
    failed = [s.name for s in steps if s.status == "fail"]
    print(f"gpu_validate: {len(failed)} failed {failed if failed else ''}; "
          f"{sum(s.status == 'skip' for s in steps)} skipped; wrote {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
