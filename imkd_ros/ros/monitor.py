"""A console monitor for the detector: live rate and latency, and what it published.

Subscribes to the node's detections, objects and status and (when a recording is playing) the
ground-truth topic; prints one line per period; on exit writes what it saw (JSON) so the demo and
tests can score the live run with the same metrics as the offline replay.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from imkd_msgs.msg import DetectorStatus, Object3DArray

from imkd_ros.ros import detections, msgutil
from imkd_ros.ros.spin import spin_until_shutdown


def _boxes_json(boxes: Any) -> dict:
    return {k: getattr(boxes, k).tolist() for k in ("center", "size", "yaw", "velocity", "labels", "scores",
                                                    "attributes")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imkd_ros.ros.monitor")
    parser.add_argument("--ns", default="/perception/imkd_detector", help="the detector node's name")
    parser.add_argument("--gt", default="/ground_truth/objects")
    parser.add_argument("--period", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=None, help="write everything received here (JSON) on exit")
    args, _ = parser.parse_known_args(argv)

    rclpy.init(args=sys.argv)
    node = rclpy.create_node("imkd_monitor")
    arrivals: deque[float] = deque(maxlen=200)
    latencies: deque[float] = deque(maxlen=200)
    preds: dict[int, Any] = {}
    gts: dict[int, Any] = {}
    last: dict[str, Any] = {}

    def on_objects(msg: Any) -> None:
        arrivals.append(time.monotonic())
        preds[msgutil.time_to_ns(msg.header.stamp)] = detections.object3d_array_to_boxes(msg)
        last["n"] = len(msg.objects)

    def on_status(msg: Any) -> None:
        latencies.append(msg.latency_ms)
        last["status"] = msg

    node.create_subscription(Object3DArray, f"{args.ns}/objects", on_objects, 50)
    node.create_subscription(DetectorStatus, f"{args.ns}/status", on_status, 50)

    def on_diagnostics(msg: Any) -> None:  # the detector's health line (sliding window, names sensors)
        for st in msg.status:
            if st.name == f"{args.ns}: pipeline":
                level = st.level[0] if isinstance(st.level, bytes) else int(st.level)
                last["health"] = f"{('OK', 'WARN', 'ERROR', 'STALE')[min(level, 3)]} {st.message}"

    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    node.create_subscription(Object3DArray, args.gt,
                             lambda m: gts.__setitem__(msgutil.time_to_ns(m.header.stamp),
                                                       detections.object3d_array_to_boxes(m)), 50)

    def tick() -> None:
        now = time.monotonic()
        recent = [t for t in arrivals if now - t < 5.0]
        rate = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0
        st = last.get("status")
        lat = f"{np.mean(latencies):6.1f} ms (max {np.max(latencies):6.1f})" if latencies else "   n/a"
        extra = ""
        if st is not None:
            extra = (f" | dropped {st.frames_dropped} | bad msgs {st.bad_messages} | missing "
                     f"{','.join(st.missing_cameras) or 'none'} | radar pts {st.radar_points}")
        if "health" in last:
            extra += f" | health {last['health'][:200]}"
        print(f"[monitor] detections {rate:5.2f} Hz | latency {lat} | objects {last.get('n', 0):3d} | "
              f"frames {len(preds)}{extra}", flush=True)

    node.create_timer(args.period, tick)
    try:
        spin_until_shutdown(node)
    finally:
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({
                "predictions": {str(k): _boxes_json(v) for k, v in preds.items()},
                "ground_truth": {str(k): _boxes_json(v) for k, v in gts.items()},
                "latency_ms": list(latencies),
            }))
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
