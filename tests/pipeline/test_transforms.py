from __future__ import annotations

import numpy as np
import pytest

from imkd_ros.pipeline import TransformBuffer, TransformError
from imkd_ros.rig.geometry import Transform


def pose(yaw: float, xyz) -> np.ndarray:
    return Transform.from_yaw(yaw, xyz).matrix()


def test_static_chain_and_inverse() -> None:
    tf = TransformBuffer()
    tf.set_transform("base_link", "cam_front", pose(0.3, [1.5, 0.0, 1.6]), static=True)
    tf.set_transform("base_link", "radar_front", pose(0.0, [3.6, 0.0, 0.5]), static=True)
    m = tf.lookup("radar_front", "cam_front")
    expected = np.linalg.inv(pose(0.0, [3.6, 0.0, 0.5])) @ pose(0.3, [1.5, 0.0, 1.6])
    np.testing.assert_allclose(m, expected, atol=1e-9)
    np.testing.assert_allclose(tf.lookup("cam_front", "radar_front") @ m, np.eye(4), atol=1e-9)


def test_dynamic_interpolation_and_time_travel() -> None:
    tf = TransformBuffer()
    tf.set_transform("odom", "base_link", pose(0.0, [0, 0, 0]), stamp_ns=0)
    tf.set_transform("odom", "base_link", pose(0.2, [10, 0, 0]), stamp_ns=1_000_000_000)
    mid = tf.lookup("odom", "base_link", 500_000_000)
    np.testing.assert_allclose(mid[:3, 3], [5, 0, 0], atol=1e-9)
    assert np.arctan2(mid[1, 0], mid[0, 0]) == pytest.approx(0.1)
    # a point fixed in odom, seen from base_link at t=0, expressed in base_link at t=1 s
    m = tf.lookup_between_times("base_link", "odom", 1_000_000_000, 0)
    p_t0 = np.array([20.0, 0, 0, 1])
    p_t1 = m @ p_t0
    expected = np.linalg.inv(pose(0.2, [10, 0, 0])) @ p_t0
    np.testing.assert_allclose(p_t1, expected, atol=1e-9)


def test_errors_and_bounded_history() -> None:
    tf = TransformBuffer(history_ns=2_000_000_000, extrapolation_ns=0)
    with pytest.raises(TransformError):
        tf.lookup("base_link", "cam_front")
    for i in range(100):
        tf.set_transform("odom", "base_link", pose(0.0, [i, 0, 0]), stamp_ns=i * 100_000_000)
    assert len(tf._edges["base_link"].stamps) <= 21  # 2 s of history at 10 Hz
    with pytest.raises(TransformError, match="outside the buffered range"):
        tf.lookup("odom", "base_link", 0)
    tf.clear_dynamic()
    with pytest.raises(TransformError):
        tf.lookup("odom", "base_link", 9_900_000_000)


def test_static_version_bumps_only_on_change() -> None:
    tf = TransformBuffer()
    tf.set_transform("base_link", "cam", pose(0.1, [1, 2, 3]), static=True)
    v = tf.version
    tf.set_transform("base_link", "cam", pose(0.1, [1, 2, 3]), static=True)
    assert tf.version == v
    tf.set_transform("base_link", "cam", pose(0.2, [1, 2, 3]), static=True)
    assert tf.version > v


def test_static_lookup_below_a_timed_edge_needs_no_time() -> None:
    """base_link <- sensor is static even when odom <- base_link is timed (and has no sample at t)."""
    tf = TransformBuffer(extrapolation_ns=0)
    tf.set_transform("odom", "base_link", pose(0.0, [5, 0, 0]), stamp_ns=10**18)
    tf.set_transform("base_link", "radar_front", pose(0.0, [3.6, 0, 0.5]), static=True)
    np.testing.assert_allclose(tf.lookup("base_link", "radar_front")[:3, 3], [3.6, 0, 0.5])
    with pytest.raises(TransformError):
        tf.lookup("odom", "radar_front", 0)
