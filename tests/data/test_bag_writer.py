"""nuScenes scene -> rosbag2: read back with rosbags; counts, stamps, layouts, images, GT = reader."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rosbags.rosbag2 import Reader

from imkd_ros.bag import make_typestore
from imkd_ros.constants import CAMERA_NAMES, CLASSES, RADAR_NAMES, RADAR_PCD_FIELDS
from imkd_ros.data.bag_writer import BagOptions, scene_sample_data, write_scene_bag
from imkd_ros.data.nuscenes_reader import NuScenesReader, quat_to_rotmat
from imkd_ros.data.pcd import DEFAULT_AMBIG_STATES, DEFAULT_DYNPROP_STATES, DEFAULT_INVALID_STATES, read_pcd
from imkd_ros.pipeline.radar import RadarSweepPoints, merge_sweeps, radar_point_filter
from imkd_ros.world.synth import SynthConfig, synthesize

from .nusc_fixture import RADAR_SIZES, RADAR_TYPES, SCENE

# PointField datatypes by PCD type/size.
_PF = {("F", 4): 7, ("I", 1): 1, ("I", 2): 3, ("I", 4): 5}


def _read_all(path: Path):
    store = make_typestore()
    out: dict[str, list] = {}
    log_times: list[int] = []
    qos: dict[str, list] = {}
    with Reader(path) as bag:
        for c in bag.connections:
            qos[c.topic] = c.ext.offered_qos_profiles
        for conn, t, raw in bag.messages():
            out.setdefault(conn.topic, []).append((t, store.deserialize_cdr(raw, conn.msgtype)))
            log_times.append(t)
    return out, log_times, qos


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_scene_to_bag_round_trip(fixture_root: Path, fixture_version: str, tmp_path: Path, storage: str) -> None:
    reader = NuScenesReader(fixture_root, fixture_version)
    out = tmp_path / f"bag_{storage}"
    summary = write_scene_bag(fixture_root, fixture_version, SCENE, out, BagOptions(storage=storage), reader=reader)
    assert (out / "metadata.yaml").is_file()
    msgs, log_times, qos = _read_all(out)
    assert log_times == sorted(log_times), "messages are written in time order"
    assert {t: len(v) for t, v in msgs.items()} == summary.counts

    chains = scene_sample_data(reader, reader.scene_by_name(SCENE))
    nusc = reader.nusc
    # Every camera sweep (12 Hz), not only keyframes, with its own stamp.
    for cam in CAMERA_NAMES:
        topic = f"/{cam.lower()}/image_raw/compressed"
        stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for _, m in msgs[topic]]
        assert stamps == [sd["timestamp"] * 1000 for sd in chains[cam]]
        assert len(stamps) > 3 * len(reader.scene_sample_tokens(SCENE))
        assert {m.header.frame_id for _, m in msgs[topic]} == {cam.lower()}
        infos = msgs[f"/{cam.lower()}/camera_info"]
        assert len(infos) == len(stamps)
        info = infos[0][1]
        k = np.array(nusc.get("calibrated_sensor", chains[cam][0]["calibrated_sensor_token"])["camera_intrinsic"])
        np.testing.assert_allclose(info.k.reshape(3, 3), k)
        np.testing.assert_allclose(info.p.reshape(3, 4)[:, :3], k)
        assert (info.width, info.height, info.distortion_model) == (160, 96, "plumb_bob")
        assert np.all(info.d == 0)
    # A decoded image equals the JPEG on disk, bytes and pixels.
    _, img_msg = msgs["/cam_back/image_raw/compressed"][2]
    on_disk = (fixture_root / chains["CAM_BACK"][2]["filename"]).read_bytes()
    assert img_msg.format == "jpeg" and bytes(img_msg.data) == on_disk
    rgb = np.asarray(Image.open(io.BytesIO(bytes(img_msg.data))).convert("RGB"))
    assert rgb.shape == (96, 160, 3) and abs(float(rgb[..., 2].mean()) - 3 * 40) < 3

    # Radar: all 18 fields in their native types and offsets, records as stored, radar frame.
    for radar in RADAR_NAMES:
        topic = f"/{radar.lower()}/points"
        assert len(msgs[topic]) == len(chains[radar])
        _, cloud = msgs[topic][0]
        assert cloud.header.frame_id == radar.lower()
        assert [f.name for f in cloud.fields] == list(RADAR_PCD_FIELDS)
        assert [f.datatype for f in cloud.fields] == [_PF[t, s] for t, s in zip(RADAR_TYPES, RADAR_SIZES)]
        assert [f.offset for f in cloud.fields] == list(np.cumsum((0, *RADAR_SIZES[:-1])))
        assert cloud.point_step == sum(RADAR_SIZES) and cloud.row_step == cloud.point_step * cloud.width
        pcd = read_pcd(fixture_root / chains[radar][0]["filename"])
        assert bytes(cloud.data) == pcd.raw and cloud.width == len(pcd.points)
    # LiDAR: x, y, z, intensity (float32) and ring (uint16).
    _, lidar = msgs["/lidar_top/points"][0]
    assert [(f.name, f.datatype, f.offset) for f in lidar.fields] == [
        ("x", 7, 0), ("y", 7, 4), ("z", 7, 8), ("intensity", 7, 12), ("ring", 4, 16)]
    assert lidar.width == 400 and lidar.header.frame_id == "lidar_top"
    assert len(msgs["/lidar_top/points"]) == len(chains["LIDAR_TOP"])

    # /tf: one odom -> base_link per distinct ego pose, time-ordered; /tf_static latched, 12 sensors.
    tf_stamps = [t for t, _ in msgs["/tf"]]
    assert tf_stamps == sorted(tf_stamps)
    n_poses = len({sd["ego_pose_token"] for chain in chains.values() for sd in chain})
    assert len(tf_stamps) == n_poses
    tf = msgs["/tf"][0][1].transforms[0]
    assert (tf.header.frame_id, tf.child_frame_id) == ("odom", "base_link")
    (static,) = msgs["/tf_static"]
    assert static[0] == log_times[0]
    children = {t.child_frame_id for t in static[1].transforms}
    assert children == {c.lower() for c in (*CAMERA_NAMES, *RADAR_NAMES, "LIDAR_TOP")}
    assert all(t.header.frame_id == "base_link" for t in static[1].transforms)
    assert qos["/tf_static"][0].durability.name == "TRANSIENT_LOCAL"
    cam_tf = next(t for t in static[1].transforms if t.child_frame_id == "cam_front")
    cs = nusc.get("calibrated_sensor", chains["CAM_FRONT"][0]["calibrated_sensor_token"])
    q = cam_tf.transform.rotation
    np.testing.assert_allclose([q.w, q.x, q.y, q.z], cs["rotation"], atol=1e-9)

    # Ground truth at keyframes: equals the reader's boxes.
    tokens = reader.scene_sample_tokens(SCENE)
    assert len(msgs["/ground_truth/detections"]) == len(msgs["/ground_truth/objects"]) == len(tokens)
    for token, (t_det, det), (_, obj) in zip(tokens, msgs["/ground_truth/detections"], msgs["/ground_truth/objects"]):
        frame_gt, instances = reader.gt_boxes(token)
        assert t_det == nusc.get("sample", token)["timestamp"] * 1000
        assert det.header.frame_id == obj.header.frame_id == "base_link"
        assert len(det.detections) == len(obj.objects) == len(frame_gt) > 0
        for i, (d, o) in enumerate(zip(det.detections, obj.objects)):
            c = d.bbox.center
            np.testing.assert_allclose([c.position.x, c.position.y, c.position.z], frame_gt.center[i], atol=1e-5)
            np.testing.assert_allclose([d.bbox.size.x, d.bbox.size.y, d.bbox.size.z], frame_gt.size[i][[1, 0, 2]],
                                       atol=1e-6)
            yaw = 2 * np.arctan2(c.orientation.z, c.orientation.w)
            assert np.cos(yaw - frame_gt.yaw[i]) == pytest.approx(1.0, abs=1e-9)
            assert d.results[0].hypothesis.class_id == CLASSES[frame_gt.labels[i]] == o.class_name
            assert d.id == instances[i]
            assert o.class_id == frame_gt.labels[i] and o.track_id == frame_gt.track_ids[i]
            np.testing.assert_allclose([o.width, o.length, o.height], frame_gt.size[i], atol=1e-6)
            np.testing.assert_allclose([o.vx, o.vy], frame_gt.velocity[i], atol=1e-5)
            assert o.yaw == pytest.approx(float(frame_gt.yaw[i]), abs=1e-6)


def test_refuses_to_overwrite(fixture_root: Path, fixture_version: str, tmp_path: Path) -> None:
    target = tmp_path / "x"
    target.mkdir()
    with pytest.raises(FileExistsError):
        write_scene_bag(fixture_root, fixture_version, SCENE, target, BagOptions(lidar=False))


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny scene of the synthetic world (imkd data synth): 1 s, quarter-resolution cameras."""
    root = tmp_path_factory.mktemp("synth")
    synthesize(SynthConfig(out=str(root), scenes=1, seed=5, scene_seconds=1.0, image_scale=0.25, progress=False))
    return root


