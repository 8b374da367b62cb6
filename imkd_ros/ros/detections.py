"""imkd_ros.types.Boxes <-> vision_msgs/Detection3DArray and imkd_msgs/Object3DArray.

Rule (box convention): Boxes follow nuScenes, size = (w, l, h) with l along the heading (box x)
and w across it (box y). vision_msgs BoundingBox3D.size is the extent along the box's own x/y/z
axes, so it is written as (l, w, h): ``size.x = l = Boxes.size[:, 1]``, ``size.y = w =
Boxes.size[:, 0]``, ``size.z = h``. Orientation is the yaw about +z: quaternion (x, y, z, w) =
(0, 0, sin(yaw/2), cos(yaw/2)). Object3D keeps nuScenes (w, l, h), velocity and attribute, which
vision_msgs cannot carry. Builders use the template fast path (``imkd_ros.ros.fastmsg``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from imkd_ros.constants import ATTRIBUTES, CLASS_TO_ID, CLASSES
from imkd_ros.ros.fastmsg import clone, msg
from imkd_ros.ros.msgutil import make_header
from imkd_ros.types import Boxes


def yaw_quat_xyzw(yaw: float) -> tuple[float, float, float, float]:
    """Yaw about +z -> quaternion (x, y, z, w)."""
    return 0.0, 0.0, math.sin(yaw / 2.0), math.cos(yaw / 2.0)


def quat_yaw(q: Any) -> float:
    """Quaternion message -> yaw about +z."""
    return math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))


def class_name(label: int) -> str:
    """nuScenes class name of a label (the number as text when out of range)."""
    return CLASSES[label] if 0 <= label < len(CLASSES) else str(label)


def _pose(center: np.ndarray, yaw: float, template: Any = None) -> Any:
    from geometry_msgs.msg import Point, Pose, Quaternion  # noqa: PLC0415  (optional: ROS msgs; replay imports this without ROS)

    qx, qy, qz, qw = yaw_quat_xyzw(yaw)
    pose = Pose() if template is None else clone(template)
    pose.position = msg(Point, x=float(center[0]), y=float(center[1]), z=float(center[2]))
    pose.orientation = msg(Quaternion, x=qx, y=qy, z=qz, w=qw)
    return pose


def boxes_to_detection3d_array(boxes: Boxes, frame_id: str, stamp_ns: int) -> Any:
    """Boxes -> vision_msgs/Detection3DArray.

    One hypothesis per detection: class_id = nuScenes class name, score; its pose = the box pose.
    bbox.size = (l, w, h) along the box x/y/z axes (nuScenes size is (w, l, h)); id = track id or "".
    """
    from geometry_msgs.msg import Pose, PoseWithCovariance, Vector3  # noqa: PLC0415  (optional: ROS msgs; replay imports this without ROS)
    from vision_msgs.msg import BoundingBox3D, Detection3D, Detection3DArray, ObjectHypothesis, ObjectHypothesisWithPose  # noqa: PLC0415  (optional: ROS msgs; replay imports this without ROS)

    header = make_header(frame_id, stamp_ns)
    out = Detection3DArray(header=header)
    # Per-call templates (see fastmsg.clone): every field that differs per box is assigned a new object.
    t_pose, t_pwc, t_hyp = Pose(), PoseWithCovariance(), ObjectHypothesisWithPose()
    t_box, t_det = BoundingBox3D(), Detection3D(header=header)
    dets = []
    for i in range(len(boxes)):
        pose = _pose(boxes.center[i], float(boxes.yaw[i]), t_pose)
        w, l, h = (float(v) for v in boxes.size[i])
        hyp = clone(t_hyp)
        hyp.hypothesis = msg(ObjectHypothesis, class_id=class_name(int(boxes.labels[i])), score=float(boxes.scores[i]))
        hyp.pose = clone(t_pwc)  # covariance: the template's zeros, shared read-only
        hyp.pose.pose = pose
        bbox = clone(t_box)
        bbox.center = pose
        bbox.size = msg(Vector3, x=l, y=w, z=h)
        det = clone(t_det)
        det.results = [hyp]
        det.bbox = bbox
        det.id = str(int(boxes.track_ids[i])) if boxes.track_ids is not None else ""
        dets.append(det)
    out.detections = dets
    return out


def detection3d_array_to_boxes(det_array: Any) -> Boxes:
    """vision_msgs/Detection3DArray -> Boxes (best hypothesis; velocity 0, attribute -1).

    Unknown class names get label -1.
    """
    n = len(det_array.detections)
    b = Boxes(
        center=np.zeros((n, 3), np.float32), size=np.zeros((n, 3), np.float32), yaw=np.zeros(n, np.float32),
        velocity=np.zeros((n, 2), np.float32), labels=np.full(n, -1, np.int64), scores=np.zeros(n, np.float32),
        attributes=np.full(n, -1, np.int64),
    )
    ids = []
    for i, d in enumerate(det_array.detections):
        c, s = d.bbox.center, d.bbox.size
        b.center[i] = (c.position.x, c.position.y, c.position.z)
        b.size[i] = (s.y, s.x, s.z)
        b.yaw[i] = quat_yaw(c.orientation)
        if d.results:
            best = max(d.results, key=lambda r: r.hypothesis.score)
            b.labels[i] = CLASS_TO_ID.get(best.hypothesis.class_id, -1)
            b.scores[i] = best.hypothesis.score
        ids.append(d.id)
    if n and all(x.isdigit() for x in ids):
        b.track_ids = np.array([int(x) for x in ids], np.int64)
    return b


def boxes_to_object3d_array(boxes: Boxes, frame_id: str, stamp_ns: int) -> Any:
    """Boxes -> imkd_msgs/Object3DArray (keeps velocity, attribute and the nuScenes (w, l, h) size)."""
    from geometry_msgs.msg import Point  # noqa: PLC0415  (optional: ROS msgs; replay imports this without ROS)
    from imkd_msgs.msg import Object3D, Object3DArray  # noqa: PLC0415  (optional: ROS msgs; replay imports this without ROS)

    objs = []
    for i in range(len(boxes)):
        label = int(boxes.labels[i])
        attr = int(boxes.attributes[i])
        c = boxes.center[i]
        objs.append(
            Object3D(
                class_name=class_name(label),
                class_id=label if 0 <= label < len(CLASSES) else -1,
                score=float(boxes.scores[i]),
                center=Point(x=float(c[0]), y=float(c[1]), z=float(c[2])),
                yaw=float(boxes.yaw[i]),
                width=float(boxes.size[i, 0]),
                length=float(boxes.size[i, 1]),
                height=float(boxes.size[i, 2]),
                vx=float(boxes.velocity[i, 0]),
                vy=float(boxes.velocity[i, 1]),
                attribute=ATTRIBUTES[attr] if 0 <= attr < len(ATTRIBUTES) else "",
                track_id=max(int(boxes.track_ids[i]), 0) if boxes.track_ids is not None else 0,
            )
        )
    return Object3DArray(header=make_header(frame_id, stamp_ns), objects=objs)


def object3d_array_to_boxes(obj_array: Any) -> Boxes:
    """imkd_msgs/Object3DArray -> Boxes (track_ids set when any object carries one)."""
    objs = list(obj_array.objects)
    n = len(objs)
    attr_id = {a: i for i, a in enumerate(ATTRIBUTES)}
    b = Boxes(
        center=np.array([(o.center.x, o.center.y, o.center.z) for o in objs], np.float32).reshape(n, 3),
        size=np.array([(o.width, o.length, o.height) for o in objs], np.float32).reshape(n, 3),
        yaw=np.array([o.yaw for o in objs], np.float32),
        velocity=np.array([(o.vx, o.vy) for o in objs], np.float32).reshape(n, 2),
        labels=np.array([CLASS_TO_ID.get(o.class_name, o.class_id) for o in objs], np.int64),
        scores=np.array([o.score for o in objs], np.float32),
        attributes=np.array([attr_id.get(o.attribute, -1) for o in objs], np.int64),
    )
    if any(o.track_id for o in objs):
        b.track_ids = np.array([o.track_id for o in objs], np.int64)
    return b
