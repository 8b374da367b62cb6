"""The IMKD student as an exportable function of flat tensors.

Inputs (in this order): images (B, N, 3, H, W), intrinsics (B, N, 3, 3), cam_to_ego (B, N, 4, 4),
img_aug (B, N, 3, 3), camera_valid (B, N) bool, radar (B, R, F), radar_mask (B, R) bool, then
the five BevPoolGeometry tensors (dynamic length). Outputs: the CenterHead maps, flattened as
``task{i}_heatmap``, ``task{i}_box``, ``task{i}_attr`` (``student_outputs_flat`` order), which
``unflatten_head`` turns back into what ``Student.decode`` takes. Box decoding (top-k + circle NMS)
stays in Python on the host: it is cheap and keeps the engine free of data-dependent shapes.

The radar point count R is fixed at export (cfg.radar_max_points): ``pad_radar`` pads a batch to
it, so one engine serves every frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from imkd_ros.export.exporter import ExportSpec
from imkd_ros.export.onnx_ops import GEOMETRY_INPUTS
from imkd_ros.ops.bev_pool_geometry import BevPoolGeometry

if TYPE_CHECKING:
    from imkd_ros.model.imkd import Student

MODEL_INPUTS = ("images", "intrinsics", "cam_to_ego", "img_aug", "camera_valid", "radar", "radar_mask")
HEAD_KEYS = ("heatmap", "box", "attr")


def head_output_names(num_tasks: int) -> list[str]:
    return [f"task{i}_{k}" for i in range(num_tasks) for k in HEAD_KEYS]


def unflatten_head(flat: list[Tensor] | tuple[Tensor, ...] | dict[str, Tensor], num_tasks: int
                   ) -> list[dict[str, Tensor]]:
    """Flat outputs (list in export order, or dict by output name) -> CenterHead outputs."""
    if isinstance(flat, dict):
        flat = [flat[n] for n in head_output_names(num_tasks)]
    return [{k: flat[3 * i + j] for j, k in enumerate(HEAD_KEYS)} for i in range(num_tasks)]


class StudentExport(nn.Module):
    """Student.forward with flat tensor inputs and the geometry passed in (export-friendly)."""

    def __init__(self, student: Student, batch: int, bev_h: int, bev_w: int) -> None:
        super().__init__()
        self.student = student
        self.batch, self.bev_h, self.bev_w = batch, bev_h, bev_w

    def forward(self, images: Tensor, intrinsics: Tensor, cam_to_ego: Tensor, img_aug: Tensor,
                camera_valid: Tensor, radar: Tensor, radar_mask: Tensor, ranks_depth: Tensor,
                ranks_feat: Tensor, ranks_bev: Tensor, interval_starts: Tensor,
                interval_lengths: Tensor) -> tuple[Tensor, ...]:
        from imkd_ros.model.imkd import student_outputs_flat

        geometry = BevPoolGeometry(ranks_depth, ranks_feat, ranks_bev, interval_starts,
                                   interval_lengths, self.batch, self.bev_h, self.bev_w)
        batch = {"images": images, "intrinsics": intrinsics, "cam_to_ego": cam_to_ego,
                 "img_aug": img_aug, "camera_valid": camera_valid, "radar": radar,
                 "radar_mask": radar_mask}
        return tuple(student_outputs_flat(self.student(batch, geometry=geometry)))


def pad_radar(batch: dict, points: int) -> dict:
    """Copy of ``batch`` with radar/radar_mask padded (or cut) to exactly ``points`` per sample."""
    out = dict(batch)
    radar, mask = batch["radar"], batch["radar_mask"]
    r = radar.shape[1]
    if r < points:
        radar = torch.cat([radar, radar.new_zeros(radar.shape[0], points - r, radar.shape[2])], 1)
        mask = torch.cat([mask, mask.new_zeros(mask.shape[0], points - r)], 1)
    elif r > points:
        radar, mask = radar[:, :points], mask[:, :points]
    out["radar"], out["radar_mask"] = radar.contiguous(), mask.contiguous()
    return out


@dataclass
class StudentInputs:
    """Flat model inputs for one batch: what every backend consumes."""

    tensors: dict[str, Tensor]
    geometry: BevPoolGeometry

    @staticmethod
    def from_batch(batch: dict, geometry: BevPoolGeometry, radar_points: int) -> StudentInputs:
        padded = pad_radar(batch, radar_points)
        tensors = {k: padded[k] for k in MODEL_INPUTS}
        tensors["camera_valid"] = tensors["camera_valid"].to(torch.bool)
        tensors["radar_mask"] = tensors["radar_mask"].to(torch.bool)
        return StudentInputs(tensors, geometry)

    def args(self) -> tuple[Tensor, ...]:
        return (*(self.tensors[k] for k in MODEL_INPUTS), *self.geometry.tensors())

    def feeds(self) -> dict[str, Tensor]:
        return dict(zip((*MODEL_INPUTS, *GEOMETRY_INPUTS), self.args()))


def half_inputs(inputs: StudentInputs) -> StudentInputs:
    """Float model inputs in fp16 (geometry stays int32, masks bool)."""
    return StudentInputs({k: v.half() if v.is_floating_point() else v for k, v in inputs.tensors.items()},
                         inputs.geometry)


def student_spec(student: Student, inputs: StudentInputs, precision: str = "fp32") -> ExportSpec:
    """ExportSpec of the student for these example inputs (batch and shapes fixed, geometry dynamic).

    ``precision="fp16"`` exports a copy of the student in half precision with fp16 float inputs:
    a strongly typed fp16 graph, which is how TensorRT 11 (no FP16 builder flag) runs fp16 and
    what TensorRT 10 also builds directly. The geometry (where fp16 would misplace frustum points)
    is precomputed in fp64 outside the network either way.
    """
    if precision == "fp16":
        import copy

        student = copy.deepcopy(student).half().eval()
        inputs = half_inputs(inputs)
    elif precision != "fp32":
        raise ValueError(f"ONNX export precision is fp32 or fp16, not {precision!r}")
    g = inputs.geometry
    wrapper = StudentExport(student, g.batch, g.bev_h, g.bev_w).eval()
    num_tasks = len(student.head.task_heads)
    return ExportSpec(wrapper, inputs.args(), [*MODEL_INPUTS, *GEOMETRY_INPUTS],
                      head_output_names(num_tasks))


def example_inputs(student: Student, seed: int = 0, batch_size: int = 1) -> StudentInputs:
    """Synthetic frames -> StudentInputs (for export without a dataset, and for tests)."""
    from imkd_ros.model.preprocess import Preprocessor
    from imkd_ros.model.synthetic import random_frame

    cfg = student.cfg
    frames = [random_frame(seed + i) for i in range(batch_size)]
    batch = Preprocessor(cfg)(frames, targets=False)
    geometry = student.geometry(batch["intrinsics"], batch["cam_to_ego"], batch["img_aug"])
    return StudentInputs.from_batch(batch, geometry, cfg.radar_max_points)
