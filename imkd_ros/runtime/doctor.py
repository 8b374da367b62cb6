"""What can run here, and (with a GPU) whether it runs right: the body of ``imkd doctor``.

Every check returns a ``Check`` (ok / skip / fail with a one-line detail); a missing piece is a
loud SKIP that names what is missing, never a crash. GPU checks: the CUDA kernel (torch extension
and CuPy/PTX) against the CPU op, forward and backward, fp32 and fp16; each backend (TensorRT when
its engine was exported) against torch-cpu, with latency. The full prepared GPU run, with a JSON
of results, is tools/gpu_validate.py (which also checks the TensorRT plugin alone when TensorRT
is installed).
"""

from __future__ import annotations

import functools
import importlib
import platform
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from imkd_ros.model import Student, load_config, load_student
from imkd_ros.model.synthetic import random_frame
from imkd_ros.ops import BevGrid, compute_bev_pool_geometry
from imkd_ros.ops.bev_pool import bev_pool, bev_pool_backward
from imkd_ros.ops.bev_pool_cuda import (
    CudaUnavailableError,
    CupyBevPool,
    build_ptx,
    cuda_unavailable_reason,
    device_arch,
    find_nvcc,
    try_register_cuda_kernels,
)
from imkd_ros.ops.bev_pool_geometry import BevPoolGeometry
from imkd_ros.runtime.base import BackendUnavailableError, Detector, cuda_status, make_backend, tensorrt_status
from imkd_ros.runtime.torch_backend import TorchBackend


@dataclass
class Check:
    name: str
    status: str  # ok | skip | fail | info
    detail: str

    def line(self) -> str:
        return f"[{self.status.upper():4}] {self.name}: {self.detail}"


def _version(module: str) -> str | None:
    try:
        mod = importlib.import_module(module)
    except Exception:
        return None
    return str(getattr(mod, "__version__", "?"))


def environment() -> list[Check]:
    out = [Check("python", "info", platform.python_version()),
           Check("torch", "info", f"{torch.__version__} (CUDA build: {torch.version.cuda or 'none'})")]
    cuda = cuda_status()
    if cuda is None:
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        cap = torch.cuda.get_device_capability(0)
        out.append(Check("cuda", "ok", f"{names} (sm_{cap[0]}{cap[1]})"))
    else:
        out.append(Check("cuda", "skip", cuda))
    nvcc = find_nvcc()
    if nvcc:
        ver = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout.strip().splitlines()
        out.append(Check("nvcc", "ok", f"{nvcc} ({ver[-1] if ver else '?'})"))
    else:
        out.append(Check("nvcc", "skip", "not found (tools/build_cuda.sh and the torch extension need it)"))
    trt = tensorrt_status()
    out.append(Check("tensorrt", "ok", f"{_version('tensorrt')}") if trt is None else Check("tensorrt", "skip", trt))
    for mod in ("cupy", "onnx", "onnxruntime", "onnxruntime_extensions", "onnxscript"):
        v = _version(mod)
        out.append(Check(mod, "info" if v else "skip", v or "not installed"))
    out.append(Check("g++", "info" if shutil.which("g++") else "skip",
                     "present (kernel CPU emulation test)" if shutil.which("g++") else "not found"))
    return out


def random_case(seed: int = 0, batch: int = 1, n_cam: int = 6, d: int = 40, h: int = 16, w: int = 44,
                c: int = 80, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor, BevPoolGeometry]:
    """A BEVDepth-sized random frustum (points spread over a 128x128 grid)."""
    g = torch.Generator().manual_seed(seed)
    grid = BevGrid()
    pts = (torch.rand(batch * n_cam, d, h, w, 3, generator=g) - 0.5) * torch.tensor([110.0, 110.0, 9.0])
    geom = compute_bev_pool_geometry(pts, grid, batch)
    depth = torch.rand(batch * n_cam, d, h, w, generator=g).softmax(1)
    feat = torch.randn(batch * n_cam, h, w, c, generator=g)
    return depth.to(device), feat.to(device), geom.to(device)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float().cpu() - b.float().cpu()).abs().max())


def check_cuda_kernel() -> list[Check]:
    """Torch-extension CUDA kernel vs the CPU op (fwd + bwd, fp32 + fp16)."""

    reason = cuda_unavailable_reason()
    if reason:
        return [Check("kernel vs CPU op", "skip", reason)]
    why = try_register_cuda_kernels()
    if why:
        return [Check("kernel vs CPU op", "fail", why)]
    depth, feat, geom = random_case()
    args = (geom.batch, geom.bev_h, geom.bev_w)
    ref = bev_pool(depth, feat, *geom.tensors(), *args)
    grad = torch.randn_like(ref)
    ref_d, ref_f = bev_pool_backward(grad, depth, feat, *geom.tensors())
    out = []
    for dtype, tol in ((torch.float32, 1e-4), (torch.float16, 5e-2)):
        gd = geom.to("cuda")
        got = torch.ops.imkd.bev_pool(depth.cuda().to(dtype), feat.cuda().to(dtype), *gd.tensors(), *args)
        g_d, g_f = torch.ops.imkd.bev_pool_backward(grad.cuda().to(dtype), depth.cuda().to(dtype),
                                                    feat.cuda().to(dtype), *gd.tensors())
        diffs = (_max_diff(got, ref), _max_diff(g_d, ref_d), _max_diff(g_f, ref_f))
        status = "ok" if max(diffs) < tol else "fail"
        out.append(Check(f"kernel vs CPU op ({str(dtype)[6:]})", status,
                         f"max|diff| fwd {diffs[0]:.2e}, d_depth {diffs[1]:.2e}, d_feat {diffs[2]:.2e} "
                         f"(P={geom.num_points}, K={len(geom.interval_starts)})"))
    return out


