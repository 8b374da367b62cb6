"""Health of the live node on healthy input: /diagnostics levels over a long looped replay.

Usage: .venv/bin/python benchmarks/bench_health.py BAG [--seconds 180] [--rate 1.0] [--model PT]

Starts the detector node (sim time, loopback DDS, a leased domain) and the player with --loop, records
every /diagnostics array for --seconds, and prints how many pipeline statuses were OK / WARN / ERROR
after the first keyframe, with the distinct non-OK messages. A healthy run should be all OK (the
issue-12 target); a slow machine shows its dropped keyframes as a counted, non-fault value.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402

from imkd_ros.testing import NodeProcess, TopicCollector, lease_domain, loopback_ros_env  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("bag", type=Path)
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--rate", type=float, default=1.0)
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "imkd_student_cpu.pt")
    ap.add_argument("--extra", nargs="*", default=[], help="more node -p NAME:=VALUE pairs")
    args = ap.parse_args()

    lease = lease_domain()
    env = loopback_ros_env(lease.domain_id)
    os.environ.update(env)
    extra = [x for kv in args.extra for x in ("-p", kv)]
    node = NodeProcess("imkd_ros.ros.detector_node", env, name="detector", ros_args=[
        "--params-file", str(ROOT / "config" / "detector.yaml"), "-r", "__ns:=/perception",
        "-p", "use_sim_time:=true", "-p", f"model:={args.model}", "-p", "backend:=torch-cpu", *extra])
    levels: Counter[str] = Counter()
    messages: Counter[str] = Counter()
    with TopicCollector("imkd_health_bench") as col:
        col.subscribe("/diagnostics", DiagnosticArray, keep=100_000)
        col.subscribe("/perception/imkd_detector/objects", __import__("imkd_msgs.msg", fromlist=["x"]).Object3DArray)
        col.wait_for_publishers("/perception/imkd_detector/objects", timeout=120)
        player = NodeProcess("imkd_ros.ros.player", env, name="player",
                             args=[str(args.bag), "--rate", str(args.rate), "--loop", "--wait-for-subscribers",
                                   "/cam_front/image_raw/compressed"])
        col.wait_for_messages("/perception/imkd_detector/objects", 1, timeout=120)
        start = time.monotonic()
        n0 = len(col.received("/diagnostics"))
        while time.monotonic() - start < args.seconds:
            assert node.alive(), node.log()[-3000:]
            time.sleep(1.0)
        arrays = col.received("/diagnostics")[n0:]
        n_obj = len(col.received("/perception/imkd_detector/objects"))
        player.stop()
        node.stop()
    for a in arrays:
        for s in a.status:
            if s.name.endswith(": pipeline"):
                lv = s.level[0] if isinstance(s.level, bytes) else int(s.level)
                levels[("OK", "WARN", "ERROR", "STALE")[min(lv, 3)]] += 1
                if lv:
                    messages[s.message[:160]] += 1
    print(f"health over {args.seconds:.0f} s at rate {args.rate}: {dict(levels)}; detections messages {n_obj}")
    for m, n in messages.most_common(10):
        print(f"  {n:4d} x {m}")
    lease.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
