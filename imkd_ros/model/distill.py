"""IMKD distillation: intensity maps and the two feature-distillation levels (our formulation).

Intensity = where LiDAR carries signal: a mix of the frozen teacher's BEV activation magnitude
(channel L2 norm, per-sample max-normalised) and the saturating LiDAR point density.

- Level 1 (LiDAR -> radar): masked feature imitation of the teacher's BEV features by an
  adapter on the radar BEV features; mask = intensity, boosted where radar has returns and
  inside ground-truth Gaussians; normalised by the mask's mass.
- Level 2 (LiDAR -> fused): masked imitation on the fused features, additionally boosted where
  teacher and student disagree (detached), plus a spatial-affinity (relation) term so the fused
  feature is guided toward LiDAR's structure without copying its activations.
- Response: the student's heatmaps imitate the teacher's where the teacher is confident.
- Label (optional): the fused features imitate a frozen label encoder's features inside the
  ground-truth Gaussians (LabelDistill style).
- Velocity (optional): the student's (vx, vy) imitate the teacher's where the teacher's heatmap
  is confident (multi-sweep LiDAR sees motion; the student's velocity otherwise learns only at
  the few labelled centre cells).
Each part can be switched off and has its own weight (DistillConfig). ``exempt_classes`` takes
the GT regions of the named classes out of both feature levels (weight x (1 - their Gaussian)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imkd_ros.model.config import DistillConfig
from imkd_ros.model.radar import density_intensity

_EPS = 1e-6


def activation_intensity(feat: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, 1, H, W) in [0, 1]: channel L2 norm over its per-sample maximum."""
    norm = feat.detach().float().norm(dim=1, keepdim=True)
    return norm / norm.amax(dim=(2, 3), keepdim=True).clamp(min=_EPS)


def intensity_map(teacher_bev: Tensor, lidar_counts: Tensor, cfg: DistillConfig) -> Tensor:
    """LiDAR intensity map (B, 1, H, W) in [0, 1] (no gradient)."""
    dens = density_intensity(lidar_counts.detach().float(), cfg.density_scale)
    return cfg.feature_mix * activation_intensity(teacher_bev) + (1 - cfg.feature_mix) * dens


def foreground_map(targets: list[dict[str, Tensor]]) -> Tensor:
    """Max over all task heatmap targets: (B, 1, H, W) Gaussian object regions."""
    return torch.cat([t["heatmap"] for t in targets], 1).amax(1, keepdim=True)


def class_channels(tasks: list[list[str]], classes: list[str],
                   key: str = "distill.exempt_classes") -> list[tuple[int, list[int]]]:
    """(task index, heatmap channels) holding ``classes``; unknown names (in config ``key``) are
    an error."""
    unknown = sorted(set(classes) - {n for t in tasks for n in t})
    if unknown:
        raise ValueError(f"{key} {unknown} are not in the head's tasks")
    return [(ti, [ci for ci, n in enumerate(names) if n in classes])
            for ti, names in enumerate(tasks) if any(n in classes for n in names)]


def exempt_map(targets: list[dict[str, Tensor]], channels: list[tuple[int, list[int]]]) -> Tensor:
    """(B, 1, H, W) max of the GT Gaussians on ``channels`` (from ``class_channels``)."""
    return torch.cat([targets[ti]["heatmap"][:, ci] for ti, ci in channels], 1).amax(1, keepdim=True)


def _masked_mse(student: Tensor, teacher: Tensor, weight: Tensor) -> Tensor:
    d = (student.float() - teacher.detach().float()).pow(2).mean(1, keepdim=True)
    return (weight * d).sum() / weight.sum().clamp(min=_EPS)


def level1_weight(lidar_int: Tensor, radar_occ: Tensor | None, fg: Tensor | None,
                  cfg: DistillConfig, keep: Tensor | None = None) -> Tensor:
    w = cfg.background_floor + lidar_int
    if keep is not None:
        w = w * keep
    if radar_occ is not None:
        # a frame without radar (an outage, or radar dropout in training) has nothing to imitate
        # with: its radar features are the encoder's constant, so it gets no level-1 weight
        has_radar = (radar_occ.flatten(1).amax(1) > 0).to(w.dtype).view(-1, *([1] * (w.dim() - 1)))
        w = w * (1 + cfg.radar_boost * radar_occ) * has_radar
    if fg is not None:
        w = w * (1 + cfg.foreground_boost * fg)
    return w


def level1_loss(radar_feat: Tensor, teacher_feat: Tensor, lidar_int: Tensor,
                radar_occ: Tensor | None, fg: Tensor | None, cfg: DistillConfig,
                keep: Tensor | None = None) -> Tensor:
    """LiDAR -> radar intensity-aware feature distillation (radar_feat already adapted);
    ``keep`` (B, 1, H, W) in [0, 1] scales the weight (exempt classes)."""
    return _masked_mse(radar_feat, teacher_feat, level1_weight(lidar_int, radar_occ, fg, cfg, keep))


def affinity(feat: Tensor, pool: int) -> Tensor:
    """Cosine spatial affinity (B, L, L) on an avg-pooled grid."""
    x = F.avg_pool2d(feat.float(), pool) if pool > 1 else feat.float()
    x = F.normalize(x.flatten(2), dim=1)
    return x.transpose(1, 2) @ x


