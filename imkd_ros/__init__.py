"""imkd_ros: IMKD camera-radar 3D detection (LiDAR-distilled) as a ROS 2 perception node.

Functional core (rig, world, data, ops, model, sync, pipeline, runtime, metrics, render) is plain
Python/torch; ``imkd_ros.ros`` is the thin ROS shell.
"""

__version__ = "0.1.0"
