"""Score checkpoints on a held-out split: official metrics overall, per condition and at the
node's output threshold, plus the two diagnostics of issue #14 (front/back heading confusion,
moving-object velocity error).

    python -m imkd_ros.train.heldout --data runs/data/synth_val --ckpt models/imkd_student_cpu.pt \\
        [--teacher] [--set head.velocity_flip_speed=1.0] [--json out.json]

Detections are scored as the head decodes them (its own score threshold, nuScenes counts up to
500 per sample) and again after the node's output threshold (``--node-threshold``, 0.3), so a
reported mAP is never depressed by a display threshold. Decode-only switches (velocity flip,
static velocity) can be overridden with ``--set head.X=V`` to measure them on a fixed model.
A student whose training dropped the radar (the camera-only row; its checkpoint says so) is scored
with the radar dropped too.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
import yaml

from imkd_ros.constants import CLASSES
from imkd_ros.evaluation import evaluate
from imkd_ros.model.imkd import load_checkpoint, load_student, load_teacher, verify_checkpoint
from imkd_ros.train.data import DataSpec, load_frames
from imkd_ros.train.metrics import ground_truth, predict
from imkd_ros.types import Boxes, Frame

DECODE_KEYS = ("velocity_flip_speed", "static_attr_zero_velocity", "score_threshold", "top_k",
               "max_boxes", "nms_radius", "local_max")


def _match(pred: Boxes, gt: Boxes, dist: float = 2.0) -> list[tuple[int, int]]:
    """Greedy same-class centre matching (score order, < dist m): (pred index, gt index)."""
    used = np.zeros(len(gt), bool)
    pairs = []
    for i in np.argsort(-pred.scores):
        if len(gt) == 0:
            break
        d = np.linalg.norm(gt.center[:, :2] - pred.center[i, :2], axis=1)
        d[(gt.labels != pred.labels[i]) | used] = np.inf
        j = int(np.argmin(d))
        if d[j] < dist:
            used[j] = True
            pairs.append((int(i), j))
    return pairs


def diagnostics(preds: dict[str, Boxes], gts: dict[str, Boxes], min_score: float = 0.3) -> dict:
    """Per class: share of matched boxes off by ~pi (front/back; overall, moving, static), within
    0.35 rad, mean yaw error of movers and statics; velocity error of moving (> 1 m/s) and
    static GT objects; matched predictions above ``min_score`` only."""
    acc: dict[str, dict[str, list[float]]] = {}
    for tok, gt in gts.items():
        pred = preds.get(tok, Boxes.empty())
        pred = pred.select(pred.scores >= min_score)
        for i, j in _match(pred, gt):
            name = CLASSES[int(gt.labels[j])]
            a = acc.setdefault(name, {"dyaw": [], "moving": [], "v_moving": [], "v_static": []})
            d = abs((float(pred.yaw[i]) - float(gt.yaw[j]) + math.pi) % (2 * math.pi) - math.pi)
            a["dyaw"].append(d)
            gv = gt.velocity[j]
            known = bool(np.all(np.isfinite(gv)))
            moving = known and float(np.linalg.norm(gv)) > 1.0
            a["moving"].append(moving)
            if not known:
                continue
            err = float(np.linalg.norm(pred.velocity[i] - gv))
            (a["v_moving"] if moving else a["v_static"]).append(err)
    out = {}
    for name, a in sorted(acc.items()):
        dy, mv = np.asarray(a["dyaw"]), np.asarray(a["moving"], bool)
        flipped = dy > math.pi - 0.5
        out[name] = {"matched": int(dy.size),
                     "flipped_share": float(np.mean(flipped)) if dy.size else None,
                     # velocity disambiguates a mover's front; a parked one has only its looks
                     "flipped_moving": float(np.mean(flipped[mv])) if mv.any() else None,
                     "flipped_static": float(np.mean(flipped[~mv])) if (~mv).any() else None,
                     "within_0.35rad": float(np.mean(dy < 0.35)) if dy.size else None,
                     # split by motion, so a class's AOE traces to its movers or to its statics
                     # (a standing pedestrian's heading carries little signal)
                     "yaw_err_moving": float(np.mean(dy[mv])) if mv.any() else None,
                     "yaw_err_static": float(np.mean(dy[~mv])) if (~mv).any() else None,
                     "n_static": int((~mv).sum()),
                     "vel_err_moving": float(np.mean(a["v_moving"])) if a["v_moving"] else None,
                     "n_moving": len(a["v_moving"]),
                     "vel_err_static": float(np.mean(a["v_static"])) if a["v_static"] else None}
    return out


def _summary(report: dict) -> dict:
    keys = ("NDS", "mAP", "mATE", "mASE", "mAOE", "mAVE", "mAAE")
    out = {k: report.get(k) for k in keys}
    conds = report.get("by_condition") or {}
    out["by_condition"] = {c: {k: r.get(k) for k in ("NDS", "mAP")} for c, r in conds.items()}
    # mAOE is a class mean: two flipped construction vehicles weigh as much as 2,000 cars
    out["per_class"] = {c: {k: r.get(k) for k in ("AP", "AOE", "AVE", "num_gt")}
                        for c, r in (report.get("per_class") or {}).items()}
    return out


def evaluate_model(model, cfg, frames: list[Frame], teacher: bool, node_threshold: float = 0.3,
                   batch_size: int = 2, drop_radar: bool = False) -> dict:
    """Metrics before / at the node threshold + diagnostics of one model on frames (``drop_radar``:
    the same frames with every radar silent, as the node sees a radar outage)."""
    preds = predict(model, frames, cfg, batch_size=batch_size, teacher=teacher, drop_radar=drop_radar)
    gts = ground_truth(frames)
    meta = {f.meta.get("sample_token", str(f.timestamp_us)): f.meta for f in frames}
    full = evaluate(preds, gts, meta)
    at = {t: b.select(b.scores >= node_threshold) for t, b in preds.items()}
    at_thr = evaluate(at, gts, meta, with_breakdowns=False)
    return {"before_threshold": _summary(full), f"at_{node_threshold}": _summary(at_thr),
            "diagnostics": diagnostics(preds, gts),
            "boxes_per_sample": float(np.mean([len(b) for b in preds.values()])) if preds else 0.0}


def trained_without_radar(path: str | Path) -> bool:
    """Whether the checkpoint's training dropped every radar (the camera-only row): such a student is
    scored the way it was trained, since its radar branch never saw a point and would only add noise."""
    return bool((verify_checkpoint(path).get("extra") or {}).get("drop_radar", False))


def _override_head(model, sets: list[str]) -> None:
    head_cfg = model.head.cfg
    changes = {}
    for item in sets:
        key, _, value = item.partition("=")
        if not key.startswith("head.") or key[5:] not in DECODE_KEYS:
            raise SystemExit(f"--set supports decode-only head keys {DECODE_KEYS}, got {key!r}")
        changes[key[5:]] = yaml.safe_load(value)
    if changes:
        new = dataclasses.replace(head_cfg, **changes)
        model.head.cfg = new
        model.head.coder.cfg = new


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m imkd_ros.train.heldout", description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--version", default="v1.0-synth")
    p.add_argument("--ckpt", required=True, nargs="+")
    p.add_argument("--lidar-sweeps", type=int, default=10)
    p.add_argument("--max-lidar-points", type=int, default=40000)
    p.add_argument("--cache-dir", default="runs/cache")
    p.add_argument("--set", action="append", default=[],
                   help="decode-only head override, e.g. head.velocity_flip_speed=1")
    p.add_argument("--node-threshold", type=float, default=0.3)
    p.add_argument("--camera-only", action="store_true", help="also score every student with its radar dropped")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    frames = load_frames(DataSpec(args.data, version=args.version, image_downscale=1, lidar_sweeps=args.lidar_sweeps,
                                  max_lidar_points=args.max_lidar_points), args.cache_dir, progress=False)
    results = {}
    for ck in args.ckpt:
        _, _, kind = load_checkpoint(ck)
        model = load_teacher(ck) if kind == "teacher" else load_student(ck)
        _override_head(model, args.set)
        no_radar = kind != "teacher" and trained_without_radar(ck)
        res = evaluate_model(model, model.cfg, frames, kind == "teacher", args.node_threshold, drop_radar=no_radar)
        res["checkpoint"], res["kind"], res["set"], res["radar_dropped"] = ck, kind, args.set, no_radar
        res["data"] = args.data
        if no_radar:
            print(f"{ck}: trained without radar (camera-only): scored with every radar dropped")
        elif args.camera_only and kind != "teacher":
            cam = evaluate_model(model, model.cfg, frames, False, args.node_threshold, drop_radar=True)
            res["camera_only"] = {k: cam[k] for k in ("before_threshold", f"at_{args.node_threshold}")}
        results[ck] = res
        b, a = res["before_threshold"], res[f"at_{args.node_threshold}"]
        print(f"{ck} ({kind}) {' '.join(args.set)}: NDS {b['NDS']:.3f} mAP {b['mAP']:.3f} mAOE {b['mAOE']:.3f} "
              f"mAVE {b['mAVE']:.3f} | at {args.node_threshold}: NDS {a['NDS']:.3f} mAP {a['mAP']:.3f}")
        print("  by condition:", {c: round(v["NDS"], 3) for c, v in b["by_condition"].items()})
        print("  AOE by class:", {c: None if v["AOE"] is None else round(v["AOE"], 2)
                                 for c, v in b["per_class"].items()})
        if "camera_only" in res:
            cb, ca = res["camera_only"]["before_threshold"], res["camera_only"][f"at_{args.node_threshold}"]
            print(f"  camera only (radar dropped): NDS {cb['NDS']:.3f} mAP {cb['mAP']:.3f} | "
                  f"at {args.node_threshold}: NDS {ca['NDS']:.3f} mAP {ca['mAP']:.3f}")
        for name, d in res["diagnostics"].items():
            if name in ("car", "truck", "pedestrian", "bus"):
                print(f"  {name}: {d}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
