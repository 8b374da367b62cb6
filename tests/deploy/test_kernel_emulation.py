"""The CUDA kernel source, run on the CPU (g++, CUDA built-ins emulated), matches the CPU op.

No GPU here: this checks the kernels' indexing, interval search, fp16 handling and the
no-atomics backward decomposition exactly as written in bev_pool_kernel.cu.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from imkd_ros.ops import BevGrid, bev_pool_naive, compute_bev_pool_geometry
from imkd_ros.ops.bev_pool import bev_pool, bev_pool_backward
from imkd_ros.ops.bev_pool_cuda import CSRC_DIR, feat_grad_plan
from imkd_ros.ops.bev_pool_geometry import GeometryError

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    so = tmp_path_factory.mktemp("emu") / "kernel_emulation.so"
    cmd = ["g++", "-O2", "-std=c++17", "-shared", "-fPIC", f"-I{CSRC_DIR}", "-o", str(so),
           str(HERE / "kernel_emulation.cpp")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 and "_Float16" in proc.stderr:
        pytest.skip("this g++ lacks _Float16")
    assert proc.returncode == 0, proc.stderr
    return ctypes.CDLL(str(so))


def _ptr(t: torch.Tensor) -> ctypes.c_void_p:
    assert t.is_contiguous()
    return ctypes.c_void_p(t.data_ptr())


def _case(seed: int = 0, batch: int = 2, n_cam: int = 3, d: int = 6, h: int = 4, w: int = 5,
          c: int = 7):
    g = torch.Generator().manual_seed(seed)
    grid = BevGrid(x_min=-4, x_max=4, y_min=-4, y_max=4, resolution=1.0)
    pts = (torch.rand(batch * n_cam, d, h, w, 3, generator=g) - 0.5) * torch.tensor([10.0, 10.0, 4.0])
    geom = compute_bev_pool_geometry(pts, grid, batch)
    depth = torch.rand(batch * n_cam, d, h, w, generator=g).softmax(1)
    feat = torch.randn(batch * n_cam, h, w, c, generator=g)
    return geom, depth, feat


def _forward(emu, geom, depth, feat, dense: bool) -> torch.Tensor:
    c = feat.shape[-1]
    shape = (geom.batch, geom.bev_h, geom.bev_w, c)
    out = torch.full(shape, float("nan"), dtype=feat.dtype) if dense else torch.zeros(shape, dtype=feat.dtype)
    dtype = 0 if feat.dtype == torch.float32 else 1
    emu.emu_forward(dtype, int(dense), _ptr(depth), _ptr(feat), *map(_ptr, geom.tensors()),
                    len(geom.interval_starts), c, out.numel(), _ptr(out))
    return out


@pytest.mark.parametrize("dense", [False, True])
def test_forward_fp32_matches_cpu_op(emu, dense: bool) -> None:
    geom, depth, feat = _case()
    assert geom.num_points > 0 and len(geom.interval_starts) < geom.batch * geom.bev_h * geom.bev_w
    ref = bev_pool(depth, feat, *geom.tensors(), geom.batch, geom.bev_h, geom.bev_w)
    out = _forward(emu, geom, depth, feat, dense)
    assert torch.allclose(out, ref, atol=1e-5), (out - ref).abs().max()
    naive = bev_pool_naive(depth, feat, geom.ranks_depth, geom.ranks_feat, geom.ranks_bev,
                           geom.batch, geom.bev_h, geom.bev_w)
    assert torch.allclose(out, naive, atol=1e-5)


@pytest.mark.parametrize("dense", [False, True])
def test_forward_fp16_accumulates_in_fp32(emu, dense: bool) -> None:
    geom, depth, feat = _case(seed=1)
    ref = bev_pool(depth.double(), feat.double(), *geom.tensors(), geom.batch, geom.bev_h,
                   geom.bev_w)
    out = _forward(emu, geom, depth.half(), feat.half(), dense)
    assert out.dtype == torch.float16
    ref16 = bev_pool(depth.half().double(), feat.half().double(), *geom.tensors(), geom.batch,
                     geom.bev_h, geom.bev_w)
    # fp32 accumulation: only the final rounding to half differs from an exact sum.
    assert torch.allclose(out.double(), ref16, rtol=1e-3, atol=1e-3)
    assert (out.double() - ref).abs().max() < 2e-2


def test_empty_geometry_gives_zeros(emu) -> None:
    geom, depth, feat = _case()
    empty = torch.zeros(0, dtype=torch.int32)
    geom.ranks_depth = geom.ranks_feat = geom.ranks_bev = empty
    geom.interval_starts = geom.interval_lengths = empty
    out = _forward(emu, geom, depth, feat, dense=True)
    assert torch.count_nonzero(out) == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_backward_matches_cpu_op(emu, dtype: torch.dtype) -> None:
    geom, depth, feat = _case(seed=2)
    grad = torch.randn(geom.batch, geom.bev_h, geom.bev_w, feat.shape[-1])
    ref_d, ref_f = bev_pool_backward(grad, depth, feat, *geom.tensors())
    d, f, g = depth.to(dtype), feat.to(dtype), grad.to(dtype)
    order, starts, lengths = feat_grad_plan(geom.ranks_feat)
    depth_grad, feat_grad = torch.zeros_like(d), torch.zeros_like(f)
    emu.emu_backward(0 if dtype == torch.float32 else 1, _ptr(g), _ptr(d), _ptr(f),
                     _ptr(geom.ranks_depth), _ptr(geom.ranks_feat), _ptr(geom.ranks_bev),
                     geom.num_points, _ptr(order), _ptr(starts), _ptr(lengths), len(starts),
                     feat.shape[-1], _ptr(depth_grad), _ptr(feat_grad))
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    assert torch.allclose(depth_grad.float(), ref_d, atol=tol), (depth_grad.float() - ref_d).abs().max()
    assert torch.allclose(feat_grad.float(), ref_f, atol=tol), (feat_grad.float() - ref_f).abs().max()


def test_zero_length_interval_writes_nothing(emu) -> None:
    """Issue 13 defect 5: an empty interval (start 0, length 0) must not zero point 0's cell in
    the sparse kernel (the plugin's); validation refuses such a geometry before any kernel."""

    geom, depth, feat = _case(seed=3)
    ref = _forward(emu, geom, depth, feat, dense=False)
    geom.interval_starts = torch.cat([geom.interval_starts, torch.zeros(1, dtype=torch.int32)])
    geom.interval_lengths = torch.cat([geom.interval_lengths, torch.zeros(1, dtype=torch.int32)])
    out = _forward(emu, geom, depth, feat, dense=False)
    assert torch.equal(out, ref)
    with pytest.raises(GeometryError, match="> 0"):
        geom.validate()
