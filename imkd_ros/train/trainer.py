"""Training loop for the LiDAR teacher and the IMKD student (any distillation combination).

One process per device; under torchrun (RANK / WORLD_SIZE / LOCAL_RANK set) the model is wrapped
in DistributedDataParallel (NCCL on CUDA, gloo on CPU) and each rank reads its DistributedSampler
shard. AMP (fp16 autocast + GradScaler) when CUDA is used; AdamW + one-cycle (or cosine) schedule;
gradient clipping; resumable checkpoints (model, optimizer, scheduler, scaler, epoch, step, RNG)
written atomically and loadable with ``torch.load(weights_only=True)``; a CSV metrics log and a
loss-curve PNG. The final weights are also written as a lean inference checkpoint
(``student.pt`` / ``teacher.pt``: weights + config only, no teacher inside the student).
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm import tqdm

from imkd_ros.model.config import IMKDConfig, load_config
from imkd_ros.model.imkd import IMKD, load_checkpoint, load_teacher, save_checkpoint, uses_distillation
from imkd_ros.model.preprocess import Preprocessor, batch_to
from imkd_ros.model.teacher import LabelTeacher, LidarTeacher
from imkd_ros.train.augment import BevAugConfig, RadarDropoutConfig, radar_dropout, random_augment
from imkd_ros.train.data import DataSpec, drop_radar, load_frames
from imkd_ros.train.metrics import ground_truth, predict, score
from imkd_ros.types import Frame

# Named ablation variants -> config overrides (dotted keys) + data options.
VARIANTS: dict[str, dict] = {
    "teacher": {},
    # the label (ground-truth) encoder teacher, trained as an autoencoder through the head; a
    # student distils from it with ``--label-teacher`` and ``distill.label: true``
    "label_teacher": {},
    "camera_only": {"distill.level1": False, "distill.level2": False, "distill.response": False,
                    "distill.velocity": False, "distill.label": False,
                    "fusion.radar_gate": False, "depth.radar_prior": False, "_drop_radar": True},
    "no_distill": {"distill.level1": False, "distill.level2": False, "distill.response": False,
                   "distill.velocity": False, "distill.label": False, "fusion.radar_gate": False},
    "l1": {"distill.level1": True, "distill.level2": False, "distill.response": False,
           "distill.velocity": False, "fusion.radar_gate": False},
    "l1_l2": {"distill.level1": True, "distill.level2": True, "distill.response": True,
              "distill.velocity": False, "fusion.radar_gate": False},
    # full IMKD; velocity distillation and the label teacher as the model config says
    "imkd": {"distill.level1": True, "distill.level2": True, "distill.response": True,
             "fusion.radar_gate": True},
    # full IMKD + the label (ground-truth) teacher (needs --label-teacher)
    "imkd_label": {"distill.level1": True, "distill.level2": True, "distill.response": True,
                   "fusion.radar_gate": True, "distill.label": True},
    # full IMKD with the intensity mask taken from LiDAR point density only and a stronger
    # foreground boost: the default mask mixes in the teacher's activation norm, which stays at
    # ~40 % of its maximum in empty space, so most of the distillation weight lands where LiDAR
    # has no return (see docs/ablation.md, "the intensity mask")
    "imkd_dens": {"distill.level1": True, "distill.level2": True, "distill.response": True,
                  "fusion.radar_gate": True, "distill.feature_mix": 0.0, "distill.foreground_boost": 20.0},
}


@dataclass
class TrainConfig:
    model: str = "cpu"  # config name or YAML path
    variant: str = "imkd"  # key of VARIANTS
    overrides: dict = field(default_factory=dict)  # dotted key -> value, applied after the variant
    train_data: DataSpec = field(default_factory=lambda: DataSpec("simple:16:0"))
    val_data: DataSpec | None = None
    cache_dir: str | None = "runs/cache"
    out: str = "runs/train"
    teacher_ckpt: str | None = None  # required for student variants with distillation
    label_teacher_ckpt: str | None = None  # required when distill.label is on
    # start from these weights (a lean teacher.pt / student.pt of the same config) with a fresh
    # optimizer and schedule: continues a campaign past a finished schedule (ignored on resume)
    init_ckpt: str | None = None
    epochs: int = 10
    batch_size: int = 2
    lr: float = 2e-3
    weight_decay: float = 1e-2
    schedule: str = "onecycle"  # onecycle | cosine
    warmup: float = 0.1  # onecycle pct_start / cosine warm-up fraction
    grad_clip: float = 5.0
    amp: str = "auto"  # auto (on with CUDA) | on | off
    seed: int = 0
    bev_aug: BevAugConfig | None = field(default_factory=BevAugConfig)
    radar_dropout: RadarDropoutConfig = field(default_factory=RadarDropoutConfig)  # off by default
    img_aug: bool = True
    threads: int = 0  # torch CPU threads per process (0 = leave as is)
    device: str = "auto"
    eval_every: int = 0  # epochs; 0 = only at the end
    ckpt_every: int = 1  # epochs
    log_every: int = 0  # steps between metrics.csv rows (0 = four rows per epoch)
    max_steps: int = 0  # stop after this many optimizer steps (0 = epochs decide); for tests
    progress: bool = True


# ------------------------------------------------------------------------------------ config
def apply_overrides(cfg: IMKDConfig, overrides: dict) -> IMKDConfig:
    data = cfg.to_dict()
    for key, value in overrides.items():
        if key.startswith("_"):
            continue
        node = data
        parts = key.split(".")
        for p in parts[:-1]:
            node = node[p]
        if parts[-1] not in node:
            raise KeyError(f"unknown config key {key!r}")
        node[parts[-1]] = value
    return IMKDConfig.from_dict(data)


def model_config(tc: TrainConfig) -> IMKDConfig:
    if tc.variant not in VARIANTS:
        raise KeyError(f"unknown variant {tc.variant!r}; one of {sorted(VARIANTS)}")
    cfg = load_config(tc.model)
    return apply_overrides(cfg, {**VARIANTS[tc.variant], **tc.overrides})


# ------------------------------------------------------------------------------------ modules
class TeacherTask(nn.Module):
    """The LiDAR teacher and its loss, on its own grid's targets (``teacher_targets``)."""

    def __init__(self, cfg: IMKDConfig):
        super().__init__()
        self.teacher = LidarTeacher(cfg)

    def forward(self, batch: dict) -> dict[str, Tensor]:
        out = self.teacher(batch["lidar"], batch["lidar_mask"])
        return self.teacher.loss(out, batch.get("teacher_targets", batch["targets"]))

    def export_module(self) -> nn.Module:
        return self.teacher


