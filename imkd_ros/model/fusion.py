"""Camera-radar intensity-guided fusion (IMKD level 3, our formulation).

Per-cell, per-channel gates are predicted from both features, the radar intensity map (where
radar carries signal) and the camera depth mass (where the camera lift put probability), so
radar dominates where it has returns and the camera elsewhere. A dilated branch widens the
receptive field to absorb small camera-radar misalignment (instead of deformable attention).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from imkd_ros.model.config import FusionConfig


def conv_bn_relu(cin: int, cout: int, k: int = 3, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (k // 2)
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=pad, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class IntensityGuidedFusion(nn.Module):
    def __init__(self, cam_channels: int, radar_channels: int, cfg: FusionConfig):
        super().__init__()
        c = cfg.channels
        self.cam_proj = conv_bn_relu(cam_channels, c)
        self.radar_proj = conv_bn_relu(radar_channels, c)
        self.use_gate = cfg.radar_gate
        if self.use_gate:
            self.gate = nn.Conv2d(2 * c + 2, 2 * c, 3, padding=1)
            nn.init.zeros_(self.gate.weight)
            nn.init.zeros_(self.gate.bias)  # type: ignore[arg-type]  # gates start at 0.5 / 0.5
        self.local = conv_bn_relu(2 * c, c)
        self.wide = conv_bn_relu(2 * c, c, dilation=cfg.dilation)
        self.out = conv_bn_relu(2 * c, c, k=1)
        self.out_channels = c

    def forward(self, cam_bev: Tensor, radar_bev: Tensor, radar_intensity: Tensor,
                cam_mass: Tensor) -> dict[str, Tensor]:
        cam = self.cam_proj(cam_bev)
        rad = self.radar_proj(radar_bev)
        cam_conf = 1.0 - torch.exp(-cam_mass)  # depth mass -> [0, 1)
        if self.use_gate:
            gates = torch.sigmoid(self.gate(torch.cat([cam, rad, radar_intensity, cam_conf], 1)))
            g_cam, g_rad = gates.chunk(2, 1)
            # radar intensity scales the radar gate: no returns -> radar contributes little
            g_rad = g_rad * (0.5 + radar_intensity)
            x = torch.cat([g_cam * cam, g_rad * rad], 1)
        else:
            g_cam = g_rad = cam.new_ones(())
            x = torch.cat([cam, rad], 1)
        fused = self.out(torch.cat([self.local(x), self.wide(x)], 1))
        return {"fused_bev": fused, "gate_cam": g_cam, "gate_radar": g_rad}
