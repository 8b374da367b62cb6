"""TensorRT plugin ``imkd::BevPool`` as a quickly-deployable plugin (``tensorrt.plugin``).

* ``register`` describes the output: (batch, bev_h, bev_w, C) in the dtype of ``feat``.
* ``autotune`` offers fp32 and fp16 data with int32 geometry.
* ``aot_impl`` hands TensorRT the PTX of ``imkd_bev_pool_dense_fwd_{f32,f16}`` (the single-launch
  kernel that also writes the zeros of empty cells, because an AOT plugin gets exactly one kernel
  launch and no memset) with its launch geometry and int32 scalars, so the engine runs without
  Python (trtexec / C++ runtime can load it).
* ``impl`` is the JIT fallback: it calls ``torch.ops.imkd.bev_pool`` on the TensorRT buffers
  (CUDA kernel when registered, see imkd_ros/runtime/cuda_kernels.py) and needs Python at runtime.

Kernel argument order for AOT plugins: input tensors, then the extra int32 scalars, then output
tensors (the TensorRT samples' convention); our kernels are written in exactly that order:
``(depth, feat, ranks_depth, ranks_feat, ranks_bev, interval_starts, interval_lengths,
n_intervals, channels, n_out, out)``.

The ONNX node (imkd_ros/export/onnx_ops.py) maps to this plugin by op_type "BevPool" plus the
``plugin_namespace="imkd"`` attribute; ``aot=1`` asks the parser for the AOT implementation.

UNVERIFIED: TensorRT cannot be installed on the development machine (no GPU, no NVIDIA index), so
this module was written against the documented ``tensorrt.plugin`` API (TensorRT >= 10.9 QDP
with AOT) and has never been imported with a real TensorRT. ``imkd doctor --gpu`` exercises it.
"""

# No ``from __future__ import annotations`` here: tensorrt.plugin reads the decorated functions'
# annotations as objects (TensorDesc marks an input tensor, ``int`` an attribute).
import importlib
import logging
import os
from pathlib import Path
from typing import Any

from imkd_ros.export.onnx_ops import PLUGIN_ID

log = logging.getLogger(__name__)

BLOCK = 256
_REGISTERED: dict[str, Any] = {}


def default_ptx_path(arch: str, build_dir: str | Path | None = None) -> Path:
    root = Path(build_dir) if build_dir else Path(__file__).resolve().parents[2] / "build" / "cuda"
    return root / f"bev_pool_sm{arch}.ptx"


def load_ptx(arch: str, build_dir: str | Path | None = None) -> bytes:
    """PTX for ``arch``, compiled by this machine's nvcc when it has one.

    PTX must not be newer than the driver's CUDA (CUDA-13 PTX does not load on a JetPack CUDA-12
    driver), so the local toolkit wins: its output is cached under ~/.cache/imkd_ros/ptx keyed by
    the nvcc version and the kernel source ($IMKD_PTX_CACHE overrides the folder). Without nvcc,
    tools/build_cuda.sh's output is used.
    """
    import hashlib
    import subprocess

    from imkd_ros.runtime.cuda_kernels import KERNEL_SOURCE, build_ptx, find_nvcc

    nvcc = find_nvcc()
    if nvcc is not None:
        version = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout
        key = hashlib.sha256(version.encode() + KERNEL_SOURCE.read_bytes()).hexdigest()[:16]
        root = os.environ.get("IMKD_PTX_CACHE") or Path.home() / ".cache" / "imkd_ros" / "ptx"
        cache = Path(root) / key
        path = cache / f"bev_pool_sm{arch}.ptx"
        if not path.exists():
            path = build_ptx(arch, cache)
        return path.read_bytes()
    path = default_ptx_path(arch, build_dir)
    if not path.exists():
        raise FileNotFoundError(f"no nvcc and no prebuilt PTX at {path} (run tools/build_cuda.sh)")
    return path.read_bytes()


