"""Node overhead per keyframe (everything but the model), raw vs compressed images, side by side.

Feeds real sensor_msgs messages (six 1600x900 cameras, CameraInfo, five radar clouds, TF) through
the node's DetectionFrontend with a detector that returns fixed boxes instantly, then builds the
output messages as the node does. Aims (issue 6): <= 3 ms per keyframe with raw images, <= 15 ms
with six JPEGs (decoded at reduced size when the model input is smaller).

  .venv/bin/python benchmarks/bench_node.py [--frames 30] [--reduce 4] [--soak-seconds 0]

--soak-seconds N also runs the front end at sensor rate (12 Hz cameras, 13 Hz radars) for N
seconds and prints resident memory every 10 s (flat = no leak). The model-side latency per backend
is in benchmarks/bench_backends.py and benchmarks/bench_model.py.
"""

from __future__ import annotations

import argparse
import resource
import time
from dataclasses import replace

import numpy as np
from geometry_msgs.msg import TransformStamped
from tf2_msgs.msg import TFMessage

from imkd_ros.constants import CAMERA_NAMES, RADAR_NAMES, RADAR_PCD_FIELDS
from imkd_ros.ros import calibration, detections, images, markers, msgutil
from imkd_ros.ros.clouds import radar_to_pointcloud2
from imkd_ros.ros.frontend import DetectionFrontend
from imkd_ros.ros.params import NodeParams
from imkd_ros.types import Boxes


class FixedDetector:
    name = "fixed"

    def __init__(self, reduce: int, n: int = 40) -> None:
        self.reduce = reduce
        rng = np.random.default_rng(0)
        self.boxes = Boxes(center=rng.uniform(-40, 40, (n, 3)).astype(np.float32),
                           size=np.ones((n, 3), np.float32), yaw=rng.uniform(-3, 3, n).astype(np.float32),
                           velocity=np.zeros((n, 2), np.float32), labels=rng.integers(0, 10, n),
                           scores=np.full(n, 0.9, np.float32), attributes=np.zeros(n, np.int64))

    def detect(self, frame):
        return self.boxes, {"model": 0.0}

    def decode_reduce(self, camera_width: int) -> int:
        return self.reduce


