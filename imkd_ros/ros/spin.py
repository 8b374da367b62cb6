"""Spin a node until Ctrl-C or an external shutdown, treating every way rclpy reports that as a clean stop.

rclpy's SIGINT handler shuts the context down from another thread, so spin() can end with
KeyboardInterrupt, ExternalShutdownException, or (when the signal lands while the executor builds its
wait set) RCLError "the given context is not valid". The last is a RuntimeError like real failures, so
it is swallowed only once the context is no longer ok.
"""

from __future__ import annotations

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def spin_until_shutdown(node: Node) -> None:
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        if rclpy.ok():
            raise
