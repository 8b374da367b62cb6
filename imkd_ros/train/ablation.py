"""The paper-table ablation on a held-out synthetic split, end to end and resumable.

Rows (same data, same epochs, same schedule, same image size for every row):
  LiDAR teacher | camera-only student | camera+radar, no distillation | + L1 (LiDAR->radar) |
  + L2 (LiDAR->fused, with response distillation) | + L3 intensity-guided fusion = full IMKD.
Every row is trained for each seed in its own process (``imkd train``, one CPU thread each,
``--jobs`` at a time); a run with a summary.json is skipped, a killed run resumes from last.pt.
Data: ``imkd data synth`` train and val dataroots (different world seeds), generated if missing.

    python -m imkd_ros.train.ablation --out runs/ablation           # or: imkd train ablation ...
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from imkd_ros.train.data import DataSpec, load_frames

ROWS: list[tuple[str, str]] = [
    ("teacher", "LiDAR teacher (pillars)"),
    ("camera_only", "Camera-only student"),
    ("no_distill", "Camera + radar, no distillation (plain fusion)"),
    ("l1", "+ L1: LiDAR-to-radar distillation"),
    ("l1_l2", "+ L2: LiDAR-to-fused distillation (+ response)"),
    ("imkd", "+ L3: intensity-guided fusion (full IMKD)"),
    ("imkd_dens", "full IMKD, LiDAR-density intensity mask, foreground boost 20"),
    ("imkd_label", "full IMKD + label (ground-truth) teacher"),
]
NO_TEACHER = ("teacher", "label_teacher", "camera_only", "no_distill")  # rows that do not distil
METRICS = ("NDS", "mAP", "mATE", "mASE", "mAOE", "mAVE", "mAAE")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="imkd train ablation", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/ablation")
    p.add_argument("--data-dir", default="runs/data")
    p.add_argument("--version", default="v1.0-synth")
    p.add_argument("--train-scenes", type=int, default=24)
    p.add_argument("--val-scenes", type=int, default=4)
    p.add_argument("--scene-seconds", type=float, default=8.0)
    p.add_argument("--train-seed", type=int, default=1, help="world seed of the training scenes")
    p.add_argument("--val-seed", type=int, default=2, help="world seed of the held-out scenes")
    p.add_argument("--model", default="cpu")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--teacher-epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel (one CPU thread each)")
    p.add_argument("--rows", nargs="+", default=[r for r, _ in ROWS])
    p.add_argument("--set", action="append", default=[], help="model override for every student row")
    p.add_argument("--radar-dropout", type=float, nargs=2, default=None, metavar=("FRAME_P", "SECTOR_P"),
                   help="radar dropout for every student row that has radar (imkd train --radar-dropout)")
    p.add_argument("--bev-flip", default="left-right", choices=("both", "left-right", "none"),
                   help="BEV mirrors of every row (imkd train --bev-flip)")
    p.add_argument("--table", default=None, help="also write the markdown table here")
    p.add_argument("--lidar-sweeps", type=int, default=10, help="LiDAR sweeps per frame (teacher, depth targets)")
    p.add_argument("--max-lidar-points", type=int, default=40000)
    p.add_argument("--train-root", default=None,
                   help="an existing training dataroot (instead of DATA_DIR/synth_train, generated if missing)")
    p.add_argument("--val-root", default=None, help="an existing held-out dataroot (instead of DATA_DIR/synth_val)")
    p.add_argument("--cache-dir", default=None, help="frame cache (default OUT/cache; share one across ablations)")
    p.add_argument("--teacher-run", default=None,
                   help="an existing teacher run dir to distil from (skips training the teacher row)")
    return p.parse_args(argv)


def _run(cmd: list[str], log: Path) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        return subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT)


def cache_dir(args) -> Path:
    return Path(args.cache_dir) if args.cache_dir else Path(args.out) / "cache"


def ensure_data(args, name: str, scenes: int, seed: int, given: str | None = None) -> Path:
    if given is not None:  # a dataroot made elsewhere: used as it is, never regenerated
        root = Path(given)
        if not (root / args.version / "sample.json").exists():
            raise SystemExit(f"{root}: no {args.version}/sample.json (not a dataroot)")
        return root
    root = Path(args.data_dir) / name
    if not (root / args.version / "sample.json").exists():
        cmd = [sys.executable, "-m", "imkd_ros.cli", "data", "synth", "--out", str(root), "--scenes", str(scenes),
               "--seed", str(seed), "--scene-seconds", str(args.scene_seconds), "--image-scale", "0.25",
               "--camera-sweeps", "none", "--val-fraction", "0", "--version", args.version, "--no-progress"]
        print("generating", root, flush=True)
        if _run(cmd, Path(args.out) / "logs" / f"synth_{name}.log") != 0:
            raise SystemExit(f"data synthesis failed for {root}")
    return root


def train_cmd(args, variant: str, seed: int, train_root: Path, val_root: Path, teacher: Path | None) -> list[str]:
    out = Path(args.out) / f"{variant}_s{seed}"
    epochs = args.teacher_epochs if variant == "teacher" else args.epochs
    cmd = [sys.executable, "-m", "imkd_ros.cli", "train", "--model", args.model, "--variant", variant,
           "--data", str(train_root), "--version", args.version, "--train-split", "",
           "--val-data", str(val_root), "--val-split", "", "--image-downscale", "1",
           "--cache-dir", str(cache_dir(args)), "--out", str(out), "--epochs", str(epochs),
           "--lidar-sweeps", str(args.lidar_sweeps), "--max-lidar-points", str(args.max_lidar_points),
           "--batch-size", str(args.batch_size), "--lr", str(args.lr), "--seed", str(seed), "--threads", "1",
           "--bev-flip", args.bev_flip, "--quiet"]
    if variant != "teacher":
        for s in args.set:
            cmd += ["--set", s]
    if args.radar_dropout and variant not in ("teacher", "label_teacher", "camera_only"):
        cmd += ["--radar-dropout", *(str(v) for v in args.radar_dropout)]
    if teacher is not None and variant not in NO_TEACHER:
        cmd += ["--teacher", str(teacher)]
    if variant == "imkd_label":
        cmd += ["--label-teacher", str(Path(args.out) / f"label_teacher_s{seed}" / "label_teacher.pt")]
    return cmd


def run_one(args, variant: str, seed: int, train_root: Path, val_root: Path, teacher: Path | None) -> dict | None:
    out = Path(args.out) / f"{variant}_s{seed}"
    summary = out / "summary.json"
    if not summary.exists():
        t0 = time.time()
        print(f"start {variant} seed {seed}", flush=True)
        rc = _run(train_cmd(args, variant, seed, train_root, val_root, teacher), out / "train.log")
        print(f"done  {variant} seed {seed}: rc={rc} in {time.time() - t0:.0f} s", flush=True)
        if rc != 0:
            return None
    return json.loads(summary.read_text())


def _fmt(vals: list[float], digits: int = 3) -> str:
    vals = [v for v in vals if v is not None and not math.isnan(v)]
    if not vals:
        return "-"
    m = sum(vals) / len(vals)
    if len(vals) == 1:
        return f"{m:.{digits}f}"
    sd = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))
    return f"{m:.{digits}f} ± {sd:.{digits}f}"


def table(args, results: dict[str, list[dict | None]]) -> str:
    lines = ["| row | seeds | " + " | ".join(METRICS) + " | train time / run |",
             "|---|---|" + "---|" * len(METRICS) + "---|"]
    for variant, label in ROWS:
        runs = [r for r in results.get(variant, []) if r and "val" in r]
        if not runs:
            continue
        cells = [_fmt([r["val"].get(m) for r in runs]) for m in METRICS]
        t = sum(r["time_s"] for r in runs) / len(runs)
        lines.append(f"| {label} | {len(runs)} | " + " | ".join(cells) + f" | {t / 60:.1f} min |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train_root = ensure_data(args, "synth_train", args.train_scenes, args.train_seed, args.train_root)
    val_root = ensure_data(args, "synth_val", args.val_scenes, args.val_seed, args.val_root)

    for root in (train_root, val_root):  # fill the frame cache once, before the parallel runs
        load_frames(DataSpec(str(root), version=args.version, image_downscale=1, lidar_sweeps=args.lidar_sweeps,
                             max_lidar_points=args.max_lidar_points), cache_dir(args))
    results: dict[str, list[dict | None]] = {}
    teacher_ckpt = None
    s0 = args.seeds[0]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {}
        if "imkd_label" in args.rows:  # its label teachers come first (cheap: GT in, no images)
            for s in args.seeds:
                futures[("label_teacher", s)] = pool.submit(run_one, args, "label_teacher", s, train_root,
                                                           val_root, None)
            for s in args.seeds:
                futures[("label_teacher", s)].result()
        if args.teacher_run:
            teacher_ckpt = Path(args.teacher_run) / "teacher.pt"
        elif "teacher" in args.rows or any(r not in NO_TEACHER for r in args.rows):
            # the teacher (first seed) every distilled student learns from comes first; the
            # rows that need no teacher run beside it
            futures[("teacher", s0)] = pool.submit(run_one, args, "teacher", s0, train_root, val_root, None)
            for v in ("no_distill", "camera_only"):
                if v in args.rows:
                    futures[(v, s0)] = pool.submit(run_one, args, v, s0, train_root, val_root, None)
            futures[("teacher", s0)].result()
            teacher_ckpt = out / f"teacher_s{s0}" / "teacher.pt"
        for s in args.seeds:  # seed-major: a complete first seed comes before the second
            for v in args.rows:
                if v == "teacher" and args.teacher_run:
                    continue
                if (v, s) not in futures:
                    futures[(v, s)] = pool.submit(run_one, args, v, s, train_root, val_root, teacher_ckpt)
        for (v, _), f in futures.items():
            if v != "label_teacher":
                results.setdefault(v, []).append(f.result())
    md = table(args, results)
    wall = time.time() - t0
    text = md + f"\nablation wall time this invocation: {wall / 60:.1f} min\n"
    (out / "table.md").write_text(text)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    if args.table:
        Path(args.table).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
