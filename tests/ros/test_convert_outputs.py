"""imkd_ros.ros.detections, markers and the fastmsg template path: Boxes to output messages."""

from __future__ import annotations

import math

import numpy as np
import pytest
from geometry_msgs.msg import Point, Quaternion, Vector3
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import ColorRGBA
from vision_msgs.msg import ObjectHypothesis
from visualization_msgs.msg import Marker

pytest.importorskip("sensor_msgs.msg")

from imkd_ros.constants import ATTRIBUTES, CLASSES
from imkd_ros.rig.geometry import box_corners
from imkd_ros.ros import detections, fastmsg, markers, msgutil
from imkd_ros.types import Boxes


def _roundtrip(msg):
    return deserialize_message(serialize_message(msg), type(msg))


# ---------------------------------------------------------------------------- detections
def _boxes(track=True) -> Boxes:
    return Boxes(
        center=np.array([[10.0, 2.0, 0.5], [-5.0, 3.0, 1.0], [0.0, -8.0, 0.3]], np.float32),
        size=np.array([[1.9, 4.6, 1.7], [0.7, 0.8, 1.8], [0.5, 0.5, 1.0]], np.float32),  # (w, l, h)
        yaw=np.array([0.3, -2.0, 3.0], np.float32),
        velocity=np.array([[5.0, 1.0], [0.1, 0.0], [0.0, -1.5]], np.float32),
        labels=np.array([0, 8, 9], np.int64),
        scores=np.array([0.9, 0.6, 0.4], np.float32),
        attributes=np.array([0, 5, -1], np.int64),
        track_ids=np.array([7, 8, 9], np.int64) if track else None,
    )


def test_detection3d_array_fields_and_size_mapping():
    b = _boxes()
    msg = _roundtrip(detections.boxes_to_detection3d_array(b, "base_link", 42))
    assert msg.header.frame_id == "base_link" and msgutil.time_to_ns(msg.header.stamp) == 42
    assert len(msg.detections) == 3
    d = msg.detections[0]
    assert d.header.frame_id == "base_link" and d.id == "7"
    hyp = d.results[0]
    assert hyp.hypothesis.class_id == "car" and hyp.hypothesis.score == pytest.approx(0.9)
    # size = (l, w, h) along the box axes; nuScenes (w, l, h) = (1.9, 4.6, 1.7)
    assert (d.bbox.size.x, d.bbox.size.y, d.bbox.size.z) == pytest.approx((4.6, 1.9, 1.7))
    q = d.bbox.center.orientation
    assert (q.x, q.y) == (0.0, 0.0)
    assert (q.z, q.w) == pytest.approx((math.sin(0.15), math.cos(0.15)))
    assert hyp.pose.pose.position.x == pytest.approx(10.0)
    assert [x.results[0].hypothesis.class_id for x in msg.detections] == ["car", "pedestrian", "traffic_cone"]
    back = detections.detection3d_array_to_boxes(msg)
    np.testing.assert_allclose(back.center, b.center, atol=1e-6)
    np.testing.assert_allclose(back.size, b.size, atol=1e-6)
    np.testing.assert_allclose(np.cos(back.yaw - b.yaw), 1.0, atol=1e-6)
    np.testing.assert_array_equal(back.labels, b.labels)
    np.testing.assert_array_equal(back.track_ids, [7, 8, 9])


def test_detection3d_size_matches_box_geometry():
    """bbox.size.x is the extent along the box's heading: rotate a corner back and check."""
    b = _boxes()
    d = detections.boxes_to_detection3d_array(b, "base_link", 0).detections[0]
    corners = box_corners(b.center[:1], b.size[:1], b.yaw[:1])[0] - b.center[0]
    c, s = math.cos(b.yaw[0]), math.sin(b.yaw[0])
    local_x = corners[:, 0] * c + corners[:, 1] * s
    local_y = -corners[:, 0] * s + corners[:, 1] * c
    assert np.ptp(local_x) == pytest.approx(d.bbox.size.x, abs=1e-5)
    assert np.ptp(local_y) == pytest.approx(d.bbox.size.y, abs=1e-5)


def test_empty_detections():
    msg = detections.boxes_to_detection3d_array(Boxes.empty(), "base_link", 1)
    assert len(msg.detections) == 0
    assert len(detections.detection3d_array_to_boxes(msg)) == 0
    msg = detections.boxes_to_object3d_array(Boxes.empty(), "base_link", 1)
    assert len(detections.object3d_array_to_boxes(msg)) == 0


