"""The data contract between data loaders, the ROS pipeline and the model.

One ``Frame`` is what the detector needs for one keyframe; ``Boxes`` is what it returns and what
ground truth looks like. Everything is in the keyframe's ego frame (x forward, y left, z up),
nuScenes box convention: centre (x, y, z), size (w, l, h), yaw about +z, velocity (vx, vy) m/s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Radar point feature columns handed to the model (after ego-motion compensation).
RADAR_FEATURES: tuple[str, ...] = ("x", "y", "z", "rcs", "vx_comp", "vy_comp", "time_lag", "sweep")
# LiDAR point columns (teacher / training only).
LIDAR_FEATURES: tuple[str, ...] = ("x", "y", "z", "intensity", "time_lag")


@dataclass
class Boxes:
    """N 3D boxes in the ego frame. ``attributes`` holds indices into constants.ATTRIBUTES or -1."""

    center: np.ndarray  # (N, 3) float32
    size: np.ndarray  # (N, 3) float32, (w, l, h) as nuScenes
    yaw: np.ndarray  # (N,) float32, radians about +z
    velocity: np.ndarray  # (N, 2) float32, (vx, vy) m/s
    labels: np.ndarray  # (N,) int64, indices into constants.CLASSES
    scores: np.ndarray  # (N,) float32 (1.0 for ground truth)
    attributes: np.ndarray  # (N,) int64
    track_ids: np.ndarray | None = None  # (N,) int64, ground truth only

    def __len__(self) -> int:
        return int(self.center.shape[0])

    @staticmethod
    def empty() -> Boxes:
        return Boxes(
            center=np.zeros((0, 3), np.float32),
            size=np.zeros((0, 3), np.float32),
            yaw=np.zeros((0,), np.float32),
            velocity=np.zeros((0, 2), np.float32),
            labels=np.zeros((0,), np.int64),
            scores=np.zeros((0,), np.float32),
            attributes=np.zeros((0,), np.int64),
        )

    def select(self, mask: np.ndarray) -> Boxes:
        return Boxes(
            center=self.center[mask],
            size=self.size[mask],
            yaw=self.yaw[mask],
            velocity=self.velocity[mask],
            labels=self.labels[mask],
            scores=self.scores[mask],
            attributes=self.attributes[mask],
            track_ids=None if self.track_ids is None else self.track_ids[mask],
        )


@dataclass
class Frame:
    """All sensor input for one keyframe, already in the keyframe's ego frame.

    Images are raw uint8 RGB at sensor resolution; resizing/cropping to the network input is the
    model preprocessing's job (it returns the matching image-augmentation matrix).
    """

    timestamp_us: int
    images: list[np.ndarray]  # 6 x (H, W, 3) uint8 RGB, order constants.CAMERA_NAMES
    intrinsics: np.ndarray  # (6, 3, 3) float32
    cam_to_ego: np.ndarray  # (6, 4, 4) float32, camera (optical frame) -> ego
    camera_valid: np.ndarray  # (6,) bool; False = view missing/masked
    radar: np.ndarray  # (P, len(RADAR_FEATURES)) float32
    lidar: np.ndarray | None = None  # (Q, len(LIDAR_FEATURES)) float32, training only
    gt: Boxes | None = None
    meta: dict = field(default_factory=dict)  # sample_token, scene, condition (day/night/...)
