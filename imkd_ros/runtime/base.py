"""One interface for every inference backend, and the detector the node and the replay run.

A ``Backend`` runs the student's network: ``load(student)`` once, then ``infer(StudentInputs)``
(batched model tensors + the calibration's ``BevPoolGeometry``) -> CenterHead outputs. The
``Detector`` around it does what is the same for every backend: Frame -> preprocessing ->
geometry (cached per calibration) -> backend -> box decoding, with per-stage timings; it is the
``FrameDetector`` that imkd_ros.pipeline expects.

``select_backend("auto" | "tensorrt" | "torch-cuda" | "torch-cpu")`` returns a backend and the
reason for the choice (for the log); asking for an unavailable backend raises
``BackendUnavailableError`` naming what is missing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch
from torch import Tensor

from imkd_ros.model.preprocess import Preprocessor
from imkd_ros.model.student_io import StudentInputs
from imkd_ros.ops.bev_pool_cuda import cuda_unavailable_reason
from imkd_ros.rig.intrinsics import pick_decode_reduce
from imkd_ros.runtime.engine import require_tensorrt
from imkd_ros.runtime.torch_backend import TorchBackend, cpu_bf16_status
from imkd_ros.runtime.trt_plugins import plugin_library_path
from imkd_ros.types import Boxes, Frame

if TYPE_CHECKING:
    from imkd_ros.model.imkd import Student

log = logging.getLogger(__name__)

BACKEND_NAMES = ("tensorrt", "torch-cuda", "torch-cpu")


class BackendUnavailableError(RuntimeError):
    """The requested backend cannot run here; the message says what is missing."""


HeadOutputs = list[dict[str, Tensor]]


@runtime_checkable
class Backend(Protocol):
    """Runs the student network. ``infer`` returns CenterHead outputs (one dict per task)."""

    name: str
    precision: str

    def load(self, student: Student) -> None:
        """Take the (CPU, eval-mode) student; build/convert whatever the backend runs."""
        ...

    def infer(self, inputs: StudentInputs) -> HeadOutputs:
        """Batched model inputs + geometry -> head outputs (tensors on any device)."""
        ...


@dataclass
class StagedFrame:
    """A preprocessed frame waiting for the network (``Detector.prepare`` -> ``finish``)."""

    inputs: StudentInputs
    preprocess_ms: float


class Detector:
    """Frame -> Boxes through a Backend (imkd_ros.pipeline's FrameDetector, and StagedDetector:
    ``detect = finish(prepare(frame))``, so the node can prepare the next frame during the network)."""

    def __init__(self, student: Student, backend: Backend, reason: str = "") -> None:
        self.student = student.eval()
        self.cfg = student.cfg
        self.backend = backend
        self.reason = reason
        self.preprocess = Preprocessor(self.cfg, train=False)
        backend.load(self.student)
        self.name = backend.name

    def decode_reduce(self, camera_width: int) -> int:
        """Decode reduction (1, 2, 4, 8) for a camera ``camera_width`` px wide (its CameraInfo).

        The preprocess fits the decoded width to the network input, so the cheapest decode that
        keeps at least ``cfg.image.width`` px is exact; a fixed ``image.resize`` factor refers to
        the full-size image, so such a model gets full-size decodes.
        """
        if self.cfg.image.resize is not None:
            return 1
        return pick_decode_reduce(camera_width, self.cfg.image.width)

    def inputs(self, frames: list[Frame]) -> StudentInputs:
        batch = self.preprocess(frames, targets=False)
        geometry = self.student.geometry(batch["intrinsics"], batch["cam_to_ego"], batch["img_aug"])
        return StudentInputs.from_batch(batch, geometry, self.cfg.radar_max_points)

    def detect_batch(self, frames: list[Frame]) -> tuple[list[Boxes], dict[str, float]]:
        t0 = time.perf_counter()
        with torch.no_grad():
            inputs = self.inputs(frames)
        t1 = time.perf_counter()
        boxes, network_ms, decode_ms = self._network_and_decode(inputs)
        return boxes, {"preprocess": (t1 - t0) * 1e3, "network": network_ms, "decode": decode_ms}

    def prepare(self, frame: Frame) -> StagedFrame:
        """Preprocessing of one frame (Python, holds the GIL): the first half of ``detect``."""
        t0 = time.perf_counter()
        with torch.no_grad():
            inputs = self.inputs([frame])
        return StagedFrame(inputs, (time.perf_counter() - t0) * 1e3)

    def finish(self, staged: StagedFrame) -> tuple[Boxes, dict[str, float]]:
        """Network + box decoding of a prepared frame: the second half of ``detect``."""
        boxes, network_ms, decode_ms = self._network_and_decode(staged.inputs)
        return boxes[0], {"preprocess": staged.preprocess_ms, "network": network_ms, "decode": decode_ms}

    def _network_and_decode(self, inputs: StudentInputs) -> tuple[list[Boxes], float, float]:
        t1 = time.perf_counter()
        with torch.no_grad():
            head = self.backend.infer(inputs)
            if any(t.is_cuda for t in head[0].values()):
                torch.cuda.synchronize()
            t2 = time.perf_counter()
            boxes = self.student.head.decode(head)
        return boxes, (t2 - t1) * 1e3, (time.perf_counter() - t2) * 1e3

    def detect(self, frame: Frame) -> tuple[Boxes, dict[str, float]]:
        return self.finish(self.prepare(frame))


def cuda_status() -> str | None:
    """None when torch can use a CUDA GPU, else why not."""

    return cuda_unavailable_reason()


def tensorrt_status() -> str | None:
    """None when TensorRT imports and our plugin library is built, else why not."""

    try:
        require_tensorrt()
        plugin_library_path()
    except ImportError as exc:
        return str(exc)
    except FileNotFoundError as exc:
        return str(exc)
    except Exception as exc:  # e.g. libnvinfer missing behind the bindings
        return f"TensorRT does not load ({type(exc).__name__}: {exc})"
    return None


def make_backend(name: str, precision: str = "fp32", cuda_graph: bool = False) -> Backend:
    """The named backend; raises BackendUnavailableError naming what is missing."""
    if name == "torch-cpu":
        if precision == "bf16" and (why := cpu_bf16_status()):
            raise BackendUnavailableError(f"backend torch-cpu bf16: {why}")
        return TorchBackend("cpu", precision)
    if name == "torch-cuda":
        reason = cuda_status()
        if reason:
            raise BackendUnavailableError(f"backend torch-cuda: {reason}")

        return TorchBackend("cuda", precision, cuda_graph=cuda_graph)
    if name == "tensorrt":
        if precision == "bf16":
            raise BackendUnavailableError("backend tensorrt: bf16 is a torch precision here; engines build "
                                          "fp32, fp16 or int8")
        missing = [r for r in (cuda_status(), tensorrt_status()) if r]
        if missing:
            raise BackendUnavailableError("backend tensorrt: " + "; ".join(missing))
        from imkd_ros.runtime.tensorrt_backend import TensorRTBackend  # noqa: PLC0415  (cycle: tensorrt_backend imports base)

        return TensorRTBackend(precision, cuda_graph=cuda_graph)
    raise ValueError(f"unknown backend {name!r} (one of auto, {', '.join(BACKEND_NAMES)})")


def select_backend(kind: str = "auto", precision: str = "fp32", cuda_graph: bool = False
                   ) -> tuple[Backend, str]:
    """(backend, why). ``auto`` takes TensorRT, else torch CUDA, else torch CPU. On the CPU, bf16
    runs where the CPU has it natively and fp32 otherwise (and for fp16 / int8), saying so."""
    if kind == "torch-cpu":
        return _cpu_backend(precision, "torch-cpu requested")
    if kind != "auto":
        return make_backend(kind, precision, cuda_graph), f"{kind} requested"
    cuda = cuda_status()
    trt = tensorrt_status()
    if cuda is None and trt is None and precision != "bf16":
        return make_backend("tensorrt", precision, cuda_graph), "auto: CUDA GPU and TensorRT available"
    if cuda is None:
        why = (f"auto: CUDA GPU available, TensorRT not ({trt})" if trt else
               "auto: CUDA GPU and TensorRT available; bf16 is a torch precision: torch-cuda")
        return make_backend("torch-cuda", precision, cuda_graph), why
    return _cpu_backend(precision, f"auto: no CUDA ({cuda})")


def _cpu_backend(precision: str, why: str) -> tuple[Backend, str]:
    if precision == "bf16":
        reason = cpu_bf16_status()
        if reason is None:
            return make_backend("torch-cpu", "bf16"), why + "; bf16 (native on this CPU)"
        return make_backend("torch-cpu", "fp32"), why + f"; bf16 asked but {reason}: running fp32"
    if precision != "fp32":
        return make_backend("torch-cpu", "fp32"), why + f"; {precision} needs a GPU, running fp32"
    return make_backend("torch-cpu", "fp32"), why