def test_object3d_array_roundtrip():
    b = _boxes()
    msg = _roundtrip(detections.boxes_to_object3d_array(b, "base_link", 99))
    o = msg.objects[0]
    assert (o.class_name, o.class_id, o.attribute, o.track_id) == ("car", 0, ATTRIBUTES[0], 7)
    assert (o.width, o.length, o.height) == pytest.approx((1.9, 4.6, 1.7))
    assert (o.vx, o.vy) == pytest.approx((5.0, 1.0))
    assert msg.objects[2].attribute == ""
    back = detections.object3d_array_to_boxes(msg)
    for name in ("center", "size", "yaw", "velocity", "scores"):
        np.testing.assert_allclose(getattr(back, name), getattr(b, name), atol=1e-6)
    np.testing.assert_array_equal(back.labels, b.labels)
    np.testing.assert_array_equal(back.attributes, b.attributes)
    np.testing.assert_array_equal(back.track_ids, b.track_ids)
    untracked = detections.boxes_to_object3d_array(_boxes(False), "b", 0)
    assert detections.object3d_array_to_boxes(untracked).track_ids is None


# ---------------------------------------------------------------------------- markers
def test_marker_array():
    b = _boxes()
    msg = _roundtrip(markers.boxes_to_marker_array(b, "base_link", 5, min_speed=0.2))
    ms = list(msg.markers)
    assert ms[0].action == Marker.DELETEALL
    lines = [m for m in ms if m.type == Marker.LINE_LIST and m.action == Marker.ADD]
    texts = [m for m in ms if m.type == Marker.TEXT_VIEW_FACING]
    arrows = [m for m in ms if m.type == Marker.ARROW and m.action == Marker.ADD]
    assert len(lines) == 1 and len(lines[0].points) == 3 * 24 and len(lines[0].colors) == 3 * 24
    assert [t.text for t in texts] == ["car 0.90", "pedestrian 0.60", "traffic_cone 0.40"]
    assert len(arrows) == 2  # the pedestrian at 0.1 m/s gets none
    a = arrows[0]
    assert (a.points[1].x - a.points[0].x, a.points[1].y - a.points[0].y) == pytest.approx((5.0, 1.0))
    # Every segment endpoint is a box corner, every box edge is present (12 per box).
    pts = np.array([(p.x, p.y, p.z) for p in lines[0].points]).reshape(3, 12, 2, 3)
    corners = box_corners(b.center, b.size, b.yaw)
    for i in range(3):
        seg_len = np.linalg.norm(pts[i, :, 0] - pts[i, :, 1], axis=1)
        w, l, h = b.size[i]
        np.testing.assert_allclose(np.sort(seg_len), np.sort([l] * 4 + [w] * 4 + [h] * 4), atol=1e-5)
        for p in pts[i].reshape(-1, 3):
            assert np.min(np.linalg.norm(corners[i] - p, axis=1)) < 1e-5
    # Class colours: car orange, pedestrian blue.
    assert (lines[0].colors[0].r, lines[0].colors[0].b) == pytest.approx(markers.CLASS_COLORS[0][::2])
    assert lines[0].colors[24].b == pytest.approx(markers.CLASS_COLORS[CLASSES.index("pedestrian")][2])
    # Unique (ns, id) among ADD markers, all in the keyframe's frame and stamp.
    keys = [(m.ns, m.id) for m in ms[1:]]
    assert len(keys) == len(set(keys))
    assert all(m.header.frame_id == "base_link" and msgutil.time_to_ns(m.header.stamp) == 5 for m in ms)


def test_marker_fast_points_match_constructor():
    xyz = np.array([[1.0, -2.5, 3.25], [0.0, 1e-3, -7.0]])
    pts = fastmsg.make_points(xyz)
    assert pts == [Point(x=1.0, y=-2.5, z=3.25), Point(x=0.0, y=1e-3, z=-7.0)]
    assert all(isinstance(p.x, float) for p in pts)


def test_fast_message_paths_are_active_here():
    for cls in (Point, Quaternion, Vector3, ColorRGBA, ObjectHypothesis):
        assert fastmsg.flat_fields(cls) is not None, cls

    assert fastmsg.flat_fields(Marker) is None  # nested: cloned from templates instead


@pytest.mark.parametrize("builder", ["boxes_to_detection3d_array", "boxes_to_object3d_array", "boxes_to_marker_array"])
def test_fast_builders_equal_plain_constructors(builder, monkeypatch):
    """The slot-filling / template-cloning fast path builds exactly what plain constructors build."""
    fn = getattr(detections if builder != "boxes_to_marker_array" else markers, builder)
    b = _boxes()
    fast = fn(b, "base_link", 77)
    monkeypatch.setattr(fastmsg, "FAST_MSGS", False)
    slow = fn(b, "base_link", 77)
    assert fast == slow
    assert _roundtrip(fast) == _roundtrip(slow)  # (float32 fields round on the wire)


def test_marker_array_empty_still_clears():
    msg = markers.boxes_to_marker_array(Boxes.empty(), "base_link", 5)
    assert len(msg.markers) == 1 and msg.markers[0].action == Marker.DELETEALL