def test_synthetic_scene_to_bag(synth_root: Path, tmp_path: Path) -> None:
    reader = NuScenesReader(synth_root, "v1.0-synth")
    (scene,) = reader.scene_names()
    summary = write_scene_bag(synth_root, "v1.0-synth", scene, tmp_path / "bag", reader=reader)
    msgs, log_times, _ = _read_all(tmp_path / "bag")
    assert log_times == sorted(log_times) and summary.skipped_files == 0
    chains = scene_sample_data(reader, reader.scene_by_name(scene))
    for cam in CAMERA_NAMES:  # 12 Hz sweeps, not only the keyframes
        assert len(msgs[f"/{cam.lower()}/image_raw/compressed"]) == len(chains[cam]) > 2 * len(reader.sample_tokens())
    _, img = msgs["/cam_front/image_raw/compressed"][0]
    rgb = np.asarray(Image.open(io.BytesIO(bytes(img.data))).convert("RGB"))
    _, info = msgs["/cam_front/camera_info"][0]
    assert rgb.shape == (info.height, info.width, 3) and rgb.std() > 5
    for radar in RADAR_NAMES:
        _, cloud = msgs[f"/{radar.lower()}/points"][0]
        assert [f.name for f in cloud.fields] == list(RADAR_PCD_FIELDS) and cloud.point_step == 43
    tokens = reader.sample_tokens()
    assert len(msgs["/ground_truth/objects"]) == len(tokens)
    for token, (_, obj) in zip(tokens, msgs["/ground_truth/objects"]):
        gt, _ = reader.gt_boxes(token)
        assert len(obj.objects) == len(gt) > 0
        np.testing.assert_allclose([[o.center.x, o.center.y, o.center.z] for o in obj.objects], gt.center, atol=1e-5)
        assert [o.class_name for o in obj.objects] == [CLASSES[i] for i in gt.labels]
    frame = reader.frame(tokens[-1])
    assert frame.meta["condition"] in ("day", "night", "rain", "fog") and len(frame.radar) > 0


