"""End to end: ``imkd data synth`` writes a dataset the nuScenes devkit loads and evaluates."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from nuscenes.eval.detection.config import config_factory
from nuscenes.eval.detection.evaluate import DetectionEval
from nuscenes.eval.detection.utils import category_to_detection_name
from nuscenes.nuscenes import NuScenes

from imkd_ros.cli import main as imkd_main
from imkd_ros.constants import CAMERA_NAMES, CLASS_TO_CATEGORY, LIDAR_NAME, RADAR_NAMES
from imkd_ros.rig.rig import Rig
from imkd_ros.world.synth import SynthConfig, _timeline, synthesize
from imkd_ros.world.writer import TABLES

VERSION = "v1.0-synth"
TINY = ["--scenes", "2", "--scene-seconds", "1.0", "--image-scale", "0.1", "--no-progress"]


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "ds"
    assert imkd_main(["data", "synth", "--out", str(out), "--seed", "5", *TINY]) == 0
    return out


def test_devkit_loads_and_structure(tiny):
    for t in TABLES:
        assert (tiny / VERSION / f"{t}.json").is_file()
    nusc = NuScenes(version=VERSION, dataroot=str(tiny), verbose=False)
    assert len(nusc.scene) == 2 and len(nusc.sample) == 4
    channels = {*CAMERA_NAMES, *RADAR_NAMES, LIDAR_NAME}
    for sample in nusc.sample:
        assert set(sample["data"]) == channels
        lidar = nusc.get("sample_data", sample["data"][LIDAR_NAME])
        assert lidar["is_key_frame"] and lidar["timestamp"] == sample["timestamp"]
        for ch in CAMERA_NAMES:
            sd = nusc.get("sample_data", sample["data"][ch])
            assert 0 <= sd["timestamp"] - sample["timestamp"] <= 50_000  # staggered within one spin
            assert (tiny / sd["filename"]).is_file() and sd["filename"].startswith("samples/")
            assert (sd["width"], sd["height"]) == (160, 90)
    # Camera trigger times are staggered (not all equal).
    s0 = nusc.sample[0]
    assert len({nusc.get("sample_data", s0["data"][ch])["timestamp"] for ch in CAMERA_NAMES}) >= 4
    # Sweep chains: per channel, time-ordered, linked both ways, files exist.
    for ch, hz in ((LIDAR_NAME, 20), ("CAM_FRONT", 12), ("RADAR_FRONT", 13)):
        sd = nusc.get("sample_data", nusc.sample[-1]["data"][ch])
        times = []
        while sd["prev"]:
            prev = nusc.get("sample_data", sd["prev"])
            assert prev["next"] == sd["token"]
            assert (tiny / prev["filename"]).is_file()
            times.append(sd["timestamp"] - prev["timestamp"])
            sd = prev
        assert len(times) >= 8
        assert np.median(times) == pytest.approx(1e6 / hz, rel=0.05)
    # Annotations: real categories, linked tracks, counts.
    cats = {c["name"] for c in nusc.category}
    assert set(CLASS_TO_CATEGORY.values()) <= cats
    assert nusc.sample_annotation
    for ann in nusc.sample_annotation:
        assert ann["category_name"] in cats
        assert ann["num_lidar_pts"] >= 0 and ann["num_radar_pts"] >= 0
        if ann["next"]:
            nxt = nusc.get("sample_annotation", ann["next"])
            assert nxt["prev"] == ann["token"] and nxt["instance_token"] == ann["instance_token"]
        assert ann["visibility_token"] in {"1", "2", "3", "4"}
    assert any(a["num_lidar_pts"] > 0 for a in nusc.sample_annotation)
    for inst in nusc.instance:
        first = nusc.get("sample_annotation", inst["first_annotation_token"])
        assert first["prev"] == "" and first["instance_token"] == inst["token"]
    # Condition in the scene description; split file.
    assert all("condition=" in s["description"] for s in nusc.scene)
    splits = json.loads((tiny / VERSION / "splits.json").read_text())
    assert sorted(splits["train"] + splits["val"]) == sorted(s["name"] for s in nusc.scene)
    assert splits["val"] and splits["synth_val"] == splits["val"]


def test_ground_truth_velocity_matches_devkit(tiny):
    nusc = NuScenes(version=VERSION, dataroot=str(tiny), verbose=False)
    moving = [a for a in nusc.sample_annotation if a["prev"] or a["next"]]
    assert moving
    for ann in moving[:50]:
        v = nusc.box_velocity(ann["token"])
        assert np.all(np.isfinite(v[:2]))
        if nusc.get("attribute", ann["attribute_tokens"][0])["name"] == "vehicle.parked" if ann["attribute_tokens"] \
                else False:
            assert np.linalg.norm(v[:2]) < 0.1


def test_detection_eval_accepts_dataset(tiny, tmp_path):
    nusc = NuScenes(version=VERSION, dataroot=str(tiny), verbose=False)
    splits = json.loads((tiny / VERSION / "splits.json").read_text())
    scenes = set(splits["synth_val"])
    results = {}
    for sample in nusc.sample:
        if nusc.get("scene", sample["scene_token"])["name"] not in scenes:
            continue
        boxes = []
        for tok in sample["anns"]:
            ann = nusc.get("sample_annotation", tok)
            if ann["num_lidar_pts"] + ann["num_radar_pts"] == 0:
                continue  # DetectionEval drops such GT boxes
            name = category_to_detection_name(ann["category_name"])
            v = nusc.box_velocity(tok)[:2]
            attr = nusc.get("attribute", ann["attribute_tokens"][0])["name"] if ann["attribute_tokens"] else ""
            boxes.append({"sample_token": sample["token"], "translation": ann["translation"], "size": ann["size"],
                          "rotation": ann["rotation"], "velocity": [float(x) if np.isfinite(x) else 0.0 for x in v],
                          "detection_name": name, "detection_score": 1.0, "attribute_name": attr})
        results[sample["token"]] = boxes
    path = tmp_path / "results.json"
    meta = {"use_camera": True, "use_lidar": False, "use_radar": True, "use_map": False, "use_external": False}
    path.write_text(json.dumps({"meta": meta, "results": results}))
    ev = DetectionEval(nusc, config_factory("detection_cvpr_2019"), str(path), "synth_val", str(tmp_path / "eval"),
                       verbose=False)
    metrics, _ = ev.evaluate()
    present = [c for c, ap in metrics.mean_dist_aps.items() if ev.gt_boxes.all and any(
        b.detection_name == c for b in ev.gt_boxes.all)]
    assert present
    for c in present:
        assert metrics.mean_dist_aps[c] > 0.95  # ground truth scores itself perfectly


def test_same_seed_same_bytes(tiny, tmp_path):
    again = tmp_path / "again"
    # Two worker processes (one scene each) must write exactly what one process wrote.
    synthesize(SynthConfig(out=str(again), scenes=2, seed=5, scene_seconds=1.0, image_scale=0.1, progress=False,
                           jobs=2))
    assert _hashes(again) == _hashes(tiny)
    other = tmp_path / "other"
    synthesize(SynthConfig(out=str(other), scenes=1, seed=6, scene_seconds=1.0, image_scale=0.1, progress=False))
    assert _hashes(other)[f"{VERSION}/sample_annotation.json"] != _hashes(tiny)[f"{VERSION}/sample_annotation.json"]


def test_timeline_rates():
    ev = _timeline(Rig.default(), 4, np.random.default_rng(0))
    for ch, n_key in ((LIDAR_NAME, 4), ("CAM_FRONT", 4), ("RADAR_FRONT", 4)):
        evs = [e for e in ev if e.channel == ch]
        assert sum(e.key for e in evs) == n_key
        assert sorted({e.sample for e in evs if e.key}) == [0, 1, 2, 3]
        # Every frame belongs to the key frame at or after it.
        key_t = {e.sample: e.t for e in evs if e.key}
        assert all(e.t <= key_t[e.sample] + 1e-9 for e in evs)


def test_keyframes_only_mode_has_consistent_chains(tmp_path):
    out = tmp_path / "kf"
    assert imkd_main(["data", "synth", "--out", str(out), "--seed", "2", "--scenes", "1", "--scene-seconds", "1.5",
                      "--image-scale", "0.1", "--camera-sweeps", "none", "--lidar-sweeps", "none",
                      "--no-progress"]) == 0
    nusc = NuScenes(version=VERSION, dataroot=str(out), verbose=False)
    for sd in nusc.sample_data:
        for link in (sd["prev"], sd["next"]):
            if link:
                nusc.get("sample_data", link)  # every link resolves
        if sd["channel"].startswith("CAM") or sd["channel"] == LIDAR_NAME:
            assert sd["is_key_frame"]
    assert not list((out / "sweeps" / LIDAR_NAME).iterdir())
    assert list((out / "sweeps" / "RADAR_FRONT").iterdir())  # radar sweeps are always written


def test_rig_round_trips_through_written_calibration(tiny):
    nusc = NuScenes(version=VERSION, dataroot=str(tiny), verbose=False)
    back = Rig.from_nuscenes(nusc, nusc.sample[0]["token"])
    ref = Rig.default().scaled(0.1)
    assert [c.name for c in back.cameras] == [c.name for c in ref.cameras]
    for a, b in zip(back.cameras, ref.cameras):
        assert (a.width, a.height) == (b.width, b.height)
        np.testing.assert_allclose(a.intrinsics, b.intrinsics, atol=1e-9)
        np.testing.assert_allclose(a.to_ego.matrix(), b.to_ego.matrix(), atol=1e-9)
    for a, b in zip(back.radars, ref.radars):
        np.testing.assert_allclose(a.to_ego.matrix(), b.to_ego.matrix(), atol=1e-9)
    np.testing.assert_allclose(back.lidar.to_ego.matrix(), ref.lidar.to_ego.matrix(), atol=1e-9)
