"""LiDAR teacher: a pillar BEV detector on the student's grid with the same CenterPoint head.

Trained first on LiDAR + labels, then frozen; its BEV features (the head input) and heatmaps
are the distillation targets, and its point density feeds the intensity maps.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from imkd_ros.model.config import IMKDConfig
from imkd_ros.model.head import CenterHead
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
        return self

    @torch.no_grad()
    def decode(self, outputs: dict, score_threshold: float | None = None):
        return self.head.decode(outputs["head"], score_threshold)
