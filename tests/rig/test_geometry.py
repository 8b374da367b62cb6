"""rig.geometry against pyquaternion and the nuScenes devkit (the conventions everything relies on)."""

from __future__ import annotations

import numpy as np
import pytest
from nuscenes.eval.common.utils import quaternion_yaw
from nuscenes.utils.data_classes import Box
from nuscenes.utils.geometry_utils import points_in_box, view_points
from pyquaternion import Quaternion

from imkd_ros.rig.geometry import (
    Transform,
    box_corners,
    camera_quat,
    points_in_boxes,
    project_points,
    quat_multiply,
    quat_to_rotmat,
    quat_to_yaw,
    rigid_inverse,
    rotmat_to_quat,
    sensor_a_to_sensor_b,
    yaw_to_quat,
)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _rand_quat(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    return q / np.linalg.norm(q)


def test_rotmat_matches_pyquaternion(rng):
    for _ in range(50):
        q = _rand_quat(rng)
        np.testing.assert_allclose(quat_to_rotmat(q), Quaternion(q).rotation_matrix, atol=1e-12)
    batch = np.stack([_rand_quat(rng) for _ in range(7)])
    ref = np.stack([Quaternion(q).rotation_matrix for q in batch])
    np.testing.assert_allclose(quat_to_rotmat(batch), ref, atol=1e-12)


def test_rotmat_to_quat_round_trip(rng):
    for _ in range(50):
        q = _rand_quat(rng)
        back = rotmat_to_quat(quat_to_rotmat(q))
        assert back[0] >= 0
        # q and -q are the same rotation.
        assert min(np.abs(back - q).max(), np.abs(back + q).max()) < 1e-9


def test_multiply_and_yaw_match_pyquaternion_and_devkit(rng):
    for _ in range(20):
        a, b = _rand_quat(rng), _rand_quat(rng)
        np.testing.assert_allclose(quat_multiply(a, b), (Quaternion(a) * Quaternion(b)).elements, atol=1e-12)
        yaw = rng.uniform(-np.pi, np.pi)
        np.testing.assert_allclose(yaw_to_quat(yaw), Quaternion(axis=[0, 0, 1], angle=yaw).elements, atol=1e-12)
        assert quat_to_yaw(yaw_to_quat(yaw)) == pytest.approx(yaw, abs=1e-12)
        assert quat_to_yaw(a) == pytest.approx(quaternion_yaw(Quaternion(a)), abs=1e-9)


def test_transform_chain_matches_devkit_style_matrices(rng):
    s2e = Transform.from_quat(_rand_quat(rng), rng.normal(size=3))
    e2g = Transform.from_quat(yaw_to_quat(0.7), [100.0, -20.0, 0.0])
    pts = rng.normal(size=(10, 3)) * 5
    # The devkit's chain: rotate then translate, sensor -> ego -> global.
    ref = pts @ Quaternion(s2e.quat).rotation_matrix.T + s2e.translation
    ref = ref @ Quaternion(e2g.quat).rotation_matrix.T + e2g.translation
    np.testing.assert_allclose((e2g @ s2e).apply(pts), ref, atol=1e-9)
    np.testing.assert_allclose((e2g @ s2e).inverse().apply(ref), pts, atol=1e-9)
    np.testing.assert_allclose((e2g @ s2e).matrix() @ np.linalg.inv((e2g @ s2e).matrix()), np.eye(4), atol=1e-12)
    rec = s2e.to_record()
    back = Transform.from_record(rec)
    np.testing.assert_allclose(back.matrix(), s2e.matrix(), atol=1e-12)
    # A point seen by sensor A at time a, expressed in sensor B at time b.
    e2g_b = Transform.from_quat(yaw_to_quat(0.75), [101.0, -19.5, 0.0])
    b2e = Transform.from_quat(_rand_quat(rng), rng.normal(size=3))
    chain = sensor_a_to_sensor_b(s2e, e2g, b2e, e2g_b)
    np.testing.assert_allclose(chain.apply(pts), b2e.inverse().apply(e2g_b.inverse().apply(ref)), atol=1e-9)


def test_camera_quat_is_nuscenes_cam_front():
    q = camera_quat(0.0)
    np.testing.assert_allclose(q, [0.5, -0.5, 0.5, -0.5], atol=1e-12)
    r = quat_to_rotmat(camera_quat(np.pi / 2))
    np.testing.assert_allclose(r[:, 2], [0, 1, 0], atol=1e-12)  # optical axis looks left
    np.testing.assert_allclose(r[:, 1], [0, 0, -1], atol=1e-12)  # image down is world down
    down = quat_to_rotmat(camera_quat(0.0, pitch=0.1))[:, 2]
    assert down[2] < 0  # pitch > 0 looks down


def test_box_corners_and_points_in_boxes_match_devkit(rng):
    for _ in range(10):
        c = rng.normal(size=3) * 10
        size = rng.uniform(0.5, 5, 3)
        yaw = rng.uniform(-np.pi, np.pi)
        box = Box(c, size, Quaternion(axis=[0, 0, 1], angle=yaw))
        np.testing.assert_allclose(box_corners(c, size, yaw)[0], box.corners().T, atol=1e-9)
        pts = c + rng.normal(size=(400, 3)) * size.max() / 2
        ref = points_in_box(box, pts.T)
        ours = points_in_boxes(pts, c[None], size[None], np.array([yaw]))[:, 0]
        np.testing.assert_array_equal(ours, ref)


def test_points_in_many_boxes_equals_the_dense_test(rng):
    """The per-box x-window shortcut gives exactly the dense (N, M) answer, faces included."""
    centers = np.column_stack([rng.uniform(-60, 60, 80), rng.uniform(-60, 60, 80), rng.uniform(0, 2, 80)])
    sizes = rng.uniform(0.3, 12, (80, 3))
    yaws = rng.uniform(-np.pi, np.pi, 80)
    pts = np.concatenate([rng.uniform(-70, 70, (3000, 3)) * [1, 1, 0.05],
                          box_corners(centers, sizes, yaws).reshape(-1, 3),  # exactly on the faces
                          centers + rng.normal(size=(80, 3)) * sizes / 3])
    d = pts[:, None, :3] - centers[None, :, :3]
    c, s = np.cos(yaws), np.sin(yaws)
    lx, ly = d[..., 0] * c + d[..., 1] * s, -d[..., 0] * s + d[..., 1] * c
    dense = (np.abs(lx) <= sizes[:, 1] / 2) & (np.abs(ly) <= sizes[:, 0] / 2) & (np.abs(d[..., 2]) <= sizes[:, 2] / 2)
    ours = points_in_boxes(pts, centers, sizes, yaws)
    assert dense.sum() > 100
    np.testing.assert_array_equal(ours, dense)
    assert points_in_boxes(pts[:0], centers, sizes, yaws).shape == (0, 80)


def test_projection_matches_devkit(rng):
    k = np.array([[1266.4, 0, 816.3], [0, 1266.4, 491.5], [0, 0, 1]])
    pts = np.column_stack([rng.uniform(-5, 5, 20), rng.uniform(-2, 2, 20), rng.uniform(2, 50, 20)])
    uv, depth = project_points(pts, k)
    ref = view_points(pts.T, k, normalize=True)
    np.testing.assert_allclose(uv, ref[:2].T, atol=1e-9)
    np.testing.assert_allclose(depth, pts[:, 2])
    # The principal point is where the optical axis lands.
    uv0, _ = project_points(np.array([[0.0, 0.0, 7.0]]), k)
    np.testing.assert_allclose(uv0[0], [816.3, 491.5])


def test_rigid_inverse_equals_the_general_inverse(rng: np.random.Generator) -> None:
    for _ in range(50):
        q = rng.normal(size=4)
        m = Transform.from_quat(q / np.linalg.norm(q), rng.normal(size=3) * 100).matrix()
        np.testing.assert_allclose(rigid_inverse(m), np.linalg.inv(m), atol=1e-12)
        np.testing.assert_allclose(rigid_inverse(m) @ m, np.eye(4), atol=1e-12)
