"""The node's status and health wiring, in-process (issue 12): a status for every keyframe, also a
skipped one; diagnostics levels from the sliding window, one status per sensor plus the pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.parameter import Parameter

from imkd_ros.constants import CAMERA_NAMES
from imkd_ros.pipeline import InferenceWorker, StagedWorker
from imkd_ros.ros import images, msgutil
from imkd_ros.ros.detector_node import DetectorNode
from imkd_ros.sync import SyncedKeyframe
from imkd_ros.types import Boxes


class Recorder:
    name = "recorder"

    def decode_reduce(self, camera_width: int) -> int:
        return 4

    def detect(self, frame):
        return Boxes.empty(), {}


@pytest.fixture
def detector_node():
    ctx = Context()
    rclpy.init(args=["x"], context=ctx)
    node = rclpy.create_node("imkd_detector", context=ctx)
    dn = DetectorNode(node, detector=Recorder())
    yield dn
    dn.close()
    node.destroy_node()
    rclpy.shutdown(context=ctx)


def _front_only_keyframe() -> SyncedKeyframe:
    """A keyframe with only CAM_FRONT's image (and no CameraInfo yet): skipped before the model."""
    msg = images.rgb_to_compressed(np.zeros((90, 160, 3), np.uint8))
    msg.header = msgutil.make_header("cam_front", 10**9)
    return SyncedKeyframe(seq=0, stamp_ns=10**9, camera_payloads=[msg] + [None] * 5,
                          camera_stamps_ns=[10**9] + [None] * 5, radar=[], missing_cameras=(1, 2, 3, 4, 5),
                          missing_radars=(), skew_ns=0, reason="timeout")


def test_skipped_keyframe_still_gets_a_status(detector_node) -> None:
    published = []
    detector_node.pub_status.publish = published.append
    kf = _front_only_keyframe()
    assert detector_node._prepare((kf, 0.0)) is None  # no CameraInfo yet: skipped before the model
    assert len(published) == 1
    st = published[0]
    assert list(st.missing_cameras) == list(CAMERA_NAMES) and msgutil.time_to_ns(st.header.stamp) == 10**9
    level, message, kv = detector_node.diagnostics()
    assert level == 2 and "keyframe_skipped" in message
    assert dict(kv)["last skipped keyframe"].startswith("no usable camera view")
    names = [r.name for r in detector_node.health_reports]
    assert names[-1] == "pipeline" and set(CAMERA_NAMES) <= set(names)


def test_levels_come_from_the_window_not_lifetime_counters(detector_node) -> None:
    h = detector_node.front.health
    clock = [100.0]
    h._clock = lambda: clock[0]
    for name in h.sensors:
        h.rx(name)
    detector_node.front.rx.update({t: 1 for t in detector_node.p.camera_topics})
    for i in range(6):
        detector_node.front.camera_info[i] = object()  # calibrated
    detector_node.worker.dropped = 5  # lifetime drops (every-set mode: by design, not a fault)
    assert detector_node.diagnostics()[0] == 0
    detector_node.front.bad("radar_cloud_invalid", "test", "RADAR_FRONT")
    level, message, _ = detector_node.diagnostics()
    assert level == 1 and "RADAR_FRONT" in message
    clock[0] += 3.5
    for name in h.sensors:
        h.rx(name)
    assert detector_node.diagnostics()[0] == 0


def test_one_stage_mode_runs_both_halves_on_one_thread() -> None:
    """pipeline_stages: 1 (lowest latency): one worker; a skipped keyframe still gets its status."""
    ctx = Context()
    rclpy.init(args=["x"], context=ctx)
    node = rclpy.create_node("imkd_detector", context=ctx,
                             parameter_overrides=[Parameter("pipeline_stages", value=1)])
    dn = DetectorNode(node, detector=Recorder())
    try:
        assert isinstance(dn.worker, InferenceWorker) and not isinstance(dn.worker, StagedWorker)
        published: list = []
        dn.pub_status.publish = published.append
        dn._prepare_and_run((_front_only_keyframe(), 0.0))
        assert len(published) == 1 and list(published[0].missing_cameras) == list(CAMERA_NAMES)
    finally:
        dn.close()
        node.destroy_node()
        rclpy.shutdown(context=ctx)


def test_default_is_two_stages(detector_node) -> None:
    assert isinstance(detector_node.worker, StagedWorker)
