"""The bev_pool CUDA kernel and its builds: torch extension, PTX/cubin, CuPy, TensorRT plugin.

One source, imkd_ros/ops/csrc/bev_pool_kernel.cu, reached four ways:

* ``register_cuda_kernels()``: builds the torch extension with ``cpp_extension.load`` (needs a
  CUDA build of torch, nvcc and a GPU) and registers it as the CUDA kernel of ``imkd::bev_pool``
  and ``imkd::bev_pool_backward``; autograd / fake / export registrations stay those of
  imkd_ros/ops/bev_pool.py, so ``torch.ops.imkd.bev_pool`` on CUDA tensors runs the kernel.
* ``build_ptx()``: nvcc -> PTX / cubin for one architecture.
* ``CupyBevPool``: loads the PTX/cubin (or compiles the source with NVRTC) through
  ``cupy.RawModule`` to check the kernel on a GPU box without TensorRT or a torch extension.
* the TensorRT plugin library ``libimkd_trt_plugins.so`` = the .cu + ``bev_pool_trt_plugin.cpp``
  (IPluginV3), built by tools/build_cuda.sh and loaded by imkd_ros/runtime/trt_plugins.py.

UNVERIFIED: nothing here has run on a GPU (the development machine has none). The kernel logic
is checked on the CPU by tests/deploy/test_kernel_emulation.py (the same .cu with CUDA built-ins
emulated) and the plugin by tests/deploy/test_trt_plugin.py; tools/gpu_validate.py is the GPU run.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import imkd_ros.ops.bev_pool  # noqa: F401  (defines the ops)

CSRC_DIR = Path(__file__).resolve().parent / "csrc"
KERNEL_SOURCE = CSRC_DIR / "bev_pool_kernel.cu"
BINDING_SOURCE = CSRC_DIR / "bev_pool_torch.cpp"
TRT_PLUGIN_SOURCE = CSRC_DIR / "bev_pool_trt_plugin.cpp"  # IPluginV3 imkd::BevPool (TensorRT >= 10)
EXTENSION_NAME = "imkd_bev_pool_cuda"
THREADS = 256  # block size used by every launcher (matches kThreads in the .cu)

FWD_KERNELS = {torch.float32: "imkd_bev_pool_fwd_f32", torch.float16: "imkd_bev_pool_fwd_f16"}
DENSE_FWD_KERNELS = {
    torch.float32: "imkd_bev_pool_dense_fwd_f32",
    torch.float16: "imkd_bev_pool_dense_fwd_f16",
}
BWD_DEPTH_KERNELS = {
    torch.float32: "imkd_bev_pool_bwd_depth_f32",
    torch.float16: "imkd_bev_pool_bwd_depth_f16",
}
BWD_FEAT_KERNELS = {
    torch.float32: "imkd_bev_pool_bwd_feat_f32",
    torch.float16: "imkd_bev_pool_bwd_feat_f16",
}
ALL_ENTRY_POINTS: tuple[str, ...] = tuple(
    name
    for table in (FWD_KERNELS, DENSE_FWD_KERNELS, BWD_DEPTH_KERNELS, BWD_FEAT_KERNELS)
    for name in table.values()
)


class CudaUnavailableError(RuntimeError):
    """A CUDA path was asked for but something it needs is missing (the message says what)."""


def cuda_unavailable_reason() -> str | None:
    """None when torch can run CUDA kernels here, otherwise why not (for skips and logs)."""
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build (no CUDA)"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA GPU"
    return None


def find_nvcc() -> str | None:
    """nvcc from $NVCC, PATH, or $CUDA_HOME/bin."""
    env = os.environ.get("NVCC")
    if env and Path(env).exists():
        return env
    found = shutil.which("nvcc")
    if found:
        return found
    cand = Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "bin" / "nvcc"
    return str(cand) if cand.exists() else None


def build_ptx(arch: str, out_dir: str | Path | None = None, cubin: bool = False) -> Path:
    """Compile the kernel with nvcc for ``arch`` ("86", "87", "89", "90"); returns the file.

    PTX targets ``compute_<arch>`` (the driver JIT-compiles it for newer GPUs too); a cubin
    targets exactly ``sm_<arch>``. Raises CudaUnavailableError when nvcc is missing.
    """
    nvcc = find_nvcc()
    if nvcc is None:
        raise CudaUnavailableError("nvcc not found (install the CUDA toolkit or set NVCC/CUDA_HOME)")
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="imkd_cuda_"))
    out.mkdir(parents=True, exist_ok=True)
    if cubin:
        target = out / f"bev_pool_sm{arch}.cubin"
        flags = ["-cubin", f"-arch=sm_{arch}"]
    else:
        target = out / f"bev_pool_sm{arch}.ptx"
        flags = ["-ptx", f"-arch=compute_{arch}"]
    cmd = [nvcc, "-O3", "-std=c++17", *flags, "-o", str(target), str(KERNEL_SOURCE)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"nvcc failed ({' '.join(cmd)}):\n{proc.stderr}")
    return target


def device_arch(device: int | None = None) -> str:
    """'86', '87', '89', '90', ... for a CUDA device (raises when CUDA is unavailable)."""
    reason = cuda_unavailable_reason()
    if reason:
        raise CudaUnavailableError(reason)
    major, minor = torch.cuda.get_device_capability(device)
    return f"{major}{minor}"


# ---------------------------------------------------------------------------------------------
# Backward helper shared by the torch extension, CuPy and the CPU emulation test.


def feat_grad_plan(ranks_feat: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(order, starts, lengths): points grouped by feature row, one interval per row.

    The feature-gradient kernel runs one thread per (row interval, channel) over
    ``order`` so that no two threads write the same feat_grad element (no atomics).
    """
    rf = ranks_feat.long()
    order = torch.argsort(rf, stable=True)
    if rf.numel() == 0:
        empty = torch.zeros(0, dtype=torch.int32, device=rf.device)
        return empty, empty, empty
    _, lengths = torch.unique_consecutive(rf[order], return_counts=True)
    starts = torch.cumsum(lengths, 0) - lengths
    i32 = torch.int32
    return order.to(i32).contiguous(), starts.to(i32).contiguous(), lengths.to(i32).contiguous()


