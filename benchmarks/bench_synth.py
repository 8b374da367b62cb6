"""Synthetic-world throughput: key frames per second with all sensors and all sweeps.

One key frame (0.5 s of data) = 6 key-frame images + 30 camera sweeps, 10 LiDAR sweeps,
~33 radar sweeps, the annotations and every file written. Reports wall-clock and CPU-time rates
(CPU time is the honest single-core number on a shared machine) and a per-stage split.

    .venv/bin/python benchmarks/bench_synth.py [--scenes 1] [--scene-seconds 20] [--image-scale 1.0]
    .venv/bin/python benchmarks/bench_synth.py --camera-sweeps none      # key-frame images only
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import torch

from imkd_ros.world.synth import SynthConfig, synthesize

# per-key-frame stages timed by the synthesizer (write = JPEG encode + every file write)
STAGES = ("render_s", "lidar_s", "radar_s", "write_s", "snapshot_s", "annotate_s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenes", type=int, default=1)
    p.add_argument("--scene-seconds", type=float, default=20.0,
                   help="scene length (default: a nuScenes scene, 40 key frames; short scenes are "
                        "dominated by the once-per-scene set-up the bench prints separately)")
    p.add_argument("--image-scale", type=float, default=1.0)
    p.add_argument("--render-scale", type=float, default=0.5)
    p.add_argument("--sweep-render-scale", type=float, default=0.25)
    p.add_argument("--camera-sweeps", choices=("full", "none"), default="full")
    p.add_argument("--lidar-sweeps", choices=("full", "none"), default="full")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--first-scene", type=int, default=0)
    p.add_argument("--out", default=None, help="keep the dataset here (default: a temp dir, deleted)")
    p.add_argument("--json", default=None, help="also write the numbers to this file")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or tmp
        cfg = SynthConfig(out=out, scenes=args.scenes, seed=args.seed, scene_seconds=args.scene_seconds,
                          image_scale=args.image_scale, render_scale=args.render_scale,
                          sweep_render_scale=args.sweep_render_scale, camera_sweeps=args.camera_sweeps,
                          lidar_sweeps=args.lidar_sweeps,
                          first_scene=args.first_scene, progress=False)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        stats = synthesize(cfg)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        size = sum(f.stat().st_size for f in Path(out).rglob("*") if f.is_file())
    kf = stats["keyframes"]
    res = {
        "keyframes": kf,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "keyframes_per_s_wall": round(kf / wall, 3),
        "keyframes_per_s_cpu": round(kf / cpu, 3),
        "images": stats["images"],
        "lidar_sweeps": stats["lidar"],
        "radar_sweeps": stats["radar"],
        "per_keyframe_s": {k: round(stats[k] / kf, 4) for k in STAGES},
        # once per scene (scene generation, ground map) and once per run (the tables' JSON)
        "setup_s": round(stats["setup_s"], 3),
        "finish_s": round(stats["finish_s"], 3),
        "other_per_keyframe_s": round((wall - stats["setup_s"] - stats["finish_s"]) / kf
                                      - sum(stats[k] for k in STAGES) / kf, 4),
        "mb_per_keyframe": round(size / kf / 1e6, 2),
        "config": {k: getattr(args, k) for k in ("image_scale", "render_scale", "sweep_render_scale",
                                                 "camera_sweeps", "lidar_sweeps", "scene_seconds",
                                                 "scenes")},
    }
    print(f"synth: {kf} key frames, {res['keyframes_per_s_wall']:.2f} key frames/s wall, "
          f"{res['keyframes_per_s_cpu']:.2f} key frames per CPU-second "
          f"({stats['images']} images, {stats['lidar']} LiDAR + {stats['radar']} radar sweeps)")
    print("per key frame (s):", res["per_keyframe_s"], f"| {res['mb_per_keyframe']} MB/key frame")
    print(f"set-up {res['setup_s']:.2f} s (scene generation, sensor models, ground map), tables written in "
          f"{res['finish_s']:.2f} s, everything else {res['other_per_keyframe_s']:.4f} s per key frame "
          "(records, tokens, random streams)")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
