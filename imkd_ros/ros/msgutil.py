"""Stamps, headers and ``uint8[]`` buffers: the pieces every message-conversion module shares.

Rule: decoders are duck-typed on field names, so rclpy messages and rosbags messages (offline
replay) both work; builders import rclpy message packages inside the function, so importing any
conversion module needs no ROS installation.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def time_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (sec, nanosec) -> int nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_time(ns: int) -> Any:
    """int nanoseconds -> builtin_interfaces/Time."""
    from builtin_interfaces.msg import Time  # noqa: PLC0415  (optional: ROS msgs; replay imports this without ROS)

    sec, nsec = divmod(int(ns), 1_000_000_000)
    return Time(sec=sec, nanosec=nsec)


def make_header(frame_id: str, stamp_ns: int) -> Any:
    """std_msgs/Header for ``frame_id`` at ``stamp_ns``."""
    from std_msgs.msg import Header  # noqa: PLC0415  (optional: ROS msgs; replay imports this without ROS)

    return Header(frame_id=frame_id, stamp=ns_to_time(stamp_ns))


def as_u8(data: Any) -> np.ndarray:
    """A message's ``uint8[]`` (array.array, bytes, ndarray, list) as a flat uint8 array, no copy if possible."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.dtype.itemsize == 1 else data.view(np.uint8).reshape(-1)
    if isinstance(data, (bytes, bytearray, memoryview)) or hasattr(data, "buffer_info"):
        return np.frombuffer(data, dtype=np.uint8)
    return np.asarray(data, dtype=np.uint8).reshape(-1)


def set_u8(msg: Any, name: str, arr: np.ndarray) -> None:
    """Assign bytes to a message's uint8[] field (rclpy stores array.array; bytes assign fast)."""
    setattr(msg, name, np.ascontiguousarray(arr).tobytes())