def intervals_cover_all_points(starts: Tensor, lengths: Tensor, num_points: int) -> bool:
    """True when the intervals tile 0..P-1 in order (what compute_bev_pool_geometry makes)."""
    if starts.numel() == 0:
        return num_points == 0
    s, n = starts.long(), lengths.long()
    return (
        int(s[0]) == 0
        and int(n.sum()) == num_points
        and bool((s[1:] == s[:-1] + n[:-1]).all())
    )


# ---------------------------------------------------------------------------------------------
# torch extension


@functools.lru_cache(maxsize=2)
def load_torch_extension(verbose: bool = False, require_gpu: bool = True) -> Any:
    """Build (once, cached by torch in ~/.cache/torch_extensions) and import the extension.

    ``require_gpu=False`` only needs a CUDA build of torch + nvcc (compile check without a GPU;
    set TORCH_CUDA_ARCH_LIST then, e.g. "8.6;8.7;8.9;9.0").
    """
    reason = cuda_unavailable_reason()
    if reason and (require_gpu or torch.version.cuda is None):
        raise CudaUnavailableError(f"cannot build the bev_pool CUDA extension: {reason}")
    if find_nvcc() is None:
        raise CudaUnavailableError("cannot build the bev_pool CUDA extension: nvcc not found")
    from torch.utils import cpp_extension  # noqa: PLC0415  (optional: cpp_extension pulls setuptools; only to build kernels)

    if not cpp_extension.is_ninja_available():  # e.g. a bare GPU box: torch does not bring ninja
        return build_torch_extension_direct(verbose=verbose)
    return cpp_extension.load(
        name=EXTENSION_NAME,
        sources=[str(BINDING_SOURCE), str(KERNEL_SOURCE)],
        extra_cflags=["-O3"],
        extra_cuda_cflags=["-O3"],
        verbose=verbose,
    )


def _torch_paths(fn: Any) -> list[str]:
    try:
        return list(fn(device_type="cuda"))
    except TypeError:  # older torch: fn(cuda=True)
        return list(fn(cuda=True))


