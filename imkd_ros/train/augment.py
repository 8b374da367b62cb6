"""BEV data augmentation on Frames: rotation about +z, isotropic scale, flips (BEVDet/CRN style).

The whole scene (LiDAR, radar, GT boxes and velocities) is mapped by one ego-frame transform
``p' = s * A p`` (A = rotation, optionally composed with a reflection). The cameras move with
it: ``cam_to_ego' = [[A Rc, s A tc], [0, 1]]``. A camera point ``c`` of ego point ``p`` becomes
``s c``, so every point still projects to the same pixel and the images need no change; the
network learns geometry-consistent features. (The image-plane augmentation, resize / crop /
flip, is the Preprocessor's img_aug; the two compose.) A flip makes ``A Rc`` improper
(det -1); the model only ever multiplies by cam_to_ego, so this is fine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import cast

import numpy as np

from imkd_ros.types import LIDAR_FEATURES, RADAR_FEATURES, Boxes, Frame

_RVX, _RVY = RADAR_FEATURES.index("vx_comp"), RADAR_FEATURES.index("vy_comp")


@dataclass
class BevAugConfig:
    rotate_deg: float = 22.5  # uniform in [-r, r]
    scale: list[float] = field(default_factory=lambda: [0.95, 1.05])
    flip_x: bool = True  # mirror left/right (y -> -y) with p = 0.5
    # mirror front/back (x -> -x) with p = 0.5. Off by default: the ego drives forward and parked
    # vehicles face the way traffic goes, a prior this mirror turns into a coin flip (no camera
    # tells a parked car's front from its back at 128 x 352); with it off the no-distillation
    # student's mAOE fell 1.36 -> 0.66 on 16 held-out scenes (docs/ablation.md, "front/back prior").
    flip_y: bool = False

    # `imkd train --bev-flip`: which mirrors are drawn ("both" = BEVDet / CenterPoint, the v3 rows)
    FLIPS = {"both": (True, True), "left-right": (True, False), "none": (False, False)}

    @classmethod
    def with_flips(cls, flips: str) -> BevAugConfig:
        if flips not in cls.FLIPS:
            raise ValueError(f"bev flips must be one of {sorted(cls.FLIPS)}, got {flips!r}")
        fx, fy = cls.FLIPS[flips]
        return cls(flip_x=fx, flip_y=fy)


@dataclass
class RadarDropoutConfig:
    """Radar outages in training, so that a silent radar degrades detection instead of ending it.

    A student trained only on frames with radar learns to detect from radar alone (every v2 student
    scored 0.01-0.03 NDS camera-only, docs/ablation.md). BEVFusion-style sensor dropout: a whole
    frame's radar is dropped with ``frame_p``; otherwise, with ``sector_p``, the returns of one
    azimuth sector the size of one radar's field of view (one sensor out) are dropped. Applied in
    the ego frame before the BEV augmentation, where a sensor's sector is fixed to the vehicle.
    """

    frame_p: float = 0.0
    sector_p: float = 0.0
    sector_deg: list[float] = field(default_factory=lambda: [60.0, 150.0])  # width, uniform

    def __post_init__(self) -> None:
        if not (0 <= self.frame_p <= 1 and 0 <= self.sector_p <= 1):
            raise ValueError(f"radar dropout probabilities must be in [0, 1], got {self.frame_p}, {self.sector_p}")

    @property
    def active(self) -> bool:
        return self.frame_p > 0 or self.sector_p > 0


def radar_dropout(frame: Frame, rng: np.random.Generator, cfg: RadarDropoutConfig) -> Frame:
    """The frame with its radar returns dropped as ``cfg`` draws (images, LiDAR and labels kept)."""
    radar = frame.radar
    if not cfg.active or radar is None or radar.ndim != 2:
        return frame
    u = rng.random()
    if u < cfg.frame_p:
        return replace(frame, radar=radar[:0])
    if u < cfg.frame_p + (1 - cfg.frame_p) * cfg.sector_p and len(radar):
        centre = rng.uniform(-math.pi, math.pi)
        half = math.radians(rng.uniform(cfg.sector_deg[0], cfg.sector_deg[1])) / 2
        az = np.arctan2(radar[:, 1], radar[:, 0])
        off = np.abs((az - centre + math.pi) % (2 * math.pi) - math.pi)
        return replace(frame, radar=radar[off > half])
    return frame


def bev_matrix(rot: float, scale: float = 1.0, flip_x: bool = False, flip_y: bool = False) -> np.ndarray:
    """3x3 linear map s * R(rot) @ F (F = reflections applied first)."""
    f = np.diag([-1.0 if flip_y else 1.0, -1.0 if flip_x else 1.0, 1.0])
    c, s = math.cos(rot), math.sin(rot)
    r = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return scale * (r @ f)


def _points(p: np.ndarray | None, m: np.ndarray, vel_cols: tuple[int, int] | None) -> np.ndarray | None:
    if p is None or len(p) == 0:
        return p
    out = np.array(p, np.float32, copy=True)
    out[:, :3] = p[:, :3] @ m.T
    if vel_cols is not None:
        v = p[:, list(vel_cols)]
        out[:, list(vel_cols)] = v @ m[:2, :2].T
    return out


def augment_boxes(boxes: Boxes, rot: float, scale: float, flip_x: bool, flip_y: bool) -> Boxes:
    m = bev_matrix(rot, scale, flip_x, flip_y)
    yaw = boxes.yaw.astype(np.float64)
    if flip_x:
        yaw = -yaw
    if flip_y:
        yaw = math.pi - yaw
    yaw = yaw + rot
    yaw = (yaw + math.pi) % (2 * math.pi) - math.pi
    return replace(
        boxes,
        center=(boxes.center.astype(np.float64) @ m.T).astype(np.float32),
        size=(boxes.size * scale).astype(np.float32),
        yaw=yaw.astype(np.float32),
        velocity=(boxes.velocity.astype(np.float64) @ m[:2, :2].T).astype(np.float32),
    )


def augment_frame(frame: Frame, rot: float, scale: float = 1.0, flip_x: bool = False,
                  flip_y: bool = False) -> Frame:
    """A new Frame with the BEV transform applied to every 3D quantity (images shared)."""
    m = bev_matrix(rot, scale, flip_x, flip_y)
    a = m / scale
    c2e = np.array(frame.cam_to_ego, np.float64, copy=True)
    c2e[:, :3, :3] = a @ c2e[:, :3, :3]
    c2e[:, :3, 3] = c2e[:, :3, 3] @ m.T
    assert LIDAR_FEATURES[:3] == ("x", "y", "z")
    meta = dict(frame.meta)
    meta["bev_aug"] = (float(rot), float(scale), bool(flip_x), bool(flip_y))
    if meta.get("camera_ego_motion") is not None:  # capture ego -> keyframe ego, in the new frame
        mot = np.array(meta["camera_ego_motion"], np.float64, copy=True)
        mot[:, :3, :3] = a @ mot[:, :3, :3] @ a.T
        mot[:, :3, 3] = mot[:, :3, 3] @ m.T
        meta["camera_ego_motion"] = mot
    return replace(
        frame,
        cam_to_ego=c2e.astype(np.float32),
        radar=cast(np.ndarray, _points(frame.radar, m, (_RVX, _RVY))),
        lidar=_points(frame.lidar, m, None),
        gt=None if frame.gt is None else augment_boxes(frame.gt, rot, scale, flip_x, flip_y),
        meta=meta,
    )


def random_augment(frame: Frame, rng: np.random.Generator, cfg: BevAugConfig | None = None) -> Frame:
    cfg = cfg or BevAugConfig()
    rot = math.radians(float(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg)))
    scale = float(rng.uniform(cfg.scale[0], cfg.scale[1]))
    fx = bool(cfg.flip_x and rng.random() < 0.5)
    fy = bool(cfg.flip_y and rng.random() < 0.5)
    return augment_frame(frame, rot, scale, fx, fy)
