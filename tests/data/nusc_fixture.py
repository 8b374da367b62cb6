"""A tiny hand-made nuScenes-format dataset with known geometry, for exact reader and bag tests.

Independent of the synthetic world (imkd_ros.world) so the reader's maths is checked against
numbers we chose: one scene, 3 keyframes 0.5 s apart, sweeps at realistic rates (cameras 12 Hz,
radars 13 Hz, LiDAR 20 Hz), an ego that drives and turns, small JPEGs, radar PCDs with every state.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from imkd_ros.constants import CAMERA_NAMES, RADAR_NAMES, RADAR_PCD_FIELDS

VERSION = "v1.0-fixture"
SCENE = "scene-fix1"
T0 = 1_600_000_000_000_000  # us
RADAR_SIZES = (4, 4, 4, 1, 2, 4, 4, 4, 4, 4, 1, 1, 1, 1, 1, 1, 1, 1)
RADAR_TYPES = ("F", "F", "F", "I", "I", "F", "F", "F", "F", "F", "I", "I", "I", "I", "I", "I", "I", "I")
IMG_W, IMG_H = 160, 96


def _tok(*parts) -> str:
    return hashlib.md5("/".join(map(str, parts)).encode()).hexdigest()


def _yaw_quat(yaw: float) -> list[float]:
    return [float(np.cos(yaw / 2)), 0.0, 0.0, float(np.sin(yaw / 2))]


def _rotmat_to_quat(m: np.ndarray) -> list[float]:
    w = np.sqrt(max(0.0, 1 + m[0, 0] + m[1, 1] + m[2, 2])) / 2
    x = np.copysign(np.sqrt(max(0.0, 1 + m[0, 0] - m[1, 1] - m[2, 2])) / 2, m[2, 1] - m[1, 2])
    y = np.copysign(np.sqrt(max(0.0, 1 - m[0, 0] + m[1, 1] - m[2, 2])) / 2, m[0, 2] - m[2, 0])
    z = np.copysign(np.sqrt(max(0.0, 1 - m[0, 0] - m[1, 1] + m[2, 2])) / 2, m[1, 0] - m[0, 1])
    return [float(w), float(x), float(y), float(z)]


def camera_quat(yaw: float) -> list[float]:
    c, s = np.cos(yaw), np.sin(yaw)
    body = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    optical_to_body = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    return _rotmat_to_quat(body @ optical_to_body)


def ego_pose_at(t_us: int) -> tuple[list[float], list[float]]:
    """Ego drives at 8 m/s while turning at 0.2 rad/s; returns (translation, rotation)."""
    t = (t_us - T0) * 1e-6
    yaw = 0.3 + 0.2 * t
    # integrate heading analytically: x' = v cos(yaw), y' = v sin(yaw)
    v, w = 8.0, 0.2
    x = 100 + v / w * (np.sin(yaw) - np.sin(0.3))
    y = 50 - v / w * (np.cos(yaw) - np.cos(0.3))
    return [float(x), float(y), 0.0], _yaw_quat(yaw)


CAM_YAWS = {"CAM_FRONT": 0.0, "CAM_FRONT_RIGHT": -0.96, "CAM_BACK_RIGHT": -1.9, "CAM_BACK": np.pi,
            "CAM_BACK_LEFT": 1.9, "CAM_FRONT_LEFT": 0.96}
RADAR_POSES = {"RADAR_FRONT": (3.4, 0.0, 0.0), "RADAR_FRONT_LEFT": (2.4, 0.8, 1.5),
               "RADAR_FRONT_RIGHT": (2.4, -0.8, -1.5), "RADAR_BACK_LEFT": (-0.5, 0.9, 3.0),
               "RADAR_BACK_RIGHT": (-0.5, -0.9, -3.0)}


def radar_pcd_bytes(points: np.ndarray) -> bytes:
    dtype = np.dtype([(n, f"<{'f' if t == 'F' else 'i'}{s}") for n, t, s in zip(RADAR_PCD_FIELDS, RADAR_TYPES,
                                                                                 RADAR_SIZES)])
    arr = np.zeros(len(points), dtype)
    for i, n in enumerate(RADAR_PCD_FIELDS):
        arr[n] = points[:, i]
    header = "\n".join([
        "# .PCD v0.7 - Point Cloud Data file format", "VERSION 0.7", "FIELDS " + " ".join(RADAR_PCD_FIELDS),
        "SIZE " + " ".join(map(str, RADAR_SIZES)), "TYPE " + " ".join(RADAR_TYPES), "COUNT " + " ".join(["1"] * 18),
        f"WIDTH {len(points)}", "HEIGHT 1", "VIEWPOINT 0 0 0 1 0 0 0", f"POINTS {len(points)}", "DATA binary",
    ]) + "\n"
    # nuScenes files end with one more byte after the records (the devkit's reader relies on it)
    return header.encode() + arr.tobytes() + b"\n"


def make_radar_points(rng: np.random.Generator, n: int = 12) -> np.ndarray:
    pts = np.zeros((n, 18))
    pts[:, 0] = rng.uniform(2, 60, n)
    pts[:, 1] = rng.uniform(-10, 10, n)
    pts[:, 3] = rng.integers(0, 8, n)  # dyn_prop
    pts[:, 4] = np.arange(n)
    pts[:, 5] = rng.uniform(-5, 20, n)  # rcs
    pts[:, 6:10] = rng.uniform(-5, 5, (n, 4))
    pts[:, 10] = 1
    pts[:, 11] = rng.choice([1, 3, 3, 3, 4], n)  # ambig_state
    pts[:, 12:14] = 3
    pts[:, 14] = rng.choice([0, 0, 0, 1, 4], n)  # invalid_state
    pts[:, 15] = 1
    pts[:, 16:18] = 2
    return pts


def build(root: Path, condition: str = "night") -> Path:
    """Write the fixture under ``root`` and return it (dataroot)."""
    rng = np.random.default_rng(0)
    tables: dict[str, list[dict]] = {k: [] for k in (
        "attribute", "calibrated_sensor", "category", "ego_pose", "instance", "log", "map", "sample",
        "sample_annotation", "sample_data", "scene", "sensor", "visibility")}
    log_token, scene_token = _tok("log"), _tok("scene")
    tables["log"].append({"token": log_token, "logfile": "fix", "vehicle": "v", "date_captured": "2020-01-01",
                          "location": "singapore-onenorth"})
    (root / "maps").mkdir(parents=True, exist_ok=True)
    (root / "maps" / "fix.png").write_bytes(b"")
    tables["map"].append({"token": _tok("map"), "log_tokens": [log_token], "category": "semantic_prior",
                          "filename": "maps/fix.png"})
    tables["visibility"] = [{"token": str(i), "level": lv, "description": lv} for i, lv in
                            enumerate(["v0-40", "v40-60", "v60-80", "v80-100"], start=1)]
    attrs = ["vehicle.moving", "pedestrian.moving"]
    for a in attrs:
        tables["attribute"].append({"token": _tok("attr", a), "name": a, "description": ""})
    cats = ["vehicle.car", "human.pedestrian.adult", "animal"]
    for c in cats:
        tables["category"].append({"token": _tok("cat", c), "name": c, "description": ""})

    # Sensors + calibration.
    calib: dict[str, str] = {}
    channels = [*CAMERA_NAMES, *RADAR_NAMES, "LIDAR_TOP"]
    for ch in channels:
        modality = "camera" if ch.startswith("CAM") else "radar" if ch.startswith("RADAR") else "lidar"
        st = _tok("sensor", ch)
        tables["sensor"].append({"token": st, "channel": ch, "modality": modality})
        if modality == "camera":
            yaw = CAM_YAWS[ch]
            tr = [1.5 * np.cos(yaw) + 0.5, 1.0 * np.sin(yaw), 1.6]
            rot, k = camera_quat(yaw), [[80.0, 0, 80.0], [0, 80.0, 48.0], [0, 0, 1]]
        elif modality == "radar":
            x, y, yaw = RADAR_POSES[ch]
            tr, rot, k = [x, y, 0.5], _yaw_quat(yaw), []
        else:
            tr, rot, k = [0.94, 0.0, 1.84], _yaw_quat(-np.pi / 2), []
        calib[ch] = _tok("cs", ch)
        tables["calibrated_sensor"].append({"token": calib[ch], "sensor_token": st,
                                            "translation": [float(v) for v in tr], "rotation": rot,
                                            "camera_intrinsic": k})

    # Samples at LiDAR keyframes.
    n_samples = 3
    sample_times = [T0 + 250_000 + i * 500_000 for i in range(n_samples)]
    sample_tokens = [_tok("sample", i) for i in range(n_samples)]
    for i, (tok, t) in enumerate(zip(sample_tokens, sample_times)):
        tables["sample"].append({"token": tok, "timestamp": t, "scene_token": scene_token,
                                 "prev": sample_tokens[i - 1] if i else "",
                                 "next": sample_tokens[i + 1] if i + 1 < n_samples else ""})
    t_end = sample_times[-1] + 200_000
    rates = {"camera": 12.0, "radar": 13.0, "lidar": 20.0}
    for ch in channels:
        modality = next(s["modality"] for s in tables["sensor"] if s["channel"] == ch)
        offset = {"camera": 7_000, "radar": 3_000, "lidar": 0}[modality] + (channels.index(ch) * 911 % 5000)
        if modality == "lidar":
            offset = 250_000 % 50_000
        times = list(range(T0 + offset, t_end, int(1e6 / rates[modality])))
        keys = {int(np.argmin([abs(tt - ts) for tt in times])): s for s, ts in enumerate(sample_times)}
        toks = [_tok("sd", ch, j) for j in range(len(times))]
        for j, t in enumerate(times):
            nearest = int(np.argmin([abs(ts - t) for ts in sample_times]))
            is_key = j in keys
            sub = ("samples" if is_key else "sweeps") + f"/{ch}"
            (root / sub).mkdir(parents=True, exist_ok=True)
            ep = _tok("ep", ch, j)
            tr, rot = ego_pose_at(t)
            tables["ego_pose"].append({"token": ep, "timestamp": t, "translation": tr, "rotation": rot})
            if modality == "camera":
                fn = f"{sub}/{ch}_{t}.jpg"
                img = np.zeros((IMG_H, IMG_W, 3), np.uint8)
                img[..., 0] = (j * 20) % 255
                img[..., 1] = np.linspace(0, 255, IMG_W, dtype=np.uint8)[None, :]
                img[..., 2] = CAMERA_NAMES.index(ch) * 40
                buf = io.BytesIO()
                Image.fromarray(img).save(buf, format="JPEG", quality=90)
                (root / fn).write_bytes(buf.getvalue())
                w, h = IMG_W, IMG_H
            elif modality == "radar":
                fn = f"{sub}/{ch}_{t}.pcd"
                (root / fn).write_bytes(radar_pcd_bytes(make_radar_points(rng)))
                w = h = 0
            else:
                fn = f"{sub}/{ch}_{t}.pcd.bin"
                n = 400
                pts = np.zeros((n, 5), np.float32)
                pts[:, 0] = rng.uniform(-40, 40, n)
                pts[:, 1] = rng.uniform(-40, 40, n)
                pts[:, 2] = rng.uniform(-2, 1, n)
                pts[:, 3] = rng.uniform(0, 100, n)
                pts[:, 4] = rng.integers(0, 32, n)
                pts[:5, :2] = 0.3  # on the roof: removed by min_distance
                pts.tofile(root / fn)
                w = h = 0
            tables["sample_data"].append({
                "token": toks[j], "sample_token": sample_tokens[keys.get(j, nearest)], "ego_pose_token": ep,
                "calibrated_sensor_token": calib[ch], "timestamp": t, "fileformat": fn.split(".", 1)[1],
                "is_key_frame": is_key, "height": h, "width": w, "filename": fn,
                "prev": toks[j - 1] if j else "", "next": toks[j + 1] if j + 1 < len(times) else "",
            })

    # Annotations: a car driving (velocity from prev/next), a pedestrian, an empty box, an animal.
    objects = [
        ("vehicle.car", "vehicle.moving", [4.5, 1.9, 1.6], lambda t: ([120 + 10 * t, 58 + 1 * t, 0.8], 0.1), 30, 2),
        ("human.pedestrian.adult", "pedestrian.moving", [0.7, 0.6, 1.8], lambda t: ([110, 40 + 1.2 * t, 0.9], 1.57),
         5, 0),
        ("vehicle.car", "", [4.2, 1.8, 1.5], lambda t: ([90, 70, 0.8], -0.5), 0, 0),  # no points: filtered
        ("animal", "", [1.0, 0.5, 0.5], lambda t: ([105, 45, 0.3], 0.0), 4, 0),  # not a detection class
    ]
    for k, (cat, attr, size, traj, nl, nr) in enumerate(objects):
        inst = _tok("inst", k)
        ann_toks = [_tok("ann", k, i) for i in range(n_samples)]
        for i, t in enumerate(sample_times):
            pos, yaw = traj((t - T0) * 1e-6)
            tables["sample_annotation"].append({
                "token": ann_toks[i], "sample_token": sample_tokens[i], "instance_token": inst,
                "visibility_token": "4", "attribute_tokens": [_tok("attr", attr)] if attr else [],
                "translation": [float(v) for v in pos], "size": size, "rotation": _yaw_quat(yaw),
                "prev": ann_toks[i - 1] if i else "", "next": ann_toks[i + 1] if i + 1 < n_samples else "",
                "num_lidar_pts": nl, "num_radar_pts": nr,
            })
        tables["instance"].append({"token": inst, "category_token": _tok("cat", cat), "nbr_annotations": n_samples,
                                   "first_annotation_token": ann_toks[0], "last_annotation_token": ann_toks[-1]})
    tables["scene"].append({"token": scene_token, "log_token": log_token, "nbr_samples": n_samples,
                            "first_sample_token": sample_tokens[0], "last_sample_token": sample_tokens[-1],
                            "name": SCENE, "description": f"condition={condition}, road=urban"})
    (root / VERSION).mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        (root / VERSION / f"{name}.json").write_text(json.dumps(rows))
    return root
