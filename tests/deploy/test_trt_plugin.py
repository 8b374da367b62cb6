"""The C++ IPluginV3 imkd::BevPool, driven on the CPU the way TensorRT drives it.

tests/deploy/trt_plugin_harness.cpp compiles bev_pool_trt_plugin.cpp with g++ against BOTH
TensorRT header sets (10.3 = JetPack 6 on Orin, 11.1), replaces the CUDA calls by the CPU
emulation of the real kernels + a host memset, and runs creator -> plugin -> formats -> enqueue ->
serialize -> recreate -> enqueue. The nvcc build of the real library (both header sets, symbol
check) is tests/deploy/test_cuda_build.py. What only a GPU + TensorRT can show (the ONNX parser
mapping the node, engine build, run) is listed in docs/deployment.md.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from imkd_ros.ops import BevGrid, compute_bev_pool_geometry
from imkd_ros.ops.bev_pool import bev_pool
from imkd_ros.ops.bev_pool_cuda import CSRC_DIR, TRT_PLUGIN_SOURCE

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VENDOR = ROOT.parent / "shared" / "vendor" / "tensorrt"
CUDA_INCLUDE = Path("/usr/local/cuda/include")
HEADER_SETS = ("v10.3.0", "v11.1")

pytestmark = [
    pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed"),
    pytest.mark.skipif(not (CUDA_INCLUDE / "cuda_runtime_api.h").exists(), reason="CUDA headers not installed"),
]


def _headers(version: str) -> Path:
    inc = VENDOR / version / "include"
    if not (inc / "NvInferRuntime.h").exists():
        pytest.skip(f"TensorRT {version} headers not at {inc}")
    return inc


@pytest.fixture(scope="module", params=HEADER_SETS)
def harness(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    inc = _headers(request.param)
    so = tmp_path_factory.mktemp("plugin") / f"harness_{request.param}.so"
    cmd = ["g++", "-O1", "-std=c++17", "-shared", "-fPIC", "-Wno-deprecated-declarations", f"-I{inc}",
           f"-I{CUDA_INCLUDE}", f"-I{CSRC_DIR}", "-o", str(so), str(HERE / "trt_plugin_harness.cpp"),
           str(TRT_PLUGIN_SOURCE), str(HERE / "kernel_emulation.cpp")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 and "_Float16" in proc.stderr:
        pytest.skip("this g++ lacks _Float16")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return ctypes.CDLL(str(so))


def _ptr(t: torch.Tensor) -> ctypes.c_void_p:
    assert t.is_contiguous()
    return ctypes.c_void_p(t.data_ptr())


def _frustum_case(seed: int):
    """A frustum-like fan (most BEV cells empty) on a 12 x 12 grid, batch 2."""
    g = torch.Generator().manual_seed(seed)
    bn, d, h, w, c = 4, 5, 3, 4, 6
    depth_m = torch.linspace(1.0, 5.5, d).view(1, d, 1, 1)
    ang = torch.linspace(-0.6, 0.6, w).view(1, 1, 1, w) + torch.arange(bn).view(bn, 1, 1, 1) * 1.57
    x = (depth_m * torch.cos(ang)).expand(bn, d, h, w)
    y = (depth_m * torch.sin(ang)).expand(bn, d, h, w)
    z = torch.linspace(-0.5, 0.5, h).view(1, 1, h, 1).expand(bn, d, h, w)
    pts = torch.stack([x, y, z], -1)
    geom = compute_bev_pool_geometry(pts, BevGrid(-6.0, 6.0, -6.0, 6.0, -2.0, 2.0, 1.0), 2).validate()
    depth = torch.rand(bn, d, h, w, generator=g).softmax(1)
    feat = torch.randn(bn, h, w, c, generator=g)
    return geom, depth, feat


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_plugin_enqueue_matches_cpu_op_with_exact_empty_cells(harness: ctypes.CDLL, dtype: torch.dtype) -> None:
    geom, depth, feat = _frustum_case(0)
    cells = geom.batch * geom.bev_h * geom.bev_w
    assert 0 < len(geom.interval_starts) < cells // 2  # mostly empty: the memset matters
    d, f = depth.to(dtype).contiguous(), feat.to(dtype).contiguous()
    c = f.shape[-1]
    out = torch.full((geom.batch, geom.bev_h, geom.bev_w, c), float("nan"), dtype=dtype)
    msg = ctypes.create_string_buffer(256)
    bn, dd, h, w = depth.shape
    rc = harness.harness_run(0 if dtype == torch.float32 else 1, _ptr(d), _ptr(f), *map(_ptr, geom.tensors()),
                             geom.num_points, len(geom.interval_starts), bn, dd, h, w, c, geom.batch,
                             geom.bev_h, geom.bev_w, _ptr(out), msg)
    assert rc == 0, msg.value.decode()
    ref = bev_pool(depth.double(), feat.double(), *geom.tensors(), geom.batch, geom.bev_h, geom.bev_w)
    occupied = torch.zeros(cells, dtype=torch.bool)
    occupied[geom.ranks_bev.long()] = True
    occupied = occupied.view(geom.batch, geom.bev_h, geom.bev_w)
    assert torch.count_nonzero(out[~occupied]) == 0 and not torch.isnan(out).any()  # exact zeros
    tol = 1e-5 if dtype == torch.float32 else 1e-2
    assert (out.double() - ref).abs().max() < tol