def make_inputs(raw: bool):
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:900, 0:1600]
    base = np.stack([(x // 7) % 256, (y // 5) % 256, ((x + y) // 3) % 256], -1).astype(np.uint8)
    img = np.clip(base.astype(np.int16) + rng.integers(-3, 4, base.shape), 0, 255).astype(np.uint8)
    cams = [images.rgb_to_image(img, n.lower()) if raw else images.rgb_to_compressed(img, n.lower())
            for n in CAMERA_NAMES]
    K = np.array([[1266.0, 0, 816], [0, 1266, 491], [0, 0, 1]])
    infos = [calibration.intrinsics_to_camera_info(K, 1600, 900, n.lower()) for n in CAMERA_NAMES]
    radar = np.zeros((60, len(RADAR_PCD_FIELDS)), np.float32)
    radar[:, :2] = rng.uniform(-50, 50, (60, 2))
    radar[:, RADAR_PCD_FIELDS.index("ambig_state")] = 3
    clouds = [radar_to_pointcloud2(radar, n.lower()) for n in RADAR_NAMES]
    static = TFMessage(transforms=[calibration.matrix_to_transform(np.eye(4), "base_link", n.lower())
                                   for n in [*CAMERA_NAMES, *RADAR_NAMES]])
    odom = TransformStamped()
    return cams, infos, clouds, static, odom


def run_keyframes(front: DetectionFrontend, cams, infos, clouds, frames: int, t0_ns: int,
                  stages: dict[str, list[float]] | None = None) -> list[float]:
    """Per keyframe ms of the node's critical path (ingest, sync, decode, pipeline, detections +
    objects messages); markers are timed apart (the node builds them only while RViz subscribes)."""
    times = []
    stages = {} if stages is None else stages
    for i, info in enumerate(infos):
        front.on_camera_info(i, info)
    for k in range(frames):
        stamp = t0_ns + k * 83_333_333
        for j, c in enumerate(clouds):
            c.header.stamp = msgutil.ns_to_time(stamp - 10_000_000 - j)
            front.on_radar(front.p.radar_topics[j], c)
        t = time.perf_counter()
        for i, m in enumerate(cams):
            m.header.stamp = msgutil.ns_to_time(stamp + i * 8_000_000)
            front.on_camera(i, m)
        ready = front.poll(stamp + 60_000_000)
        t_sync = time.perf_counter()
        for kf in ready:
            out = front.process(kf)
            t_proc = time.perf_counter()
            r = out.result
            detections.boxes_to_detection3d_array(r.boxes, r.frame_id, r.stamp_ns)
            detections.boxes_to_object3d_array(r.boxes, r.frame_id, r.stamp_ns)
            t_msgs = time.perf_counter()
            markers.boxes_to_marker_array(r.boxes, r.frame_id, r.stamp_ns)
            t_mark = time.perf_counter()
            for k, v in (("ingest+sync", t_sync - t), ("decode", out.stages_ms["decode"] / 1e3),
                         ("pipeline", out.stages_ms["pipeline_total"] / 1e3), ("output msgs", t_msgs - t_proc),
                         ("markers (only with RViz)", t_mark - t_msgs)):
                stages.setdefault(k, []).append(v * 1e3)
            times.append((t_msgs - t) * 1e3)
    return times


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--reduce", type=int, default=4, help="JPEG decode reduction (the cpu model uses 4)")
    ap.add_argument("--soak-seconds", type=float, default=0.0)
    args = ap.parse_args()
    params = NodeParams()
    raw_params = replace(params, camera_topics=[t.replace("/compressed", "") for t in params.camera_topics])
    print(f"node overhead per keyframe, {args.frames} keyframes each (6 cameras 1600x900, 5 radars, 40 boxes out)")
    print("critical path = ingest + sync + decode + pipeline (no model) + detection/object messages;"
          " [stage medians ms]")
    rows = []
    for label, p, raw, reduce in (("raw rgb8", raw_params, True, 1), ("raw rgb8 (box-reduced)", raw_params, True,
                                                                         args.reduce),
                                  ("jpeg full decode", params, False, 1),
                                  (f"jpeg 1/{args.reduce} decode", params, False, args.reduce)):
        front = DetectionFrontend(p, FixedDetector(reduce))
        cams, infos, clouds, static, _ = make_inputs(raw)
        front.on_tf(static, True)
        run_keyframes(front, cams, infos, clouds, 3, 1_000_000_000)  # warm-up
        stages: dict[str, list[float]] = {}
        t = np.array(run_keyframes(front, cams, infos, clouds, args.frames, 10_000_000_000, stages))
        rows.append((label, t))
        print(f"  {label:26s} mean {t.mean():7.2f} ms  p50 {np.median(t):7.2f} ms  p90 {np.percentile(t, 90):7.2f} ms"
              "   [" + ", ".join(f"{k} {np.median(v):.2f}" for k, v in stages.items()) + "]")
    base = rows[0][1].mean()
    for label, t in rows[1:]:
        print(f"  ratio {label} / raw: {t.mean() / base:5.2f}x")
    if args.soak_seconds > 0:
        front = DetectionFrontend(params, FixedDetector(args.reduce))
        cams, infos, clouds, static, _ = make_inputs(False)
        front.on_tf(static, True)
        start, last_print, k = time.monotonic(), 0.0, 0
        print(f"soak: sensor rate (12 Hz keyframes) for {args.soak_seconds:.0f} s; RSS start {rss_mb():.1f} MB")
        while (el := time.monotonic() - start) < args.soak_seconds:
            run_keyframes(front, cams, infos, clouds, 1, 20_000_000_000 + k * 83_333_333)
            k += 1
            time.sleep(max(0.0, k / 12.0 - (time.monotonic() - start)))
            if el - last_print >= 10:
                last_print = el
                print(f"  t={el:6.0f} s keyframes {k:6d} RSS {rss_mb():7.1f} MB", flush=True)
        print(f"soak end: RSS {rss_mb():.1f} MB after {k} keyframes")


if __name__ == "__main__":
    main()
