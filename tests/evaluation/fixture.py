"""A small nuScenes-format dataset (the 13 tables, no sensor files) for the evaluation tests.

Only what DetectionEval reads: scenes (with ``condition=...`` descriptions), samples, one key
LIDAR_TOP sample_data per sample with its ego pose (the ego drives and turns, so the global and ego
frames differ), and annotations whose instances span several samples (velocities from prev/next),
plus the cases the devkit filters: boxes with 0 points, boxes beyond the class range, a category
that is no detection class, a single-annotation instance (nan velocity).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

DT_US = 500_000
T0 = 1_600_000_000_000_000

# (detection category, attribute or "", size (w, l, h))
OBJECT_KINDS = (
    ("vehicle.car", "vehicle.moving", (1.9, 4.5, 1.6)),
    ("vehicle.car", "vehicle.parked", (1.8, 4.2, 1.5)),
    ("vehicle.truck", "vehicle.moving", (2.5, 7.0, 3.0)),
    ("human.pedestrian.adult", "pedestrian.moving", (0.7, 0.6, 1.8)),
    ("vehicle.bicycle", "cycle.with_rider", (0.6, 1.7, 1.4)),
    ("movable_object.barrier", "", (2.0, 0.5, 1.0)),
    ("movable_object.trafficcone", "", (0.4, 0.4, 0.8)),
)
ATTRIBUTE_NAMES = ("vehicle.moving", "vehicle.parked", "vehicle.stopped", "cycle.with_rider",
                   "cycle.without_rider", "pedestrian.moving", "pedestrian.standing",
                   "pedestrian.sitting_lying_down")
CATEGORY_NAMES = ("vehicle.car", "vehicle.truck", "human.pedestrian.adult", "vehicle.bicycle",
                  "movable_object.barrier", "movable_object.trafficcone", "animal")


def tok(*parts) -> str:
    return hashlib.md5("/".join(map(str, parts)).encode()).hexdigest()


def yaw_quat(yaw: float) -> list[float]:
    return [float(np.cos(yaw / 2)), 0.0, 0.0, float(np.sin(yaw / 2))]


def build(root: Path, version: str = "v1.0-evalfix",
          scenes: tuple[tuple[str, str], ...] = (("scene-e001", "day"), ("scene-e002", "night"),
                                                 ("scene-e003", "rain")),
          samples_per_scene: int = 4, objects_per_scene: int = 14, splits: dict | None = None,
          seed: int = 0) -> Path:
    """Write the dataset under ``root`` (dataroot) and return it."""
    rng = np.random.default_rng(seed)
    t: dict[str, list[dict]] = {k: [] for k in (
        "attribute", "calibrated_sensor", "category", "ego_pose", "instance", "log", "map", "sample",
        "sample_annotation", "sample_data", "scene", "sensor", "visibility")}
    t["visibility"] = [{"token": str(i), "level": lv, "description": lv}
                       for i, lv in enumerate(["v0-40", "v40-60", "v60-80", "v80-100"], start=1)]
    t["attribute"] = [{"token": tok("attr", a), "name": a, "description": ""} for a in ATTRIBUTE_NAMES]
    t["category"] = [{"token": tok("cat", c), "name": c, "description": ""} for c in CATEGORY_NAMES]
    t["sensor"] = [{"token": tok("sensor"), "channel": "LIDAR_TOP", "modality": "lidar"}]
    t["calibrated_sensor"] = [{"token": tok("cs"), "sensor_token": tok("sensor"), "translation": [0.9, 0.0, 1.8],
                               "rotation": yaw_quat(-np.pi / 2), "camera_intrinsic": []}]
    log_tokens = []
    (root / "maps").mkdir(parents=True, exist_ok=True)
    for si, (name, condition) in enumerate(scenes):
        log_token, scene_token = tok("log", name), tok("scene", name)
        log_tokens.append(log_token)
        t["log"].append({"token": log_token, "logfile": name, "vehicle": "v", "date_captured": "2020-01-01",
                         "location": "singapore-onenorth"})
        # Ego: drives at 5 m/s and turns at 0.1 rad/s from a scene-specific global pose.
        x0, y0, yaw0 = 400.0 + 300.0 * si, 900.0 - 150.0 * si, 0.4 + 1.3 * si
        times = [T0 + si * 100_000_000 + k * DT_US for k in range(samples_per_scene)]
        sample_tokens = [tok("sample", name, k) for k in range(samples_per_scene)]
        poses = []
        for k, ts in enumerate(times):
            yaw = yaw0 + 0.1 * k * DT_US * 1e-6
            x = x0 + 5.0 * k * DT_US * 1e-6 * np.cos(yaw0)
            y = y0 + 5.0 * k * DT_US * 1e-6 * np.sin(yaw0)
            poses.append((np.array([x, y, 0.0]), yaw))
            ep, sd = tok("ep", name, k), tok("sd", name, k)
            t["ego_pose"].append({"token": ep, "timestamp": ts, "translation": [float(x), float(y), 0.0],
                                  "rotation": yaw_quat(yaw)})
            t["sample"].append({"token": sample_tokens[k], "timestamp": ts, "scene_token": scene_token,
                                "prev": sample_tokens[k - 1] if k else "",
                                "next": sample_tokens[k + 1] if k + 1 < samples_per_scene else ""})
            t["sample_data"].append({
                "token": sd, "sample_token": sample_tokens[k], "ego_pose_token": ep,
                "calibrated_sensor_token": tok("cs"),
                "timestamp": ts, "fileformat": "pcd", "is_key_frame": True, "height": 0, "width": 0,
                "filename": f"samples/LIDAR_TOP/{name}_{k}.pcd.bin",
                "prev": tok("sd", name, k - 1) if k else "",
                "next": tok("sd", name, k + 1) if k + 1 < samples_per_scene else ""})
        # Objects: placed around the first ego pose, constant global velocity.
        p0, yaw_e = poses[0]
        c, s = np.cos(yaw_e), np.sin(yaw_e)
        for oi in range(objects_per_scene + 2):
            if oi < objects_per_scene:
                cat, attr, size = OBJECT_KINDS[oi % len(OBJECT_KINDS)]
                dist = 4.0 + 44.0 * (oi + 0.5) / objects_per_scene  # 4 .. 48 m: every band populated
            else:  # an animal (not evaluated) and a far car (beyond its 50 m class range)
                cat, attr, size = (("animal", "", (0.5, 1.0, 0.5)), ("vehicle.car", "vehicle.parked",
                                                                       (1.9, 4.5, 1.6)))[oi - objects_per_scene]
                dist = 10.0 if cat == "animal" else 58.0
            bearing = rng.uniform(-np.pi, np.pi)
            local = np.array([dist * np.cos(bearing), dist * np.sin(bearing)])
            pos0 = p0[:2] + np.array([c * local[0] - s * local[1], s * local[0] + c * local[1]])
            heading = rng.uniform(-np.pi, np.pi)
            speed = 0.0 if attr in ("vehicle.parked", "") else rng.uniform(1.0, 8.0)
            vel = speed * np.array([np.cos(heading), np.sin(heading)])
            present = list(range(samples_per_scene))
            if oi == 3:  # a pedestrian seen in one sample only: nan velocity in the devkit
                present = [1]
            inst = tok("inst", name, oi)
            ann_toks = [tok("ann", name, oi, k) for k in present]
            for j, k in enumerate(present):
                dt = (times[k] - times[0]) * 1e-6
                xy = pos0 + vel * dt
                num_lidar = 0 if (oi == 5 and k == 0) else int(rng.integers(1, 50))  # one empty box
                t["sample_annotation"].append({
                    "token": ann_toks[j], "sample_token": sample_tokens[k], "instance_token": inst,
                    "visibility_token": "4", "attribute_tokens": [tok("attr", attr)] if attr else [],
                    "translation": [float(xy[0]), float(xy[1]), float(size[2] / 2)], "size": list(size),
                    "rotation": yaw_quat(heading), "prev": ann_toks[j - 1] if j else "",
                    "next": ann_toks[j + 1] if j + 1 < len(present) else "",
                    "num_lidar_pts": num_lidar, "num_radar_pts": 0})
            t["instance"].append({"token": inst, "category_token": tok("cat", cat), "nbr_annotations": len(present),
                                  "first_annotation_token": ann_toks[0], "last_annotation_token": ann_toks[-1]})
        t["scene"].append({"token": scene_token, "log_token": log_token, "nbr_samples": samples_per_scene,
                           "first_sample_token": sample_tokens[0], "last_sample_token": sample_tokens[-1],
                           "name": name, "description": f"condition={condition}, road=urban"})
    (root / "maps" / "evalfix.png").write_bytes(b"")
    t["map"].append({"token": tok("map"), "log_tokens": log_tokens, "category": "semantic_prior",
                     "filename": "maps/evalfix.png"})
    (root / version).mkdir(parents=True, exist_ok=True)
    for name, rows in t.items():
        (root / version / f"{name}.json").write_text(json.dumps(rows))
    if splits is not None:
        (root / version / "splits.json").write_text(json.dumps(splits))
    return root
