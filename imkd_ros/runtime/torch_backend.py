"""PyTorch backends: CPU (fp32 / bf16 autocast) and CUDA (fp32 / fp16 / bf16 autocast, optional CUDA graph).

CPU bf16: on a CPU with native bf16 (x86 AVX512-BF16 or AMX, Arm BF16), oneDNN's bf16
convolutions take the student's CPU forward from ~70 to ~45 ms on one core here (bench_model.py
--bf16); the index math stays fp32 (ops/precision.py) and the head outputs are returned as fp32.
Without native bf16 the instructions are emulated and slower than fp32, so ``cpu_bf16_status``
says why not and ``select_backend`` runs fp32 instead (runtime/base.py).

CPU trace (``trace=True``, the default on the CPU): the network runs as a frozen TorchScript
trace of ``StudentExport``, one per input shape and calibration. Why: eager PyTorch takes the
GIL back after every op, so in the node, where the executor thread runs Python beside the
inference thread, the forward slowed from ~50 to ~90 ms (one op-heavy Python thread beside it,
2 threads; 104 -> 150 ms on 1 thread). The trace runs the graph without the GIL and freezing
folds the batch norms into the convolutions: 1 thread, 76 ms quiet and 70 ms beside that thread;
bf16 47 / 48 ms (docs/node.md). Outputs equal eager to 2e-5 (fp32; tests/deploy/test_runtime.py,
with a masked camera and empty radar as well: the forward has no data-dependent Python branch,
which the engine export relies on too). A trace that fails is logged and the backend runs eager.
TorchScript is deprecated in torch 2.13 but still supported; it is the one way here to run a
torch graph without the GIL and without a C++ compiler at run time. Its successor for this seam
is AOTInductor (torch.export + a compiled package), which needs a toolchain where the model is
exported and a C++ kernel for ``imkd::bev_pool``: not done yet.

On CUDA the ``imkd::bev_pool`` op is switched to the CUDA kernel (imkd_ros/ops/bev_pool_cuda.py)
when the extension builds; otherwise the op's generic torch implementation runs on the GPU and
``kernel_note`` says why. The CUDA graph path captures the whole network for fixed input shapes
and falls back to eager (logged) when the model has an op that cannot be captured.

UNVERIFIED on GPU: the CUDA paths were written without a GPU; the CPU path is tested.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import logging
import warnings
from collections import OrderedDict
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from imkd_ros.model.student_io import HEAD_KEYS, MODEL_INPUTS, StudentExport, StudentInputs, unflatten_head
from imkd_ros.ops.bev_pool_cuda import try_register_cuda_kernels
from imkd_ros.ops.bev_pool_geometry import BevPoolGeometry

if TYPE_CHECKING:
    from imkd_ros.model.imkd import Student

log = logging.getLogger(__name__)

GEOMETRY_CACHE_SIZE = 4


def geometry_key(g: BevPoolGeometry) -> str:
    """g.key (the calibration key GeometryCache sets), else a hash of the geometry's content."""
    if g.key:
        return g.key
    h = hashlib.sha1(repr((g.batch, g.bev_h, g.bev_w)).encode())
    for t in g.tensors():
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return "content:" + h.hexdigest()