def register_bev_pool_plugin(arch: str | None = None, build_dir: str | Path | None = None) -> None:
    """Register the QDP definitions with TensorRT (idempotent; import tensorrt lazily).

    ``arch`` selects the PTX ("86", "87", "89", "90"); default: the current CUDA device's.
    Raises ImportError naming TensorRT when it is not installed.
    """
    if PLUGIN_ID in _REGISTERED:
        return
    try:
        trt: Any = importlib.import_module("tensorrt")
        trtp: Any = importlib.import_module("tensorrt.plugin")
    except ImportError as exc:
        raise ImportError(
            f"TensorRT Python package with tensorrt.plugin (>= 10.9) is required: {exc}"
        ) from exc
    import numpy as np  # noqa: F401  (tensorrt.plugin inspects annotations)

    if arch is None:
        from imkd_ros.runtime.cuda_kernels import device_arch

        arch = device_arch()
    ptx = load_ptx(arch, build_dir)

    @trtp.register(PLUGIN_ID)
    def bev_pool_desc(depth: trtp.TensorDesc, feat: trtp.TensorDesc, ranks_depth: trtp.TensorDesc,
                      ranks_feat: trtp.TensorDesc, ranks_bev: trtp.TensorDesc,
                      interval_starts: trtp.TensorDesc, interval_lengths: trtp.TensorDesc,
                      batch: int, bev_h: int, bev_w: int) -> trtp.TensorDesc:
        shape = trtp.ShapeExprs.from_tuple((batch, bev_h, bev_w, feat.shape_expr[3]))
        return trtp.from_shape_expr(shape, dtype=feat.dtype)

    @trtp.autotune(PLUGIN_ID)
    def bev_pool_autotune(depth, feat, ranks_depth, ranks_feat, ranks_bev, interval_starts,
                          interval_lengths, outputs):
        # positions: depth, feat, 5 x int32 geometry, out; depth/feat/out share the float type
        return [trtp.AutoTuneCombination(
            "FP32|FP16, FP32|FP16, INT32, INT32, INT32, INT32, INT32, FP32|FP16")]

    @trtp.aot_impl(PLUGIN_ID)
    def bev_pool_aot(depth, feat, ranks_depth, ranks_feat, ranks_bev, interval_starts,
                     interval_lengths, batch: int, bev_h: int, bev_w: int, outputs, tactic: int):
        out = outputs[0]
        half = feat.dtype == trt.float16
        kernel = "imkd_bev_pool_dense_fwd_f16" if half else "imkd_bev_pool_dense_fwd_f32"
        n_out = out.shape_expr.numel()
        launch = trtp.KernelLaunchParams()
        launch.grid_x = trtp.cdiv(n_out, BLOCK)
        launch.block_x = BLOCK
        launch.shared_mem = 0
        extra = trtp.SymIntExprs.from_tuple([
            trtp.SymInt32(interval_starts.shape_expr[0]),  # n_intervals
            trtp.SymInt32(feat.shape_expr[3]),  # channels
            trtp.SymInt32(n_out),  # n_out
        ])
        return kernel.encode(), ptx, launch, extra

    @trtp.impl(PLUGIN_ID)
    def bev_pool_impl(depth, feat, ranks_depth, ranks_feat, ranks_bev, interval_starts,
                      interval_lengths, batch: int, bev_h: int, bev_w: int, outputs,
                      stream: int) -> None:
        import torch

        import imkd_ros.ops.bev_pool  # noqa: F401

        with torch.cuda.stream(torch.cuda.ExternalStream(stream)):
            t = [torch.as_tensor(x, device="cuda") for x in
                 (depth, feat, ranks_depth, ranks_feat, ranks_bev, interval_starts, interval_lengths)]
            res = torch.ops.imkd.bev_pool(*t, int(batch), int(bev_h), int(bev_w))
            torch.as_tensor(outputs[0], device="cuda").copy_(res)

    _REGISTERED[PLUGIN_ID] = (bev_pool_desc, bev_pool_autotune, bev_pool_aot, bev_pool_impl)
    log.info("registered TensorRT plugin %s (PTX sm_%s, %d bytes)", PLUGIN_ID, arch, len(ptx))
