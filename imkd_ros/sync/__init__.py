"""Time sync for six cameras + radars (pure Python, no ROS): see :mod:`imkd_ros.sync.policy`."""

from imkd_ros.sync.policy import COUNTERS, RadarSweep, SyncConfig, SyncedKeyframe, SyncPolicy

__all__ = ["COUNTERS", "RadarSweep", "SyncConfig", "SyncPolicy", "SyncedKeyframe"]
