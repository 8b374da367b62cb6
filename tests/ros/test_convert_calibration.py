"""imkd_ros.ros.calibration and msgutil: CameraInfo, TransformStamped and stamps."""

from __future__ import annotations

import math

import numpy as np
import pytest
from geometry_msgs.msg import TransformStamped
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CameraInfo

pytest.importorskip("sensor_msgs.msg")

from imkd_ros.rig import intrinsics
from imkd_ros.ros import calibration, msgutil


def _roundtrip(msg):
    return deserialize_message(serialize_message(msg), type(msg))


# ---------------------------------------------------------------------------- CameraInfo
K_NUSC = np.array([[1266.4, 0.0, 816.3], [0.0, 1266.4, 491.5], [0.0, 0.0, 1.0]])


def test_camera_info_roundtrip():
    msg = _roundtrip(calibration.intrinsics_to_camera_info(K_NUSC, 1600, 900, "CAM_FRONT", 9))
    intr = calibration.camera_info_to_intrinsics(msg)
    np.testing.assert_allclose(intr.K, K_NUSC)
    assert intr.size == (1600, 900) and intr.distortion_model == "plumb_bob"
    assert intr.K.shape == (3, 3) and intr.K.dtype == np.float64


def test_camera_info_distortion_check():
    msg = calibration.intrinsics_to_camera_info(K_NUSC, 1600, 900, D=[-0.3, 0.1, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="distortion"):
        calibration.camera_info_to_intrinsics(msg)
    intr = calibration.camera_info_to_intrinsics(msg, require_undistorted=False)
    np.testing.assert_allclose(intr.D, [-0.3, 0.1, 0, 0, 0])


def test_camera_info_invalid():
    with pytest.raises(ValueError, match="pinhole"):
        calibration.camera_info_to_intrinsics(CameraInfo(width=10, height=10))  # uncalibrated: K all zero
    with pytest.raises(ValueError, match="empty"):
        calibration.camera_info_to_intrinsics(calibration.intrinsics_to_camera_info(K_NUSC, 0, 900))
    bad = K_NUSC.copy()
    bad[2, 0] = 0.5
    with pytest.raises(ValueError, match="upper triangular"):
        calibration.camera_info_to_intrinsics(calibration.intrinsics_to_camera_info(bad, 1600, 900))


def test_camera_info_roi_and_binning():
    msg = calibration.intrinsics_to_camera_info(K_NUSC, 1600, 900)
    msg.roi.x_offset, msg.roi.y_offset, msg.roi.width, msg.roi.height = 100, 50, 1200, 600
    intr = calibration.camera_info_to_intrinsics(msg)
    assert intr.size == (1200, 600)
    assert intr.K[0, 2] == pytest.approx(716.3) and intr.K[1, 2] == pytest.approx(441.5)
    msg = calibration.intrinsics_to_camera_info(K_NUSC, 1600, 900)
    msg.binning_x = msg.binning_y = 2
    intr = calibration.camera_info_to_intrinsics(msg)
    assert intr.size == (800, 450) and intr.K[0, 0] == pytest.approx(633.2)


def test_scale_intrinsics_matches_pixel_centres():
    """A point at full-res pixel centre u lands at (u + 0.5) / 2 - 0.5 in the half-size image."""
    K2 = intrinsics.scale_intrinsics(K_NUSC, 0.5, 0.5)
    p = np.array([1.5, -0.7, 12.0])
    uv = (K_NUSC @ p)[:2] / p[2]
    uv2 = (K2 @ p)[:2] / p[2]
    np.testing.assert_allclose(uv2, (uv + 0.5) / 2 - 0.5)


# ---------------------------------------------------------------------------- TF
def _random_rigid(seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    m = np.eye(4)
    m[:3, :3] = q
    m[:3, 3] = rng.normal(size=3) * 5
    return m


def test_transform_roundtrip():
    for seed in range(5):
        m = _random_rigid(seed)
        msg = _roundtrip(calibration.matrix_to_transform(m, "base_link", "CAM_FRONT", 123))
        assert msg.header.frame_id == "base_link" and msg.child_frame_id == "CAM_FRONT"
        assert msgutil.time_to_ns(msg.header.stamp) == 123
        np.testing.assert_allclose(calibration.transform_to_matrix(msg), m, atol=1e-9)


def test_transform_known_values():
    t = TransformStamped()
    t.transform.translation.x = 1.0
    t.transform.rotation.z = math.sin(math.pi / 4)
    t.transform.rotation.w = math.cos(math.pi / 4)  # 90 deg about z
    m = calibration.transform_to_matrix(t)
    np.testing.assert_allclose(m @ [1, 0, 0, 1], [1, 1, 0, 1], atol=1e-12)  # child x -> parent y, +t
    np.testing.assert_allclose(calibration.transform_to_matrix(t.transform), m)


def test_transform_errors():
    t = TransformStamped()
    t.transform.rotation.w = 0.0
    with pytest.raises(ValueError, match="quaternion"):
        calibration.transform_to_matrix(t)
    m = np.eye(4)
    m[0, 0] = 2.0
    with pytest.raises(ValueError, match="rotation"):
        calibration.matrix_to_transform(m, "a", "b")
    m = np.diag([1.0, 1.0, -1.0, 1.0])  # reflection
    with pytest.raises(ValueError, match="rotation"):
        calibration.matrix_to_transform(m, "a", "b")


def test_stamp_conversion():
    assert msgutil.time_to_ns(msgutil.ns_to_time(1_700_000_000_123_456_789)) == 1_700_000_000_123_456_789
    t = msgutil.ns_to_time(2_500_000_000)
    assert (t.sec, t.nanosec) == (2, 500_000_000)
