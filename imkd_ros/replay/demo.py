"""`imkd demo`: the README's main job.

Makes (or reuses) a synthetic recording, starts the detector node with the shipped model, a
monitor and the bag player as separate processes over loopback DDS (private domain), shows the
live rate and latency, then scores the live detections with the nuScenes metrics and runs the
offline replay of the same recording for the report and the pictures.

The live node publishes down to the replay's evaluation threshold (nuScenes scores up to 500 boxes
per sample), so the live figure is scored before the node's output threshold and, filtered by the
node's own rule, at it: the same two numbers the replay reports. The live rate is therefore measured
with more boxes to publish than the vehicle configuration sends (a conservative figure).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from imkd_ros.evaluation import evaluate
from imkd_ros.pipeline import output_threshold
from imkd_ros.replay.replay import ReplayOptions, load_params
from imkd_ros.testing import NodeProcess, lease_domain, loopback_ros_env
from imkd_ros.types import Boxes

ROOT = Path(__file__).resolve().parents[2]


def _run(cmd: list[str]) -> None:
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def ensure_recording(out: Path, seed: int, scene_seconds: float) -> Path:
    """A synthetic nuScenes-format scene and its rosbag2 recording (reused when present)."""
    data = out / "dataset"
    bag = out / "recording"
    version = "v1.0-synth"
    imkd = [sys.executable, "-m", "imkd_ros.cli"]
    if not (data / version / "scene.json").exists():
        _run([*imkd, "data", "synth", "--out", str(data), "--scenes", "1", "--seed", str(seed),
              "--scene-seconds", str(scene_seconds), "--version", version])
    if not bag.exists():
        scene = json.loads((data / version / "scene.json").read_text())[0]["name"]
        _run([*imkd, "data", "to-bag", "--dataroot", str(data), "--version", version, "--scene", scene,
              "--out", str(bag)])
    return bag


def _boxes(d: dict):
    return Boxes(center=np.asarray(d["center"], np.float32).reshape(-1, 3),
                 size=np.asarray(d["size"], np.float32).reshape(-1, 3),
                 yaw=np.asarray(d["yaw"], np.float32), velocity=np.asarray(d["velocity"], np.float32).reshape(-1, 2),
                 labels=np.asarray(d["labels"], np.int64), scores=np.asarray(d["scores"], np.float32),
                 attributes=np.asarray(d["attributes"], np.int64))


def score_live(live_json: Path, match_ns: int = 60_000_000,
               select: Callable[[Boxes], Boxes] | None = None) -> dict | None:
    """nuScenes metrics of the live detections (the monitor's JSON) at the ground-truth keyframes;
    ``select`` filters each keyframe's boxes first (e.g. the node's output threshold)."""
    data = json.loads(live_json.read_text())
    pick = select or (lambda b: b)
    return score_stamped({int(k): pick(_boxes(v)) for k, v in data["predictions"].items()},
                         {int(k): _boxes(v) for k, v in data["ground_truth"].items()}, match_ns)


def score_stamped(preds: dict, gts: dict, match_ns: int = 60_000_000) -> dict | None:
    """Metrics of stamped predictions against stamped ground truth: each GT keyframe takes the
    prediction nearest in time (camera sets are stamped a few ms from the LiDAR keyframe)."""
    pairs = {}
    for s, gt in gts.items():
        near = min(preds, key=lambda p: abs(p - s), default=None)
        if near is not None and abs(near - s) <= match_ns:
            pairs[str(s)] = (preds[near], gt)
    if not pairs:
        return None
    report = evaluate({k: p for k, (p, _) in pairs.items()}, {k: g for k, (_, g) in pairs.items()}, None)
    report["keyframes_scored"] = len(pairs)
    report["keyframes_with_ground_truth"] = len(gts)
    return report


def demo(out: Path, seed: int, scene_seconds: float, model: str, rate: float, backend: str,
         precision: str = "fp32") -> int:
    out.mkdir(parents=True, exist_ok=True)
    bag = ensure_recording(out, seed, scene_seconds)
    lease = lease_domain()
    env = loopback_ros_env(lease.domain_id)
    print(f"\n== live: node + player + monitor on loopback DDS, ROS_DOMAIN_ID={lease.domain_id} ==", flush=True)
    logs = out / "logs"
    params, wide = load_params(ROOT / "config" / "detector.yaml"), ReplayOptions(out_dir=out / "replay")
    eval_threshold = min(wide.eval_score_threshold, params.score_threshold)
    eval_max = max(wide.eval_max_detections, params.max_detections)
    node_args = ["--params-file", str(ROOT / "config" / "detector.yaml"), "-p", "use_sim_time:=true",
                 "-p", f"backend:={backend}", "-p", f"precision:={precision}", "-r", "__ns:=/perception",
                 "-p", f"score_threshold:={float(eval_threshold)}", "-p", f"max_detections:={int(eval_max)}"]
    if model:
        node_args += ["-p", f"model:={model}"]
    live_json = out / "live_detections.json"
    node = NodeProcess("imkd_ros.ros.detector_node", env, ros_args=node_args, log_dir=logs, name="detector")
    monitor = NodeProcess("imkd_ros.ros.monitor", env, args=["--out", str(live_json)], log_dir=logs, name="monitor")
    player = None
    try:
        player = NodeProcess("imkd_ros.ros.player", env, log_dir=logs, name="player",
                             args=[str(bag), "--rate", str(rate), "--wait-for-subscribers",
                                   "/cam_front/image_raw/compressed", "/ground_truth/objects"])
        shown = 0
        while player.alive():
            time.sleep(1.0)
            if not node.alive():
                print(node.log()[-3000:])
                raise RuntimeError("the detector node exited; log above")
            lines = [ln for ln in monitor.log().splitlines() if ln.startswith("[monitor]")]
            for ln in lines[shown:]:
                print(ln, flush=True)
            shown = len(lines)
        time.sleep(2.0)  # let the last keyframe come out
    finally:
        for proc in (player, monitor, node):
            if proc is not None:
                proc.stop()
        lease.release()
    print("\n".join(ln for ln in node.log().splitlines() if "ready" in ln or "backend" in ln))
    live = score_live(live_json) if live_json.exists() else None
    if live:
        at = score_live(live_json, select=lambda b: output_threshold(b, params.score_threshold,
                                                                     params.max_detections))
        print(f"\n== live detections on {live['keyframes_scored']}/{live['keyframes_with_ground_truth']} "
              f"ground-truth keyframes: before the node's threshold NDS {live['NDS']:.3f} mAP {live['mAP']:.3f}; "
              f"at it ({params.score_threshold:g}) NDS {at['NDS'] if at else float('nan'):.3f} "
              f"mAP {at['mAP'] if at else float('nan'):.3f} ==")
    print("\n== offline replay of the same recording (same pipeline): metrics, report, pictures ==", flush=True)
    cmd = [sys.executable, "-m", "imkd_ros.cli", "replay", str(bag), "--out", str(out / "replay"),
           "--backend", backend, "--precision", precision, "--only-gt-keyframes", "--render", "0", "3",
           "--render-worst", "1"]
    if model:
        cmd += ["--model", model]
    _run(cmd)
    rep_json = out / "replay" / "report.json"
    if rep_json.exists():
        rep = json.loads(rep_json.read_text())
        before, at = rep.get("metrics") or {}, rep.get("metrics_at_node_threshold") or {}
        if before and at:
            print(f"== replay: before the node's threshold NDS {before.get('NDS') or 0:.3f} mAP "
                  f"{before.get('mAP') or 0:.3f}; at it ({rep.get('node_score_threshold')}) NDS "
                  f"{at.get('NDS') or 0:.3f} mAP {at.get('mAP') or 0:.3f} ==")
    print(f"\nreport: {out / 'replay' / 'report.md'}\npictures: {out / 'replay'}/*.png\nlogs: {logs}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the node on a replayed synthetic recording with the shipped model")
    p.add_argument("--out", type=Path, default=Path("out/demo"))
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--scene-seconds", type=float, default=12.0)
    p.add_argument("--model", default="", help="checkpoint (default: the shipped student)")
    p.add_argument("--rate", type=float, default=1.0, help="playback speed (x real time)")
    p.add_argument("--backend", default="auto")
    p.add_argument("--precision", default="bf16", choices=["fp32", "fp16", "bf16"],
                   help="bf16 (default): the CPU fallback's fast path where the CPU has native bf16, else "
                        "fp32 (logged); on a GPU box pass fp16 for the engine")
    p.set_defaults(func=lambda a: demo(a.out, a.seed, a.scene_seconds, a.model, a.rate, a.backend, a.precision))
