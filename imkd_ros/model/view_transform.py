"""Camera -> BEV view transform (LSS / BEVDepth style) with a radar depth prior (CRN style).

Coordinates: images are the augmented network input (resize/crop/flip through ``img_aug``, a
3x3 affine on pixel coordinates, pixel centres at integers); intrinsics map the camera optical
frame to raw pixels; cam_to_ego maps the optical frame to ego. Depth bins are bin centres
d_k = d_min + (k + 0.5) * d_step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imkd_ros.model.backbone import BasicBlock, conv3x3
from imkd_ros.model.config import DepthConfig, IMKDConfig
from imkd_ros.ops.bev_pool import bev_pool
from imkd_ros.ops.bev_pool_geometry import (
    BevGrid,
    BevPoolGeometry,
    GeometryCache,
    calibration_key,
    compute_bev_pool_geometry,
)
from imkd_ros.ops.precision import fp32_index_math


def depth_bin_centers(cfg: DepthConfig) -> Tensor:
    return cfg.d_min + (torch.arange(cfg.num_bins, dtype=torch.float32) + 0.5) * cfg.d_step


def make_frustum(img_hw: tuple[int, int], feat_hw: tuple[int, int], bins: Tensor) -> Tensor:
    """(D, fh, fw, 3) of (u, v, d): feature-cell centres in input-image pixels, bin depths."""
    (ih, iw), (fh, fw) = img_hw, feat_hw
    u = (torch.arange(fw, dtype=torch.float32) + 0.5) * (iw / fw) - 0.5
    v = (torch.arange(fh, dtype=torch.float32) + 0.5) * (ih / fh) - 0.5
    d = bins.float()
    dd, vv, uu = torch.meshgrid(d, v, u, indexing="ij")
    return torch.stack([uu, vv, dd], dim=-1)


def frustum_to_ego(frustum: Tensor, intrinsics: Tensor, cam_to_ego: Tensor, img_aug: Tensor) -> Tensor:
    """Frustum (D, fh, fw, 3) -> ego points (BN, D, fh, fw, 3) for (BN, 3, 3)/(BN, 4, 4) calib."""
    uv1 = torch.cat([frustum[..., :2], torch.ones_like(frustum[..., :1])], -1)  # (D, fh, fw, 3)
    depth = frustum[..., 2:3]
    mat = cam_to_ego[:, :3, :3] @ torch.linalg.inv(intrinsics) @ torch.linalg.inv(img_aug)
    rays = torch.einsum("nij,dhwj->ndhwi", mat, uv1)
    return rays * depth.unsqueeze(0) + cam_to_ego[:, None, None, None, :3, 3]


def project_points(points: Tensor, intrinsics: Tensor, cam_to_ego: Tensor, img_aug: Tensor
                   ) -> tuple[Tensor, Tensor]:
    """Ego points (B, P, 3) -> augmented pixel (u, v) (B, N, P, 2) and camera depth (B, N, P)."""
    rot = cam_to_ego[..., :3, :3]
    trans = cam_to_ego[..., :3, 3]
    cam = torch.einsum("bnji,bnpj->bnpi", rot, points[:, None] - trans[:, :, None])  # R^T (p - t)
    proj = img_aug @ intrinsics  # (B, N, 3, 3)
    pix = torch.einsum("bnij,bnpj->bnpi", proj, cam)
    depth = pix[..., 2]
    uv = pix[..., :2] / depth.clamp(min=1e-5).unsqueeze(-1)
    return uv, cam[..., 2]


@fp32_index_math  # projection + floor in fp32 under autocast / fp16 export (issue 13)
def _feature_cells(points: Tensor, mask: Tensor, intrinsics: Tensor, cam_to_ego: Tensor,
                   img_aug: Tensor, img_hw: tuple[int, int], feat_hw: tuple[int, int],
                   cfg: DepthConfig) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Per (sample, camera, point): feature row, column, depth bin, depth and validity."""
    (ih, iw), (fh, fw) = img_hw, feat_hw
    uv, depth = project_points(points, intrinsics, cam_to_ego, img_aug)
    col = torch.floor((uv[..., 0] + 0.5) * (fw / iw)).long()
    row = torch.floor((uv[..., 1] + 0.5) * (fh / ih)).long()
    dbin = torch.floor((depth - cfg.d_min) / cfg.d_step).long()
    valid = mask[:, None] & (col >= 0) & (col < fw) & (row >= 0) & (row < fh)
    valid &= (dbin >= 0) & (dbin < cfg.num_bins)
    return row, col, dbin, depth, valid


