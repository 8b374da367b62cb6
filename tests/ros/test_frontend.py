"""The node's front end without DDS: real sensor_msgs in, keyframes and frames out."""

from __future__ import annotations

import numpy as np
import pytest
from tf2_msgs.msg import TFMessage

from imkd_ros.constants import CAMERA_NAMES, RADAR_NAMES, RADAR_PCD_FIELDS
from imkd_ros.ros import calibration, clouds, images, msgutil
from imkd_ros.ros.frontend import DetectionFrontend
from imkd_ros.ros.params import NodeParams
from imkd_ros.types import Boxes

K = np.array([[1266.0, 0, 816], [0, 1266, 491], [0, 0, 1]])
PERIOD = 83_333_333


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.frames = []

    def decode_reduce(self, camera_width: int) -> int:
        return 4

    def detect(self, frame):
        self.frames.append(frame)
        return Boxes.empty(), {}


@pytest.fixture
def front():
    f = DetectionFrontend(NodeParams(radar_wait_ms=0.0), Recorder())
    f.on_tf(TFMessage(transforms=[calibration.matrix_to_transform(np.eye(4), "base_link", n.lower())
                                  for n in [*CAMERA_NAMES, *RADAR_NAMES]]), True)
    for i, n in enumerate(CAMERA_NAMES):
        f.on_camera_info(i, calibration.intrinsics_to_camera_info(K, 1600, 900, n.lower()))
    yield f
    f.close()


JPEG = images.rgb_to_compressed(np.full((900, 1600, 3), 90, np.uint8))


def feed(front: DetectionFrontend, stamp: int, cams=range(6), radar: bool = True) -> list:
    out = []
    if radar:
        pts = np.zeros((4, len(RADAR_PCD_FIELDS)), np.float32)
        pts[:, 0] = [10, 20, 30, 40]
        pts[:, RADAR_PCD_FIELDS.index("ambig_state")] = 3
        for n in RADAR_NAMES:
            front.on_radar(f"/{n.lower()}/points", clouds.radar_to_pointcloud2(pts, n.lower(), stamp - 5_000_000))
    for i in cams:
        msg = images.rgb_to_compressed(np.zeros((1, 1, 3), np.uint8))
        msg.data, msg.format = JPEG.data, JPEG.format
        msg.header = msgutil.make_header(CAMERA_NAMES[i].lower(), stamp + i * 7_000_000)
        front.on_camera(i, msg)
    for kf in front.poll(stamp + 200_000_000):
        out.append(front.process(kf))
    return out


def test_reduced_decode_keeps_geometry_consistent(front) -> None:
    outs = feed(front, 10 * 10**9)
    assert len(outs) == 1 and not outs[0].result.missing_cameras
    frame = front.detector.frames[-1]
    assert frame.images[0].shape == (225, 400, 3)
    quarter = [[1266 / 4, 0, 816.5 / 4 - 0.5], [0, 1266 / 4, 491.5 / 4 - 0.5]]  # pixel-centre convention
    np.testing.assert_allclose(frame.intrinsics[0][:2], quarter, rtol=1e-6)
    assert frame.radar.shape[0] == 4 * len(RADAR_NAMES)


def test_missing_camera_is_masked_after_the_timeout(front) -> None:
    outs = feed(front, 10 * 10**9, cams=[0, 1, 2, 4, 5])
    assert outs and outs[0].result.missing_cameras == ["CAM_BACK"]
    assert front.detector.frames[-1].camera_valid.tolist() == [True, True, True, False, True, True]


def test_bag_loop_resets_and_goes_on(front) -> None:
    for k in range(3):
        assert feed(front, 10 * 10**9 + k * PERIOD)
    outs = feed(front, 1 * 10**9)  # time jumps back 9 s: a looping bag
    outs += feed(front, 1 * 10**9 + PERIOD)
    assert outs, "keyframes after the jump are processed"
    assert front.counters["time_resets"] >= 1


def test_malformed_input_is_counted_not_raised(front) -> None:
    bad = images.rgb_to_compressed(np.zeros((8, 8, 3), np.uint8))
    bad.data = b"garbage"
    bad.header = msgutil.make_header("cam_front", 20 * 10**9)
    front.on_camera(0, bad)
    for i in range(1, 6):
        m = images.rgb_to_compressed(np.zeros((1, 1, 3), np.uint8))
        m.data = JPEG.data
        m.header = msgutil.make_header(CAMERA_NAMES[i].lower(), 20 * 10**9 + i)
        front.on_camera(i, m)
    outs = [front.process(kf) for kf in front.poll(21 * 10**9)]
    assert outs and outs[0].result.missing_cameras == ["CAM_FRONT"]
    assert front.counters["camera_image_invalid"] == 1
    zero = msgutil.make_header("cam_front", 0)
    m = images.rgb_to_compressed(np.zeros((8, 8, 3), np.uint8))
    m.header = zero
    front.on_camera(0, m)
    assert front.counters["camera_zero_stamp"] == 1
    info = calibration.intrinsics_to_camera_info(np.zeros((3, 3)), 1600, 900, "cam_front")
    front.on_camera_info(0, info)
    assert front.counters["camera_info_invalid"] == 1
    assert front.counters["bad_messages"] == 3
