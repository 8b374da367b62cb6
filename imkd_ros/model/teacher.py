"""LiDAR teacher: a pillar BEV detector on the student's grid with the same CenterPoint head.

Trained first on LiDAR + labels, then frozen; its BEV features (the head input) and heatmaps
are the distillation targets, and its point density feeds the intensity maps.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from imkd_ros.model.config import IMKDConfig
from imkd_ros.model.head import BOX_CODE, CenterHead
from imkd_ros.model.radar import PillarEncoder, bev_blocks, point_cells, scatter_sum
from imkd_ros.types import LIDAR_FEATURES

INTENSITY_COLUMN = LIDAR_FEATURES.index("intensity")


class LidarTeacher(nn.Module):
    def __init__(self, cfg: IMKDConfig):
        super().__init__()
        self.cfg = cfg
        self.grid = cfg.grid.bev_grid()
        tc = cfg.teacher
        self.pillars = PillarEncoder(len(LIDAR_FEATURES), tc.pillar, self.grid)
        self.encoder = bev_blocks(tc.pillar.point_channels, tc.pillar.bev_channels, tc.pillar.num_blocks)
        self.bev_encoder = bev_blocks(tc.pillar.bev_channels, tc.pillar.bev_channels, tc.bev_blocks)
        self.head = CenterHead(tc.pillar.bev_channels, cfg.head, self.grid)
        self.out_channels = tc.pillar.bev_channels

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
        return self.head.loss(outputs["head"], targets)

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
        cin = num_classes + len(BOX_CODE)
        c = cfg.distill.label_channels
        self.encoder = bev_blocks(cin, c, 2)
        self.head = CenterHead(c, cfg.head, self.grid)
        self.out_channels = c

    def rasterise(self, targets: list[dict[str, Tensor]]) -> Tensor:
        heat = torch.cat([t["heatmap"] for t in targets], 1)
        b, _, h, w = heat.shape
        box = heat.new_zeros(b, len(BOX_CODE), h * w)
        for t in targets:
            m = t["mask"].to(heat.dtype).unsqueeze(1)  # (B, 1, M)
            idx = t["ind"].unsqueeze(1).expand(b, len(BOX_CODE), t["ind"].shape[1])
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
