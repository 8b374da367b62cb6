"""sensor_msgs/CameraInfo and geometry_msgs/TransformStamped <-> numpy calibration.

Rule: the detector assumes rectified pinhole images and rigid child -> parent transforms; anything
else (distortion, a non-pinhole K, a non-unit quaternion, a reflection) raises ValueError here
instead of silently misplacing every point. CameraIntrinsics describe the image *as published*
(ROI and binning applied); rescaling for a reduced decode happens once, in the pipeline, through
``imkd_ros.rig.intrinsics`` (pixel-centre convention).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from imkd_ros.rig.geometry import quat_to_rotmat, rotmat_to_quat
from imkd_ros.rig.intrinsics import scale_intrinsics
from imkd_ros.ros.msgutil import make_header


# ---------------------------------------------------------------------------- CameraInfo
@dataclass
class CameraIntrinsics:
    """Pinhole intrinsics of the image as published (ROI offset and binning applied)."""

    K: np.ndarray  # (3, 3) float64
    width: int
    height: int
    distortion_model: str
    D: np.ndarray  # (n,) float64

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


def camera_info_to_intrinsics(msg: Any, *, require_undistorted: bool = True, tol: float = 1e-6) -> CameraIntrinsics:
    """sensor_msgs/CameraInfo -> CameraIntrinsics.

    The model assumes rectified pinhole images (as nuScenes): with ``require_undistorted`` any
    distortion coefficient above ``tol`` raises ValueError rather than silently misplacing points.
    """
    K = np.asarray(msg.k, dtype=np.float64).reshape(-1)
    if K.size != 9:
        raise ValueError(f"CameraInfo.k must have 9 values, got {K.size}")
    K = K.reshape(3, 3).copy()
    if not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0 or abs(K[2, 2] - 1.0) > 1e-9:
        raise ValueError(f"CameraInfo.k is not a valid pinhole matrix: {K.tolist()}")
    if abs(K[1, 0]) > 1e-9 or abs(K[2, 0]) > 1e-9 or abs(K[2, 1]) > 1e-9:
        raise ValueError(f"CameraInfo.k is not upper triangular: {K.tolist()}")
    width, height = int(msg.width), int(msg.height)
    if width <= 0 or height <= 0:
        raise ValueError(f"CameraInfo size {width}x{height} is empty (uncalibrated camera?)")
    D = np.asarray(msg.d, dtype=np.float64).reshape(-1).copy()
    if require_undistorted and D.size and np.max(np.abs(D)) > tol:
        raise ValueError(
            f"camera has distortion {msg.distortion_model} D={D.tolist()}: the detector needs rectified "
            "images (publish image_rect, or pass require_undistorted=False)"
        )
    roi = msg.roi
    if int(roi.width) > 0 and int(roi.height) > 0:
        K[0, 2] -= int(roi.x_offset)
        K[1, 2] -= int(roi.y_offset)
        width, height = int(roi.width), int(roi.height)
    bx, by = max(int(msg.binning_x), 1), max(int(msg.binning_y), 1)
    if bx > 1 or by > 1:
        K = scale_intrinsics(K, 1.0 / bx, 1.0 / by)
        width, height = width // bx, height // by
    return CameraIntrinsics(K, width, height, str(msg.distortion_model), D)


def intrinsics_to_camera_info(
    K: np.ndarray, width: int, height: int, frame_id: str = "", stamp_ns: int = 0, D: Sequence[float] | None = None
) -> Any:
    """(3, 3) K and size -> sensor_msgs/CameraInfo (plumb_bob, R = I, P = [K | 0])."""
    from sensor_msgs.msg import CameraInfo  # noqa: PLC0415  (optional: ROS msgs; replay imports this without ROS)

    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    P = np.zeros((3, 4))
    P[:, :3] = K
    msg = CameraInfo(header=make_header(frame_id, stamp_ns), width=int(width), height=int(height))
    msg.distortion_model = "plumb_bob"
    msg.d = [float(x) for x in (D if D is not None else [0.0] * 5)]
    msg.k = K.reshape(-1).tolist()
    msg.r = np.eye(3).reshape(-1).tolist()
    msg.p = P.reshape(-1).tolist()
    return msg


# ---------------------------------------------------------------------------- TransformStamped
def transform_to_matrix(msg: Any) -> np.ndarray:
    """geometry_msgs/TransformStamped (or Transform) -> (4, 4) float64, child -> parent."""
    tf = msg.transform if hasattr(msg, "transform") else msg
    t, q = tf.translation, tf.rotation
    quat = np.array([q.w, q.x, q.y, q.z], np.float64)
    n = float(np.linalg.norm(quat))
    if not math.isfinite(n) or n < 1e-6:
        raise ValueError(f"transform quaternion is not usable: {quat.tolist()}")
    m = np.eye(4)
    m[:3, :3] = quat_to_rotmat(quat / n)
    m[:3, 3] = (t.x, t.y, t.z)
    if not np.all(np.isfinite(m)):
        raise ValueError("transform has non-finite translation")
    return m


def matrix_to_transform(matrix: np.ndarray, parent_frame: str, child_frame: str, stamp_ns: int = 0) -> Any:
    """(4, 4) rigid child -> parent matrix -> geometry_msgs/TransformStamped."""
    from geometry_msgs.msg import TransformStamped  # noqa: PLC0415  (optional: ROS msgs; replay imports this without ROS)

    m = np.asarray(matrix, np.float64)
    if m.shape != (4, 4):
        raise ValueError(f"expected a 4x4 matrix, got {m.shape}")
    r = m[:3, :3]
    if not np.allclose(r @ r.T, np.eye(3), atol=1e-5) or np.linalg.det(r) < 0:
        raise ValueError("matrix rotation is not a proper rotation")
    w, x, y, z = rotmat_to_quat(r)
    msg = TransformStamped(header=make_header(parent_frame, stamp_ns), child_frame_id=child_frame)
    msg.transform.translation.x, msg.transform.translation.y, msg.transform.translation.z = map(float, m[:3, 3])
    rot = msg.transform.rotation
    rot.x, rot.y, rot.z, rot.w = float(x), float(y), float(z), float(w)
    return msg
