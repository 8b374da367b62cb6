"""Student export: torch.export keeps one bev_pool node; the ONNX (one imkd::BevPool node, geometry
as graph inputs) matches PyTorch in onnxruntime on CPU, also for another calibration."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch

from imkd_ros.export import onnx_ops
from imkd_ros.export.exporter import count_bev_pool_nodes, export_onnx, onnx_max_abs_diff, save_pt2
from imkd_ros.export.student import student_spec
from imkd_ros.model import Student, load_config
from imkd_ros.model.student_io import GEOMETRY_INPUTS, MODEL_INPUTS, StudentInputs, example_inputs


@pytest.fixture(scope="module")
def student() -> Student:
    torch.manual_seed(0)
    model = Student(load_config("cpu")).eval()
    # random BN statistics so the outputs are not all near the init values
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model


def _other_calibration(student: Student, inputs: StudentInputs) -> StudentInputs:
    """Same frame, cameras moved 0.3 m forward and rolled a little: a new geometry (P, K)."""
    t = dict(inputs.tensors)
    c2e = t["cam_to_ego"].clone()
    c2e[..., 0, 3] += 0.3
    c2e[..., 2, 3] += 0.1
    t["cam_to_ego"] = c2e
    student.view_transform.cache.clear()
    geom = student.geometry(t["intrinsics"], c2e, t["img_aug"])
    return StudentInputs(t, geom)


def test_student_pt2_and_onnx_match_pytorch(student: Student, tmp_path: Path) -> None:
    inputs = example_inputs(student, seed=0)
    spec = student_spec(student, inputs)
    program = save_pt2(spec, tmp_path / "student.pt2")
    assert count_bev_pool_nodes(program) == 1

    model = export_onnx(spec, tmp_path / "student.onnx", program=program)
    onnx.checker.check_model(model)
    assert len(onnx_ops.bev_pool_nodes(model)) == 1
    names = [i.name for i in model.graph.input]
    assert names[: len(MODEL_INPUTS)] == list(MODEL_INPUTS)
    assert names[len(MODEL_INPUTS):] == list(GEOMETRY_INPUTS)

    diff_a = onnx_max_abs_diff(model, spec)
    other = _other_calibration(student, inputs)
    assert other.geometry.num_points != inputs.geometry.num_points
    diff_b = onnx_max_abs_diff(model, spec, other.args())
    with torch.no_grad():
        scale = max(float(t.abs().max()) for t in spec.module(*spec.args))
    worst_a, worst_b = max(diff_a.values()), max(diff_b.values())
    print(f"student ONNX (onnxruntime CPU) vs PyTorch: max|diff| {worst_a:.3g} (calib A), "
          f"{worst_b:.3g} (calib B); max|output| {scale:.3g}")
    assert worst_a < 1e-4 and worst_b < 1e-4

    loaded = torch.export.load(str(tmp_path / "student.pt2")).module()
    with torch.no_grad():
        got = loaded(*other.args())
        ref = spec.module(*other.args())
    assert max(float((g - r).abs().max()) for g, r in zip(got, ref)) < 1e-5


def test_student_onnx_avoids_scatternd_and_fp16_is_strongly_typed(student: Student) -> None:
    inputs = example_inputs(student, seed=1)
    model = export_onnx(student_spec(student, inputs))
    ops = {n.op_type for n in model.graph.node}
    assert "ScatterND" not in ops  # index_add -> ScatterElements(add): TensorRT-friendly
    m16 = export_onnx(student_spec(student, inputs, "fp16"))
    types = {i.name: i.type.tensor_type.elem_type for i in m16.graph.input}
    assert types["images"] == onnx.TensorProto.FLOAT16 and types["ranks_bev"] == onnx.TensorProto.INT32
    assert all(o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16 for o in m16.graph.output)
    assert len(onnx_ops.bev_pool_nodes(m16)) == 1