def level2_loss(fused_feat: Tensor, teacher_feat: Tensor, lidar_int: Tensor, fg: Tensor | None,
                cfg: DistillConfig, keep: Tensor | None = None) -> Tensor:
    """LiDAR -> fused intensity-guided distillation (fused_feat already adapted); ``keep`` as in
    level 1 (the relation term stays global)."""
    d = (fused_feat.detach().float() - teacher_feat.detach().float()).pow(2).mean(1, keepdim=True)
    disc = d / d.amax(dim=(2, 3), keepdim=True).clamp(min=_EPS)
    w = (cfg.background_floor + lidar_int) * (1 + cfg.level2_discrepancy_gain * disc)
    if keep is not None:
        w = w * keep
    if fg is not None:
        w = w * (1 + cfg.foreground_boost * fg)
    loss = _masked_mse(fused_feat, teacher_feat, w)
    if cfg.level2_relation_weight > 0:
        a_s = affinity(fused_feat, cfg.relation_pool)
        a_t = affinity(teacher_feat.detach(), cfg.relation_pool)
        loss = loss + cfg.level2_relation_weight * (a_s - a_t).pow(2).mean()
    return loss


def response_loss(student_heads: list[dict[str, Tensor]], teacher_heads: list[dict[str, Tensor]],
                  cfg: DistillConfig) -> Tensor:
    """Heatmap imitation weighted by the teacher's confidence."""
    total = student_heads[0]["heatmap"].new_zeros(())
    for s, t in zip(student_heads, teacher_heads):
        ps = torch.sigmoid(s["heatmap"].float())
        pt = torch.sigmoid(t["heatmap"].detach().float())
        w = cfg.background_floor + pt.amax(1, keepdim=True)
        total = total + (w * (ps - pt).pow(2)).sum() / w.sum().clamp(min=_EPS)
    return total


def velocity_distill_loss(student_heads: list[dict[str, Tensor]], teacher_heads: list[dict[str, Tensor]],
                          cfg: DistillConfig, channels: list[tuple[int, list[int]]] | None = None) -> Tensor:
    """Huber (1 m/s) between student and teacher velocity channels, weighted by the teacher's
    peak heat where it exceeds ``velocity_min_heat``; normalised by the weight mass.
    ``channels`` (from ``class_channels``) limits it to those classes' heat (None: every class)."""
    total = student_heads[0]["box"].new_zeros(())
    picked = None if channels is None else dict(channels)
    for ti, (s, t) in enumerate(zip(student_heads, teacher_heads)):
        if picked is not None and ti not in picked:
            continue
        hm = t["heatmap"].detach().float()
        heat = torch.sigmoid(hm if picked is None else hm[:, picked[ti]]).amax(1, keepdim=True)
        w = heat * (heat >= cfg.velocity_min_heat).to(heat.dtype)
        err = F.smooth_l1_loss(s["box"][:, 8:10].float(), t["box"][:, 8:10].detach().float(),
                               reduction="none", beta=1.0).sum(1, keepdim=True)
        total = total + (w * err).sum() / w.sum().clamp(min=1.0)
    return total


def label_loss(fused_feat: Tensor, label_feat: Tensor, fg: Tensor) -> Tensor:
    """Fused (adapted) features vs label-encoder features, weighted by the GT Gaussians."""
    return _masked_mse(fused_feat, label_feat, fg)


def _adapter(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 1))


class Distiller(nn.Module):
    """Adapters (student -> teacher channels) and the weighted IMKD distillation losses.

    The adapters are training-only; inference and export never touch them.
    """

    def __init__(self, cfg: DistillConfig, radar_channels: int, fused_channels: int, teacher_channels: int,
                 tasks: list[list[str]] | None = None):
        super().__init__()
        self.cfg = cfg
        self.exempt = class_channels(tasks or [], cfg.exempt_classes)  # fixed per config: once
        self.velocity_channels = (class_channels(tasks or [], cfg.velocity_classes, "distill.velocity_classes")
                                  if cfg.velocity_classes else None)
        self.radar_adapter = _adapter(radar_channels, teacher_channels) if cfg.level1 else None
        self.fused_adapter = _adapter(fused_channels, teacher_channels) if cfg.level2 else None
        self.label_adapter = _adapter(fused_channels, cfg.label_channels) if cfg.label else None

    def forward(self, student: dict, teacher: dict | None, targets: list[dict[str, Tensor]] | None,
                label_teacher: dict | None = None) -> dict[str, Tensor]:
        """Weighted losses; ``teacher`` = LiDAR teacher outputs on the student grid (None: label
        distillation only); ``label_teacher`` (LabelTeacher outputs) only when cfg.label."""
        cfg = self.cfg
        fg = foreground_map(targets) if targets is not None else None
        losses: dict[str, Tensor] = {}
        if self.label_adapter is not None and label_teacher is not None and fg is not None:
            fused = self.label_adapter(student["fused_bev"])
            losses["distill_label"] = cfg.label_weight * label_loss(fused, label_teacher["label_bev"], fg)
        if teacher is None:
            return losses
        lidar_int = intensity_map(teacher["teacher_bev"], teacher["lidar_counts"], cfg)
        keep = 1 - exempt_map(targets, self.exempt) if self.exempt and targets else None
        if self.radar_adapter is not None:
            rad = self.radar_adapter(student["radar_bev"])
            losses["distill_l1"] = cfg.level1_weight * level1_loss(
                rad, teacher["teacher_bev"], lidar_int, student.get("radar_occupancy"), fg, cfg, keep)
        if self.fused_adapter is not None:
            fused = self.fused_adapter(student["fused_bev"])
            losses["distill_l2"] = cfg.level2_weight * level2_loss(
                fused, teacher["teacher_bev"], lidar_int, fg, cfg, keep)
        if cfg.response:
            losses["distill_resp"] = cfg.response_weight * response_loss(student["head"], teacher["head"], cfg)
        if cfg.velocity:
            losses["distill_vel"] = cfg.velocity_weight * velocity_distill_loss(student["head"], teacher["head"], cfg,
                                                                               self.velocity_channels)
        return losses
