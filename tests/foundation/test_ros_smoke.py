"""Real ROS 2 between two processes over loopback DDS: large best-effort image + our messages."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from imkd_msgs.msg import Object3DArray
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection3DArray

from imkd_ros.testing.smoke_publisher import SMOKE_BOXES, smoke_image

pytestmark = pytest.mark.ros


def test_environment_is_loopback_only() -> None:
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert 1 <= int(os.environ["ROS_DOMAIN_ID"]) <= 101
    profile = Path(os.environ["FASTDDS_DEFAULT_PROFILES_FILE"]).read_text()
    assert "<address>127.0.0.1</address>" in profile and "<segment_size>67108864" in profile


def test_image_detections_objects_cross_processes(start_node, collector) -> None:
    collector.subscribe("/smoke/image", Image, qos_profile_sensor_data)
    collector.subscribe("/smoke/detections", Detection3DArray)
    collector.subscribe("/smoke/objects", Object3DArray)
    pub = start_node("imkd_ros.testing.smoke_publisher")
    try:
        collector.wait_for_publishers("/smoke/image", timeout=120)
        imgs = collector.wait_for_messages("/smoke/image", 2, timeout=120)
        dets = collector.wait_for_messages("/smoke/detections", 2, timeout=120)
        objs = collector.wait_for_messages("/smoke/objects", 2, timeout=120)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n--- publisher log ---\n{pub.log()}") from exc
    assert pub.alive(), pub.log()

    img = imgs[-1]
    assert (img.width, img.height, img.encoding, img.step) == (1600, 900, "rgb8", 4800)
    pixels = np.frombuffer(bytes(img.data), np.uint8).reshape(900, 1600, 3)
    np.testing.assert_array_equal(pixels, smoke_image())

    d = dets[-1]
    assert d.header.frame_id == "base_link" and len(d.detections) == len(SMOKE_BOXES)
    for det, (cls, score, x, y, z, w, l, h, *_rest) in zip(d.detections, SMOKE_BOXES):
        hyp = det.results[0]
        assert hyp.hypothesis.class_id == cls and hyp.hypothesis.score == pytest.approx(score)
        c = det.bbox.center.position
        assert (c.x, c.y, c.z) == pytest.approx((x, y, z))
        assert (det.bbox.size.x, det.bbox.size.y, det.bbox.size.z) == pytest.approx((l, w, h))
    assert int(d.detections[0].id) >= 0

    o = objs[-1]
    assert [ob.class_name for ob in o.objects] == [b[0] for b in SMOKE_BOXES]
    car = o.objects[0]
    assert (car.vx, car.vy, car.attribute, car.track_id) == (5.0, 0.5, "vehicle.moving", 7)
    assert pub.stop() in (0, -2, 130), pub.log()  # clean shutdown on SIGINT
