"""Point-pillar BEV encoders: multi-sweep radar (student) and LiDAR (teacher) share the code.

Points arrive padded: (B, P, F) with a (B, P) bool mask, columns as imkd_ros.types
(RADAR_FEATURES / LIDAR_FEATURES; x, y, z first). Each point is decorated with its offset to
the pillar centre, passed through a shared MLP and max-pooled per BEV cell (PointPillars).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imkd_ros.model.backbone import BasicBlock
from imkd_ros.model.config import PillarConfig
from imkd_ros.ops.bev_pool_geometry import BevGrid
from imkd_ros.types import RADAR_FEATURES

RCS_COLUMN = RADAR_FEATURES.index("rcs")
VX_COLUMN, VY_COLUMN = RADAR_FEATURES.index("vx_comp"), RADAR_FEATURES.index("vy_comp")
DOPPLER_CHANNELS = 3  # mean vx_comp, mean vy_comp (m/s / 10), saturating return count


def point_cells(points: Tensor, mask: Tensor, grid: BevGrid) -> tuple[Tensor, Tensor]:
    """Flat cell index (B, P) into (B * ny * nx) and validity (inside grid and mask)."""
    b, p = mask.shape
    ix, iy, inside = grid.cell_index(points[..., :3])
    valid = mask & inside
    sample = torch.arange(b, device=points.device).view(b, 1)
    flat = (sample * grid.ny + iy.clamp(0, grid.ny - 1)) * grid.nx + ix.clamp(0, grid.nx - 1)
    return flat, valid


def scatter_sum(values: Tensor, flat: Tensor, valid: Tensor, b: int, grid: BevGrid) -> Tensor:
    """Sum per cell of (B, P) values -> (B, 1, ny, nx)."""
    out = values.new_zeros(b * grid.ny * grid.nx)
    # masked values instead of boolean indexing keeps shapes static (torch.export)
    out = out.index_add(0, flat.reshape(-1), torch.where(valid, values, torch.zeros_like(values)).reshape(-1))
    return out.view(b, 1, grid.ny, grid.nx)


class PillarEncoder(nn.Module):
    """PointNet on decorated points, max-pooled per pillar -> (B, C, ny, nx)."""

    scale: Tensor

    def __init__(self, num_features: int, cfg: PillarConfig, grid: BevGrid):
        super().__init__()
        if len(cfg.feature_scale) != num_features:
            raise ValueError(f"feature_scale has {len(cfg.feature_scale)} entries, points have "
                             f"{num_features} columns")
        self.grid = grid
        self.register_buffer("scale", torch.tensor(cfg.feature_scale, dtype=torch.float32),
                             persistent=False)
        c = cfg.point_channels
        self.mlp = nn.Sequential(nn.Linear(num_features + 2, c), nn.LayerNorm(c), nn.ReLU(inplace=True),
                                 nn.Linear(c, c))
        self.channels = c

    def forward(self, points: Tensor, mask: Tensor) -> Tensor:
        b, p, _ = points.shape
        g = self.grid
        flat, valid = point_cells(points, mask, g)
        ix = flat % g.nx
        iy = (flat // g.nx) % g.ny
        cx = g.x_min + (ix.to(points.dtype) + 0.5) * g.resolution
        cy = g.y_min + (iy.to(points.dtype) + 0.5) * g.resolution
        offs = torch.stack([points[..., 0] - cx, points[..., 1] - cy], -1) / g.resolution
        x = torch.cat([points * self.scale, offs], -1)
        feats = F.relu(self.mlp(x))  # >= 0, so max with an all-zero start equals max over points
        feats = feats * valid.unsqueeze(-1).to(feats.dtype)
        idx = torch.where(valid, flat, torch.zeros_like(flat)).view(-1, 1).expand(-1, self.channels)
        bev = feats.new_zeros(b * g.ny * g.nx, self.channels)
        bev = bev.scatter_reduce(0, idx, feats.reshape(-1, self.channels), "amax", include_self=True)
        return bev.view(b, g.ny, g.nx, self.channels).permute(0, 3, 1, 2).contiguous()


def bev_blocks(cin: int, cout: int, n: int) -> nn.Sequential:
    """3x3 conv stem + n residual blocks at constant resolution."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                               nn.ReLU(inplace=True)]
    layers += [BasicBlock(cout, cout) for _ in range(n)]
    return nn.Sequential(*layers)


def density_intensity(counts: Tensor, scale: float) -> Tensor:
    """Saturating point density in [0, 1): 1 - exp(-count / scale)."""
    return 1.0 - torch.exp(-counts / scale)


def doppler_map(points: Tensor, mask: Tensor, grid: BevGrid) -> Tensor:
    """(B, 3, ny, nx): per-cell mean compensated Doppler velocity (vx, vy in units of 10 m/s) and
    the saturating return count 1 - exp(-n). The pillar max-pool keeps velocity only as the
    strongest activation; the mean is the measurement itself, cheap and export-friendly."""
    flat, valid = point_cells(points, mask, grid)
    b = mask.shape[0]
    n = scatter_sum(valid.to(points.dtype), flat, valid, b, grid)
    vx = scatter_sum(points[..., VX_COLUMN], flat, valid, b, grid)
    vy = scatter_sum(points[..., VY_COLUMN], flat, valid, b, grid)
    inv = 1.0 / n.clamp(min=1.0)
    return torch.cat([vx * inv * 0.1, vy * inv * 0.1, 1.0 - torch.exp(-n)], 1)


class RadarBranch(nn.Module):
    """Radar pillars -> radar BEV features + a radar intensity map (RCS-weighted density)
    (+ the per-cell Doppler map when ``cfg.doppler``)."""

    def __init__(self, cfg: PillarConfig, grid: BevGrid, num_features: int = len(RADAR_FEATURES)):
        super().__init__()
        self.grid = grid
        self.doppler = cfg.doppler
        self.pillars = PillarEncoder(num_features, cfg, grid)
        extra = DOPPLER_CHANNELS if cfg.doppler else 0
        self.encoder = bev_blocks(cfg.point_channels + extra, cfg.bev_channels, cfg.num_blocks)
        self.out_channels = cfg.bev_channels

    def intensity(self, points: Tensor, mask: Tensor) -> Tensor:
        """(B, 1, ny, nx) in [0, 1): returns weighted by RCS (dBsm), slightly blurred."""
        flat, valid = point_cells(points, mask, self.grid)
        weight = torch.exp(points[..., RCS_COLUMN].clamp(-20.0, 30.0) / 20.0).clamp(0.3, 3.0)
        acc = scatter_sum(weight, flat, valid, mask.shape[0], self.grid)
        acc = F.avg_pool2d(acc, 3, 1, 1) * 9.0 / 3.0  # spread a return onto neighbours
        return density_intensity(acc, 1.0)

    def forward(self, points: Tensor, mask: Tensor) -> dict[str, Tensor]:
        pil = self.pillars(points, mask)
        out: dict[str, Tensor] = {}
        if self.doppler:
            out["radar_doppler"] = doppler_map(points, mask, self.grid)
            pil = torch.cat([pil, out["radar_doppler"]], 1)
        bev = self.encoder(pil)
        flat, valid = point_cells(points, mask, self.grid)
        occ = scatter_sum(valid.to(points.dtype), flat, valid, mask.shape[0], self.grid)
        out.update({"radar_bev": bev, "radar_intensity": self.intensity(points, mask),
                    "radar_occupancy": (occ > 0).to(points.dtype)})
        return out
