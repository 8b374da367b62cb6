"""The nuScenes-like rig YAML, and rigs rebuilt from nuScenes calibrated_sensor records."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from imkd_ros.constants import CAMERA_NAMES, LIDAR_NAME, RADAR_NAMES
from imkd_ros.rig.rig import DEFAULT_RIG_YAML, Rig


def test_default_rig_layout():
    rig = Rig.default()
    assert [c.name for c in rig.cameras] == list(CAMERA_NAMES)
    assert [r.name for r in rig.radars] == list(RADAR_NAMES)
    assert rig.lidar.name == LIDAR_NAME and rig.lidar.beams == 32
    for c in rig.cameras:
        assert (c.width, c.height) == (1600, 900)
        fx = c.intrinsics[0, 0]
        assert (780 < fx < 840) if c.name == "CAM_BACK" else (1240 < fx < 1290)
    yaws = {c.name: np.rad2deg(c.yaw) for c in rig.cameras}
    assert yaws["CAM_FRONT"] == pytest.approx(0, abs=1)
    assert yaws["CAM_FRONT_LEFT"] == pytest.approx(55, abs=2)
    assert yaws["CAM_FRONT_RIGHT"] == pytest.approx(-55, abs=2)
    assert abs(yaws["CAM_BACK"]) == pytest.approx(180, abs=1)
    # Cameras sit on the roof, radars at bumper height, LiDAR on top.
    assert all(1.4 < c.translation[2] < 1.7 for c in rig.cameras)
    assert all(0.3 < r.translation[2] < 0.9 for r in rig.radars)
    assert rig.lidar.translation[2] > 1.7


def test_calibrated_sensor_round_trip():
    rig = Rig.default()
    recs = rig.calibrated_sensor_records()
    assert recs["CAM_FRONT"]["camera_intrinsic"][0][0] == pytest.approx(1266.4)
    assert recs["RADAR_FRONT"]["camera_intrinsic"] == []
    back = Rig.from_calibrated_sensors(recs)
    for a, b in zip(rig.cameras, back.cameras):
        assert a.name == b.name
        np.testing.assert_allclose(a.to_ego.matrix(), b.to_ego.matrix(), atol=1e-12)
        np.testing.assert_allclose(a.intrinsics, b.intrinsics)
    for a, b in zip(rig.radars, back.radars):
        np.testing.assert_allclose(a.to_ego.matrix(), b.to_ego.matrix(), atol=1e-12)
    np.testing.assert_allclose(rig.lidar.to_ego.matrix(), back.lidar.to_ego.matrix(), atol=1e-12)


def test_yaml_quaternion_form_and_scaling(tmp_path):
    cfg = yaml.safe_load(DEFAULT_RIG_YAML.read_text())
    cfg["cameras"]["CAM_FRONT"].pop("rpy_deg")
    cfg["cameras"]["CAM_FRONT"]["rotation"] = [0.5, -0.5, 0.5, -0.5]
    path = tmp_path / "rig.yaml"
    path.write_text(yaml.safe_dump(cfg))
    rig = Rig.from_yaml(path)
    np.testing.assert_allclose(rig.camera("CAM_FRONT").rotation, [0.5, -0.5, 0.5, -0.5])
    small = rig.scaled(0.25)
    c = small.camera("CAM_FRONT")
    assert (c.width, c.height) == (400, 225)
    assert c.intrinsics[0, 0] == pytest.approx(1266.4 / 4)
    assert small.intrinsics_array().shape == (6, 3, 3)
    assert small.cam_to_ego_array().shape == (6, 4, 4)
