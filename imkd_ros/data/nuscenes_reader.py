"""nuScenes-format dataset -> ``imkd_ros.types.Frame``: the one reader training, eval, to-bag and render use.

It works on real nuScenes and on our synthetic world alike, because both are read through the
devkit's ``NuScenes`` tables. Geometry follows the devkit: a sensor's points go sensor -> ego (at
the sweep's time) -> global -> ego at the keyframe, where the keyframe's ego pose is the LIDAR_TOP
key sample_data's (the pose DetectionEval uses). Radar velocities (vx_comp, vy_comp, already
compensated for ego motion, over ground) are rotated through the same chain.

Speed: the ``NuScenes`` object is built once per (dataroot, version) and process (the dataset
wrapper rebuilds it lazily in DataLoader workers instead of pickling it); radar PCDs are parsed
vectorised (imkd_ros.data.pcd); JPEGs can be decoded at 1/2, 1/4 or 1/8 size through PIL's draft
mode (intrinsics are scaled to match).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from nuscenes.nuscenes import NuScenes
from nuscenes.utils.data_classes import RadarPointCloud
from nuscenes.utils.splits import create_splits_scenes
from PIL import Image

from imkd_ros.constants import ATTR_TO_ID, CAMERA_NAMES, CLASS_TO_ID, LIDAR_NAME, NO_ATTRIBUTE, RADAR_NAMES
from imkd_ros.data.pcd import (
    DEFAULT_AMBIG_STATES,
    DEFAULT_DYNPROP_STATES,
    DEFAULT_INVALID_STATES,
    load_lidar_bin,
    load_radar_points,
)
from imkd_ros.types import LIDAR_FEATURES, RADAR_FEATURES, Boxes, Frame

# nuScenes category -> detection name, as the devkit's eval (category_to_detection_name).
_CATEGORY_PREFIX_TO_CLASS: tuple[tuple[str, str], ...] = (
    ("movable_object.barrier", "barrier"),
    ("vehicle.bicycle", "bicycle"),
    ("vehicle.bus.bendy", "bus"),
    ("vehicle.bus.rigid", "bus"),
    ("vehicle.car", "car"),
    ("vehicle.construction", "construction_vehicle"),
    ("vehicle.motorcycle", "motorcycle"),
    ("human.pedestrian.adult", "pedestrian"),
    ("human.pedestrian.child", "pedestrian"),
    ("human.pedestrian.construction_worker", "pedestrian"),
    ("human.pedestrian.police_officer", "pedestrian"),
    ("movable_object.trafficcone", "traffic_cone"),
    ("vehicle.trailer", "trailer"),
    ("vehicle.truck", "truck"),
)
CATEGORY_TO_CLASS: dict[str, str] = dict(_CATEGORY_PREFIX_TO_CLASS)


def category_to_class(category: str) -> str | None:
    """nuScenes category name -> detection class name, or None for classes not evaluated."""
    if category in CLASS_TO_ID:  # already a detection name
        return category
    return CATEGORY_TO_CLASS.get(category)


@dataclass
class ReaderConfig:
    """What a Frame carries; defaults follow CRN (radar) and CenterPoint (LiDAR) on nuScenes."""

    radar_sweeps: int = 6  # per radar, keyframe included
    # Radar state filters (None = keep all); defaults are the devkit's RadarPointCloud defaults.
    radar_invalid_states: tuple[int, ...] | None = DEFAULT_INVALID_STATES
    radar_dynprop_states: tuple[int, ...] | None = DEFAULT_DYNPROP_STATES
    radar_ambig_states: tuple[int, ...] | None = DEFAULT_AMBIG_STATES
    # Move each older radar point by velocity * time_lag to where it is at the keyframe.
    radar_motion_compensation: bool = False
    radar_min_distance: float = 0.0
    # Use only sweeps captured at or before the keyframe, as the live node can (the devkit starts at
    # the radar's key sample_data, which can be some ms after the keyframe).
    radar_only_past: bool = False
    # Parse radar PCDs with the devkit's RadarPointCloud.from_file (identical result, ~5x slower).
    radar_devkit_parser: bool = False  # the devkit's multisweep drops |x|,|y| < 1 m in the radar frame
    load_lidar: bool = True
    lidar_sweeps: int = 10
    lidar_min_distance: float = 1.0  # drop returns from the ego roof, as the devkit's multisweep
    # Datasets downloaded without sweeps (keyframes only): use what is there instead of failing.
    skip_missing_sweeps: bool = True
    load_images: bool = True
    # cam_to_ego = calibration only (what the live pipeline and the fixed BEV-pool geometry use);
    # True folds in the ego motion between each camera's capture and the keyframe (BEVDepth style).
    camera_ego_motion: bool = False
    image_downscale: int = 1  # 1, 2, 4 or 8: JPEG DCT-domain reduced decode (PIL draft)
    load_gt: bool = True
    filter_empty_boxes: bool = True  # drop GT with num_lidar_pts + num_radar_pts == 0 (as DetectionEval)
    nan_velocity_to_zero: bool = True  # single-annotation tracks have no velocity (nan in the devkit)
    # Sample the keyframe ego pose from this channel's key sample_data (LIDAR_TOP as the devkit).
    reference_channel: str = LIDAR_NAME
    radar_names: tuple[str, ...] = RADAR_NAMES
    camera_names: tuple[str, ...] = CAMERA_NAMES


# --------------------------------------------------------------------------------------------- math
def quat_to_rotmat(q) -> np.ndarray:
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def record_to_matrix(record: dict) -> np.ndarray:
    """calibrated_sensor / ego_pose record -> 4x4 child->parent (sensor->ego, ego->global)."""
    m = np.eye(4)
    m[:3, :3] = quat_to_rotmat(record["rotation"])
    m[:3, 3] = record["translation"]
    return m


def invert_rigid(m: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = m[:3, :3].T
    out[:3, 3] = -m[:3, :3].T @ m[:3, 3]
    return out


def rotmat_yaw(r: np.ndarray) -> float:
    """Heading of the rotated x axis (the devkit's quaternion_yaw)."""
    return float(np.arctan2(r[1, 0], r[0, 0]))


def instance_track_id(instance_token: str) -> int:
    """Stable non-negative int64 for an instance token (same on every machine and split)."""
    return int.from_bytes(hashlib.blake2b(instance_token.encode(), digest_size=8).digest(), "little") >> 1


_CONDITION_RE = re.compile(r"condition\s*=\s*([A-Za-z_]+)")


def parse_condition(description: str) -> str:
    """``condition=night`` as our world writes it; else nuScenes' free text ("Night, rain, ...")."""
    m = _CONDITION_RE.search(description or "")
    if m:
        return m.group(1).lower()
    text = (description or "").lower()
    if "night" in text:
        return "night"
    if "rain" in text:
        return "rain"
    return "day"


# ------------------------------------------------------------------------------------------ tables
_NUSC_CACHE: dict[tuple[str, str], Any] = {}


def get_nuscenes(dataroot: str | Path, version: str, verbose: bool = False):
    """The devkit's NuScenes for (dataroot, version), built once per process."""
    key = (os.path.abspath(str(dataroot)), version)
    nusc = _NUSC_CACHE.get(key)
    if nusc is None:
        nusc = NuScenes(version=version, dataroot=key[0], verbose=verbose)
        _NUSC_CACHE[key] = nusc
    return nusc


def split_file_candidates(dataroot: str | Path, version: str) -> list[Path]:
    root = Path(dataroot)
    return [root / version / "splits.json", root / "splits.json", root / version / "split.json", root / "split.json"]


def load_split_scenes(dataroot: str | Path, version: str, split: str) -> list[str]:
    """Scene names of ``split``: from the dataset's split file (our world writes one) or the devkit's."""
    for path in split_file_candidates(dataroot, version):
        if path.is_file():
            table = json.loads(path.read_text())
            if table.get("version", version) != version:  # a split file of another table version
                continue
            table = table.get("splits", table)
            if split in table and isinstance(table[split], list):
                return list(table[split])

    splits = create_splits_scenes(verbose=False)
    if split not in splits:
        raise KeyError(f"unknown split {split!r}: not in a split file under {dataroot} nor the devkit's splits")
    return list(splits[split])


# ------------------------------------------------------------------------------------------ reader
class NuScenesReader:
    """Sample token -> Frame for a nuScenes-format dataset (real or synthetic)."""

    def __init__(self, dataroot: str | Path, version: str, config: ReaderConfig | None = None, nusc=None):
        self.dataroot = Path(dataroot)
        self.version = version
        self.config = config or ReaderConfig()
        self.nusc = nusc if nusc is not None else get_nuscenes(dataroot, version)
        self._sample_scene: dict[str, dict] = {}
        self._matrix_cache: dict[str, np.ndarray] = {}
        for scene in self.nusc.scene:
            token = scene["first_sample_token"]
            while token:
                self._sample_scene[token] = scene
                token = self.nusc.get("sample", token)["next"]

    # ---- indexing
    def scene_names(self) -> list[str]:
        return [s["name"] for s in self.nusc.scene]

    def scene_by_name(self, name: str) -> dict:
        for s in self.nusc.scene:
            if s["name"] == name:
                return s
        raise KeyError(f"no scene {name!r} in {self.dataroot} ({self.version})")

    def scene_sample_tokens(self, scene: dict | str) -> list[str]:
        if isinstance(scene, str):
            scene = self.scene_by_name(scene)
        tokens, token = [], scene["first_sample_token"]
        while token:
            tokens.append(token)
            token = self.nusc.get("sample", token)["next"]
        return tokens

    def sample_tokens(self, split: str | None = None, scenes: list[str] | None = None) -> list[str]:
        """Keyframe tokens in scene order then time; ``split`` by name, or explicit scene names."""
        if split is not None:
            scenes = load_split_scenes(self.dataroot, self.version, split)
        wanted = None if scenes is None else set(scenes)
        out: list[str] = []
        for s in self.nusc.scene:
            if wanted is None or s["name"] in wanted:
                out.extend(self.scene_sample_tokens(s))
        return out

    # ---- geometry helpers
    def sensor_to_ego(self, sd: dict) -> np.ndarray:
        """Calibration (few records: cached; callers must not modify the returned array)."""
        token = sd["calibrated_sensor_token"]
        m = self._matrix_cache.get(token)
        if m is None:
            m = self._matrix_cache[token] = record_to_matrix(self.nusc.get("calibrated_sensor", token))
        return m

    def ego_to_global(self, sd: dict) -> np.ndarray:
        """Ego pose at the sample_data's time (one per sample_data: not cached, it is cheap)."""
        return record_to_matrix(self.nusc.get("ego_pose", sd["ego_pose_token"]))

    def reference_sample_data(self, sample: dict) -> dict:
        chan = self.config.reference_channel
        if chan not in sample["data"]:
            chan = next(c for c in (LIDAR_NAME, *CAMERA_NAMES) if c in sample["data"])
        return self.nusc.get("sample_data", sample["data"][chan])

    def keyframe_ego_to_global(self, sample: dict) -> np.ndarray:
        return self.ego_to_global(self.reference_sample_data(sample))

    def _sweeps(self, sample: dict, channel: str, n: int, not_after: int | None = None) -> list[dict]:
        """The key sample_data of ``channel`` and up to n-1 earlier ones (following ``prev``).

        ``not_after`` (us): start instead from the newest sample_data at or before that time.
        """
        if channel not in sample["data"] or n <= 0:
            return []
        sd = self.nusc.get("sample_data", sample["data"][channel])
        if not_after is not None:
            while sd["timestamp"] > not_after and sd["prev"]:
                sd = self.nusc.get("sample_data", sd["prev"])
            if sd["timestamp"] > not_after:
                return []
        out = [sd]
        while len(out) < n and sd["prev"]:
            sd = self.nusc.get("sample_data", sd["prev"])
            out.append(sd)
        if self.config.skip_missing_sweeps:
            out = [out[0]] + [s for s in out[1:] if self._path(s).is_file()]
        return out

    def _path(self, sd: dict) -> Path:
        return self.dataroot / sd["filename"]

    # ---- modalities
    def _radar_points(self, path: Path) -> np.ndarray:
        cfg = self.config
        states = (cfg.radar_invalid_states, cfg.radar_dynprop_states, cfg.radar_ambig_states)
        if not cfg.radar_devkit_parser:
            return load_radar_points(path, *states)

        everything = list(range(256))  # the devkit has no "keep all": None means its defaults
        return RadarPointCloud.from_file(str(path), *[everything if s is None else list(s) for s in states]).points

    def load_radar(self, sample: dict, global_to_key: np.ndarray | None = None) -> np.ndarray:
        """(P, len(RADAR_FEATURES)) float32 in the keyframe ego frame, all radars, multi-sweep."""
        cfg = self.config
        if global_to_key is None:
            global_to_key = invert_rigid(self.keyframe_ego_to_global(sample))
        t_key = sample["timestamp"]
        chunks = []
        for radar in cfg.radar_names:
            not_after = t_key if cfg.radar_only_past else None
            for k, sd in enumerate(self._sweeps(sample, radar, cfg.radar_sweeps, not_after)):
                pts = self._radar_points(self._path(sd))
                if cfg.radar_min_distance > 0:
                    r = cfg.radar_min_distance
                    pts = pts[:, ~((np.abs(pts[0]) < r) & (np.abs(pts[1]) < r))]
                if pts.shape[1] == 0:
                    continue
                m = global_to_key @ self.ego_to_global(sd) @ self.sensor_to_ego(sd)
                xyz = pts[:3].T @ m[:3, :3].T + m[:3, 3]
                vel = np.stack([pts[8], pts[9], np.zeros_like(pts[8])], axis=1) @ m[:3, :3].T
                lag = (t_key - sd["timestamp"]) * 1e-6
                if cfg.radar_motion_compensation:
                    xyz[:, :2] += vel[:, :2] * lag
                n = pts.shape[1]
                chunks.append(
                    np.column_stack(
                        [xyz, pts[5], vel[:, 0], vel[:, 1], np.full(n, lag), np.full(n, float(k))]
                    ).astype(np.float32)
                )
        if not chunks:
            return np.zeros((0, len(RADAR_FEATURES)), np.float32)
        return np.concatenate(chunks, axis=0)

    def load_lidar(self, sample: dict, global_to_key: np.ndarray | None = None) -> np.ndarray:
        """(Q, len(LIDAR_FEATURES)) float32 in the keyframe ego frame, multi-sweep."""
        cfg = self.config
        if global_to_key is None:
            global_to_key = invert_rigid(self.keyframe_ego_to_global(sample))
        t_key = sample["timestamp"]
        chunks = []
        for sd in self._sweeps(sample, LIDAR_NAME, cfg.lidar_sweeps):
            pts = load_lidar_bin(self._path(sd))
            if cfg.lidar_min_distance > 0:
                r = cfg.lidar_min_distance
                pts = pts[~((np.abs(pts[:, 0]) < r) & (np.abs(pts[:, 1]) < r))]
            m = global_to_key @ self.ego_to_global(sd) @ self.sensor_to_ego(sd)
            xyz = pts[:, :3].astype(np.float64) @ m[:3, :3].T + m[:3, 3]
            lag = np.full(len(pts), (t_key - sd["timestamp"]) * 1e-6)
            chunks.append(np.column_stack([xyz, pts[:, 3], lag]).astype(np.float32))
        if not chunks:
            return np.zeros((0, len(LIDAR_FEATURES)), np.float32)
        return np.concatenate(chunks, axis=0)

    def load_image(self, sd: dict) -> tuple[np.ndarray, float, float]:
        """RGB uint8 image and the (sx, sy) scale applied by a reduced decode."""
        with Image.open(self._path(sd)) as opened:
            img: Image.Image = opened
            w0, h0 = img.size
            s = self.config.image_downscale
            if s > 1 and img.format == "JPEG":
                img.draft("RGB", (max(1, w0 // s), max(1, h0 // s)))
            elif s > 1:
                img = img.resize((max(1, w0 // s), max(1, h0 // s)), Image.Resampling.BILINEAR)
            arr = np.asarray(img.convert("RGB"))
        return arr, arr.shape[1] / w0, arr.shape[0] / h0

    def load_cameras(self, sample: dict) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
        cfg = self.config
        ncam = len(cfg.camera_names)
        images: list[np.ndarray] = []
        intr = np.tile(np.eye(3, dtype=np.float32), (ncam, 1, 1))
        c2e = np.tile(np.eye(4, dtype=np.float32), (ncam, 1, 1))
        valid = np.zeros(ncam, dtype=bool)
        for i, cam in enumerate(cfg.camera_names):
            sd = self.nusc.get("sample_data", sample["data"][cam]) if cam in sample["data"] else None
            if sd is None:
                s = max(1, cfg.image_downscale)
                images.append(np.zeros((900 // s, 1600 // s, 3), np.uint8))
                continue
            cs = self.nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
            k = np.array(cs["camera_intrinsic"], dtype=np.float64)
            c2e[i] = self.sensor_to_ego(sd)
            sx = sy = 1.0
            path = self._path(sd)
            if cfg.load_images and path.is_file():
                img, sx, sy = self.load_image(sd)
                valid[i] = True
            else:
                s = max(1, cfg.image_downscale)
                h, w = int(sd.get("height") or 900) // s, int(sd.get("width") or 1600) // s
                img = np.zeros((h, w, 3), np.uint8)
                sx = sy = 1.0 / s
                valid[i] = not cfg.load_images and path.is_file()
            k[0] *= sx
            k[1] *= sy
            intr[i] = k
            images.append(img)
        return images, intr, c2e, valid

    def gt_boxes(self, sample: dict | str, global_to_key: np.ndarray | None = None) -> tuple[Boxes, list[str]]:
        """Ground truth in the keyframe ego frame and the instance tokens of the kept boxes."""
        boxes, instances, _ = self.gt_annotations(sample, global_to_key)
        return boxes, instances

    def gt_annotations(
        self, sample: dict | str, global_to_key: np.ndarray | None = None
    ) -> tuple[Boxes, list[str], np.ndarray]:
        """``gt_boxes`` plus each box's num_lidar_pts + num_radar_pts (DetectionEval's filter input)."""
        rec: dict = self.nusc.get("sample", sample) if isinstance(sample, str) else sample
        cfg = self.config
        if global_to_key is None:
            global_to_key = invert_rigid(self.keyframe_ego_to_global(rec))
        rot = global_to_key[:3, :3]
        rows = []
        for ann_token in rec["anns"]:
            ann = self.nusc.get("sample_annotation", ann_token)
            cls = category_to_class(ann["category_name"])
            if cls is None:
                continue
            if cfg.filter_empty_boxes and ann["num_lidar_pts"] + ann["num_radar_pts"] == 0:
                continue
            center = rot @ np.asarray(ann["translation"], np.float64) + global_to_key[:3, 3]
            yaw = rotmat_yaw(rot @ quat_to_rotmat(ann["rotation"]))
            vel = rot @ np.asarray(self.nusc.box_velocity(ann_token), np.float64)
            if cfg.nan_velocity_to_zero:
                vel = np.nan_to_num(vel, nan=0.0)
            attr = NO_ATTRIBUTE
            if ann["attribute_tokens"]:
                attr = ATTR_TO_ID.get(self.nusc.get("attribute", ann["attribute_tokens"][0])["name"], NO_ATTRIBUTE)
            rows.append((center, ann["size"], yaw, vel[:2], CLASS_TO_ID[cls], attr, ann["instance_token"],
                         ann["num_lidar_pts"] + ann["num_radar_pts"]))
        if not rows:
            boxes = Boxes.empty()
            boxes.track_ids = np.zeros((0,), np.int64)
            return boxes, [], np.zeros((0,), np.int64)
        boxes = Boxes(
            center=np.array([r[0] for r in rows], np.float32),
            size=np.array([r[1] for r in rows], np.float32),
            yaw=np.array([r[2] for r in rows], np.float32),
            velocity=np.array([r[3] for r in rows], np.float32),
            labels=np.array([r[4] for r in rows], np.int64),
            scores=np.ones(len(rows), np.float32),
            attributes=np.array([r[5] for r in rows], np.int64),
            track_ids=np.array([instance_track_id(r[6]) for r in rows], np.int64),
        )
        return boxes, [r[6] for r in rows], np.array([r[7] for r in rows], np.int64)

    def scene_of(self, sample_token: str) -> dict:
        return self._sample_scene[sample_token]

    # ---- the frame
    def frame(self, sample_token: str) -> Frame:
        cfg = self.config
        sample = self.nusc.get("sample", sample_token)
        ref_sd = self.reference_sample_data(sample)
        ego_to_global = self.ego_to_global(ref_sd)
        global_to_key = invert_rigid(ego_to_global)
        images, intr, c2e, valid = self.load_cameras(sample)
        cam_times, cam_motion = [], np.tile(np.eye(4), (len(cfg.camera_names), 1, 1))
        for i, cam in enumerate(cfg.camera_names):
            if cam in sample["data"]:
                sd = self.nusc.get("sample_data", sample["data"][cam])
                cam_times.append(int(sd["timestamp"]))
                cam_motion[i] = global_to_key @ self.ego_to_global(sd)
            else:
                cam_times.append(0)
        if cfg.camera_ego_motion:
            c2e = (cam_motion @ c2e.astype(np.float64)).astype(np.float32)
        radar = self.load_radar(sample, global_to_key)
        lidar = self.load_lidar(sample, global_to_key) if cfg.load_lidar else None
        gt, instance_tokens, num_pts = (
            self.gt_annotations(sample, global_to_key) if cfg.load_gt else (None, [], np.zeros((0,), np.int64))
        )
        scene = self._sample_scene[sample_token]
        log = self.nusc.get("log", scene["log_token"]) if scene.get("log_token") else {}
        meta = {
            "sample_token": sample_token,
            "scene": scene["name"],
            "scene_token": scene["token"],
            "description": scene.get("description", ""),
            "condition": parse_condition(scene.get("description", "")),
            "location": log.get("location", ""),
            "timestamp_us": int(sample["timestamp"]),
            "ego_to_global": ego_to_global.copy(),
            "reference_token": ref_sd["token"],
            "camera_tokens": [sample["data"].get(c, "") for c in cfg.camera_names],
            "camera_timestamps_us": cam_times,
            "camera_ego_motion": cam_motion,  # (6, 4, 4) ego at capture -> keyframe ego
            "instance_tokens": instance_tokens,
            "gt_num_pts": num_pts,  # lidar + radar points per GT box (evaluation's DetectionEval filter)
            "image_downscale": cfg.image_downscale,
        }
        return Frame(
            timestamp_us=int(sample["timestamp"]),
            images=images,
            intrinsics=intr,
            cam_to_ego=c2e,
            camera_valid=valid,
            radar=radar,
            lidar=lidar,
            gt=gt,
            meta=meta,
        )


# ----------------------------------------------------------------------------------- torch dataset
try:
    from torch.utils.data import Dataset as _TorchDataset
except ImportError:  # the reader itself does not need torch
    _TorchDataset = object  # type: ignore[assignment,misc]


@dataclass
class DatasetSpec:
    dataroot: str
    version: str
    split: str | None = None  # split-file / devkit split name; None = every scene
    scenes: list[str] | None = None
    config: ReaderConfig = field(default_factory=ReaderConfig)


class NuScenesDataset(_TorchDataset):
    """Frames of a split as a map-style torch Dataset; ``transform`` turns a Frame into model input.

    Pickles without the NuScenes tables (workers rebuild them once each, through get_nuscenes).
    """

    def __init__(
        self,
        dataroot: str | Path,
        version: str,
        split: str | None = None,
        config: ReaderConfig | None = None,
        transform=None,
        scenes: list[str] | None = None,
    ):
        self.spec = DatasetSpec(str(dataroot), version, split, scenes, config or ReaderConfig())
        self.transform = transform
        self._reader: NuScenesReader | None = None
        self.tokens = self.reader.sample_tokens(split=split, scenes=scenes)

    @property
    def reader(self) -> NuScenesReader:
        if self._reader is None:
            self._reader = NuScenesReader(self.spec.dataroot, self.spec.version, self.spec.config)
        return self._reader

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, index: int):
        frame = self.reader.frame(self.tokens[index])
        return self.transform(frame) if self.transform is not None else frame

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_reader"] = None
        return state


def collate_frames(batch: list) -> list:
    """Frames differ in point counts and box counts: batch them as a list (the model pads)."""
    return list(batch)
