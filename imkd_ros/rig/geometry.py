"""Quaternions and rigid transforms in the nuScenes / pyquaternion convention.

Quaternions are (w, x, y, z), unit length, and a calibrated_sensor / ego_pose record's
``rotation`` + ``translation`` map points FROM the child frame (sensor, ego) INTO the parent frame
(ego, global): ``p_parent = R(q) @ p_child + t``. Kept dependency-free (numpy only) so the
synthetic world and the ROS shell do not need pyquaternion at run time; the tests check every
function against pyquaternion and the devkit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# A short float vector as a list, tuple or array (quaternions, translations).
Vector = Sequence[float] | np.ndarray


def quat_normalize(q: Vector) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    return q / np.where(n == 0.0, 1.0, n)


def quat_to_rotmat(q: Vector) -> np.ndarray:
    """(w, x, y, z) -> 3x3 rotation matrix (batched over leading axes)."""
    w, x, y, z = np.moveaxis(quat_normalize(q), -1, 0)
    r = np.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        axis=-1,
    )
    return r.reshape(r.shape[:-1] + (3, 3))


def rotmat_to_quat(r: np.ndarray) -> np.ndarray:
    """3x3 rotation matrix -> (w, x, y, z) with w >= 0 (Shepperd's method, numerically stable)."""
    m = np.asarray(r, dtype=np.float64)
    tr = m[0, 0] + m[1, 1] + m[2, 2]
    if tr > 0:
        s = np.sqrt(tr + 1.0) * 2
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2]) * 2
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] > m[2, 2]:
        s = np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2]) * 2
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1]) * 2
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    qn = quat_normalize(q)
    return -qn if qn[0] < 0 else qn


def quat_multiply(a: Vector, b: Vector) -> np.ndarray:
    """Hamilton product a * b (apply b first, then a), as pyquaternion's ``a * b``."""
    w1, x1, y1, z1 = np.asarray(a, dtype=np.float64)
    w2, x2, y2, z2 = np.asarray(b, dtype=np.float64)
    return np.array(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ]
    )


def quat_conjugate(q: Vector) -> np.ndarray:
    w, x, y, z = np.asarray(q, dtype=np.float64)
    return np.array([w, -x, -y, -z])


def yaw_to_quat(yaw: float) -> np.ndarray:
    """Rotation about +z by ``yaw`` radians (pyquaternion ``Quaternion(axis=[0,0,1], angle=yaw)``)."""
    return np.array([np.cos(yaw / 2.0), 0.0, 0.0, np.sin(yaw / 2.0)])


def quat_to_yaw(q: Vector) -> float:
    """Heading of the rotated x axis in the xy plane (the devkit's ``quaternion_yaw``)."""
    r = quat_to_rotmat(q)
    return float(np.arctan2(r[1, 0], r[0, 0]))