def check_cupy_kernel() -> list[Check]:
    """The PTX (what TensorRT embeds) through CuPy vs the CPU op, sparse and dense kernels."""

    try:
        arch = device_arch()
        ptx = build_ptx(arch)
        cp = CupyBevPool(ptx)
    except (CudaUnavailableError, RuntimeError) as exc:
        return [Check("PTX via CuPy", "skip", str(exc))]
    depth, feat, geom = random_case(seed=1)
    ref = bev_pool(depth, feat, *geom.tensors(), geom.batch, geom.bev_h, geom.bev_w)
    gd = geom.to("cuda")
    out = []
    for dense in (False, True):
        got = cp.forward(depth.cuda(), feat.cuda(), *gd.tensors(), geom.batch, geom.bev_h, geom.bev_w, dense=dense)
        d = _max_diff(got, ref)
        out.append(Check(f"PTX via CuPy ({'dense' if dense else 'sparse'}, sm_{arch})",
                         "ok" if d < 1e-4 else "fail", f"max|diff| {d:.2e}"))
    return out


def time_it(fn: Callable[[], object], warmup: int = 3, iters: int = 20, cuda: bool = False) -> float:
    """Median milliseconds per call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return times[len(times) // 2]


def load_student_for_checks(checkpoint: str | None, config: str):
    if checkpoint:
        return load_student(checkpoint), f"checkpoint {checkpoint}"
    torch.manual_seed(0)
    return Student(load_config(config)).eval(), f"random weights, config {config}"


def check_backends(checkpoint: str | None, config: str, iters: int = 20) -> list[Check]:
    """Each backend's head outputs vs torch-cpu, and its latency (network only)."""

    student, what = load_student_for_checks(checkpoint, config)
    out = [Check("model", "info", what)]
    ref_det = Detector(student, TorchBackend("cpu"))

    inputs = ref_det.inputs([random_frame(0)])
    ref = ref_det.backend.infer(inputs)
    ms = time_it(lambda: ref_det.backend.infer(inputs), warmup=1, iters=max(3, iters // 4))
    out.append(Check("latency torch-cpu fp32", "info", f"{ms:.1f} ms/frame ({torch.get_num_threads()} threads)"))
    for name, precision, tol in (("torch-cuda", "fp32", 1e-3), ("torch-cuda", "fp16", 5e-2),
                                 ("tensorrt", "fp32", 1e-2), ("tensorrt", "fp16", 1e-1)):
        label = f"{name} {precision}"
        try:
            backend = make_backend(name, precision)
            backend.load(student)
        except (BackendUnavailableError, ImportError) as exc:
            out.append(Check(label, "skip", str(exc)))
            continue
        except Exception as exc:
            out.append(Check(label, "fail", f"load: {type(exc).__name__}: {exc}"))
            continue
        try:
            got = backend.infer(inputs)
            diff = max(_max_diff(g[k], r[k]) for g, r in zip(got, ref) for k in ("heatmap", "box", "attr"))
            ms = time_it(functools.partial(backend.infer, inputs), iters=iters, cuda=True)
        except Exception as exc:
            out.append(Check(label, "fail", f"infer: {type(exc).__name__}: {exc}"))
            continue
        note = getattr(backend, "kernel_note", "")
        out.append(Check(f"{label} vs torch-cpu", "ok" if diff < tol else "fail",
                         f"max|diff| {diff:.2e}; {ms:.2f} ms/frame" + (f"; {note}" if note else "")))
    return out


def run(gpu: bool, checkpoint: str | None = None, config: str = "cpu",
        print_fn: Callable[[str], object] = print) -> int:
    checks = environment()
    if gpu:
        for fn in (check_cuda_kernel, check_cupy_kernel):
            checks += fn()
        checks += check_backends(checkpoint, config)
    else:
        checks.append(Check("gpu checks", "info", "not run (add --gpu)"))
    for c in checks:
        print_fn(c.line())
    failed = [c for c in checks if c.status == "fail"]
    skipped = [c for c in checks if c.status == "skip"]
    print_fn(f"doctor: {len(failed)} failed, {len(skipped)} skipped")
    return 1 if failed else 0
