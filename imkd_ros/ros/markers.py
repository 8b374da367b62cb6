"""imkd_ros.types.Boxes -> visualization_msgs/MarkerArray for RViz / Foxglove.

Rule: one MarkerArray per keyframe replaces the previous one completely (DELETEALL first), so no
stale box survives; (ns, id) is unique among the ADD markers; every marker carries the keyframe's
frame and stamp. Markers share read-only sub-messages (header, scale, colours) through the
template fast path (``imkd_ros.ros.fastmsg``): copy one before mutating it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from imkd_ros.rig.geometry import box_corners
from imkd_ros.ros.detections import class_name
from imkd_ros.ros.fastmsg import clone, make_points, msg
from imkd_ros.ros.msgutil import make_header
from imkd_ros.types import Boxes

# RGB per class (order constants.CLASSES), nuScenes devkit-like hues.
CLASS_COLORS: tuple[tuple[float, float, float], ...] = (
    (1.00, 0.62, 0.00),  # car: orange
    (1.00, 0.39, 0.28),  # truck: tomato
    (0.91, 0.59, 0.48),  # construction_vehicle
    (1.00, 0.27, 0.00),  # bus: orange-red
    (1.00, 0.55, 0.00),  # trailer
    (0.44, 0.50, 0.56),  # barrier: slate grey
    (1.00, 0.24, 0.59),  # motorcycle
    (0.86, 0.08, 0.24),  # bicycle: crimson
    (0.00, 0.00, 0.90),  # pedestrian: blue
    (0.18, 0.31, 0.31),  # traffic_cone
)
_UNKNOWN_COLOR = (0.8, 0.8, 0.8)
# The 12 edges of a box as pairs of box_corners() indices (front face 0-3, back face 4-7).
_EDGES = np.array(
    [(0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7)], np.int64
)


def boxes_to_marker_array(
    boxes: Boxes,
    frame_id: str,
    stamp_ns: int,
    *,
    ns: str = "imkd",
    line_width: float = 0.08,
    labels: bool = True,
    velocities: bool = True,
    min_speed: float = 0.2,
    lifetime_s: float = 0.0,
) -> Any:
    """Boxes -> visualization_msgs/MarkerArray.

    A DELETEALL comes first so boxes from the previous keyframe vanish; then one LINE_LIST with all
    box edges (per-vertex class colours), a TEXT_VIEW_FACING "class score" per box, and an ARROW per
    box moving faster than ``min_speed`` m/s (from the box centre, 1 s of motion long).
    """
    from builtin_interfaces.msg import Duration  # noqa: PLC0415  (optional: ROS msgs; replay imports this without ROS)
    from geometry_msgs.msg import Point, Vector3  # noqa: PLC0415  (optional: ROS msgs; replay imports this without ROS)
    from std_msgs.msg import ColorRGBA  # noqa: PLC0415  (optional: ROS msgs; replay imports this without ROS)
    from visualization_msgs.msg import Marker, MarkerArray  # noqa: PLC0415  (optional: ROS msgs; replay imports this without ROS)

    header = make_header(frame_id, stamp_ns)
    sec = int(lifetime_s)
    lifetime = Duration(sec=sec, nanosec=int(round((lifetime_s - sec) * 1e9)))
    markers = [Marker(header=header, ns=ns, id=0, action=Marker.DELETEALL)]

    def template(kind: int, sub: str) -> Any:
        m = Marker(header=header, ns=f"{ns}/{sub}", type=kind, action=Marker.ADD, lifetime=lifetime)
        m.pose.orientation.w = 1.0
        return m

    palette = [msg(ColorRGBA, r=r, g=g, b=b, a=1.0) for r, g, b in CLASS_COLORS]
    unknown = msg(ColorRGBA, r=_UNKNOWN_COLOR[0], g=_UNKNOWN_COLOR[1], b=_UNKNOWN_COLOR[2], a=1.0)

    def color(label: int) -> Any:  # shared, read-only colour objects
        return palette[label] if 0 <= label < len(palette) else unknown

    n = len(boxes)
    if n == 0:
        return MarkerArray(markers=markers)
    corners = box_corners(boxes.center, boxes.size, boxes.yaw)  # (N, 8, 3)
    seg = corners[:, _EDGES.reshape(-1)]  # (N, 24, 3)
    lines = template(Marker.LINE_LIST, "boxes")
    lines.id = 0
    lines.scale = msg(Vector3, x=float(line_width), y=0.0, z=0.0)
    lines.color = msg(ColorRGBA, r=1.0, g=1.0, b=1.0, a=1.0)
    lines.points = make_points(seg.reshape(-1, 3))
    lines.colors = [c for i in range(n) for c in [color(int(boxes.labels[i]))] * 24]
    markers.append(lines)
    t_text, t_arrow = template(Marker.TEXT_VIEW_FACING, "labels"), template(Marker.ARROW, "velocity")
    t_text.scale = msg(Vector3, x=0.0, y=0.0, z=0.8)  # text height
    t_arrow.scale = msg(Vector3, x=0.15, y=0.3, z=0.3)  # shaft diameter, head diameter, head length
    t_pose = t_text.pose
    top = (boxes.center[:, 2] + boxes.size[:, 2] / 2 + 0.5).tolist()
    centers, vel = boxes.center.tolist(), boxes.velocity.tolist()
    for i in range(n):
        label = int(boxes.labels[i])
        cx, cy, cz = centers[i]
        if labels:
            t = clone(t_text)
            t.id = i
            t.pose = clone(t_pose)
            t.pose.position = msg(Point, x=cx, y=cy, z=top[i])
            t.color = color(label)
            t.text = f"{class_name(label)} {float(boxes.scores[i]):.2f}"
            markers.append(t)
        if velocities:
            vx, vy = vel[i]
            if math.hypot(vx, vy) >= min_speed:
                a = clone(t_arrow)
                a.id = i
                a.points = [msg(Point, x=cx, y=cy, z=cz), msg(Point, x=cx + vx, y=cy + vy, z=cz)]
                a.color = color(label)
                markers.append(a)
    return MarkerArray(markers=markers)