def build_torch_extension_direct(build_dir: str | Path | None = None, verbose: bool = False) -> Any:
    """The same extension built with nvcc + c++ directly (no ninja, no setuptools), imported.

    Arch from TORCH_CUDA_ARCH_LIST ("9.0;8.7") or the current device; cached by source hash.
    """

    from torch.utils import cpp_extension  # noqa: PLC0415  (optional: cpp_extension pulls setuptools; only to build kernels)

    nvcc = find_nvcc()
    if nvcc is None:
        raise CudaUnavailableError("cannot build the bev_pool CUDA extension: nvcc not found")
    archs = os.environ.get("TORCH_CUDA_ARCH_LIST", "").replace(" ", ";").split(";")
    archs = [a.replace(".", "").replace("+PTX", "") for a in archs if a] or [device_arch()]
    src = hashlib.sha256(KERNEL_SOURCE.read_bytes() + BINDING_SOURCE.read_bytes()
                         + repr((archs, torch.__version__)).encode()).hexdigest()[:16]
    out = Path(build_dir or Path.home() / ".cache" / "imkd_ros" / "torch_ext") / src
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    module = out / f"{EXTENSION_NAME}{suffix}"
    if not module.exists():
        out.mkdir(parents=True, exist_ok=True)
        cuda_home = Path(os.environ.get("CUDA_HOME", Path(nvcc).resolve().parents[1]))
        incs = [*_torch_paths(cpp_extension.include_paths), str(cuda_home / "include"),
                sysconfig.get_paths()["include"]]
        libs = [*_torch_paths(cpp_extension.library_paths), str(cuda_home / "lib64"), str(cuda_home / "lib")]
        abi = int(getattr(torch._C, "_GLIBCXX_USE_CXX11_ABI", 1))
        defs = [f"-DTORCH_EXTENSION_NAME={EXTENSION_NAME}", "-DTORCH_API_INCLUDE_EXTENSION_H",
                f"-D_GLIBCXX_USE_CXX11_ABI={abi}"]
        obj = out / "bev_pool_kernel.o"
        gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs]
        steps = [
            [nvcc, "-O3", "-std=c++17", "-Xcompiler", "-fPIC", *gencode, "-c", str(KERNEL_SOURCE), "-o", str(obj)],
            [os.environ.get("CXX", "c++"), "-O3", "-std=c++17", "-fPIC", "-shared", "-w", *defs,
             *(f"-I{i}" for i in incs), str(BINDING_SOURCE), str(obj), "-o", str(module),
             *(f"-L{d}" for d in libs), *(f"-Wl,-rpath,{d}" for d in libs),
             "-lc10", "-lc10_cuda", "-ltorch", "-ltorch_cpu", "-ltorch_cuda", "-ltorch_python", "-lcudart"],
        ]
        for cmd in steps:
            proc = subprocess.run(cmd, capture_output=not verbose, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"building the bev_pool extension failed ({cmd[0]}):\n{proc.stderr[-4000:]}")
    loader = importlib.machinery.ExtensionFileLoader(EXTENSION_NAME, str(module))
    spec = importlib.util.spec_from_file_location(EXTENSION_NAME, str(module), loader=loader)
    if spec is None:
        raise RuntimeError(f"cannot import {module}")
    ext = importlib.util.module_from_spec(spec)
    loader.exec_module(ext)
    return ext


_REGISTERED = False
DENSE_FORWARD = os.environ.get("IMKD_BEV_POOL_DENSE", "0") == "1"


def register_cuda_kernels(verbose: bool = False) -> None:
    """Make ``imkd::bev_pool`` (+ backward) dispatch to the CUDA kernel for CUDA tensors.

    Idempotent. Raises CudaUnavailableError (with the reason) on a machine without CUDA.
    """
    global _REGISTERED
    if _REGISTERED:
        return

    ext = load_torch_extension(verbose)

    def _forward(depth, feat, ranks_depth, ranks_feat, ranks_bev, interval_starts,
                 interval_lengths, batch, bev_h, bev_w):
        if depth.dtype != feat.dtype:  # e.g. autocast: softmax in fp32, context in fp16
            depth = depth.to(feat.dtype)
        return ext.forward(depth, feat, ranks_depth, ranks_feat, ranks_bev, interval_starts,
                           interval_lengths, batch, bev_h, bev_w, DENSE_FORWARD)

    def _backward(grad_out, depth, feat, ranks_depth, ranks_feat, ranks_bev, interval_starts,
                  interval_lengths):
        if not intervals_cover_all_points(interval_starts, interval_lengths, ranks_bev.numel()):
            raise ValueError("imkd::bev_pool CUDA backward expects intervals tiling all points")
        order, starts, lengths = feat_grad_plan(ranks_feat)
        gd, gf = ext.backward(grad_out, depth.to(feat.dtype), feat, ranks_depth, ranks_feat, ranks_bev, order,
                              starts, lengths)
        return gd.to(depth.dtype), gf.to(feat.dtype)

    torch.library.register_kernel("imkd::bev_pool", "cuda", _forward)
    torch.library.register_kernel("imkd::bev_pool_backward", "cuda", _backward)
    _REGISTERED = True


