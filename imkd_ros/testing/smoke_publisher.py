"""A node that publishes one known camera image, Detection3DArray and Object3DArray repeatedly.

Used by the transport smoke test: a second process must receive exactly these contents over
loopback DDS, best-effort sensor QoS included (which needs the shipped Fast DDS SHM profile).
"""

from __future__ import annotations

import sys

import numpy as np
import rclpy
from geometry_msgs.msg import Point
from imkd_msgs.msg import Object3D, Object3DArray
from rclpy.executors import ExternalShutdownException
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection3D, Detection3DArray, ObjectHypothesisWithPose


def smoke_image(width: int = 1600, height: int = 900) -> np.ndarray:
    """A deterministic rgb8 pattern; every pixel is checkable on the receiving side."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([(x % 256), (y % 256), ((x + 3 * y) % 251)], axis=-1).astype(np.uint8)


SMOKE_BOXES = (  # class, score, x, y, z, w, l, h, yaw, vx, vy, attribute
    ("car", 0.91, 12.5, -3.25, 0.9, 1.9, 4.6, 1.7, 0.3, 5.0, 0.5, "vehicle.moving"),
    ("pedestrian", 0.55, 7.0, 4.0, 0.85, 0.6, 0.7, 1.75, -1.2, 0.0, 1.2, "pedestrian.moving"),
)


def main(argv: list[str] | None = None) -> int:
    rclpy.init(args=argv if argv is not None else sys.argv)
    node = rclpy.create_node("imkd_smoke_publisher")
    pub_img = node.create_publisher(Image, "smoke/image", qos_profile_sensor_data)
    pub_det = node.create_publisher(Detection3DArray, "smoke/detections", 10)
    pub_obj = node.create_publisher(Object3DArray, "smoke/objects", 10)

    pixels = smoke_image()
    img = Image(height=pixels.shape[0], width=pixels.shape[1], encoding="rgb8", is_bigendian=0)
    img.step = pixels.shape[1] * 3
    img.data = pixels.tobytes()
    img.header.frame_id = "cam_front"

    dets, objs = Detection3DArray(), Object3DArray()
    dets.header.frame_id = objs.header.frame_id = "base_link"
    for cls, score, x, y, z, w, l, h, yaw, vx, vy, attr in SMOKE_BOXES:
        d = Detection3D()
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id, hyp.hypothesis.score = cls, score
        hyp.pose.pose.position.x, hyp.pose.pose.position.y, hyp.pose.pose.position.z = x, y, z
        hyp.pose.pose.orientation.z, hyp.pose.pose.orientation.w = float(np.sin(yaw / 2)), float(np.cos(yaw / 2))
        d.results.append(hyp)
        d.bbox.center = hyp.pose.pose
        d.bbox.size.x, d.bbox.size.y, d.bbox.size.z = l, w, h
        dets.detections.append(d)
        objs.objects.append(
            Object3D(class_name=cls, class_id=0, score=score, center=Point(x=x, y=y, z=z), yaw=yaw,
                     width=w, length=l, height=h, vx=vx, vy=vy, attribute=attr, track_id=7)
        )
    seq = 0

    def tick() -> None:
        nonlocal seq
        stamp = node.get_clock().now().to_msg()
        for msg in (img, dets, objs):
            msg.header.stamp = stamp
        dets.detections[0].id = str(seq)
        pub_img.publish(img)
        pub_det.publish(dets)
        pub_obj.publish(objs)
        seq += 1

    node.create_timer(0.1, tick)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:  # SIGINT shut the context down mid-wait; as imkd_ros.ros.spin (testing imports no room)
        if rclpy.ok():
            raise
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