class LabelTeacherTask(nn.Module):
    """The label encoder teacher, trained to reproduce the targets it is given through the head."""

    def __init__(self, cfg: IMKDConfig):
        super().__init__()
        self.teacher = LabelTeacher(cfg)

    def forward(self, batch: dict) -> dict[str, Tensor]:
        return self.teacher.loss(self.teacher(batch["targets"]), batch["targets"])

    def export_module(self) -> nn.Module:
        return self.teacher


def build_student_task(cfg: IMKDConfig, tc: TrainConfig) -> tuple[IMKD, IMKDConfig]:
    """Load the teachers a config needs, check they fit, and build the model's own training
    wrapper (model.imkd.IMKD: student, frozen teachers and distillation losses in one place);
    ``imkd train`` runs exactly that module."""
    teacher: LidarTeacher | None = None
    label: LabelTeacher | None = None
    if uses_distillation(cfg):
        if not tc.teacher_ckpt:
            raise ValueError(f"variant {tc.variant!r} distils: pass a teacher checkpoint")
        loaded = load_teacher(tc.teacher_ckpt)
        if not isinstance(loaded, LidarTeacher):
            raise ValueError(f"{tc.teacher_ckpt} is not a LiDAR teacher checkpoint")
        teacher = loaded
        if teacher.cfg.grid != cfg.grid or teacher.cfg.head.tasks != cfg.head.tasks:
            raise ValueError("teacher checkpoint was trained for another student grid / head layout")
        cfg = replace(cfg, teacher=teacher.cfg.teacher)  # the student's config names its teacher
    if cfg.distill.label:
        if not tc.label_teacher_ckpt:
            raise ValueError("distill.label is on: pass a label teacher checkpoint (variant label_teacher)")
        loaded_label = load_teacher(tc.label_teacher_ckpt)
        if not isinstance(loaded_label, LabelTeacher):
            raise ValueError(f"{tc.label_teacher_ckpt} is not a label teacher checkpoint")
        label = loaded_label
        if label.cfg.grid != cfg.grid or label.cfg.head != cfg.head:
            raise ValueError("label teacher checkpoint was trained for another grid / head")
        cfg = replace(cfg, distill=replace(cfg.distill, label_channels=label.out_channels))
    return IMKD(cfg, teacher, label), cfg


