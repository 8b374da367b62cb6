"""TensorRT backend: student -> ONNX -> engine (cached, built at first start) -> TensorRTRunner.

``load`` exports the student to ONNX into the engine cache (keyed by a hash of its weights and
config, so a new checkpoint gives a new ONNX), then ``get_or_build_engine`` returns the engine for
this ONNX / TensorRT version / GPU / precision, building it if missing (minutes, once).

UNVERIFIED: no TensorRT or GPU where this was written; the flow is exercised by
``imkd doctor --gpu`` on a GPU box. Type-checked against tensorrt-stubs (tools/typecheck.sh).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from imkd_ros.export.engine import EngineConfig, get_or_build_engine
from imkd_ros.export.student import StudentInputs, unflatten_head

if TYPE_CHECKING:
    from imkd_ros.model.imkd import Student
    from imkd_ros.runtime.trt_runner import TensorRTRunner

log = logging.getLogger(__name__)


def student_hash(student: Student) -> str:
    h = hashlib.sha256(repr(student.cfg.to_dict()).encode())
    for name, t in student.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def int8_calibration_cache(cache_dir: Path, student: Student) -> Path:
    """Where ``imkd export --format engine --precision int8`` leaves the student's int8 scales."""
    return cache_dir / f"student_{student_hash(student)}.int8.calib"


class TensorRTBackend:
    """Runs a TensorRT engine of the student (fp32 / fp16 / int8)."""

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
        """The student's ONNX in the engine cache (exported once per weights+config)."""
        from imkd_ros.export.exporter import export_onnx
        from imkd_ros.export.student import example_inputs, student_spec

        onnx_precision = "fp16" if self.precision == "fp16" else "fp32"
        path = self.engine_config.cache_dir / f"student_{student_hash(student)}_{onnx_precision}.onnx"
        if not path.exists():
            log.info("exporting the student (%s) to %s", onnx_precision, path)
            export_onnx(student_spec(student, example_inputs(student), onnx_precision), path)
        return path

    def load(self, student: Student) -> None:
        from imkd_ros.runtime.trt_runner import TensorRTRunner

        calibrator = None
        if self.precision == "int8" and self.engine_path is None:
            calib = int8_calibration_cache(self.engine_config.cache_dir, student)
            if not calib.exists():
                raise ValueError(f"int8 needs calibration scales ({calib} is missing): run `imkd export "
                                 "--format engine --precision int8 --checkpoint <this checkpoint>` first")
            from imkd_ros.export.engine import make_int8_calibrator

            calibrator = make_int8_calibrator(lambda: iter(()), calib)  # reads the cache only
        engine = self.engine_path or get_or_build_engine(self.onnx_for(student), self.engine_config, calibrator)
        self.runner = TensorRTRunner(engine, cuda_graph=self.cuda_graph)
        self.num_tasks = len(student.head.task_heads)

    def infer(self, inputs: StudentInputs) -> list[dict[str, torch.Tensor]]:
        if self.runner is None:
            raise RuntimeError("backend not loaded: call load(student) first")
        outs = self.runner.infer(inputs.feeds())
        return unflatten_head(outs, self.num_tasks)