def euler_to_quat(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Intrinsic z-y'-x'' (yaw, then pitch, then roll) -> quaternion."""
    qz = yaw_to_quat(yaw)
    qy = np.array([np.cos(pitch / 2.0), 0.0, np.sin(pitch / 2.0), 0.0])
    qx = np.array([np.cos(roll / 2.0), np.sin(roll / 2.0), 0.0, 0.0])
    return quat_multiply(quat_multiply(qz, qy), qx)


# Camera optical frame (x right, y down, z forward) expressed in a forward-looking body frame
# (x forward, y left, z up): optical z -> body x, optical x -> body -y, optical y -> body -z.
OPTICAL_TO_BODY = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def camera_quat(yaw: float, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """Camera(optical)->ego rotation for a camera looking along ego heading ``yaw`` (rad).

    ``pitch`` > 0 tilts the view down. At yaw 0 this is nuScenes' CAM_FRONT (0.5, -0.5, 0.5, -0.5).
    """
    body = quat_to_rotmat(euler_to_quat(roll, pitch, yaw))
    return rotmat_to_quat(body @ OPTICAL_TO_BODY)


@dataclass(frozen=True)
class Transform:
    """Rigid transform child -> parent: ``p_parent = rotation @ p_child + translation``."""

    rotation: np.ndarray  # (3, 3) float64
    translation: np.ndarray  # (3,) float64

    @staticmethod
    def identity() -> Transform:
        return Transform(np.eye(3), np.zeros(3))

    @staticmethod
    def from_quat(quat: Vector, translation: Vector) -> Transform:
        return Transform(quat_to_rotmat(quat), np.asarray(translation, dtype=np.float64).reshape(3))

    @staticmethod
    def from_record(record: dict) -> Transform:
        """From a nuScenes calibrated_sensor or ego_pose record."""
        return Transform.from_quat(record["rotation"], record["translation"])

    @staticmethod
    def from_yaw(yaw: float, translation: Vector) -> Transform:
        return Transform.from_quat(yaw_to_quat(yaw), translation)

    @staticmethod
    def from_matrix(m: np.ndarray) -> Transform:
        m = np.asarray(m, dtype=np.float64)
        return Transform(m[:3, :3].copy(), m[:3, 3].copy())

    @property
    def quat(self) -> np.ndarray:
        return rotmat_to_quat(self.rotation)

    @property
    def yaw(self) -> float:
        return float(np.arctan2(self.rotation[1, 0], self.rotation[0, 0]))

    def matrix(self) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3] = self.rotation
        m[:3, 3] = self.translation
        return m

    def inverse(self) -> Transform:
        rt = self.rotation.T
        return Transform(rt, -rt @ self.translation)

    def __matmul__(self, other: Transform) -> Transform:
        """Composition: ``(a @ b)(p) == a(b(p))``, e.g. ego_to_global @ sensor_to_ego."""
        return Transform(self.rotation @ other.rotation, self.rotation @ other.translation + self.translation)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Transform (N, 3) points."""
        return np.asarray(points) @ self.rotation.T + self.translation

    def apply_vector(self, vectors: np.ndarray) -> np.ndarray:
        """Rotate (N, 3) free vectors (velocities, directions)."""
        return np.asarray(vectors) @ self.rotation.T

    def to_record(self) -> dict:
        """``translation`` / ``rotation`` lists as nuScenes stores them."""
        return {"translation": [float(v) for v in self.translation], "rotation": [float(v) for v in self.quat]}


def rigid_inverse(m: np.ndarray) -> np.ndarray:
    """Inverse of a 4x4 rotation + translation: [R^T, -R^T t]. Exact for what TF carries, and
    ~5x cheaper than np.linalg.inv's LU (the node inverts several per keyframe)."""
    out = np.eye(4)
    rt = m[:3, :3].T
    out[:3, :3] = rt
    out[:3, 3] = -rt @ m[:3, 3]
    return out


def sensor_to_global(sensor_to_ego: Transform, ego_to_global: Transform) -> Transform:
    return ego_to_global @ sensor_to_ego


def sensor_a_to_sensor_b(
    a_to_ego: Transform, ego_a_to_global: Transform, b_to_ego: Transform, ego_b_to_global: Transform
) -> Transform:
    """Sensor A at time ta -> sensor B at time tb through the global frame (the devkit's chain)."""
    return b_to_ego.inverse() @ ego_b_to_global.inverse() @ ego_a_to_global @ a_to_ego


def project_points(points_cam: np.ndarray, intrinsics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pinhole projection of (N, 3) optical-frame points -> (N, 2) pixels and (N,) depth (z)."""
    depth = points_cam[:, 2]
    uvw = points_cam @ np.asarray(intrinsics, dtype=np.float64).T
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = uvw[:, :2] / depth[:, None]
    return uv, depth


def box_corners(center: np.ndarray, size: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """(N, 8, 3) corners of boxes with size (w, l, h); x along l at yaw, as the devkit's Box.corners.

    Corner order: the devkit's (front-left-top, front-right-top, front-right-bottom,
    front-left-bottom, then the same four at the back).
    """
    center = np.atleast_2d(np.asarray(center, dtype=np.float64))
    size = np.atleast_2d(np.asarray(size, dtype=np.float64))
    yaw = np.atleast_1d(np.asarray(yaw, dtype=np.float64))
    w, l, h = size[:, 0:1], size[:, 1:2], size[:, 2:3]
    sx = np.array([1, 1, 1, 1, -1, -1, -1, -1], dtype=np.float64)
    sy = np.array([1, -1, -1, 1, 1, -1, -1, 1], dtype=np.float64)
    sz = np.array([1, 1, -1, -1, 1, 1, -1, -1], dtype=np.float64)
    x = l / 2 * sx
    y = w / 2 * sy
    z = h / 2 * sz
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    xr = c * x - s * y + center[:, 0:1]
    yr = s * x + c * y + center[:, 1:2]
    zr = np.broadcast_to(z, xr.shape) + center[:, 2:3]
    return np.stack([xr, yr, zr], axis=-1)


def points_in_boxes(points: np.ndarray, center: np.ndarray, size: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """(N, M) bool: point n lies inside box m (boxes upright, yaw about z).

    Each box tests only the points whose x lies within its footprint radius (points sorted by x
    once): the same arithmetic per (point, box) pair as the dense test, without the (N, M, 3)
    temporaries, so many boxes against a LiDAR sweep stay cheap."""
    n, m = len(points), len(center)
    out = np.zeros((n, m), dtype=bool)
    if n == 0 or m == 0:
        return out
    order = np.argsort(points[:, 0], kind="stable")
    xs = points[order, 0]
    # conservative: a point inside the box is within hypot(w, l) / 2 of its centre in x
    reach = 0.5 * np.hypot(size[:, 0], size[:, 1]) * (1 + 1e-9) + 1e-9 * (1 + np.abs(center[:, 0]))
    first = np.searchsorted(xs, center[:, 0] - reach, side="left").tolist()
    last = np.searchsorted(xs, center[:, 0] + reach, side="right").tolist()
    c, s = np.cos(yaw), np.sin(yaw)
    half = size / 2
    for j in range(m):
        if last[j] <= first[j]:
            continue
        sel = order[first[j]:last[j]]
        d = points[sel, :3] - center[j, :3]
        lx = d[:, 0] * c[j] + d[:, 1] * s[j]
        ly = -d[:, 0] * s[j] + d[:, 1] * c[j]
        out[sel, j] = (np.abs(lx) <= half[j, 1]) & (np.abs(ly) <= half[j, 0]) & (np.abs(d[:, 2]) <= half[j, 2])
    return out
