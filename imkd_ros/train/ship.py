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
    card = card_text(info, imgs)
    (models / "MODEL_CARD.md").write_text(card)
    print(card)
    return 0


def _comparison(info: dict) -> list[str]:
    """Same-budget comparison rows from the ablation's results.json next to the student run."""
    path = Path(info["student"]["run"]).parent / "results.json"
    if not path.exists():
        return ["Same split, same budget, other rows: docs/ablation.md."]
    res = json.loads(path.read_text())
    out = ["Same split, same budget, mean of the ablation's seeds (docs/ablation.md):", ""]
    for v, label in (("imkd", "full IMKD student, this recipe (the shipped seed was fixed before training)"),
                     ("no_distill", "camera + radar student without distillation"),
                     ("camera_only", "camera-only student")):
        runs = [r["val"] for r in res.get(v, []) if r and "val" in r]
        if runs:
            nds = sum(r["NDS"] for r in runs) / len(runs)
            m = sum(r["mAP"] for r in runs) / len(runs)
            out.append(f"- {label}: NDS {nds:.3f}, mAP {m:.3f} ({len(runs)} seeds)")
    return out


def card_text(info: dict, imgs: list[Path]) -> str:
    s, t = info["student"], info["teacher"]
    tc = s["train_config"]
    lines = [
        "# IMKD CPU checkpoints",
        "",
        "Two checkpoints of the `cpu` model config (models/cpu.yaml: 6 x 128x352 images, custom",
        "ResNet (BasicBlock [1,1,1,1], widths 16-96) + FPN to stride 16, 35 depth bins 2-58 m with a radar",
        "depth prior, radar pillars, 64x64 BEV at 1.6 m, CenterPoint head with 6 class groups):",
        "",
        "| file | what | size | sha256 |",
        "|---|---|---|---|",
        f"| `models/imkd_student_cpu.pt` | full IMKD student (camera + radar; L1 + L2 + response "
        f"distillation, intensity-guided fusion); what the ROS node loads by default | "
        f"{s['size'] / 1e6:.2f} MB | `{s['sha']}` |",
        f"| `models/imkd_teacher_cpu.pt` | LiDAR pillar teacher it was distilled from (training only) | "
        f"{t['size'] / 1e6:.2f} MB | `{t['sha']}` |",
        "",
        "Both load with `torch.load(path, weights_only=True)` (dict: kind, config, state_dict, extra);",
        "`imkd_ros.model.load_student` / `load_teacher` build the modules. The student checkpoint holds",
        "only the student (no teacher, no distillation adapters).",
        "",
        "## Data",
        "",
        "Synthetic nuScenes-format world (`imkd data synth`), 400x225 cameras (`--image-scale 0.25`), key",
        "frames only, 6 radar sweeps and 3 LiDAR sweeps per frame (LiDAR subsampled to 8000 points):",
        "",
        "- train: `imkd data synth --out runs/data/synth_train --scenes 12 --seed 1 --scene-seconds 8"
        " --image-scale 0.25 --camera-sweeps none --val-fraction 0` (192 key frames);",
        "- held-out: `imkd data synth --out runs/data/synth_val --scenes 4 --seed 2 --scene-seconds 8"
        " --image-scale 0.25 --camera-sweeps none --val-fraction 0` (64 key frames, other world seed).",
        "",
        "## Training",
        "",
        f"The seed-{tc['seed']} LiDAR teacher and full-IMKD student (variant `{tc['variant']}`) of the main"
        f" table of docs/ablation.md: teacher"
        f" {t['train_config']['epochs']} epochs, student {tc['epochs']} epochs, batch {tc['batch_size']},"
        f" AdamW lr {tc['lr']} one-cycle, grad clip {tc['grad_clip']}, BEV augmentation (rotation +-22.5 deg,"
        " scale 0.95-1.05, both flips) + image resize 0.9-1.1 / flip, one CPU thread. Commands:",
        "",
        "```",
        t["cmd"],
        s["cmd"],
        "```",
        "",
        f"Training time (wall, one thread on a shared 2-core machine): teacher {t['summary']['time_s'] / 60:.1f}"
        f" min ({t['summary']['steps']} steps), student {s['summary']['time_s'] / 60:.1f} min"
        f" ({s['summary']['steps']} steps).",
        "",
        "## Metrics on the held-out split (64 frames, nuScenes detection metrics via imkd_ros.evaluation,",
        "classes present in the ground truth)",
        "",
        "| model | NDS | mAP | mATE | mASE | mAOE | mAVE | mAAE |",
        "|---|---|---|---|---|---|---|---|",
        "| teacher (LiDAR) " + _metrics_line(t["summary"]["val"]),
        "| student (camera + radar) " + _metrics_line(s["summary"]["val"]),
        "",
        *_comparison(info),
        "",
        "These are tiny-budget CPU models on a synthetic world: a pipeline and integration",
        "artefact, not a nuScenes-quality detector. Retrain on a GPU with the `paper` config for real use.",
        "",
        "## Pictures",
        "",
    ]
    lines += [f"![held-out frame](../docs/images/{p.name})" for p in imgs]
    lines += ["", "Loss curve of the student run: `docs/images/imkd_student_cpu_loss.png`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
