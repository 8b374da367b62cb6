"""K after a reduced decode, end to end through the frontend: one convention (pixel centres).

A bright square is drawn where a 3D point projects in a full-size 1600x900 JPEG; after the node's
1/4 decode, the square's measured centroid must be where the K the model receives projects that
point. The naive rescale (K[:2] /= 4) misses by 0.375 px; the pixel-centre one does not.
"""

from __future__ import annotations

import numpy as np
import pytest
from tf2_msgs.msg import TFMessage

pytest.importorskip("sensor_msgs.msg")

from imkd_ros.constants import CAMERA_NAMES, RADAR_NAMES
from imkd_ros.rig.intrinsics import pick_decode_reduce, scale_intrinsics
from imkd_ros.ros import calibration, images, msgutil
from imkd_ros.ros.frontend import DetectionFrontend
from imkd_ros.ros.params import NodeParams
from imkd_ros.types import Boxes

K = np.array([[1266.4, 0.0, 816.3], [0.0, 1266.4, 491.5], [0.0, 0.0, 1.0]])
W, H = 1600, 900
# Square of pixels 800..807 x 440..447: centroid (803.5, 443.5), aligned to JPEG's 8x8 blocks and
# to the 4x4 reduction blocks (so the reduced centroid is exact: 200.5, 110.5).
U, V = 803.5, 443.5
POINT = np.array([(U - K[0, 2]) * 10.0 / K[0, 0], (V - K[1, 2]) * 10.0 / K[1, 1], 10.0])


class Recorder:
    """Model stand-in with a 352 px input (the cpu student's), remembering its frames."""

    name = "recorder"

    def __init__(self) -> None:
        self.frames: list = []

    def detect(self, frame):
        self.frames.append(frame)
        return Boxes.empty(), {}

    def decode_reduce(self, camera_width: int) -> int:
        return pick_decode_reduce(camera_width, 352)


def _centroid(img: np.ndarray, background: float) -> tuple[float, float]:
    w = np.clip(img.astype(np.float64).mean(axis=2) - background, 0, None)
    w[w < 20] = 0  # JPEG noise around the flat background
    vs, us = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    return float((w * us).sum() / w.sum()), float((w * vs).sum() / w.sum())


@pytest.mark.parametrize("decoder", ["opencv", "pillow"])
@pytest.mark.parametrize("raw", [False, True], ids=["jpeg", "raw-rgb8"])
def test_k_after_quarter_decode_follows_pixel_centres(decoder, raw, monkeypatch):
    if decoder == "pillow":
        monkeypatch.setattr(images, "_cv2_mod", None)
    elif images._cv2_mod is None:
        pytest.skip("cv2 not importable")
    rgb = np.full((H, W, 3), 90, np.uint8)
    rgb[440:448, 800:808] = 250
    front = DetectionFrontend(NodeParams(radar_wait_ms=0.0), Recorder())
    try:
        front.on_tf(TFMessage(transforms=[calibration.matrix_to_transform(np.eye(4), "base_link", n.lower())
                                          for n in [*CAMERA_NAMES, *RADAR_NAMES]]), True)
        for i, n in enumerate(CAMERA_NAMES):
            front.on_camera_info(i, calibration.intrinsics_to_camera_info(K, W, H, n.lower()))
        assert front.decode_reduce(0) == 4  # chosen from the CameraInfo width, 1600 -> 400 >= 352
        stamp = 10 * 10**9
        for i, n in enumerate(CAMERA_NAMES):
            msg = images.rgb_to_image(rgb, n.lower()) if raw else images.rgb_to_compressed(rgb, n.lower(), quality=95)
            msg.header = msgutil.make_header(n.lower(), stamp + i * 1_000_000)
            front.on_camera(i, msg)
        outs = [front.process(kf) for kf in front.poll(stamp + 10**9)]
    finally:
        front.close()
    assert len(outs) == 1 and not outs[0].result.missing_cameras
    frame = front.detector.frames[-1]
    img, k_used = frame.images[0], np.asarray(frame.intrinsics[0], np.float64)
    assert img.shape == (225, 400, 3)
    np.testing.assert_allclose(k_used, scale_intrinsics(K, 0.25, 0.25), rtol=1e-6)
    uv = (k_used @ POINT)[:2] / POINT[2]
    cu, cv = _centroid(img, 90.0)
    assert (cu, cv) == pytest.approx((200.5, 110.5), abs=0.08)  # what the pixels say
    assert uv == pytest.approx((cu, cv), abs=0.1)  # the K the model gets agrees with them
    naive = (K[:2] / 4 @ POINT) / POINT[2]
    assert abs(naive[0] - cu) > 0.3  # the naive rescale would not (0.375 px)
