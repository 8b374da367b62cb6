"""Dataclass configs for the IMKD student, the LiDAR teacher and distillation.

Loaded from YAML (models/paper.yaml, models/cpu.yaml) with yaml.safe_load; unknown keys are an
error so a typo in a config never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from imkd_ros.constants import CLASSES
from imkd_ros.ops.bev_pool_geometry import BevGrid

DEFAULT_TASKS: list[list[str]] = [
    ["car"],
    ["truck", "construction_vehicle"],
    ["bus", "trailer"],
    ["barrier"],
    ["motorcycle", "bicycle"],
    ["pedestrian", "traffic_cone"],
]


@dataclass
class ImageConfig:
    height: int = 256  # network input, after resize + crop
    width: int = 704
    # resize factor applied to the raw image; None = fit the raw width to ``width``
    resize: float | None = None
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    # training augmentation (resize factor range relative to the fitted one, horizontal flip)
    aug_resize: list[float] = field(default_factory=lambda: [1.0, 1.0])
    aug_flip: bool = False
    # True: flip the images exactly when the BEV augmentation mirrors the scene (one of its two
    # flips), never otherwise, whatever aug_flip says. The BEV mirror keeps every pixel's ray but
    # not its handedness: unflipped images in a mirrored scene (or aug_flip's own coin in an
    # unmirrored one) show a side-on car pointing against its label in half the samples, so a
    # parked car's front/back cannot be learned from how it looks (movers have their velocity).
    flip_with_bev: bool = False


@dataclass
class BackboneConfig:
    depth: int = 50  # 18 / 34 / 50, or 0 for a custom ResNet given by ``layers`` + ``widths``
    layers: list[int] | None = None
    widths: list[int] | None = None
    stem_width: int = 64
    bottleneck: bool = False  # custom nets only
    neck_channels: int = 256
    out_stride: int = 16  # stride of the feature map handed to the depth net
    pretrained: str | None = None  # path to a torchvision ResNet state_dict


@dataclass
class DepthConfig:
    d_min: float = 2.0
    d_max: float = 58.0
    d_step: float = 0.8
    mid_channels: int = 256
    context_channels: int = 80
    num_blocks: int = 2
    radar_prior: bool = True  # radar points projected into the image as a depth prior
    loss_weight: float = 3.0  # LiDAR depth supervision (training only)
    # per-camera capture-time compensation: pool each camera into its own BEV (the geometry stays
    # the calibration's, cached) and warp it by the ego motion from its capture to the keyframe
    # (batch["cam_motion"], from Frame.meta["camera_ego_motion"]); off = cameras as if at the keyframe
    capture_compensation: bool = False

    @property
    def num_bins(self) -> int:
        return int(round((self.d_max - self.d_min) / self.d_step))


@dataclass
class GridConfig:
    x_min: float = -51.2
    x_max: float = 51.2
    y_min: float = -51.2
    y_max: float = 51.2
    z_min: float = -5.0
    z_max: float = 3.0
    resolution: float = 0.8

    def bev_grid(self) -> BevGrid:
        return BevGrid(**dataclasses.asdict(self))


@dataclass
class PillarConfig:
    """A PointNet-pillar encoder followed by a small BEV conv stack (radar and LiDAR)."""

    point_channels: int = 64
    bev_channels: int = 64
    num_blocks: int = 2
    # per-column scale applied to the raw point features before the PointNet
    feature_scale: list[float] = field(default_factory=lambda: [0.02, 0.02, 0.2, 0.05, 0.1, 0.1, 1.0, 0.1])
    # radar only: per-cell mean Doppler (vx_comp, vy_comp) and return count as extra BEV channels,
    # handed to the radar encoder and past the fusion straight to the BEV encoder, so the head
    # sees the measured radial velocity directly (the pillar max-pool keeps it only implicitly)
    doppler: bool = False


@dataclass
class FusionConfig:
    channels: int = 128
    bev_blocks: int = 2  # BEV encoder blocks after the fusion
    dilation: int = 2  # dilated branch absorbs small camera-radar misalignment
    radar_gate: bool = True  # False = plain concat + conv (ablation)


@dataclass
class HeadConfig:
    tasks: list[list[str]] = field(default_factory=lambda: [list(t) for t in DEFAULT_TASKS])
    shared_channels: int = 64
    head_channels: int = 64
    max_objs: int = 500
    min_radius: int = 2
    gaussian_overlap: float = 0.1
    code_weights: list[float] = field(default_factory=lambda: [1, 1, 1, 1, 1, 1, 1, 1, 0.2, 0.2])
    heatmap_weight: float = 1.0
    bbox_weight: float = 0.25
    attr_weight: float = 0.1
    score_threshold: float = 0.1
    # heading: "sincos" regresses (sin, cos) yaw (two opposite headings average to ~0: front/back
    # confusion); "axis_dir" regresses (sin 2yaw, cos 2yaw) (the box axis, period pi) plus one
    # direction logit (which end is the front), SECOND-style
    heading: str = "sincos"
    # with axis_dir: class groups made only of these classes keep (sin, cos) in channels 6-7 and
    # no direction loss (near-square boxes such as pedestrians have no well-defined axis)
    sincos_classes: list[str] = field(default_factory=list)
    dir_weight: float = 0.2  # BCE weight of the direction logit (axis_dir)
    # velocity regression: "l1" (minimised by the median: collapses to 0 when most targets are 0),
    # "huber" (squared below velocity_beta m/s, L1 above) or "l2"; its weight is code_weights[8:10]
    velocity_loss: str = "l1"
    velocity_beta: float = 1.0
    # decode: a vehicle / cyclist / pedestrian faster than this (m/s) gets the heading end that
    # agrees with its velocity (0 = off)
    velocity_flip_speed: float = 0.0
    # decode: velocity 0 where the attribute head says parked / stopped / standing / sitting
    static_attr_zero_velocity: bool = False
    top_k: int = 500
    max_boxes: int = 300
    local_max: bool = True  # keep only 3x3 heatmap maxima before top-k (CenterNet peak picking)
    # circle-NMS radius (metres) per class; 0 = no NMS for that class. CenterPoint's nuScenes
    # values (4, 12, 10, 1, 0.85, 0.175) are thresholds on the SQUARED centre distance: these are
    # their square roots (a car suppresses cars within 2 m, not 4 m: the next lane is 3.5 m away).
    nms_radius: dict[str, float] = field(default_factory=lambda: {
        "car": 2.0, "truck": 3.46, "construction_vehicle": 3.46, "bus": 3.16, "trailer": 3.16,
        "barrier": 1.0, "motorcycle": 0.92, "bicycle": 0.92, "pedestrian": 0.42,
        "traffic_cone": 0.42,
    })

    def __post_init__(self) -> None:
        if self.heading not in ("sincos", "axis_dir"):
            raise ValueError(f"head.heading must be sincos or axis_dir, got {self.heading!r}")
        if self.velocity_loss not in ("l1", "huber", "l2"):
            raise ValueError(f"head.velocity_loss must be l1, huber or l2, got {self.velocity_loss!r}")
        for task in self.tasks:
            for name in task:
                if name not in CLASSES:
                    raise ValueError(f"unknown class {name!r} in head tasks")


@dataclass
class TeacherConfig:
    pillar: PillarConfig = field(default_factory=lambda: PillarConfig(
        point_channels=64, bev_channels=128, num_blocks=3,
        feature_scale=[0.02, 0.02, 0.2, 0.01, 1.0]))
    bev_blocks: int = 2
    # the teacher's own BEV grid (None = the student's). Must cover the same area with a
    # resolution that divides the student's by an integer: distillation pools the teacher's
    # features, densities and heatmaps down to the student grid.
    grid: GridConfig | None = None
    # "flat": stem + blocks at the grid's resolution (v1). "unet": stem at the grid's resolution,
    # the blocks at half of it (stride 2, bev_channels), upsampled and concatenated with the stem
    # -> head at full resolution: ~2.5x cheaper on a 0.8 m grid, with a wider receptive field
    arch: str = "flat"

    def bev_grid(self, student: GridConfig) -> BevGrid:
        return (self.grid or student).bev_grid()


@dataclass
class DistillConfig:
    level1: bool = True  # LiDAR -> radar intensity-aware feature distillation
    level1_weight: float = 1.0
    level2: bool = True  # LiDAR -> fused intensity-guided distillation
    level2_weight: float = 1.0
    level2_relation_weight: float = 0.5  # spatial-affinity term of level 2
    level2_discrepancy_gain: float = 1.0  # extra weight where teacher and student disagree
    response: bool = True  # teacher heatmap -> student heatmap
    response_weight: float = 0.5
    # intensity map = feature_mix * teacher activation norm + (1 - feature_mix) * LiDAR density
    feature_mix: float = 0.5
    density_scale: float = 4.0  # points per cell at which the density term saturates (~63%)
    radar_boost: float = 1.0  # level 1: extra weight where radar has returns
    foreground_boost: float = 2.0  # both levels: extra weight inside GT Gaussians
    background_floor: float = 0.1
    # classes whose GT regions get no LiDAR feature imitation (levels 1 and 2), for where the
    # teacher's features may carry what the student should not copy. Tried for pedestrians, whose
    # movers' heading and velocity regress under x8 distillation: no effect at one seed
    # (docs/ablation.md, "The label teacher on every seed"), so off by default
    exempt_classes: list[str] = field(default_factory=list)
    relation_pool: int = 4  # level 2 affinity on a pooled grid (memory ~ (HW/pool^2)^2)
    # optional label teacher (LabelDistill style): GT boxes encoded into BEV features, imitated
    # by the fused features inside object regions
    label: bool = False
    label_weight: float = 0.3
    label_channels: int = 64
    # velocity distillation: the student's (vx, vy) imitate the teacher's (multi-sweep LiDAR sees
    # motion) where the teacher's heatmap is confident
    velocity: bool = False
    velocity_weight: float = 0.5
    velocity_min_heat: float = 0.3
    # classes whose teacher velocity is distilled (empty: every class). All classes cost mAP with
    # teacher v4a while bringing the pedestrian movers back (docs/ablation.md, "The teacher's
    # velocity distilled"); [pedestrian] keeps the term off the vehicles' cells: one seed, movers
    # fixed, mAP and NDS as full IMKD
    velocity_classes: list[str] = field(default_factory=list)


@dataclass
class IMKDConfig:
    name: str = "paper"
    image: ImageConfig = field(default_factory=ImageConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    depth: DepthConfig = field(default_factory=DepthConfig)
    grid: GridConfig = field(default_factory=GridConfig)
    radar: PillarConfig = field(default_factory=PillarConfig)
    radar_max_points: int = 2048  # padding size per sample (radar, after multi-sweep accumulation)
    lidar_max_points: int = 40000
    fusion: FusionConfig = field(default_factory=FusionConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    num_cameras: int = 6

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def weight_mismatch(self, other: IMKDConfig) -> list[str]:
        """Dotted keys that differ between two configs and change what the weights mean.

        Loss weights and decode settings (``TRAINING_ONLY``) may change between a run and the
        checkpoint it continues from (``imkd train --init``); anything else may not."""
        a, b = _flatten(self.to_dict()), _flatten(other.to_dict())
        return sorted(k for k in a.keys() | b.keys()
                      if a.get(k) != b.get(k) and not any(k == t or k.startswith(t + ".") for t in TRAINING_ONLY))

    @staticmethod
    def from_dict(data: dict) -> IMKDConfig:
        return _build(IMKDConfig, data)

    @staticmethod
    def from_yaml(path: str | Path) -> IMKDConfig:
        with open(path) as f:
            return IMKDConfig.from_dict(yaml.safe_load(f) or {})


# Fields that only weight the losses, augment the training data or shape the decoding: a
# checkpoint's weights mean the same whatever they are, so a continued run may change them (the
# distillation section included: its adapters live in the training wrapper, not in the exported model).
TRAINING_ONLY = (
    "head.code_weights", "head.heatmap_weight", "head.bbox_weight", "head.attr_weight",
    "head.dir_weight", "head.velocity_loss", "head.velocity_beta", "head.gaussian_overlap",
    "head.min_radius", "head.max_objs", "head.score_threshold", "head.velocity_flip_speed",
    "head.static_attr_zero_velocity", "head.top_k", "head.max_boxes", "head.local_max",
    "head.nms_radius", "depth.loss_weight", "distill", "image.aug_resize", "image.aug_flip",
    "image.flip_with_bev",
)


def _flatten(d: dict, prefix: str = "") -> dict:
    out: dict = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and not key.startswith("head.nms_radius"):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _build(cls, data: dict):
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__} expects a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise KeyError(f"unknown keys for {cls.__name__}: {sorted(unknown)}")
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if typing.get_origin(hint) in (typing.Union, types.UnionType):  # X | None
            hint = next((a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)), hint)
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = _build(hint, value)
        kwargs[key] = value
    return cls(**kwargs)


MODELS_DIR = Path(__file__).resolve().parents[2] / "models"


def models_dirs() -> list[Path]:
    """Where named configs live: $IMKD_MODELS_DIR, the source tree, the installed share dir."""
    dirs = [Path(p) for p in os.environ.get("IMKD_MODELS_DIR", "").split(os.pathsep) if p]
    dirs += [MODELS_DIR, Path(sys.prefix) / "share" / "imkd_ros" / "models"]
    prefix = os.environ.get("AMENT_PREFIX_PATH", "")
    dirs += [Path(p) / "share" / "imkd_ros" / "models" for p in prefix.split(os.pathsep) if p]
    return dirs


def load_config(name_or_path: str | Path) -> IMKDConfig:
    """``paper`` / ``cpu`` (models/<name>.yaml, see models_dirs) or a path to a YAML file."""
    path = Path(name_or_path)
    if not path.suffix:
        for d in models_dirs():
            if (d / f"{name_or_path}.yaml").is_file():
                path = d / f"{name_or_path}.yaml"
                break
        else:
            raise FileNotFoundError(f"no config {name_or_path!r} in {[str(d) for d in models_dirs()]}")
    return IMKDConfig.from_yaml(path)
