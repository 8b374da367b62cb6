"""TensorRT backend: the student's cached ONNX -> engine (built once per GPU/TensorRT) -> runner.

The ONNX is a deployment artefact made by ``imkd export --format engine --checkpoint X`` (which
also builds the engine): it lands in the engine cache as ``student_<weights hash>_<precision>.onnx``.
``load`` finds it by the checkpoint's hash, returns the cached engine for this ONNX / plugin /
TensorRT / GPU, or builds it from the ONNX (minutes, once: e.g. after a TensorRT upgrade). The
runtime never exports (it does not import imkd_ros.export, nor need onnxscript); a missing ONNX is
a BackendUnavailableError naming the command, and ``create_detector(backend="auto")`` then falls
back to torch-cuda.

UNVERIFIED: no TensorRT or GPU where this was written; type-checked against tensorrt-stubs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from imkd_ros.model.student_io import StudentInputs, unflatten_head
from imkd_ros.runtime.base import BackendUnavailableError
from imkd_ros.runtime.engine import EngineConfig, get_or_build_engine, student_onnx_path
from imkd_ros.runtime.trt_runner import TensorRTRunner

if TYPE_CHECKING:
    from imkd_ros.model.imkd import Student
    from imkd_ros.runtime.trt_runner import TensorRTRunner

log = logging.getLogger(__name__)


def export_command(precision: str) -> str:
    return f"imkd export --format engine --checkpoint <this checkpoint> --precision {precision}"


class TensorRTBackend:
    """Runs a TensorRT engine of the student (fp32 / fp16; int8 from a Q/DQ ONNX)."""

    def __init__(self, precision: str = "fp16", cuda_graph: bool = False,
                 engine_config: EngineConfig | None = None, engine_path: str | Path | None = None) -> None:
        self.precision = precision
        self.name = f"tensorrt-{precision}"
        self.cuda_graph = cuda_graph
        self.engine_config = engine_config or EngineConfig(precision=precision)
        self.engine_path = Path(engine_path) if engine_path else None
        self.runner: TensorRTRunner | None = None
        self.num_tasks = 0

    def onnx_for(self, student: Student) -> Path:
        """The student's ONNX in the engine cache; BackendUnavailableError when not exported."""
        path = student_onnx_path(self.engine_config.cache_dir, student, self.precision)
        if not path.exists():
            what = ("an explicitly quantized (Q/DQ) ONNX of it" if self.precision == "int8"
                    else f"run `{export_command(self.precision)}` once")
            raise BackendUnavailableError(f"backend tensorrt: no {self.precision} ONNX of this checkpoint at "
                                          f"{path}: {what}")
        return path

    def load(self, student: Student) -> None:
        engine = self.engine_path or get_or_build_engine(self.onnx_for(student), self.engine_config)
        self.runner = TensorRTRunner(engine, cuda_graph=self.cuda_graph,
                                     plugin_library=self.engine_config.plugin_library)
        self.num_tasks = len(student.head.task_heads)

    def infer(self, inputs: StudentInputs) -> list[dict[str, torch.Tensor]]:
        if self.runner is None:
            raise RuntimeError("backend not loaded: call load(student) first")
        outs = self.runner.infer(inputs.feeds())
        return unflatten_head(outs, self.num_tasks)
