"""Ship the ablation's checkpoints: models/imkd_{teacher,student}_cpu.pt, models/MODEL_CARD.md and
rendered predicted-vs-true pictures of held-out scenes in docs/images/.

    python -m imkd_ros.train.ship --teacher-run runs/ablation_long/teacher_s0 \
        --student-run runs/ablation_long/imkd_s0
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

import torch

from imkd_ros.model.imkd import load_student, write_sidecar
from imkd_ros.render.frame import RenderOptions, render_frame
from imkd_ros.train.data import DataSpec, read_frames
from imkd_ros.train.metrics import predict
from imkd_ros.types import Frame

ROOT = Path(__file__).resolve().parents[2]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _metrics_line(v: dict) -> str:
    keys = ("NDS", "mAP", "mATE", "mASE", "mAOE", "mAVE", "mAAE")
    return "| " + " | ".join(f"{v[k]:.3f}" if v.get(k) is not None else "-" for k in keys) + " |"


def _command(run: Path) -> str:
    """The command that produced a run: command.txt, else the first line of the driver's train.log."""
    if (run / "command.txt").exists():
        return (run / "command.txt").read_text().strip()
    return (run / "train.log").read_text().splitlines()[0].removeprefix("$ ")


def render(student_path: Path, val_root: str, version: str, out_dir: Path, count: int, stride: int) -> list[Path]:
    frames = read_frames(DataSpec(val_root, version=version, image_downscale=1), progress=False)
    picked: list[Frame] = []
    seen: set[str | None] = set()
    for f in frames[stride // 2::stride] + frames:  # one frame per condition first, then any
        key = f.meta.get("condition") if len(seen) < count else None
        if key is not None and key in seen or any(f is q for q in picked):
            continue
        seen.add(key)
        picked.append(f)
        if len(picked) == count:
            break
    frames = picked
    model = load_student(student_path)
    preds = predict(model, frames, model.cfg, batch_size=1)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, f in enumerate(frames):
        token = f.meta.get("sample_token")
        cond = f.meta.get("condition", "")
        title = f"IMKD cpu student, held-out {f.meta.get('scene', '')} ({cond}): solid = truth, dashed = predicted"
        path = out_dir / f"heldout_{i}_{cond}.png"
        render_frame(f, preds[str(token)], path, RenderOptions(tile_width=320, title=title))
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher-run", default="runs/ablation_long/teacher_s0", help="imkd train --out of the teacher")
    p.add_argument("--student-run", default="runs/ablation_long/imkd_s0", help="imkd train --out of the student")
    p.add_argument("--val-root", default="runs/data/synth_val")
    p.add_argument("--version", default="v1.0-synth")
    p.add_argument("--images", type=int, default=3)
    p.add_argument("--stride", type=int, default=8)
    p.add_argument("--train-scenes", type=int, default=24, help="for the card's data commands")
    p.add_argument("--val-scenes", type=int, default=4)
    p.add_argument("--notes", default=None, help="markdown put into the card after the metrics (lineage, re-measures)")
    args = p.parse_args(argv)
    models = ROOT / "models"
    pairs = {"teacher": (Path(args.teacher_run) / "teacher.pt", models / "imkd_teacher_cpu.pt"),
             "student": (Path(args.student_run) / "student.pt", models / "imkd_student_cpu.pt")}
    info = {}
    for kind, (src, dst) in pairs.items():
        data = torch.load(src, map_location="cpu", weights_only=True)
        assert data["kind"] == kind and data["config"]["name"] == "cpu", (src, data["kind"])
        shutil.copyfile(src, dst)
        write_sidecar(dst)  # <file>.sha256: the loader refuses a checkpoint that does not match it
        summary = json.loads((src.parent / "summary.json").read_text())
        tconf = json.loads((src.parent / "train_config.json").read_text())
        info[kind] = {"run": str(src.parent), "path": dst, "sha": sha256(dst), "size": dst.stat().st_size,
                      "summary": summary, "train_config": tconf, "cmd": _command(src.parent)}
    imgs = render(pairs["student"][1], args.val_root, args.version, ROOT / "docs" / "images", args.images,
                  args.stride)
    curve = Path(args.student_run) / "loss_curve.png"
    if curve.exists():
        shutil.copyfile(curve, ROOT / "docs" / "images" / "imkd_student_cpu_loss.png")
    notes = Path(args.notes).read_text() if args.notes else ""
    card = card_text(info, imgs, args, notes)
    (models / "MODEL_CARD.md").write_text(card)
    print(card)
    return 0


def _comparison(info: dict) -> list[str]:
    """Same-budget comparison rows from the ablation's results.json next to the student run."""
    path = Path(info["student"]["run"]).parent / "results.json"
    if not path.exists():
        return ["Same split, same budget, other rows: docs/ablation.md."]
    res = json.loads(path.read_text())
    out = [f"Same split, same budget, mean of the seeds in `{path}` (all runs: docs/ablation.md):", ""]
    for v, label in (("imkd", "full IMKD student, this recipe"),
                     ("no_distill", "camera + radar student without distillation"),
                     ("camera_only", "camera-only student")):
        runs = [r for r in res.get(v, []) if r and "val" in r]
        if runs:
            nds = sum(r["val"]["NDS"] for r in runs) / len(runs)
            m = sum(r["val"]["mAP"] for r in runs) / len(runs)
            seeds = ", ".join(str(r.get("seed", "?")) for r in runs)
            out.append(f"- {label}: NDS {nds:.3f}, mAP {m:.3f} (seed{'s' if len(runs) > 1 else ''} {seeds})")
    return out


def _describe(cfg: dict) -> str:
    """One line of what the checkpoint's own config builds (the card follows the model, not a copy)."""
    g = cfg["grid"]
    cells = round((g["x_max"] - g["x_min"]) / g["resolution"])
    tg = cfg.get("teacher", {}).get("grid") or g
    tcells = round((tg["x_max"] - tg["x_min"]) / tg["resolution"])
    h, w = cfg["image"]["height"], cfg["image"]["width"]
    d = cfg["depth"]
    bins = round((d["d_max"] - d["d_min"]) / d["d_step"])
    prior = " with a radar depth prior" if d.get("radar_prior") else ""
    return (f"6 x {h}x{w} images, {bins} depth bins {d['d_min']:g}-{d['d_max']:g} m{prior}, radar pillars, "
            f"{cells}x{cells} student BEV at {g['resolution']} m, LiDAR teacher on {tcells}x{tcells} at "
            f"{tg['resolution']} m, CenterPoint head, heading `{cfg['head'].get('heading', 'sincos')}`, "
            f"velocity loss `{cfg['head'].get('velocity_loss', 'l1')}`")


def _augmentation(train_config: dict, model_cfg: dict | None) -> str:
    """The run's own augmentation (train_config.json), not the recipe of the day."""
    bev = train_config.get("bev_aug")
    if not bev:
        text = "no BEV augmentation"
    else:
        flips = {(True, True): "left/right and front/back mirrors", (True, False): "left/right mirror only",
                 (False, True): "front/back mirror only", (False, False): "no mirrors"}
        text = (f"BEV rotation +-{bev['rotate_deg']:g} deg, scale {bev['scale'][0]:g}-{bev['scale'][1]:g}, "
                f"{flips[(bool(bev['flip_x']), bool(bev['flip_y']))]}")
    if model_cfg is not None and train_config.get("img_aug", True):
        img = model_cfg.get("image", {})
        lo, hi = img.get("aug_resize") or (1.0, 1.0)
        mirror = ("images mirrored exactly with the BEV mirror" if img.get("flip_with_bev")
                  else "independent image flips" if img.get("aug_flip") else "no image flips")
        text += f" + image resize {lo:g}-{hi:g}, {mirror}"
    return text


def _distill_terms(cfg: dict) -> str:
    """The distillation terms and fusion the checkpoint's config switches on (not a fixed sentence)."""
    d = cfg.get("distill", {})
    names = (("level1", "L1"), ("level2", "L2"), ("response", "response"), ("velocity", "velocity"))
    terms = [label for key, label in names if d.get(key)]
    fusion = "intensity-guided fusion" if cfg.get("fusion", {}).get("radar_gate") else "plain fusion"
    return (" + ".join(terms) + " distillation, " if terms else "no distillation, ") + fusion


def card_text(info: dict, imgs: list[Path], args: argparse.Namespace | None = None,
              notes: str = "") -> str:
    s, t = info["student"], info["teacher"]
    tc = s["train_config"]
    data = tc["train_data"]
    cfg = torch.load(s["path"], map_location="cpu", weights_only=True)["config"]
    frames = s["summary"].get("train_frames")
    train_scenes = getattr(args, "train_scenes", 24)
    val_scenes = getattr(args, "val_scenes", 4)
    synth = "--scene-seconds 8 --image-scale 0.25 --camera-sweeps none --val-fraction 0"
    lines = [
        "# IMKD CPU checkpoints",
        "",
        f"Two checkpoints of the `cpu` model config (models/cpu.yaml: {_describe(cfg)}):",
        "",
        "| file | what | size | sha256 |",
        "|---|---|---|---|",
        f"| `models/imkd_student_cpu.pt` | IMKD student (camera + radar; variant `{tc['variant']}`: "
        f"{_distill_terms(cfg)}); what the ROS node loads by default | "
        f"{s['size'] / 1e6:.2f} MB | `{s['sha']}` |",
        f"| `models/imkd_teacher_cpu.pt` | LiDAR teacher it was distilled from (training only) | "
        f"{t['size'] / 1e6:.2f} MB | `{t['sha']}` |",
        "",
        "Both load with `torch.load(path, weights_only=True)` (dict: kind, config, state_dict, extra);",
        "`imkd_ros.model.load_student` / `load_teacher` build the modules and check the `.sha256` sidecar.",
        "The student checkpoint holds only the student (no teacher, no distillation adapters).",
        "",
        "## Data",
        "",
        "Synthetic nuScenes-format world (`imkd data synth`), 400x225 cameras (`--image-scale 0.25`), key",
        f"frames only, {data['radar_sweeps']} radar sweeps and {data['lidar_sweeps']} LiDAR sweeps per frame"
        f" (LiDAR up to {data['max_lidar_points']} points):",
        "",
        f"- train: `imkd data synth --out {data['source']} --scenes {train_scenes} --seed 1 {synth}`"
        f" ({frames} key frames);",
        f"- held-out: `imkd data synth --out runs/data/synth_val --scenes {val_scenes} --seed 2 {synth}`"
        " (other world seed; day, night and rain scenes).",
        "",
        "## Training",
        "",
        f"Teacher: {t['summary']['steps']} steps; student: {s['summary']['steps']} steps ({tc['epochs']} epochs),"
        f" batch {tc['batch_size']}, AdamW lr {tc['lr']} one-cycle, grad clip {tc['grad_clip']}, seed {tc['seed']},"
        f" augmentation: teacher {_augmentation(t['train_config'], None)}; student"
        f" {_augmentation(tc, cfg)}; one CPU thread. Commands (teacher first):",
        "",
        "```",
        t["cmd"],
        s["cmd"],
        "```",
        "",
        f"Training time (wall, one thread on a 2-core machine): teacher {t['summary']['time_s'] / 60:.1f}"
        f" min, student {s['summary']['time_s'] / 60:.1f} min.",
        "",
        "## Metrics on the held-out split (nuScenes detection metrics via imkd_ros.evaluation, every",
        "decoded box up to 500 per key frame, classes present in the ground truth)",
        "",
        "| model | NDS | mAP | mATE | mASE | mAOE | mAVE | mAAE |",
        "|---|---|---|---|---|---|---|---|",
        "| teacher (LiDAR) " + _metrics_line(t["summary"]["val"]),
        "| student (camera + radar) " + _metrics_line(s["summary"]["val"]),
        "",
        *_comparison(info),
        "",
    ]
    if notes:
        lines += [notes.strip(), ""]
    lines += [
        "These are small CPU models on a synthetic world: a pipeline and integration artefact, not a",
        "nuScenes-quality detector. Retrain on a GPU with the `paper` config for real use.",
        "",
        "## Pictures",
        "",
    ]
    lines += [f"![held-out frame](../docs/images/{p.name})" for p in imgs]
    lines += ["", "Loss curve of the student run: `docs/images/imkd_student_cpu_loss.png`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