class TorchBackend:
    """Runs the student with PyTorch on ``device`` ("cpu" or "cuda")."""

    def __init__(self, device: str = "cpu", precision: str = "fp32", cuda_graph: bool = False,
                 threads: int | None = None, trace: bool = True) -> None:
        self.device = torch.device(device)
        if self.device.type == "cpu" and precision not in ("fp32", "bf16"):
            raise ValueError(f"torch-cpu runs fp32 or bf16 (asked for {precision})")
        if precision not in ("fp32", "fp16", "bf16"):
            raise ValueError(f"torch backends run fp32, fp16 or bf16 (asked for {precision}); int8 needs TensorRT")
        self.precision = precision
        self.name = f"torch-{self.device.type}" + ("" if precision == "fp32" else f"-{precision}")
        self.cuda_graph = cuda_graph and self.device.type == "cuda"
        self.trace = trace and self.device.type == "cpu"
        self._traced: OrderedDict[tuple, torch.jit.ScriptModule] = OrderedDict()
        self.threads = threads
        self.kernel_note = ""
        self.model: Student | None = None
        self._geom_cache: OrderedDict[str, BevPoolGeometry] = OrderedDict()
        self._graph: torch.cuda.CUDAGraph | None = None
        self._graph_key: tuple | None = None
        self._graph_geometry: BevPoolGeometry | None = None  # keeps the captured buffers alive
        self._static_in: tuple[Tensor, ...] = ()
        self._static_out: list[dict[str, Tensor]] = []

    def load(self, student: Student) -> None:
        if self.device.type == "cuda":
            why = try_register_cuda_kernels()
            self.kernel_note = "bev_pool: CUDA kernel" if why is None else f"bev_pool: torch fallback ({why})"
            log.info(self.kernel_note)
            student = _copy_module(student)
        else:
            if self.threads:
                torch.set_num_threads(self.threads)
            # oneDNN's convolutions run faster on NHWC: ~20 % off the CPU forward, outputs equal
            # to float32 rounding (tests/runtime). A copy: the caller's model keeps its layout.
            student = _copy_module(student).to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # documented, not in the stubs
        self.model = student.to(self.device).eval()

    def _geometry(self, g: BevPoolGeometry) -> BevPoolGeometry:
        """The device copy of ``g``, keyed by its calibration (``g.key``) or, for a geometry
        made outside a GeometryCache, by its content: never by id(), which Python reuses."""
        if g.ranks_bev.device == self.device:
            return g
        key = geometry_key(g)
        if key in self._geom_cache:
            self._geom_cache.move_to_end(key)
            return self._geom_cache[key]
        self._geom_cache[key] = dataclasses.replace(g.to(self.device), key=key)
        while len(self._geom_cache) > GEOMETRY_CACHE_SIZE:
            self._geom_cache.popitem(last=False)
        return self._geom_cache[key]

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
        return torch.autocast(self.device.type, dtype=dtype)

    def _forward(self, tensors: dict[str, Tensor], geometry: BevPoolGeometry) -> list[dict[str, Tensor]]:
        assert self.model is not None, "call load() first"
        with torch.no_grad(), self._autocast():
            head = self.model(tensors, geometry=geometry)["head"]
        if self.precision == "fp32":
            return head
        return [{k: v.float() for k, v in task.items()} for task in head]  # decode works in fp32

    def infer(self, inputs: StudentInputs) -> list[dict[str, Tensor]]:
        if self.model is None:
            raise RuntimeError("backend not loaded: call load(student) first")
        tensors = {k: v.to(self.device, non_blocking=True) for k, v in inputs.tensors.items()}
        geometry = self._geometry(inputs.geometry)
        if self.trace:
            try:
                return self._traced_forward(tensors, geometry)
            except Exception as exc:  # an op the tracer cannot record: stay eager from now on
                log.warning("TorchScript trace failed, running eager: %s", exc)
                self.trace = False
                self._traced.clear()
        if self.cuda_graph:
            try:
                return self._graph_forward(tensors, geometry)
            except Exception as exc:  # capture not possible: stay eager from now on
                log.warning("CUDA graph capture failed, running eager: %s", exc)
                self.cuda_graph = False
                self._graph = None
        return self._forward(tensors, geometry)

    def _traced_forward(self, tensors: dict[str, Tensor], geometry: BevPoolGeometry) -> list[dict[str, Tensor]]:
        assert self.model is not None, "call load() first"
        args = tuple(tensors[k] for k in MODEL_INPUTS) + geometry.tensors()
        key = (tuple(tuple(a.shape) for a in args), geometry_key(geometry), geometry.batch)
        fn = self._traced.get(key)
        if fn is None:
            wrapper = StudentExport(self.model, batch=geometry.batch, bev_h=geometry.bev_h,
                                    bev_w=geometry.bev_w).eval()
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shapes are fixed per key
                warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript: see the module doc
                with self._autocast():  # the trace records autocast's casts as graph ops ...
                    traced = torch.jit.trace(wrapper, args, check_trace=False)
                # ... and is frozen outside it: freezing under autocast lets the JIT's own
                # autocast pass re-cast the graph, which breaks the fp32 index math
                # (ops/precision.py: an einsum then meets fp32 and bf16 operands).
                fn = torch.jit.freeze(traced)
            self._traced[key] = fn
            while len(self._traced) > GEOMETRY_CACHE_SIZE:
                self._traced.popitem(last=False)
            log.info("traced the network for inputs %s", [tuple(a.shape) for a in args[:1]])
        else:
            self._traced.move_to_end(key)
        with torch.no_grad():
            flat = list(fn(*args))
        return unflatten_head([t.float() for t in flat], len(flat) // len(HEAD_KEYS))

    def _graph_forward(self, tensors: dict[str, Tensor], geometry: BevPoolGeometry
                       ) -> list[dict[str, Tensor]]:
        key = (tuple(tuple(tensors[k].shape) for k in MODEL_INPUTS), geometry_key(geometry))
        if self._graph is None or key != self._graph_key:
            self._static_in = tuple(tensors[k].clone() for k in MODEL_INPUTS)
            static = dict(zip(MODEL_INPUTS, self._static_in))
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):  # warm up (cudnn autotune, allocator) off the capture
                    self._forward(static, geometry)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self._static_out = self._forward(static, geometry)
            self._graph, self._graph_key, self._graph_geometry = graph, key, geometry
        for dst, k in zip(self._static_in, MODEL_INPUTS):
            dst.copy_(tensors[k], non_blocking=True)
        self._graph.replay()
        flat = [t[k].clone() for t in self._static_out for k in ("heatmap", "box", "attr")]
        return unflatten_head(flat, len(self._static_out))


def cpu_bf16_status() -> str | None:
    """None when this CPU runs bf16 natively in oneDNN (AVX512-BF16 / AMX / Arm BF16), else why not."""
    if not torch.backends.mkldnn.is_available():
        return "this torch build has no oneDNN (mkldnn)"
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError) as exc:  # a private check: absent in some builds
        return f"cannot tell whether this CPU has native bf16 ({type(exc).__name__})"
    return None if native else "this CPU has no native bf16 (AVX512-BF16, AMX or Arm BF16): emulated, slower than fp32"


def _copy_module(student: Student) -> Student:
    """A copy for another device or layout, so the caller's model (geometry, decode) stays as it is."""

    return copy.deepcopy(student)