def _tf_matrix(t) -> np.ndarray:
    q, p = t.transform.rotation, t.transform.translation
    m = np.eye(4)
    m[:3, :3] = quat_to_rotmat([q.w, q.x, q.y, q.z])
    m[:3, 3] = [p.x, p.y, p.z]
    return m


def test_bag_radar_through_pipeline_equals_reader(fixture_root: Path, fixture_version: str, tmp_path: Path) -> None:
    """The live path (bag clouds + /tf + /tf_static -> pipeline.radar.merge_sweeps) gives the reader's radar."""
    reader = NuScenesReader(fixture_root, fixture_version)
    write_scene_bag(fixture_root, fixture_version, SCENE, tmp_path / "bag", BagOptions(lidar=False), reader=reader)
    msgs, _, _ = _read_all(tmp_path / "bag")
    odom_base = {t: _tf_matrix(m.transforms[0]) for t, m in msgs["/tf"]}
    static = {t.child_frame_id: _tf_matrix(t) for t in msgs["/tf_static"][0][1].transforms}
    token = reader.sample_tokens()[2]
    sample = reader.nusc.get("sample", token)
    key_ns = sample["timestamp"] * 1000
    # the ego pose at the keyframe stamp is the LIDAR_TOP one, which this bag (no LiDAR topic) still carries
    key_from_base_at = lambda ns: np.linalg.inv(odom_base[key_ns]) @ odom_base[ns]  # noqa: E731
    sweeps = []
    for radar in RADAR_NAMES:
        stamps = {sd["timestamp"] * 1000 for sd in reader._sweeps(sample, radar, reader.config.radar_sweeps)}
        for t, cloud in msgs[f"/{radar.lower()}/points"]:
            if t not in stamps:
                continue
            dtype = np.dtype({"names": [f.name for f in cloud.fields],
                              "formats": [{7: "<f4", 1: "i1", 3: "<i2"}[f.datatype] for f in cloud.fields],
                              "offsets": [f.offset for f in cloud.fields], "itemsize": cloud.point_step})
            arr = np.frombuffer(bytes(cloud.data), dtype=dtype)
            cols = np.stack([arr[n].astype(np.float64) for n in RADAR_PCD_FIELDS], axis=1)
            keep = radar_point_filter(cols, DEFAULT_INVALID_STATES, DEFAULT_DYNPROP_STATES, DEFAULT_AMBIG_STATES)
            a = arr[keep]
            sweeps.append(RadarSweepPoints(radar.lower(), t, np.stack([a["x"], a["y"], a["z"]], 1).astype(np.float64),
                                           a["rcs"].astype(np.float64),
                                           np.stack([a["vx_comp"], a["vy_comp"]], 1).astype(np.float64)))
    live, dropped = merge_sweeps(sweeps, key_ns, static, key_from_base_at)
    ours = reader.load_radar(sample)
    assert dropped == 0 and live.shape == ours.shape and len(ours) > 0
    order = lambda p: p[np.lexsort(np.round(p[:, [3, 1, 0]], 3).T)]  # noqa: E731
    np.testing.assert_allclose(order(live), order(ours), atol=1e-3)
