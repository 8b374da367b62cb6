"""Tiny random Frames for model tests and benchmarks (no dependency on imkd_ros.world).

A nuScenes-like ring of six cameras, boxes drawn into the images as flat coloured rectangles,
radar returns near box centres and LiDAR points inside the boxes plus a ground plane.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from imkd_ros.constants import CLASSES
from imkd_ros.model.config import load_config
from imkd_ros.types import LIDAR_FEATURES, RADAR_FEATURES, Boxes, Frame

CAMERA_YAWS_DEG = (0.0, -55.0, -110.0, 180.0, 110.0, 55.0)  # order of constants.CAMERA_NAMES
CLASS_SIZES = {"car": (1.9, 4.6, 1.7), "pedestrian": (0.7, 0.7, 1.75), "truck": (2.5, 7.0, 3.0),
               "barrier": (2.5, 0.5, 1.0)}


def camera_rig(raw_hw: tuple[int, int] = (256, 704), hfov_deg: float = 70.0
               ) -> tuple[np.ndarray, np.ndarray]:
    """(6, 3, 3) intrinsics and (6, 4, 4) cam_to_ego (optical frame: x right, y down, z fwd)."""
    h, w = raw_hw
    f = (w / 2) / math.tan(math.radians(hfov_deg) / 2)
    k = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]], np.float32)
    mats = []
    for yaw in CAMERA_YAWS_DEG:
        a = math.radians(yaw)
        z = [math.cos(a), math.sin(a), 0.0]
        x = [math.sin(a), -math.cos(a), 0.0]
        y = [0.0, 0.0, -1.0]
        m = np.eye(4, dtype=np.float32)
        m[:3, :3] = np.array([x, y, z], np.float32).T
        m[:3, 3] = [1.0 * math.cos(a), 0.5 * math.sin(a), 1.6]
        mats.append(m)
    return np.repeat(k[None], 6, 0), np.stack(mats)


def box_corners(center: np.ndarray, size: np.ndarray, yaw: float) -> np.ndarray:
    """(8, 3) corners; size (w, l, h), length along the heading."""
    w, l, h = size
    xs = np.array([1, 1, -1, -1, 1, 1, -1, -1]) * l / 2
    ys = np.array([1, -1, -1, 1, 1, -1, -1, 1]) * w / 2
    zs = np.array([1, 1, 1, 1, -1, -1, -1, -1]) * h / 2
    c, s = math.cos(yaw), math.sin(yaw)
    return np.stack([c * xs - s * ys, s * xs + c * ys, zs], 1) + center


def random_boxes(rng: np.random.Generator, n: int, extent: float = 30.0,
                 classes: tuple[str, ...] = ("car", "pedestrian")) -> Boxes:
    centers: list[np.ndarray] = []
    sizes, yaws, labels, vels = [], [], [], []
    while len(centers) < n:
        xy = rng.uniform(-extent, extent, 2)
        if np.linalg.norm(xy) < 6 or any(np.linalg.norm(xy - c[:2]) < 6 for c in centers):
            continue
        name = classes[len(centers) % len(classes)]
        size = np.array(CLASS_SIZES[name], np.float32)
        centers.append(np.array([xy[0], xy[1], size[2] / 2], np.float32))
        sizes.append(size)
        yaws.append(rng.uniform(-math.pi, math.pi))
        labels.append(CLASSES.index(name))
        vels.append(rng.uniform(-5, 5, 2) if name == "car" else rng.uniform(-1, 1, 2))
    attrs = [0 if CLASSES[i] == "car" else 5 for i in labels]
    return Boxes(center=np.array(centers, np.float32).reshape(-1, 3),
                 size=np.array(sizes, np.float32).reshape(-1, 3),
                 yaw=np.array(yaws, np.float32), velocity=np.array(vels, np.float32).reshape(-1, 2),
                 labels=np.array(labels, np.int64), scores=np.ones(n, np.float32),
                 attributes=np.array(attrs, np.int64), track_ids=np.arange(n, dtype=np.int64))


def render_images(boxes: Boxes, intrinsics: np.ndarray, cam_to_ego: np.ndarray,
                  raw_hw: tuple[int, int], rng: np.random.Generator) -> list[np.ndarray]:
    """Grey sky/road images with each box's projected bounding rectangle painted, far first."""
    h, w = raw_hw
    images = []
    for n in range(len(intrinsics)):
        img = np.empty((h, w, 3), np.uint8)
        img[: h // 2] = (120, 150, 200)
        img[h // 2:] = (90, 90, 90)
        img = np.clip(img.astype(np.int16) + rng.integers(-8, 8, img.shape), 0, 255).astype(np.uint8)
        e2c = np.linalg.inv(cam_to_ego[n])
        order = np.argsort(-np.linalg.norm(boxes.center[:, :2], axis=1))
        for i in order:
            pts = box_corners(boxes.center[i], boxes.size[i], float(boxes.yaw[i]))
            cam = pts @ e2c[:3, :3].T + e2c[:3, 3]
            if (cam[:, 2] < 0.5).any():
                continue
            uv = cam @ intrinsics[n].T
            uv = uv[:, :2] / uv[:, 2:3]
            u0, v0 = np.floor(uv.min(0)).astype(int)
            u1, v1 = np.ceil(uv.max(0)).astype(int)
            if u1 < 0 or v1 < 0 or u0 >= w or v0 >= h:
                continue
            depth = float(cam[:, 2].mean())
            shade = int(np.clip(255 - depth * 3, 60, 255))
            color = (shade, 40, 40) if CLASSES[int(boxes.labels[i])] == "car" else (40, shade, 40)
            img[max(v0, 0):min(v1, h), max(u0, 0):min(u1, w)] = color
        images.append(img)
    return images


def radar_points(boxes: Boxes, rng: np.random.Generator, sweeps: int = 3, clutter: int = 20) -> np.ndarray:
    rows = []
    for i in range(len(boxes)):
        for s in range(sweeps):
            p = boxes.center[i, :2] + rng.normal(0, 0.4, 2)
            rcs = 10.0 if CLASSES[int(boxes.labels[i])] == "car" else -5.0
            rows.append([p[0], p[1], 0.5, rcs + rng.normal(0, 2), *boxes.velocity[i],
                         -0.05 * s, float(s)])
    for _ in range(clutter):
        p = rng.uniform(-50, 50, 2)
        rows.append([p[0], p[1], 0.5, rng.normal(-5, 3), 0.0, 0.0, 0.0, 0.0])
    out = np.array(rows, np.float32).reshape(-1, len(RADAR_FEATURES))
    return out


def lidar_points(boxes: Boxes, rng: np.random.Generator, per_box: int = 150, ground: int = 2000) -> np.ndarray:
    rows = []
    for i in range(len(boxes)):
        local = rng.uniform(-0.5, 0.5, (per_box, 3)) * boxes.size[i][[1, 0, 2]]
        c, s = math.cos(float(boxes.yaw[i])), math.sin(float(boxes.yaw[i]))
        xy = np.stack([c * local[:, 0] - s * local[:, 1], s * local[:, 0] + c * local[:, 1]], 1)
        pts = np.concatenate([xy, local[:, 2:3]], 1) + boxes.center[i]
        rows.append(np.concatenate([pts, np.full((per_box, 1), 80.0), np.zeros((per_box, 1))], 1))
    r = rng.uniform(3, 50, ground)
    a = rng.uniform(-math.pi, math.pi, ground)
    g = np.stack([r * np.cos(a), r * np.sin(a), np.zeros(ground), np.full(ground, 10.0), np.zeros(ground)], 1)
    rows.append(g)
    return np.concatenate(rows).astype(np.float32).reshape(-1, len(LIDAR_FEATURES))


def random_frame(seed: int, raw_hw: tuple[int, int] = (256, 704), num_boxes: int = 4,
                 extent: float = 30.0) -> Frame:
    rng = np.random.default_rng(seed)
    intr, c2e = camera_rig(raw_hw)
    boxes = random_boxes(rng, num_boxes, extent)
    return Frame(
        timestamp_us=1_000_000 + seed * 500_000,
        images=render_images(boxes, intr, c2e, raw_hw, rng),
        intrinsics=intr,
        cam_to_ego=c2e,
        camera_valid=np.ones(6, bool),
        radar=radar_points(boxes, rng),
        lidar=lidar_points(boxes, rng),
        gt=boxes,
        meta={"sample_token": f"synthetic-{seed}", "condition": "day"},
    )


def tiny_config():
    """The cpu config shrunk for unit tests: 64x176 images, 32x32 BEV at 2 m, 16 depth bins."""
    cfg = load_config("cpu")
    cfg.name = "tiny"
    cfg.image.height, cfg.image.width = 64, 176
    cfg.backbone.widths = [8, 16, 32, 32]
    cfg.backbone.stem_width = 8
    cfg.backbone.neck_channels = 32
    cfg.backbone.out_stride = 8  # 8 x 22 feature map
    cfg.depth.d_min, cfg.depth.d_max, cfg.depth.d_step = 2.0, 34.0, 2.0
    cfg.depth.mid_channels = 32
    cfg.depth.context_channels = 16
    cfg.grid.x_min = cfg.grid.y_min = -32.0
    cfg.grid.x_max = cfg.grid.y_max = 32.0
    cfg.grid.resolution = 2.0
    cfg.radar.point_channels = cfg.radar.bev_channels = 16
    cfg.fusion.channels = 32
    cfg.head.shared_channels = cfg.head.head_channels = 16
    cfg.head.max_objs = 32
    cfg.teacher.pillar.point_channels = 16
    cfg.teacher.pillar.bev_channels = 32
    cfg.teacher.pillar.num_blocks = 1
    if cfg.teacher.grid is not None:  # keep the teacher a 2x refinement of the student grid
        cfg.teacher.grid = dataclasses.replace(cfg.grid, resolution=cfg.grid.resolution / 2)
    return cfg