def try_register_cuda_kernels() -> str | None:
    """register_cuda_kernels(), returning None on success or the reason it could not."""
    try:
        register_cuda_kernels()
    except CudaUnavailableError as exc:
        return str(exc)
    except Exception as exc:  # build failures: report, never crash the caller
        return f"bev_pool CUDA extension failed to build/load: {type(exc).__name__}: {exc}"
    return None


# ---------------------------------------------------------------------------------------------
# CuPy (checking the kernel on a GPU box without TensorRT or a CUDA torch extension)


class CupyBevPool:
    """The kernels through ``cupy.RawModule``; inputs/outputs are CUDA torch tensors.

    ``module_path`` is a PTX or cubin from tools/build_cuda.sh; without it the .cu source is
    compiled by NVRTC (its host-only parts are guarded by ``__CUDACC_RTC__``).
    """

    def __init__(self, module_path: str | Path | None = None) -> None:
        try:
            import cupy  # noqa: PLC0415  (optional: cupy)
        except ImportError as exc:
            raise CudaUnavailableError(f"cupy is not installed ({exc})") from exc
        self._cp = cupy
        if module_path is not None:
            self.module = cupy.RawModule(path=str(module_path))
        else:
            self.module = cupy.RawModule(
                code=KERNEL_SOURCE.read_text(), options=("-std=c++17",),
                name_expressions=None,
            )

    def _arr(self, t: Tensor) -> Any:
        return self._cp.from_dlpack(t.contiguous())

    def forward(self, depth: Tensor, feat: Tensor, ranks_depth: Tensor, ranks_feat: Tensor,
                ranks_bev: Tensor, interval_starts: Tensor, interval_lengths: Tensor,
                batch: int, bev_h: int, bev_w: int, dense: bool = False) -> Tensor:
        cp = self._cp
        channels = int(feat.shape[-1])
        n_int = int(interval_starts.numel())
        shape = (batch, bev_h, bev_w, channels)
        out = torch.empty(shape, dtype=feat.dtype, device=feat.device) if dense else \
            torch.zeros(shape, dtype=feat.dtype, device=feat.device)
        args = [self._arr(t) for t in (depth, feat, ranks_depth, ranks_feat, ranks_bev,
                                       interval_starts, interval_lengths)]
        if dense:
            n = out.numel()
            fn = self.module.get_function(DENSE_FWD_KERNELS[feat.dtype])
            scalars = [cp.int32(n_int), cp.int32(channels), cp.int32(n)]
        else:
            n = n_int * channels
            fn = self.module.get_function(FWD_KERNELS[feat.dtype])
            scalars = [cp.int32(n_int), cp.int32(channels)]
        if n:
            stream = cp.cuda.ExternalStream(torch.cuda.current_stream(feat.device).cuda_stream)
            with stream:
                fn(((n + THREADS - 1) // THREADS,), (THREADS,), (*args, *scalars, self._arr(out)))
        return out

    def backward(self, grad_out: Tensor, depth: Tensor, feat: Tensor, ranks_depth: Tensor,
                 ranks_feat: Tensor, ranks_bev: Tensor) -> tuple[Tensor, Tensor]:
        cp = self._cp
        channels = int(feat.shape[-1])
        g = grad_out.to(feat.dtype).contiguous()
        depth_grad = torch.zeros_like(depth)
        feat_grad = torch.zeros_like(feat)
        order, starts, lengths = feat_grad_plan(ranks_feat)
        p = int(ranks_depth.numel())
        stream = cp.cuda.ExternalStream(torch.cuda.current_stream(feat.device).cuda_stream)
        with stream:
            if p:
                fn = self.module.get_function(BWD_DEPTH_KERNELS[feat.dtype])
                fn(((p + THREADS - 1) // THREADS,), (THREADS,),
                   (self._arr(g), self._arr(feat), self._arr(ranks_depth), self._arr(ranks_feat),
                    self._arr(ranks_bev), cp.int32(p), cp.int32(channels), self._arr(depth_grad)))
            n = int(starts.numel()) * channels
            if n:
                fn = self.module.get_function(BWD_FEAT_KERNELS[feat.dtype])
                fn(((n + THREADS - 1) // THREADS,), (THREADS,),
                   (self._arr(g), self._arr(depth), self._arr(ranks_depth), self._arr(ranks_feat),
                    self._arr(ranks_bev), self._arr(order), self._arr(starts), self._arr(lengths),
                    cp.int32(starts.numel()), cp.int32(channels), self._arr(feat_grad)))
        return depth_grad, feat_grad
