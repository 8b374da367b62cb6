"""Sensor rig: camera, radar and LiDAR specs, loaded from YAML or from nuScenes calibration.

All extrinsics are sensor -> ego (nuScenes calibrated_sensor convention, quaternion w, x, y, z).
Cameras use the optical frame (x right, y down, z forward).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from imkd_ros.constants import CAMERA_NAMES, LIDAR_NAME, RADAR_NAMES
from imkd_ros.rig.geometry import Transform, camera_quat, euler_to_quat, quat_normalize, yaw_to_quat

DEFAULT_RIG_YAML = Path(__file__).with_name("nuscenes_rig.yaml")


@dataclass
class CameraSpec:
    name: str
    width: int
    height: int
    intrinsics: np.ndarray  # (3, 3)
    translation: np.ndarray  # (3,) sensor -> ego
    rotation: np.ndarray  # (4,) w, x, y, z; optical frame -> ego
    fps: float = 12.0

    @cached_property
    def to_ego(self) -> Transform:
        """Sensor -> ego (cached: specs are not mutated after construction)."""
        return Transform.from_quat(self.rotation, self.translation)

    @property
    def yaw(self) -> float:
        """Heading of the optical axis in the ego frame."""
        z_axis = self.to_ego.rotation[:, 2]
        return float(np.arctan2(z_axis[1], z_axis[0]))

    @property
    def hfov(self) -> float:
        return float(2 * np.arctan2(self.width / 2, self.intrinsics[0, 0]))

    def scaled(self, scale: float) -> CameraSpec:
        """Same camera at ``scale`` x the resolution (intrinsics scaled consistently)."""
        k = self.intrinsics.copy()
        k[:2] *= scale
        return replace(self, width=int(round(self.width * scale)), height=int(round(self.height * scale)), intrinsics=k)


@dataclass
class RadarSpec:
    """Continental ARS408-like radar: near beam (wide, short) and far beam (narrow, long)."""

    name: str
    translation: np.ndarray
    rotation: np.ndarray
    fps: float = 13.0
    near_range: float = 70.0
    near_half_fov_deg: float = 60.0
    far_range: float = 250.0
    far_half_fov_deg: float = 9.0
    range_sigma: float = 0.15
    azimuth_sigma_deg: float = 0.6
    velocity_sigma: float = 0.1

    @cached_property
    def to_ego(self) -> Transform:
        """Sensor -> ego (cached: specs are not mutated after construction)."""
        return Transform.from_quat(self.rotation, self.translation)


@dataclass
class LidarSpec:
    """Spinning LiDAR (Velodyne HDL-32E-like): beams spread over [min_elev, max_elev]."""

    name: str
    translation: np.ndarray
    rotation: np.ndarray
    fps: float = 20.0
    beams: int = 32
    min_elev_deg: float = -30.67
    max_elev_deg: float = 10.67
    azimuth_steps: int = 1084
    max_range: float = 70.0
    range_sigma: float = 0.02

    @cached_property
    def to_ego(self) -> Transform:
        """Sensor -> ego (cached: specs are not mutated after construction)."""
        return Transform.from_quat(self.rotation, self.translation)

    def elevations(self) -> np.ndarray:
        return np.deg2rad(np.linspace(self.min_elev_deg, self.max_elev_deg, self.beams))


@dataclass
class Rig:
    cameras: list[CameraSpec]
    radars: list[RadarSpec]
    lidar: LidarSpec
    meta: dict = field(default_factory=dict)

    def camera(self, name: str) -> CameraSpec:
        return next(c for c in self.cameras if c.name == name)

    def radar(self, name: str) -> RadarSpec:
        return next(r for r in self.radars if r.name == name)

    def scaled(self, image_scale: float) -> Rig:
        if image_scale == 1.0:
            return self
        return replace(self, cameras=[c.scaled(image_scale) for c in self.cameras])

    def intrinsics_array(self) -> np.ndarray:
        return np.stack([c.intrinsics for c in self.cameras]).astype(np.float32)

    def cam_to_ego_array(self) -> np.ndarray:
        return np.stack([c.to_ego.matrix() for c in self.cameras]).astype(np.float32)

    # --- construction -------------------------------------------------------------------------
    @staticmethod
    def from_yaml(path: str | Path = DEFAULT_RIG_YAML) -> Rig:
        with open(path) as f:
            return Rig.from_dict(yaml.safe_load(f))

    @staticmethod
    def default() -> Rig:
        return Rig.from_yaml(DEFAULT_RIG_YAML)

    @staticmethod
    def from_dict(cfg: dict) -> Rig:
        cameras = []
        for name, c in cfg["cameras"].items():
            w, h = int(c["width"]), int(c["height"])
            if "intrinsics" in c:
                k = np.asarray(c["intrinsics"], dtype=np.float64).reshape(3, 3)
            else:
                fx = float(c["fx"])
                k = np.array(
                    [[fx, 0.0, float(c.get("cx", w / 2))], [0.0, float(c.get("fy", fx)), float(c.get("cy", h / 2))],
                     [0.0, 0.0, 1.0]]
                )
            cameras.append(
                CameraSpec(name, w, h, k, np.asarray(c["translation"], float), _rotation(c, camera=True),
                           float(c.get("fps", 12.0)))
            )
        radars = []
        for name, r in cfg["radars"].items():
            extra = {k: float(v) for k, v in r.items() if k not in ("translation", "rotation", "yaw_deg", "rpy_deg")}
            radars.append(RadarSpec(name, np.asarray(r["translation"], float), _rotation(r), **extra))
        lname, lc = next(iter(cfg["lidar"].items()))
        lextra: dict[str, Any] = {k: v for k, v in lc.items()
                                  if k not in ("translation", "rotation", "yaw_deg", "rpy_deg")}
        if "beams" in lextra:
            lextra["beams"] = int(lextra["beams"])
        if "azimuth_steps" in lextra:
            lextra["azimuth_steps"] = int(lextra["azimuth_steps"])
        lidar = LidarSpec(lname, np.asarray(lc["translation"], float), _rotation(lc), **lextra)
        order = {n: i for i, n in enumerate(CAMERA_NAMES)}
        cameras.sort(key=lambda c: order.get(c.name, len(order)))
        rorder = {n: i for i, n in enumerate(RADAR_NAMES)}
        radars.sort(key=lambda r: rorder.get(r.name, len(rorder)))
        return Rig(cameras, radars, lidar, meta=dict(cfg.get("meta", {})))

    @staticmethod
    def from_calibrated_sensors(records: dict[str, dict], image_sizes: dict[str, tuple[int, int]] | None = None) -> Rig:
        """From nuScenes ``calibrated_sensor`` records keyed by channel (e.g. via sample_data).

        ``image_sizes`` maps camera channel -> (width, height); default 1600x900.
        """
        image_sizes = image_sizes or {}
        cameras, radars, lidar = [], [], None
        for ch, rec in records.items():
            t = np.asarray(rec["translation"], float)
            q = quat_normalize(rec["rotation"])
            if ch.startswith("CAM"):
                w, h = image_sizes.get(ch, (1600, 900))
                cameras.append(CameraSpec(ch, w, h, np.asarray(rec["camera_intrinsic"], float), t, q))
            elif ch.startswith("RADAR"):
                radars.append(RadarSpec(ch, t, q))
            elif ch.startswith("LIDAR"):
                lidar = LidarSpec(ch, t, q)
        if lidar is None:
            lidar = LidarSpec(LIDAR_NAME, np.array([0.985, 0.0, 1.84]), yaw_to_quat(-np.pi / 2))
        order = {n: i for i, n in enumerate(CAMERA_NAMES)}
        cameras.sort(key=lambda c: order.get(c.name, len(order)))
        rorder = {n: i for i, n in enumerate(RADAR_NAMES)}
        radars.sort(key=lambda r: rorder.get(r.name, len(rorder)))
        return Rig(cameras, radars, lidar)

    @staticmethod
    def from_nuscenes(nusc, sample_token: str) -> Rig:
        """Rig of one nuScenes sample (reads its key-frame sample_data calibration)."""
        sample = nusc.get("sample", sample_token)
        records, sizes = {}, {}
        for ch, sd_token in sample["data"].items():
            sd = nusc.get("sample_data", sd_token)
            records[ch] = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
            if sd.get("width"):
                sizes[ch] = (int(sd["width"]), int(sd["height"]))
        return Rig.from_calibrated_sensors(records, sizes)

    def calibrated_sensor_records(self) -> dict[str, dict]:
        """channel -> {translation, rotation, camera_intrinsic} as nuScenes writes them."""
        out = {}
        for c in self.cameras:
            out[c.name] = {
                "translation": [float(v) for v in c.translation],
                "rotation": [float(v) for v in quat_normalize(c.rotation)],
                "camera_intrinsic": [[float(v) for v in row] for row in c.intrinsics],
            }
        sensors: list[RadarSpec | LidarSpec] = [*self.radars, self.lidar]
        for s in sensors:
            out[s.name] = {
                "translation": [float(v) for v in s.translation],
                "rotation": [float(v) for v in quat_normalize(s.rotation)],
                "camera_intrinsic": [],
            }
        return out


def _rotation(c: dict, camera: bool = False) -> np.ndarray:
    """A YAML sensor's rotation: ``rotation`` (w, x, y, z) or ``yaw_deg`` / ``rpy_deg`` (degrees).

    For cameras, yaw/pitch/roll describe the optical axis (pitch > 0 looks down).
    """
    if "rotation" in c:
        return quat_normalize(c["rotation"])
    if "rpy_deg" in c:
        roll, pitch, yaw = np.deg2rad(np.asarray(c["rpy_deg"], float))
    else:
        roll, pitch, yaw = 0.0, 0.0, np.deg2rad(float(c.get("yaw_deg", 0.0)))
    if camera:
        return camera_quat(yaw, pitch, roll)
    return quat_normalize(euler_to_quat(roll, pitch, yaw))
