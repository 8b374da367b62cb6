"""`imkd play BAG`: publish a rosbag2 recording with its recorded timing (and /clock), for machines
without `ros2 bag` (rosbag2_py is not on PyPI). Reads with rosbags, publishes the raw CDR bytes, so
no message is decoded or re-encoded on the way.

/tf_static goes out transient-local (late joiners get it, as with a real robot_state_publisher);
everything else reliable with a bounded depth (best-effort subscribers match it too).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path
from typing import Any


def message_class(type_name: str) -> Any:
    """'sensor_msgs/msg/Image' -> the rclpy message class (rosidl_runtime_py is not on PyPI)."""
    pkg, kind, name = type_name.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


def play(bag: Path, rate: float = 1.0, loop: bool = False, clock: bool = True, start_delay: float = 0.5,
         topics: list[str] | None = None, wait_subscribers: list[str] | None = None,
         wait_timeout: float = 30.0, node_name: str = "imkd_player", max_loops: int = 0) -> int:
    import rclpy  # noqa: PLC0415  (optional: ROS; `imkd play --help` imports add_arguments)
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: PLC0415  (optional: ROS; `imkd play --help` imports add_arguments)
    from rosbags.highlevel import AnyReader  # noqa: PLC0415  (optional: ROS; `imkd play --help` imports add_arguments)
    from rosgraph_msgs.msg import Clock  # noqa: PLC0415  (optional: ROS; `imkd play --help` imports add_arguments)

    from imkd_ros.bag import make_typestore  # noqa: PLC0415  (optional: ROS; `imkd play --help` imports add_arguments)

    if rate <= 0:
        raise ValueError("--rate must be > 0")
    rclpy.init(args=sys.argv)
    node = rclpy.create_node(node_name)
    log = node.get_logger()
    pubs: dict[str, Any] = {}
    clock_pub = node.create_publisher(Clock, "/clock", 10) if clock else None
    loops = 0
    try:
        with AnyReader([bag], default_typestore=make_typestore()) as reader:
            conns = [c for c in reader.connections if topics is None or c.topic in topics]
            for c in conns:
                if c.topic in pubs:
                    continue
                static = c.topic in ("/tf_static", "tf_static")
                qos = QoSProfile(depth=100 if static else 20, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL if static else DurabilityPolicy.VOLATILE)
                pubs[c.topic] = node.create_publisher(message_class(c.msgtype), c.topic, qos)
            log.info(f"playing {bag} ({len(pubs)} topics, {reader.duration / 1e9:.1f} s) at x{rate}")
            if wait_subscribers:  # tests: start when the node under test listens (never a fixed sleep)
                deadline = time.monotonic() + wait_timeout
                while any(node.count_subscribers(t) == 0 for t in wait_subscribers):
                    if time.monotonic() > deadline:
                        log.error(f"no subscriber on {wait_subscribers} after {wait_timeout} s")
                        return 3
                    rclpy.spin_once(node, timeout_sec=0.05)
            time.sleep(start_delay)
            while True:
                t_wall0 = time.monotonic()
                t_bag0 = None
                for conn, t_bag, raw in reader.messages(connections=conns):
                    if t_bag0 is None:
                        t_bag0 = t_bag
                    due = t_wall0 + (t_bag - t_bag0) / 1e9 / rate
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    if clock_pub is not None:
                        clock_pub.publish(Clock(clock=_time_msg(t_bag)))
                    pubs[conn.topic].publish(bytes(raw))
                loops += 1
                if not loop or (max_loops and loops >= max_loops):
                    break
                log.info("looping")
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def _time_msg(ns: int) -> Any:
    from builtin_interfaces.msg import Time  # noqa: PLC0415  (optional: ROS; `imkd play --help` imports add_arguments)

    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bag", type=Path, help="rosbag2 folder or .mcap/.db3 file")
    p.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    p.add_argument("--loop", action="store_true", help="start over at the end (time jumps back)")
    p.add_argument("--no-clock", action="store_true", help="do not publish /clock")
    p.add_argument("--topics", nargs="*", help="only these topics")
    p.add_argument("--wait-for-subscribers", nargs="*", metavar="TOPIC",
                   help="start only when each of these topics has a subscriber")
    p.add_argument("--start-delay", type=float, default=0.5, help="seconds to wait after discovery")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imkd play", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args, _ros = parser.parse_known_args(argv)
    return play(args.bag, args.rate, args.loop, not args.no_clock, args.start_delay, args.topics,
                args.wait_for_subscribers)


if __name__ == "__main__":
    sys.exit(main())