def radar_depth_prior(radar_xyz: Tensor, radar_mask: Tensor, intrinsics: Tensor, cam_to_ego: Tensor,
                      img_aug: Tensor, img_hw: tuple[int, int], feat_hw: tuple[int, int],
                      cfg: DepthConfig) -> Tensor:
    """(B*N, D, fh, fw) occupancy of radar returns in (depth bin, image column).

    Radar has no usable elevation, so a return marks its (column, depth) for every image row.
    """
    b, n = intrinsics.shape[:2]
    fh, fw = feat_hw
    _, col, dbin, _, valid = _feature_cells(radar_xyz, radar_mask, intrinsics, cam_to_ego, img_aug,
                                            img_hw, feat_hw, cfg)
    cam = torch.arange(b * n, device=col.device).view(b, n, 1).expand_as(col)
    flat = (cam * cfg.num_bins + dbin.clamp(0, cfg.num_bins - 1)) * fw + col.clamp(0, fw - 1)
    occ = torch.zeros(b * n * cfg.num_bins * fw, device=radar_xyz.device, dtype=radar_xyz.dtype)
    # no boolean indexing (data-dependent shapes): invalid points scatter a 0 with max
    occ = occ.scatter_reduce(0, flat.reshape(-1), valid.reshape(-1).to(occ.dtype), "amax")
    occ = occ.view(b * n, cfg.num_bins, 1, fw)
    return occ.expand(b * n, cfg.num_bins, fh, fw)


def lidar_depth_target(lidar_xyz: Tensor, lidar_mask: Tensor, intrinsics: Tensor, cam_to_ego: Tensor,
                       img_aug: Tensor, img_hw: tuple[int, int], feat_hw: tuple[int, int],
                       cfg: DepthConfig) -> Tensor:
    """(B*N, fh, fw) long: depth bin of the nearest LiDAR return per feature cell, -1 if none."""
    b, n = intrinsics.shape[:2]
    fh, fw = feat_hw
    row, col, _, depth, valid = _feature_cells(lidar_xyz, lidar_mask, intrinsics, cam_to_ego,
                                               img_aug, img_hw, feat_hw, cfg)
    cam = torch.arange(b * n, device=col.device).view(b, n, 1).expand_as(col)
    flat = (cam * fh + row.clamp(0, fh - 1)) * fw + col.clamp(0, fw - 1)
    nearest = torch.full((b * n * fh * fw,), float("inf"), device=lidar_xyz.device)
    nearest = nearest.scatter_reduce(0, flat[valid], depth[valid], "amin")
    target = torch.floor((nearest - cfg.d_min) / cfg.d_step)
    target = torch.where(torch.isfinite(nearest), target, torch.full_like(target, -1)).long()
    return target.view(b * n, fh, fw)


class DepthNet(nn.Module):
    """Image features (+ radar prior, + camera intrinsics) -> depth logits and context."""

    def __init__(self, in_channels: int, cfg: DepthConfig):
        super().__init__()
        mid = cfg.mid_channels
        self.reduce = nn.Sequential(conv3x3(in_channels, mid), nn.BatchNorm2d(mid), nn.ReLU(inplace=True))
        self.cam_gate = nn.Sequential(nn.Linear(4, mid), nn.ReLU(inplace=True), nn.Linear(mid, mid))
        self.radar = nn.Conv2d(cfg.num_bins, mid, 1) if cfg.radar_prior else None
        self.blocks = nn.Sequential(*[BasicBlock(mid, mid) for _ in range(cfg.num_blocks)])
        self.depth_head = nn.Conv2d(mid, cfg.num_bins, 1)
        self.context_head = nn.Conv2d(mid, cfg.context_channels, 1)
        # the prior also enters the logits directly; learned, starts as a mild nudge
        self.prior_scale = nn.Parameter(torch.tensor(1.0)) if cfg.radar_prior else None

    def forward(self, x: Tensor, cam_params: Tensor, prior: Tensor | None) -> tuple[Tensor, Tensor]:
        x = self.reduce(x)
        x = x * torch.sigmoid(self.cam_gate(cam_params))[:, :, None, None]  # BEVDepth camera-aware
        if self.radar is not None and prior is not None:
            x = x + self.radar(prior)
        x = self.blocks(x)
        logits = self.depth_head(x)
        if self.prior_scale is not None and prior is not None:
            logits = logits + self.prior_scale * prior
        return logits, self.context_head(x)


