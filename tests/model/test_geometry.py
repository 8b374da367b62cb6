"""Frustum geometry, projection, image augmentation and the radar / LiDAR image priors."""

from __future__ import annotations

import numpy as np
import torch

from imkd_ros.model.config import DepthConfig, IMKDConfig
from imkd_ros.model.preprocess import Preprocessor, image_aug_matrix
from imkd_ros.model.synthetic import camera_rig, random_frame
from imkd_ros.model.view_transform import (
    depth_bin_centers,
    frustum_to_ego,
    lidar_depth_target,
    make_frustum,
    project_points,
    radar_depth_prior,
)
from imkd_ros.ops.bev_pool_geometry import BevGrid, compute_bev_pool_geometry

torch.set_num_threads(1)

RAW_HW = (200, 400)
IMG_HW = (96, 224)


def _calib(flip=False):
    intr, c2e = camera_rig(RAW_HW)
    aug, _, _ = image_aug_matrix(RAW_HW, IMG_HW, 0.6, flip=flip)
    return (torch.from_numpy(intr).double(), torch.from_numpy(c2e).double(),
            torch.from_numpy(np.repeat(aug[None], 6, 0)).double())


def _numpy_project(p_ego, k, c2e, aug):
    cam = np.linalg.inv(c2e) @ np.append(p_ego, 1.0)
    pix = k @ cam[:3]
    uv = aug @ np.array([pix[0] / pix[2], pix[1] / pix[2], 1.0])
    return uv[:2], cam[2]


def test_frustum_points_project_back():
    for flip in (False, True):
        intr, c2e, aug = _calib(flip)
        bins = torch.tensor([3.0, 10.0, 41.5])
        fr = make_frustum(IMG_HW, (6, 14), bins).double()
        pts = frustum_to_ego(fr, intr, c2e, aug)  # (6, 3, 6, 14, 3)
        for n in range(6):
            for idx in [(0, 0, 0), (1, 3, 7), (2, 5, 13)]:
                uv, depth = _numpy_project(pts[n][idx].numpy(), intr[n].numpy(), c2e[n].numpy(), aug[n].numpy())
                np.testing.assert_allclose(uv, fr[idx][:2].numpy(), atol=1e-6)
                np.testing.assert_allclose(depth, fr[idx][2].item(), atol=1e-6)


def test_known_points_land_in_frustum_cells():
    """A known ego point seen by camera n: project_points agrees with numpy and inverts."""
    intr, c2e, aug = _calib()
    known = torch.tensor([[[12.0, 0.5, 0.3], [-20.0, 1.0, 1.0], [5.0, -9.0, 0.0], [6.0, 8.0, 2.0]]]).double()
    uv, depth = project_points(known, intr[None], c2e[None], aug[None])
    for n in range(6):
        for p in range(known.shape[1]):
            ref_uv, ref_d = _numpy_project(known[0, p].numpy(), intr[n].numpy(), c2e[n].numpy(), aug[n].numpy())
            assert abs(depth[0, n, p].item() - ref_d) < 1e-5
            if ref_d > 0.1:
                np.testing.assert_allclose(uv[0, n, p].numpy(), ref_uv, atol=1e-4)
                frustum = torch.tensor([[[[*ref_uv, ref_d]]]]).double()
                back = frustum_to_ego(frustum, intr[n:n + 1], c2e[n:n + 1], aug[n:n + 1])
                np.testing.assert_allclose(back[0, 0, 0, 0].numpy(), known[0, p].numpy(), atol=1e-5)
    # the front camera (n = 0) sees (12, 0.5, 0.3) near the image centre, in front
    assert depth[0, 0, 0] > 10 and 0 < uv[0, 0, 0, 0] < IMG_HW[1] and 0 < uv[0, 0, 0, 1] < IMG_HW[0]


def test_geometry_puts_frustum_point_in_its_cell():
    intr, c2e, aug = _calib()
    cfg = DepthConfig(d_min=2.0, d_max=42.0, d_step=4.0)
    fr = make_frustum(IMG_HW, (6, 14), depth_bin_centers(cfg)).double()
    pts = frustum_to_ego(fr, intr, c2e, aug)
    grid = BevGrid(-20, 20, -20, 20, -3, 3, 1.0)
    geo = compute_bev_pool_geometry(pts, grid, 1)
    flat = pts.reshape(-1, 3)
    rd = geo.ranks_depth.long()
    ix = torch.floor((flat[rd, 0] + 20) / 1.0).long()
    iy = torch.floor((flat[rd, 1] + 20) / 1.0).long()
    assert (geo.ranks_bev.long() == iy * grid.nx + ix).all()
    # every point that is inside the grid is kept
    inside = (flat[:, :2].abs() < 20).all(1) & (flat[:, 2] >= -3) & (flat[:, 2] < 3)
    assert geo.num_points == int(inside.sum())


def test_radar_prior_and_lidar_target_cells():
    intr, c2e, aug = _calib()
    cfg = DepthConfig(d_min=2.0, d_max=42.0, d_step=4.0)
    feat_hw = (6, 14)
    pt = torch.tensor([[[15.0, 1.0, 0.5]]])
    mask = torch.ones(1, 1, dtype=torch.bool)
    args = (intr[None].float(), c2e[None].float(), aug[None].float(), IMG_HW, feat_hw, cfg)
    prior = radar_depth_prior(pt, mask, *args)
    target = lidar_depth_target(pt, mask, *args)
    uv, depth = project_points(pt, *[a for a in args[:3]])
    col = int((uv[0, 0, 0, 0] + 0.5) * feat_hw[1] / IMG_HW[1])
    row = int((uv[0, 0, 0, 1] + 0.5) * feat_hw[0] / IMG_HW[0])
    dbin = int((depth[0, 0, 0] - 2.0) / 4.0)
    assert prior.shape == (6, cfg.num_bins, *feat_hw)
    assert prior[0, dbin, :, col].eq(1).all() and prior.sum() == feat_hw[0]  # one column, camera 0
    assert target[0, row, col] == dbin and (target >= 0).sum() == 1


def test_preprocessed_image_matches_img_aug():
    """A bright block in the raw image appears where img_aug maps its centre."""
    frame = random_frame(0, raw_hw=(256, 704), num_boxes=1)
    frame.images = [np.zeros((256, 704, 3), np.uint8) for _ in range(6)]
    frame.images[2][100:116, 300:316] = 255
    cfg = IMKDConfig()
    cfg.image.height, cfg.image.width = 96, 352  # scale 0.5, bottom crop of 32 rows
    batch = Preprocessor(cfg)([frame])
    img = batch["images"][0, 2].sum(0).numpy()
    w = img - img.min()
    vs, us = np.mgrid[: img.shape[0], : img.shape[1]]
    u, v = (w * us).sum() / w.sum(), (w * vs).sum() / w.sum()  # centroid, integer pixel centres
    expect = batch["img_aug"][0, 2].numpy() @ np.array([307.5, 107.5, 1.0])
    assert abs(u - expect[0]) < 0.1 and abs(v - expect[1]) < 0.1
