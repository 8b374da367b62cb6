"""The reader against the devkit: same radar/LiDAR points, same boxes, on a dataset with known geometry."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from nuscenes.eval.detection.utils import category_to_detection_name
from nuscenes.utils.data_classes import LidarPointCloud, RadarPointCloud
from pyquaternion import Quaternion

from imkd_ros.constants import ATTR_TO_ID, CAMERA_NAMES, CLASS_TO_ID
from imkd_ros.data.bag_writer import BagOptions, write_scene_bag
from imkd_ros.data.nuscenes_reader import (
    NuScenesDataset,
    NuScenesReader,
    ReaderConfig,
    category_to_class,
    collate_frames,
    get_nuscenes,
    parse_condition,
)
from imkd_ros.data.pcd import ALL_STATES, load_radar_points
from imkd_ros.types import LIDAR_FEATURES, RADAR_FEATURES

from .nusc_fixture import SCENE, VERSION, build


@pytest.fixture(scope="module")
def reader(fixture_root: Path, fixture_version: str) -> NuScenesReader:
    return NuScenesReader(fixture_root, fixture_version)


def _radar_files(root: Path) -> list[Path]:
    return sorted((root / "samples" / "RADAR_FRONT").glob("*.pcd"))[:3]


def test_radar_pcd_parser_equals_devkit(fixture_root: Path) -> None:
    for path in _radar_files(fixture_root):
        ours = load_radar_points(path)
        ref = RadarPointCloud.from_file(str(path)).points
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)
        ours_all = load_radar_points(path, ALL_STATES, ALL_STATES, ALL_STATES)
        ref_all = RadarPointCloud.from_file(str(path), ALL_STATES, ALL_STATES, ALL_STATES).points
        np.testing.assert_allclose(ours_all, ref_all, rtol=0, atol=1e-6)
        assert ours.shape[1] < ours_all.shape[1]  # the default filters drop something here
        none = load_radar_points(path, None, None, None)
        assert none.shape == ours_all.shape


def test_frame_layout(reader: NuScenesReader) -> None:
    tokens = reader.sample_tokens()
    assert len(tokens) == 3
    f = reader.frame(tokens[1])
    assert len(f.images) == 6 and all(im.dtype == np.uint8 and im.shape == (96, 160, 3) for im in f.images)
    assert f.intrinsics.shape == (6, 3, 3) and f.cam_to_ego.shape == (6, 4, 4) and f.camera_valid.all()
    assert f.radar.shape[1] == len(RADAR_FEATURES) and f.radar.dtype == np.float32
    assert f.lidar is not None and f.lidar.shape[1] == len(LIDAR_FEATURES)
    assert f.meta["scene"] == SCENE and f.meta["condition"] == "night" and f.meta["sample_token"] == tokens[1]
    assert f.timestamp_us == reader.nusc.get("sample", tokens[1])["timestamp"]
    # The image really is CAM_FRONT_RIGHT's (the fixture paints camera index into blue).
    assert abs(int(f.images[1][..., 2].mean()) - 40) <= 3
    cs = reader.nusc.get("calibrated_sensor", reader.nusc.get("sample_data", reader.nusc.get(
        "sample", tokens[1])["data"][CAMERA_NAMES[3]])["calibrated_sensor_token"])
    np.testing.assert_allclose(f.intrinsics[3], cs["camera_intrinsic"], atol=1e-5)
    np.testing.assert_allclose(f.cam_to_ego[3][:3, 3], cs["translation"], atol=1e-5)
    np.testing.assert_allclose(f.cam_to_ego[3][:3, :3], Quaternion(cs["rotation"]).rotation_matrix, atol=1e-6)


def _lidar_ref_to_ego(reader: NuScenesReader, sample: dict) -> np.ndarray:
    sd = reader.nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
    return reader.sensor_to_ego(sd)


@pytest.mark.parametrize("nsweeps", [1, 6])
def test_radar_multisweep_equals_devkit(reader: NuScenesReader, nsweeps: int) -> None:
    nusc = reader.nusc
    cfg = ReaderConfig(radar_sweeps=nsweeps)
    r = NuScenesReader(reader.dataroot, reader.version, cfg, nusc=nusc)
    sample = nusc.get("sample", r.sample_tokens()[2])
    ours = r.load_radar(sample)
    ref_pts, ref_times = [], []
    for radar in cfg.radar_names:
        pc, times = RadarPointCloud.from_file_multisweep(nusc, sample, radar, "LIDAR_TOP", nsweeps=nsweeps,
                                                         min_distance=0.0)
        ref_pts.append(pc.points)
        ref_times.append(times[0])
    ref = np.concatenate(ref_pts, axis=1)
    lidar_to_ego = _lidar_ref_to_ego(r, sample)
    ref_xyz = ref[:3].T @ lidar_to_ego[:3, :3].T + lidar_to_ego[:3, 3]
    assert ours.shape[0] == ref.shape[1] > 0
    np.testing.assert_allclose(ours[:, :3], ref_xyz, atol=1e-3)
    np.testing.assert_allclose(ours[:, 3], ref[5], atol=1e-4)  # rcs
    np.testing.assert_allclose(ours[:, 6], np.concatenate(ref_times), atol=1e-6)
    assert set(np.unique(ours[:, 7])) == set(range(nsweeps))
    # Velocities: vx_comp/vy_comp rotated sensor -> keyframe ego (z stays 0 for upright radars).
    i = np.flatnonzero(ours[:, 7] == nsweeps - 1)[0]
    assert np.hypot(*ours[i, 4:6]) == pytest.approx(np.hypot(*ref[8:10, i]), rel=1e-4)


def test_radar_velocity_rotation(reader: NuScenesReader) -> None:
    """A radar looking 90 deg left: a point moving along its +x moves along ego +y."""
    nusc = reader.nusc
    sample = nusc.get("sample", reader.sample_tokens()[0])
    r = NuScenesReader(reader.dataroot, reader.version, ReaderConfig(radar_sweeps=1, radar_names=("RADAR_FRONT_LEFT",)),
                       nusc=nusc)
    ours = r.load_radar(sample)
    sd = nusc.get("sample_data", sample["data"]["RADAR_FRONT_LEFT"])
    raw = load_radar_points(reader.dataroot / sd["filename"])
    ego_key = r.keyframe_ego_to_global(sample)
    ego_sd = r.ego_to_global(sd)
    yaw = np.arctan2(*(ego_key[:3, :3].T @ ego_sd[:3, :3])[[1, 0], 0]) + 1.5
    c, s = np.cos(yaw), np.sin(yaw)
    expect = np.stack([c * raw[8] - s * raw[9], s * raw[8] + c * raw[9]], axis=1)
    np.testing.assert_allclose(ours[:, 4:6], expect, atol=1e-4)


def test_lidar_multisweep_equals_devkit(reader: NuScenesReader) -> None:
    nusc = reader.nusc
    sample = nusc.get("sample", reader.sample_tokens()[1])
    ours = reader.load_lidar(sample)
    pc, times = LidarPointCloud.from_file_multisweep(nusc, sample, "LIDAR_TOP", "LIDAR_TOP", nsweeps=10)
    lidar_to_ego = _lidar_ref_to_ego(reader, sample)
    ref_xyz = pc.points[:3].T @ lidar_to_ego[:3, :3].T + lidar_to_ego[:3, 3]
    assert len(ours) == pc.points.shape[1]
    np.testing.assert_allclose(ours[:, :3], ref_xyz, atol=2e-3)
    np.testing.assert_allclose(ours[:, 3], pc.points[3], atol=1e-5)
    np.testing.assert_allclose(ours[:, 4], times[0], atol=1e-6)


def test_gt_boxes_equal_devkit(reader: NuScenesReader) -> None:
    nusc = reader.nusc
    for token in reader.sample_tokens():
        sample = nusc.get("sample", token)
        boxes, instances = reader.gt_boxes(sample)
        pose = nusc.get("ego_pose", nusc.get("sample_data", sample["data"]["LIDAR_TOP"])["ego_pose_token"])
        expected = []
        for ann_token in sample["anns"]:
            ann = nusc.get("sample_annotation", ann_token)
            name = category_to_class(ann["category_name"])
            if name is None or ann["num_lidar_pts"] + ann["num_radar_pts"] == 0:
                continue
            box = nusc.get_box(ann_token)
            box.velocity = nusc.box_velocity(ann_token)
            box.translate(-np.array(pose["translation"]))
            box.rotate(Quaternion(pose["rotation"]).inverse)
            expected.append((box, name, ann))
        assert len(boxes) == len(expected) == 2  # the empty box and the animal are gone
        for i, (box, name, ann) in enumerate(expected):
            np.testing.assert_allclose(boxes.center[i], box.center, atol=1e-4)
            np.testing.assert_allclose(boxes.size[i], box.wlh, atol=1e-6)
            v = box.orientation.rotation_matrix[:, 0]
            assert boxes.yaw[i] == pytest.approx(np.arctan2(v[1], v[0]), abs=1e-5)
            np.testing.assert_allclose(boxes.velocity[i], np.nan_to_num(box.velocity[:2]), atol=1e-4)
            assert boxes.labels[i] == CLASS_TO_ID[name]
            attr = nusc.get("attribute", ann["attribute_tokens"][0])["name"]
            assert boxes.attributes[i] == ATTR_TO_ID[attr]
            assert instances[i] == ann["instance_token"]
        assert boxes.track_ids is not None and len(set(boxes.track_ids.tolist())) == 2
    # The moving car's velocity is its 10 m/s (+1 m/s sideways) seen from the turning ego.
    f = reader.frame(reader.sample_tokens()[1])
    car = int(np.flatnonzero(f.gt.labels == CLASS_TO_ID["car"])[0])
    assert np.hypot(*f.gt.velocity[car]) == pytest.approx(np.hypot(10, 1), rel=1e-3)


def test_keep_empty_boxes(reader: NuScenesReader) -> None:
    r = NuScenesReader(reader.dataroot, reader.version, ReaderConfig(filter_empty_boxes=False), nusc=reader.nusc)
    boxes, _ = r.gt_boxes(r.sample_tokens()[0])
    assert len(boxes) == 3
    assert r.frame(r.sample_tokens()[0]).meta["gt_num_pts"].tolist() == [32, 5, 0]
    assert reader.frame(r.sample_tokens()[0]).meta["gt_num_pts"].tolist() == [32, 5]


def test_reduced_jpeg_decode_scales_intrinsics(reader: NuScenesReader) -> None:
    r = NuScenesReader(reader.dataroot, reader.version, ReaderConfig(image_downscale=2, load_lidar=False),
                       nusc=reader.nusc)
    token = r.sample_tokens()[0]
    full = reader.frame(token)
    half = r.frame(token)
    assert half.images[0].shape == (48, 80, 3)
    np.testing.assert_allclose(half.intrinsics[:, :2], full.intrinsics[:, :2] / 2, atol=1e-5)
    assert abs(float(half.images[0].mean()) - float(full.images[0].mean())) < 3


def test_condition_parsing() -> None:
    assert parse_condition("condition=rain, road=highway") == "rain"
    assert parse_condition("Night, big street, bus stop") == "night"
    assert parse_condition("Rain, parking lot") == "rain"
    assert parse_condition("Parked cars, peds") == "day"


def test_dataset_split_pickle_and_collate(fixture_root: Path, fixture_version: str, tmp_path: Path) -> None:
    ds = NuScenesDataset(fixture_root, fixture_version, scenes=[SCENE],
                         config=ReaderConfig(load_lidar=False, image_downscale=4))
    assert len(ds) == 3
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._reader is None and len(clone) == 3
    batch = collate_frames([clone[0], clone[2]])
    assert [f.meta["sample_token"] for f in batch] == [ds.tokens[0], ds.tokens[2]]
    assert get_nuscenes(fixture_root, fixture_version) is ds.reader.nusc  # cached per process
    # A split file next to the tables names scenes per split.

    (fixture_root / fixture_version / "splits.json").write_text(json.dumps({"train": [], "val": [SCENE]}))
    try:
        assert len(NuScenesDataset(fixture_root, fixture_version, split="val")) == 3
        assert len(NuScenesDataset(fixture_root, fixture_version, split="train")) == 0
    finally:
        (fixture_root / fixture_version / "splits.json").unlink()


def test_missing_sweep_files_are_skipped(tmp_path: Path) -> None:
    root = build(tmp_path / "ds")
    for path in (root / "sweeps" / "RADAR_FRONT").glob("*.pcd"):
        path.unlink()
    reader = NuScenesReader(root, VERSION, ReaderConfig(radar_sweeps=6, radar_names=("RADAR_FRONT",)))
    f = reader.frame(reader.sample_tokens()[2])
    assert set(np.unique(f.radar[:, 7])) == {0.0}  # the keyframe sweep only
    summary = write_scene_bag(root, VERSION, SCENE, tmp_path / "bag", BagOptions(lidar=False), reader=reader)
    assert summary.skipped_files > 0 and summary.counts["/radar_front/points"] == 3


NUSCENES_CATEGORIES = (
    "animal", "human.pedestrian.adult", "human.pedestrian.child", "human.pedestrian.construction_worker",
    "human.pedestrian.personal_mobility", "human.pedestrian.police_officer", "human.pedestrian.stroller",
    "human.pedestrian.wheelchair", "movable_object.barrier", "movable_object.debris",
    "movable_object.pushable_pullable", "movable_object.trafficcone", "static_object.bicycle_rack",
    "vehicle.bicycle", "vehicle.bus.bendy", "vehicle.bus.rigid", "vehicle.car", "vehicle.construction",
    "vehicle.emergency.ambulance", "vehicle.emergency.police", "vehicle.motorcycle", "vehicle.trailer",
    "vehicle.truck",
)


def test_category_mapping_equals_devkit() -> None:
    for name in NUSCENES_CATEGORIES:
        assert category_to_class(name) == category_to_detection_name(name), name


def test_camera_ego_motion_option(reader: NuScenesReader) -> None:
    """Folding the capture-time ego pose into cam_to_ego maps points like the devkit's camera chain."""
    r = NuScenesReader(reader.dataroot, reader.version, ReaderConfig(camera_ego_motion=True, load_lidar=False),
                       nusc=reader.nusc)
    token = r.sample_tokens()[1]
    plain, moved = reader.frame(token), r.frame(token)
    sample = reader.nusc.get("sample", token)
    sd = reader.nusc.get("sample_data", sample["data"]["CAM_BACK"])
    assert plain.meta["camera_timestamps_us"][3] == sd["timestamp"] != sample["timestamp"]
    chain = np.linalg.inv(reader.keyframe_ego_to_global(sample)) @ reader.ego_to_global(sd) @ reader.sensor_to_ego(sd)
    np.testing.assert_allclose(moved.cam_to_ego[3], chain, atol=1e-4)
    np.testing.assert_allclose(plain.cam_to_ego[3], reader.sensor_to_ego(sd), atol=1e-6)
    assert np.abs(moved.cam_to_ego[3][:3, 3] - plain.cam_to_ego[3][:3, 3]).max() > 0.01  # the ego moved 8 m/s


def test_devkit_radar_parser_option(reader: NuScenesReader) -> None:
    token = reader.sample_tokens()[1]
    sample = reader.nusc.get("sample", token)
    for states in ((0,), None):
        kw = dict(radar_invalid_states=states, radar_dynprop_states=None)
        ours = NuScenesReader(reader.dataroot, reader.version, ReaderConfig(**kw), nusc=reader.nusc)
        dev = NuScenesReader(reader.dataroot, reader.version, ReaderConfig(radar_devkit_parser=True, **kw),
                             nusc=reader.nusc)
        np.testing.assert_array_equal(ours.load_radar(sample), dev.load_radar(sample))


def test_radar_only_past(reader: NuScenesReader) -> None:
    sample = reader.nusc.get("sample", reader.sample_tokens()[1])
    r = NuScenesReader(reader.dataroot, reader.version, ReaderConfig(radar_only_past=True), nusc=reader.nusc)
    default, past = reader.load_radar(sample), r.load_radar(sample)
    assert default[:, 6].min() < 0 <= past[:, 6].min()  # the fixture's radar keyframes come after the sample
    assert set(np.unique(past[:, 7])) == set(range(6))