def camera_params(intrinsics: Tensor, img_aug: Tensor) -> Tensor:
    """(BN, 4) fx, fy, cx, cy of the augmented camera, in units of 1000 px."""
    k = img_aug @ intrinsics
    return torch.stack([k[:, 0, 0], k[:, 1, 1], k[:, 0, 2], k[:, 1, 2]], -1) / 1000.0


class LSSViewTransform(nn.Module):
    """Depth distribution x context, splatted to BEV by ``imkd::bev_pool``."""

    bins: Tensor

    def __init__(self, cfg: IMKDConfig, in_channels: int):
        super().__init__()
        self.cfg = cfg.depth
        self.grid: BevGrid = cfg.grid.bev_grid()
        self.register_buffer("bins", depth_bin_centers(cfg.depth), persistent=False)
        self.depth_net = DepthNet(in_channels, cfg.depth)
        self.cache = GeometryCache()

    def geometry(self, intrinsics: Tensor, cam_to_ego: Tensor, img_aug: Tensor,
                 img_hw: tuple[int, int], feat_hw: tuple[int, int]) -> BevPoolGeometry:
        """BevPoolGeometry for (B, N, ...) calibration, cached on its hash."""
        b, n = intrinsics.shape[:2]
        key = calibration_key(intrinsics, cam_to_ego, img_aug,
                              extra=(img_hw, feat_hw, self.grid, self.cfg.d_min, self.cfg.d_step,
                                     self.cfg.num_bins, str(intrinsics.device)))

        def compute() -> BevPoolGeometry:
            frustum = make_frustum(img_hw, feat_hw, self.bins.cpu())
            pts = frustum_to_ego(frustum.double(), intrinsics.reshape(b * n, 3, 3).double().cpu(),
                                 cam_to_ego.reshape(b * n, 4, 4).double().cpu(),
                                 img_aug.reshape(b * n, 3, 3).double().cpu())
            return compute_bev_pool_geometry(pts, self.grid, b).to(intrinsics.device)

        return self.cache.get_or_compute(key, compute)

    def predict_depth(self, feats: Tensor, intrinsics: Tensor, img_aug: Tensor, prior: Tensor | None,
                      camera_valid: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """(depth probabilities (BN, D, fh, fw), logits, context (BN, C, fh, fw))."""
        bn = feats.shape[0]
        logits, context = self.depth_net(feats, camera_params(intrinsics.reshape(bn, 3, 3),
                                                              img_aug.reshape(bn, 3, 3)), prior)
        depth = logits.softmax(1)
        if camera_valid is not None:  # a missing view contributes nothing
            depth = depth * camera_valid.reshape(bn, 1, 1, 1).to(depth.dtype)
        return depth, logits, context

    @staticmethod
    def pool(depth: Tensor, context: Tensor, geometry: BevPoolGeometry) -> tuple[Tensor, Tensor]:
        """Lift + splat: (cam_bev (B, C, H, W), depth mass (B, 1, H, W))."""
        # one extra all-ones channel pools the depth mass per cell (camera confidence in BEV)
        feat = torch.cat([context, torch.ones_like(context[:, :1])], 1).permute(0, 2, 3, 1).contiguous()
        bev = bev_pool(depth.contiguous(), feat, *geometry.tensors(), geometry.batch,
                       geometry.bev_h, geometry.bev_w)
        bev = bev.permute(0, 3, 1, 2)
        return bev[:, :-1].contiguous(), bev[:, -1:].contiguous()

    def forward(self, feats: Tensor, intrinsics: Tensor, img_aug: Tensor, prior: Tensor | None,
                camera_valid: Tensor | None, geometry: BevPoolGeometry) -> dict[str, Tensor]:
        depth, logits, context = self.predict_depth(feats, intrinsics, img_aug, prior, camera_valid)
        cam_bev, cam_mass = self.pool(depth, context, geometry)
        return {"cam_bev": cam_bev, "cam_mass": cam_mass, "depth_logits": logits, "depth": depth}


def depth_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Cross entropy of the depth distribution on feature cells with a LiDAR return."""
    valid = target >= 0
    if not bool(valid.any()):
        return logits.sum() * 0.0
    logp = F.log_softmax(logits, 1).permute(0, 2, 3, 1)[valid]
    return F.nll_loss(logp, target[valid])
