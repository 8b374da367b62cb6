"""ExportSpec of the IMKD student (the flat I/O contract itself lives in imkd_ros/model/student_io).

fp32: the student as is. fp16: the same fp32 weights traced under autocast (float16), so convs /
matmuls run in half while the index math (radar-to-image projection, depth bins, BEV cells; see
imkd_ros/ops/precision.py) stays fp32 and the calibration / radar inputs stay fp32 graph inputs.
This is the graph TensorRT builds strongly typed (TensorRT 10 and 11 alike), and the same
autocast policy the torch-cuda fp16 backend runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imkd_ros.export.exporter import ExportSpec
from imkd_ros.model.student_io import (
    GEOMETRY_INPUTS,
    MODEL_INPUTS,
    StudentExport,
    StudentInputs,
    example_inputs,
    half_inputs,
    head_output_names,
    points_max,
)

if TYPE_CHECKING:
    from imkd_ros.model.imkd import Student

__all__ = ["MODEL_INPUTS", "StudentInputs", "example_inputs", "student_spec"]

# ONNX metadata keys read by imkd_ros/runtime/engine.py (kept as literals on both sides: runtime
# never imports export)
META_POINTS_MAX = "imkd.points_max"
META_INTERVALS_MAX = "imkd.intervals_max"
META_PRECISION = "imkd.precision"


def student_spec(student: Student, inputs: StudentInputs, precision: str = "fp32") -> ExportSpec:
    """ExportSpec of the student for these example inputs (batch and shapes fixed, geometry dynamic)."""
    if precision == "fp16":
        inputs = half_inputs(inputs)
    elif precision != "fp32":
        raise ValueError(f"ONNX export precision is fp32 or fp16, not {precision!r}")
    g = inputs.geometry
    wrapper = StudentExport(student, g.batch, g.bev_h, g.bev_w,
                            autocast_fp16=precision == "fp16").eval()
    num_tasks = len(student.head.task_heads)
    b, n = inputs.tensors["images"].shape[:2]
    p_max = points_max(student, int(b), int(n))
    meta = {META_POINTS_MAX: str(p_max), META_INTERVALS_MAX: str(min(p_max, g.batch * g.bev_h * g.bev_w)),
            META_PRECISION: precision}
    return ExportSpec(wrapper, inputs.args(), [*MODEL_INPUTS, *GEOMETRY_INPUTS],
                      head_output_names(num_tasks), metadata=meta)