# ------------------------------------------------------------------------------------ helpers
def dist_info() -> tuple[int, int, int]:
    """(rank, world size, local rank) from the torchrun environment."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


def rng_state(np_rng: np.random.Generator) -> dict:
    return {"torch": torch.get_rng_state(), "numpy": json.dumps(np_rng.bit_generator.state),
            "python": json.dumps(random.getstate()),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict, np_rng: np.random.Generator) -> None:
    torch.set_rng_state(state["torch"])
    np_rng.bit_generator.state = json.loads(state["numpy"])
    py = json.loads(state["python"])
    random.setstate((py[0], tuple(py[1]), py[2]))
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class FrameSet(torch.utils.data.Dataset):
    """Index -> augmented Frame (BEV augmentation here; image augmentation in the Preprocessor)."""

    def __init__(self, frames: list[Frame], bev_aug: BevAugConfig | None, drop: bool, rng: np.random.Generator,
                 radar_drop: RadarDropoutConfig | None = None):
        self.frames, self.bev_aug, self.drop, self.rng = frames, bev_aug, drop, rng
        self.radar_drop = radar_drop or RadarDropoutConfig()

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> Frame:
        f = radar_dropout(self.frames[i], self.rng, self.radar_drop)
        if self.bev_aug is not None:
            f = random_augment(f, self.rng, self.bev_aug)
        return drop_radar(f) if self.drop else f


def append_csv(path: Path, row: dict) -> None:
    """Append a row; a new column (e.g. the held-out metrics) rewrites the file with the union."""
    fields = list(row)
    if path.exists():
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
            old = list(rows[0].keys()) if rows else fields
        if set(fields) - set(old):
            fields = old + [k for k in fields if k not in old]
            with open(path, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=fields)
                w.writeheader()
                w.writerows(rows)
        else:
            fields = old
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, restval="")
        if f.tell() == 0:
            w.writeheader()
        w.writerow(row)


def plot_losses(csv_path: Path, png_path: Path) -> None:
    import matplotlib  # noqa: PLC0415  (optional: heavy, plotting only; Agg backend chosen before pyplot loads)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415  (optional: heavy, after matplotlib.use("Agg"))

    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    keys = [k for k in rows[0]
            if k not in ("epoch", "step", "lr", "time_s", "grad_norm") and not k.startswith("val_")]
    steps = [int(r["step"]) for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    for k in keys:
        vals = [float(r[k]) if r.get(k) not in (None, "") else math.nan for r in rows]
        ax.plot(steps, vals, label=k, lw=1.2 if k == "loss" else 0.8)
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (mean since the previous point)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path, dpi=90)
    plt.close(fig)


# ------------------------------------------------------------------------------------ train
LAST_TASK_STATE: dict[str, Tensor] = {}  # this process's final weights (tests compare DDP ranks)


def train(tc: TrainConfig, frames: list[Frame] | None = None, val_frames: list[Frame] | None = None) -> dict:
    """Run (or resume) one training job; returns a summary dict (also written to summary.json)."""
    rank, world, local_rank = dist_info()
    distributed = world > 1
    if tc.device == "auto":
        device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(tc.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if tc.threads > 0:
        torch.set_num_threads(tc.threads)
    use_amp = device.type == "cuda" if tc.amp == "auto" else tc.amp == "on"
    out = Path(tc.out)
    is_main = rank == 0
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(asdict(tc), indent=2))

    torch.manual_seed(tc.seed)
    random.seed(tc.seed)
    np_rng = np.random.default_rng([tc.seed, rank])
    cfg = model_config(tc)
    is_teacher = tc.variant == "teacher"
    drop = bool(VARIANTS[tc.variant].get("_drop_radar", False))

    if frames is None:
        frames = load_frames(tc.train_data, tc.cache_dir, progress=tc.progress and is_main)
    if val_frames is None and tc.val_data is not None:
        val_frames = load_frames(tc.val_data, tc.cache_dir, progress=tc.progress and is_main)

    is_label = tc.variant == "label_teacher"
    if is_teacher:
        task: TeacherTask | LabelTeacherTask | IMKD = TeacherTask(cfg)
    elif is_label:
        task = LabelTeacherTask(cfg)
    else:
        task, cfg = build_student_task(cfg, tc)
    task.to(device)
    params = [p for p in task.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": tc.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=tc.lr)

    dataset = FrameSet(frames, tc.bev_aug, drop, np_rng, tc.radar_dropout)
    # seed + epoch decide the order (also on one process), so a resumed run sees the same batches
    sampler: torch.utils.data.DistributedSampler = torch.utils.data.DistributedSampler(
        dataset, world, rank, shuffle=True, seed=tc.seed, drop_last=True)
    loader = torch.utils.data.DataLoader(dataset, batch_size=tc.batch_size, sampler=sampler,
                                         drop_last=True, num_workers=0, collate_fn=list)
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise ValueError(f"{len(frames)} frames are fewer than one batch of {tc.batch_size} x {world}")
    total_steps = steps_per_epoch * tc.epochs
    if tc.schedule == "onecycle":
        sched: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=tc.lr, total_steps=total_steps, pct_start=tc.warmup, div_factor=10.0,
            final_div_factor=100.0)
    elif tc.schedule == "cosine":
        warm = max(1, int(tc.warmup * total_steps))

        def lr_lambda(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total_steps - warm)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
    else:
        raise ValueError(f"unknown schedule {tc.schedule!r}")
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    pre = Preprocessor(cfg, train=tc.img_aug, seed=tc.seed * 1000 + rank)

    start_epoch, step = 0, 0
    ckpt_path = out / "last.pt"
    if tc.init_ckpt and not ckpt_path.exists():
        init_cfg, init_state, _ = load_checkpoint(tc.init_ckpt)
        differ = task.export_module().cfg.weight_mismatch(init_cfg)  # type: ignore[union-attr,operator]
        if differ:
            raise ValueError(f"{tc.init_ckpt} was trained with another model config: {', '.join(differ)}")
        task.export_module().load_state_dict(init_state)
        if is_main:
            print(f"initialised from {tc.init_ckpt}")
    if ckpt_path.exists():  # resume
        state = torch.load(str(ckpt_path), map_location="cpu", weights_only=True)
        task.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start_epoch, step = int(state["epoch"]), int(state["step"])
        rs = state["rng"][rank] if rank < len(state["rng"]) else state["rng"][0]
        set_rng_state(rs, np_rng)
        pre.rng.bit_generator.state = json.loads(rs["pre"])
        if is_main:
            print(f"resumed {ckpt_path} at epoch {start_epoch} (step {step})")

    model: nn.Module = task
    if distributed:
        model = nn.parallel.DistributedDataParallel(
            task, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True)

    csv_path = out / "metrics.csv"
    log_every = tc.log_every or max(1, steps_per_epoch // 4)
    t_start = time.perf_counter()
    prev_time = 0.0
    if start_epoch > 0 and csv_path.exists():
        with open(csv_path) as f:
            rows = list(csv.DictReader(f))
        if rows:
            prev_time = float(rows[-1].get("time_s") or 0.0)
    stop = False
    last_val: dict | None = None
    for epoch in range(start_epoch, tc.epochs):
        sampler.set_epoch(epoch)
        task.train()
        sums: dict[str, float] = {}
        n = n_row = 0
        it = loader
        if tc.progress and is_main:
            it = tqdm(loader, desc=f"{tc.variant} epoch {epoch + 1}/{tc.epochs}", leave=False)
        for n, frames_b in enumerate(it, 1):
            batch = batch_to(pre(frames_b), device)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                losses = model(batch)
            if isinstance(losses, tuple):  # IMKD returns (losses, student outputs)
                losses = losses[0]
            loss = sum(losses.values())
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            gnorm = torch.nn.utils.clip_grad_norm_(params, tc.grad_clip)
            scaler.step(opt)
            scaler.update()
            sched.step()
            step += 1
            n_row += 1
            vals = {k: float(v.detach()) for k, v in losses.items()}
            vals["loss"] = float(loss.detach())
            vals["grad_norm"] = float(gnorm)
            for k, v in vals.items():
                sums[k] = sums.get(k, 0.0) + v
            if is_main and step % log_every == 0 and n < steps_per_epoch:
                append_csv(csv_path, {"epoch": round(epoch + n / steps_per_epoch, 3), "step": step,
                                      "lr": sched.get_last_lr()[0],
                                      "time_s": round(prev_time + time.perf_counter() - t_start, 2),
                                      **{k: v / n_row for k, v in sums.items()}})
                sums, n_row = {}, 0
            if tc.progress and is_main and hasattr(it, "set_postfix"):
                it.set_postfix(loss=f"{vals['loss']:.3f}", lr=f"{sched.get_last_lr()[0]:.2e}")
            if tc.max_steps and step >= tc.max_steps:
                stop = True
                break
        if distributed:
            sync_buffers(task)
        row = {"epoch": epoch + 1, "step": step, "lr": sched.get_last_lr()[0],
               "time_s": round(prev_time + time.perf_counter() - t_start, 2),
               **{k: v / max(n_row, 1) for k, v in sums.items()}}
        last = epoch + 1 == tc.epochs or stop
        if is_main and val_frames and not is_label and (
                last or (tc.eval_every and (epoch + 1) % tc.eval_every == 0)):
            res = last_val = evaluate_task(task, cfg, val_frames, is_teacher, drop, device, tc.batch_size)
            row.update({f"val_{k}": res[k] for k in ("mAP", "NDS", "mATE", "mASE", "mAOE", "mAVE", "mAAE")})
        if is_main:
            append_csv(csv_path, row)
            plot_losses(csv_path, out / "loss_curve.png")
        if (epoch + 1) % max(tc.ckpt_every, 1) == 0 or last:
            _save_resume(ckpt_path, task, opt, sched, scaler, epoch + 1, step, np_rng, pre, distributed)
        if stop:
            break

    summary = {"variant": tc.variant, "steps": step, "epochs": tc.epochs, "seed": tc.seed,
               "train_frames": len(frames), "world_size": world,
               "time_s": round(prev_time + time.perf_counter() - t_start, 2)}
    if is_main:
        kind = "teacher" if is_teacher else "label_teacher" if is_label else "student"
        extra = {"variant": tc.variant, "seed": tc.seed, "drop_radar": drop, "steps": step}
        save_checkpoint(out / f"{kind}.pt", task.export_module(), cfg, kind=kind, extra=extra)
        if val_frames and not is_label:
            summary["val"] = last_val or evaluate_task(task, cfg, val_frames, is_teacher, drop, device,
                                                       tc.batch_size)
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    global LAST_TASK_STATE
    LAST_TASK_STATE = {k: v.detach().cpu().clone() for k, v in task.state_dict().items()}
    if distributed:
        dist.barrier()
    return summary


def sync_buffers(module: nn.Module) -> None:
    """Average floating buffers (BN running statistics) over ranks, so every rank ends equal.

    DDP only broadcasts rank 0's buffers at the start of each forward; the last step's local
    updates would otherwise differ per rank.
    """
    world = dist.get_world_size()
    for buf in module.buffers():
        if buf.is_floating_point():
            dist.all_reduce(buf, op=dist.ReduceOp.SUM)
            buf.div_(world)


def _save_resume(path: Path, task: nn.Module, opt, sched, scaler, epoch: int, step: int,
                 np_rng: np.random.Generator, pre: Preprocessor,
                 distributed: bool) -> None:
    rs = rng_state(np_rng)
    rs["pre"] = json.dumps(pre.rng.bit_generator.state)
    states = [rs]
    if distributed:  # every rank's RNG, gathered on rank 0
        gathered: list = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, rs)
        states = gathered
    if dist.is_initialized() and dist.get_rank() != 0:
        return
    state = {"model": task.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
             "scaler": scaler.state_dict(), "epoch": epoch, "step": step, "rng": states}
    tmp = path.with_suffix(".tmp")
    torch.save(state, str(tmp))
    tmp.replace(path)


def evaluate_task(task: TeacherTask | LabelTeacherTask | IMKD, cfg: IMKDConfig, frames: list[Frame], is_teacher: bool,
                  drop: bool, device: torch.device, batch_size: int) -> dict:
    module = task.export_module()
    was_training = module.training
    preds = predict(module, frames, cfg, batch_size=batch_size, device=device, teacher=is_teacher,
                    drop_radar=drop)
    if was_training:
        task.train()
    return score(preds, ground_truth(frames))
