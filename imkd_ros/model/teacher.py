"""LiDAR teacher: a pillar BEV detector on the student's grid with the same CenterPoint head.

Trained first on LiDAR + labels, then frozen; its BEV features (the head input) and heatmaps
are the distillation targets, and its point density feeds the intensity maps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imkd_ros.model.backbone import BasicBlock
from imkd_ros.model.config import IMKDConfig
from imkd_ros.model.head import CenterHead, box_code
from imkd_ros.model.radar import PillarEncoder, bev_blocks, point_cells, scatter_sum
from imkd_ros.types import LIDAR_FEATURES

INTENSITY_COLUMN = LIDAR_FEATURES.index("intensity")


def _take(x: Tensor, flat: Tensor, k: int) -> Tensor:
    """(B, C, H, W) at flat fine-cell indices (B, H/k * W/k) -> (B, C, H/k, W/k)."""
    b, c, h, w = x.shape
    g = x.flatten(2).gather(2, flat.unsqueeze(1).expand(-1, c, -1))
    return g.view(b, c, h // k, w // k)


class UNetBev(nn.Module):
    """Stem at full resolution, ``n`` residual blocks at half resolution, upsample + concat:
    output (B, stem + cmid, H, W)."""

    def __init__(self, cin: int, cmid: int, n: int):
        super().__init__()
        stem = max(cin, cmid // 2)
        self.stem = bev_blocks(cin, stem, 0)
        down = nn.Sequential(nn.Conv2d(stem, cmid, 3, 2, 1, bias=False), nn.BatchNorm2d(cmid), nn.ReLU(inplace=True))
        self.down = nn.Sequential(down, *[BasicBlock(cmid, cmid) for _ in range(n)])
        self.up = nn.Sequential(nn.ConvTranspose2d(cmid, stem, 2, 2, bias=False), nn.BatchNorm2d(stem),
                                nn.ReLU(inplace=True))
        self.out_channels = 2 * stem

    def forward(self, x: Tensor) -> Tensor:
        s = self.stem(x)
        return torch.cat([s, self.up(self.down(s))], 1)


class LidarTeacher(nn.Module):
    def __init__(self, cfg: IMKDConfig):
        super().__init__()
        self.cfg = cfg
        tc = cfg.teacher
        self.grid = tc.bev_grid(cfg.grid)  # its own (finer) grid, or the student's
        self.pillars = PillarEncoder(len(LIDAR_FEATURES), tc.pillar, self.grid)
        c = tc.pillar.bev_channels
        self.encoder: nn.Module
        self.bev_encoder: nn.Module
        if tc.arch == "unet":
            self.encoder = UNetBev(tc.pillar.point_channels, c, tc.pillar.num_blocks + tc.bev_blocks)
            self.bev_encoder = nn.Identity()
            self.out_channels = self.encoder.out_channels
        elif tc.arch == "flat":
            self.encoder = bev_blocks(tc.pillar.point_channels, c, tc.pillar.num_blocks)
            self.bev_encoder = bev_blocks(c, c, tc.bev_blocks)
            self.out_channels = c
        else:
            raise ValueError(f"teacher.arch must be flat or unet, got {tc.arch!r}")
        self.head = CenterHead(self.out_channels, cfg.head, self.grid)
        student = cfg.grid.bev_grid()
        ratio = student.resolution / self.grid.resolution
        self.pool = int(round(ratio))
        if abs(ratio - self.pool) > 1e-6 or (self.grid.nx, self.grid.ny) != (student.nx * self.pool,
                                                                             student.ny * self.pool):
            raise ValueError(f"teacher grid {self.grid.nx}x{self.grid.ny} @ {self.grid.resolution} m is not an "
                             f"integer refinement of the student grid {student.nx}x{student.ny} @ "
                             f"{student.resolution} m")

    def forward(self, lidar: Tensor, lidar_mask: Tensor) -> dict:
        bev = self.bev_encoder(self.encoder(self.pillars(lidar, lidar_mask)))
        flat, valid = point_cells(lidar, lidar_mask, self.grid)
        b = lidar_mask.shape[0]
        counts = scatter_sum(valid.to(lidar.dtype), flat, valid, b, self.grid)
        # reflectance-weighted count: strong returns (0..255 nuScenes scale) count up to 2x
        refl = 1.0 + (lidar[..., INTENSITY_COLUMN] / 255.0).clamp(0.0, 1.0)
        weighted = scatter_sum(refl, flat, valid, b, self.grid)
        return {"teacher_bev": bev, "lidar_counts": counts, "lidar_weighted": weighted,
                "head": self.head(bev)}

    def loss(self, outputs: dict, targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        """Head losses; ``targets`` encoded on the teacher's grid (batch["teacher_targets"] when
        it differs from the student's)."""
        if tuple(targets[0]["heatmap"].shape[-2:]) != self.grid.shape:
            raise ValueError(f"targets on a {tuple(targets[0]['heatmap'].shape[-2:])} grid, the teacher's is "
                             f"{self.grid.shape}: pass batch['teacher_targets']")
        return self.head.loss(outputs["head"], targets)

    def to_student_grid(self, out: dict) -> dict:
        """Teacher outputs pooled onto the student grid (identity when the grids match): features
        averaged, point counts summed, heatmap logits max-pooled, box codes taken at the most
        confident fine cell of each coarse cell (so a velocity is an object's, not a blur)."""
        k = self.pool
        if k == 1:
            return out
        heads = []
        for h in out["head"]:
            hm = h["heatmap"]
            b, c, hh, ww = hm.shape
            peak = hm.amax(1, keepdim=True)  # (B, 1, H, W)
            # index of the best fine cell inside each k x k block
            _, idx = F.max_pool2d(peak, k, k, return_indices=True)
            flat = idx.flatten(1)  # (B, L) into H * W

            box = _take(h["box"], flat, k)
            # the fine cell's centre offset (cells) -> the coarse cell's offset
            fy, fx = (flat // ww).view(b, 1, hh // k, ww // k), (flat % ww).view(b, 1, hh // k, ww // k)
            off_x = ((fx % k).to(box.dtype) + box[:, 0:1]) / k
            off_y = ((fy % k).to(box.dtype) + box[:, 1:2]) / k
            box = torch.cat([off_x, off_y, box[:, 2:]], 1)
            heads.append({"heatmap": F.max_pool2d(hm, k, k), "box": box, "attr": _take(h["attr"], flat, k)})
        return {"teacher_bev": F.avg_pool2d(out["teacher_bev"], k, k),
                "lidar_counts": F.avg_pool2d(out["lidar_counts"], k, k) * k * k,
                "lidar_weighted": F.avg_pool2d(out["lidar_weighted"], k, k) * k * k,
                "head": heads}

    def freeze(self) -> LidarTeacher:
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
            p.grad = None
        return self

    @torch.no_grad()
    def decode(self, outputs: dict, score_threshold: float | None = None):
        return self.head.decode(outputs["head"], score_threshold)


class LabelTeacher(nn.Module):
    """Label encoder (LabelDistill style): ground truth rasterised into BEV -> features -> head.

    Input: the encoded head targets (class Gaussians of every task, and each object's box code
    splatted at its centre cell), so it needs no extra data. Trained as an autoencoder through
    the shared CenterHead, then frozen; its features say what a perfect BEV feature looks like
    at objects.
    """

    def __init__(self, cfg: IMKDConfig):
        super().__init__()
        self.cfg = cfg
        self.grid = cfg.grid.bev_grid()
        num_classes = sum(len(t) for t in cfg.head.tasks)
        self.code_channels = len(box_code(cfg.head))
        cin = num_classes + self.code_channels
        c = cfg.distill.label_channels
        self.encoder = bev_blocks(cin, c, 2)
        self.head = CenterHead(c, cfg.head, self.grid)
        self.out_channels = c

    def rasterise(self, targets: list[dict[str, Tensor]]) -> Tensor:
        heat = torch.cat([t["heatmap"] for t in targets], 1)
        b, _, h, w = heat.shape
        nc = self.code_channels
        box = heat.new_zeros(b, nc, h * w)
        for t in targets:
            m = t["mask"].to(heat.dtype).unsqueeze(1)  # (B, 1, M)
            idx = t["ind"].unsqueeze(1).expand(b, nc, t["ind"].shape[1])
            box = box.scatter_add(2, idx, t["box"].transpose(1, 2).to(heat.dtype) * m)
        return torch.cat([heat, box.view(b, -1, h, w)], 1)

    def forward(self, targets: list[dict[str, Tensor]]) -> dict:
        feat = self.encoder(self.rasterise(targets))
        return {"label_bev": feat, "head": self.head(feat)}

    def loss(self, outputs: dict, targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        return self.head.loss(outputs["head"], targets)

    def freeze(self) -> LabelTeacher:
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
            p.grad = None
        return self
