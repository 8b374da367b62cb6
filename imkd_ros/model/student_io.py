"""The student's flat input/output contract, shared by every backend and by the exporters.

Inputs (in this order): images (B, N, 3, H, W), intrinsics (B, N, 3, 3), cam_to_ego (B, N, 4, 4),
img_aug (B, N, 3, 3), camera_valid (B, N) bool, radar (B, R, F), radar_mask (B, R) bool, then the
five BevPoolGeometry tensors (dynamic length, int32). Outputs: the CenterHead maps, flattened as
``task{i}_heatmap``, ``task{i}_box``, ``task{i}_attr``; ``unflatten_head`` turns them back into
what ``Student.decode`` takes. Box decoding stays in Python on the host (cheap, and it keeps an
engine free of data-dependent shapes).

Why here (the model room) and not in export/: the torch backends, the TensorRT runner and the
exporters all speak this contract, and core rooms (runtime) must not import export/.

The radar point count R is fixed per model (cfg.radar_max_points): ``pad_radar`` pads a batch to
it, so one engine serves every frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from imkd_ros.model.preprocess import Preprocessor
from imkd_ros.model.synthetic import random_frame
from imkd_ros.ops.bev_pool_geometry import GEOMETRY_INPUTS, BevPoolGeometry

if TYPE_CHECKING:
    from imkd_ros.model.imkd import Student

__all__ = [
    "GEOMETRY_INPUTS", "HEAD_KEYS", "MODEL_INPUTS", "StudentExport", "StudentInputs", "example_inputs",
    "half_inputs", "head_output_names", "pad_radar", "points_max", "student_outputs_flat", "unflatten_head",
]

MODEL_INPUTS = ("images", "intrinsics", "cam_to_ego", "img_aug", "camera_valid", "radar", "radar_mask")
HEAD_KEYS = ("heatmap", "box", "attr")
# float inputs whose values feed index math (projection, BEV cells): kept fp32 in every precision
INDEX_INPUTS = ("intrinsics", "cam_to_ego", "img_aug", "radar")


def head_output_names(num_tasks: int) -> list[str]:
    return [f"task{i}_{k}" for i in range(num_tasks) for k in HEAD_KEYS]


def student_outputs_flat(outputs: dict) -> list[Tensor]:
    """Head outputs as a flat list [task0 heatmap, box, attr, task1 ...] (export order)."""
    return [t[k] for t in outputs["head"] for k in HEAD_KEYS]


def unflatten_head(flat: list[Tensor] | tuple[Tensor, ...] | dict[str, Tensor], num_tasks: int
                   ) -> list[dict[str, Tensor]]:
    """Flat outputs (list in export order, or dict by output name) -> CenterHead outputs."""
    if isinstance(flat, dict):
        flat = [flat[n] for n in head_output_names(num_tasks)]
    if len(flat) != len(HEAD_KEYS) * num_tasks:
        raise ValueError(f"{len(flat)} head outputs for {num_tasks} tasks (expected {3 * num_tasks})")
    return [{k: flat[3 * i + j] for j, k in enumerate(HEAD_KEYS)} for i in range(num_tasks)]


class StudentExport(nn.Module):
    """Student.forward with flat tensor inputs and the geometry passed in (torch.export / ONNX).

    The one wrapper every exporter uses; ``bev_h``/``bev_w`` default to the student's grid.
    ``autocast_fp16`` runs the forward under float16 autocast (the fp16 export: half convs,
    fp32 index math, see imkd_ros/ops/precision.py).
    """

    def __init__(self, student: Student, batch: int = 1, bev_h: int | None = None,
                 bev_w: int | None = None, autocast_fp16: bool = False) -> None:
        super().__init__()
        self.student = student
        self.autocast_fp16 = autocast_fp16
        h, w = student.grid.shape
        self.batch = batch
        self.bev_h = h if bev_h is None else bev_h
        self.bev_w = w if bev_w is None else bev_w

    def forward(self, images: Tensor, intrinsics: Tensor, cam_to_ego: Tensor, img_aug: Tensor,
                camera_valid: Tensor, radar: Tensor, radar_mask: Tensor, ranks_depth: Tensor,
                ranks_feat: Tensor, ranks_bev: Tensor, interval_starts: Tensor,
                interval_lengths: Tensor) -> list[Tensor]:
        geometry = BevPoolGeometry(ranks_depth, ranks_feat, ranks_bev, interval_starts,
                                   interval_lengths, self.batch, self.bev_h, self.bev_w)
        batch = {"images": images, "intrinsics": intrinsics, "cam_to_ego": cam_to_ego,
                 "img_aug": img_aug, "camera_valid": camera_valid, "radar": radar,
                 "radar_mask": radar_mask}
        if self.autocast_fp16:
            with torch.autocast(device_type=images.device.type, dtype=torch.float16):
                return student_outputs_flat(self.student(batch, geometry=geometry))
        return student_outputs_flat(self.student(batch, geometry=geometry))

    @staticmethod
    def example_inputs(batch: dict, geometry: BevPoolGeometry) -> tuple[Tensor, ...]:
        return tuple(batch[k] for k in MODEL_INPUTS) + geometry.tensors()


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
    """Images in fp16; calibration and radar stay fp32 (their values feed index math), geometry
    int32, masks bool."""
    return StudentInputs({k: v.half() if v.is_floating_point() and k not in INDEX_INPUTS else v
                          for k, v in inputs.tensors.items()}, inputs.geometry)


def points_max(student: Student, batch: int, cameras: int) -> int:
    """Every frustum point (= depth.numel() inside the network): the geometry's largest P."""
    fh, fw = student.feat_hw
    return batch * cameras * student.cfg.depth.num_bins * fh * fw


def example_inputs(student: Student, seed: int = 0, batch_size: int = 1) -> StudentInputs:
    """Synthetic frames -> StudentInputs (for export without a dataset, and for tests)."""
    cfg = student.cfg
    frames = [random_frame(seed + i) for i in range(batch_size)]
    batch = Preprocessor(cfg)(frames, targets=False)
    geometry = student.geometry(batch["intrinsics"], batch["cam_to_ego"], batch["img_aug"])
    return StudentInputs.from_batch(batch, geometry, cfg.radar_max_points)
