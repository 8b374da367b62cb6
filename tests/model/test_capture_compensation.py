"""Per-camera capture-time compensation: per-camera BEVs warped by each camera's ego motion."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from imkd_ros.model import Preprocessor, Student
from imkd_ros.model.imkd import warp_to_keyframe
from imkd_ros.model.synthetic import random_frame, tiny_config
from imkd_ros.ops.bev_pool_geometry import BevGrid
from imkd_ros.train.augment import augment_frame

torch.set_num_threads(1)


def _motion(yaw: float, tx: float, ty: float) -> torch.Tensor:
    m = torch.eye(4)
    c, s = math.cos(yaw), math.sin(yaw)
    m[:2, :2] = torch.tensor([[c, -s], [s, c]])
    m[0, 3], m[1, 3] = tx, ty
    return m


def _peak_xy(bev: torch.Tensor, grid: BevGrid) -> tuple[float, float]:
    iy, ix = np.unravel_index(int(bev.argmax()), bev.shape[-2:])
    return grid.x_min + (ix + 0.5) * grid.resolution, grid.y_min + (iy + 0.5) * grid.resolution


def test_warp_moves_a_cell_by_the_ego_motion():
    grid = BevGrid(-16, 16, -16, 16, -5, 3, 1.0)
    bev = torch.zeros(1, 1, 32, 32)
    bev[0, 0, 16, 26] = 1.0  # x = 10.5, y = 0.5 in the capture-time ego frame
    mass = bev.clone()
    for (yaw, tx, ty), (ex, ey) in (((0.0, 2.0, 0.0), (12.5, 0.5)), ((0.0, 0.0, -3.0), (10.5, -2.5)),
                                    ((math.pi / 2, 0.0, 0.0), (-0.5, 10.5))):
        out, m = warp_to_keyframe(bev, mass, _motion(yaw, tx, ty).view(1, 1, 4, 4), grid)
        assert _peak_xy(out[0, 0], grid) == (ex, ey), (yaw, tx, ty)
        torch.testing.assert_close(out, m)


def test_identity_motion_equals_joint_pooling():
    cfg = tiny_config()
    comp = dataclasses.replace(cfg, depth=dataclasses.replace(cfg.depth, capture_compensation=True))
    frames = [random_frame(20, raw_hw=(64, 176))]
    torch.manual_seed(0)
    plain = Student(cfg).eval()
    per_cam = Student(comp).eval()
    per_cam.load_state_dict(plain.state_dict())
    batch = Preprocessor(comp)(frames, targets=False)
    assert batch["cam_motion"].shape == (1, 6, 4, 4)  # no meta: identity
    with torch.no_grad():
        a, b = plain(batch), per_cam(batch)
    torch.testing.assert_close(a["cam_bev"], b["cam_bev"], atol=1e-4, rtol=1e-4)
    geo = per_cam.geometry(batch["intrinsics"], batch["cam_to_ego"], batch["img_aug"])
    assert geo.batch == 6


def test_motion_shifts_the_camera_bev():
    cfg = tiny_config()
    comp = dataclasses.replace(cfg, depth=dataclasses.replace(cfg.depth, capture_compensation=True))
    frame = random_frame(21, raw_hw=(64, 176))
    torch.manual_seed(0)
    model = Student(comp).eval()
    still = Preprocessor(comp)([frame], targets=False)
    moved = dict(still)
    moved["cam_motion"] = _motion(0.0, 4.0, 0.0).expand(1, 6, 4, 4).clone()  # 4 m = 2 cells forward
    with torch.no_grad():
        a, b = model(still)["cam_mass"], model(moved)["cam_mass"]
    torch.testing.assert_close(b[..., :, 2:], a[..., :, :-2], atol=1e-4, rtol=1e-4)


def test_augmentation_conjugates_the_camera_motion():
    frame = random_frame(22, raw_hw=(64, 176))
    mot = np.tile(np.eye(4), (6, 1, 1))
    mot[:, 0, 3] = 1.0  # capture ego is 1 m behind the keyframe ego along +x
    frame.meta["camera_ego_motion"] = mot
    out = augment_frame(frame, math.pi / 2, 1.0)
    np.testing.assert_allclose(out.meta["camera_ego_motion"][0, :3, 3], [0.0, 1.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(out.meta["camera_ego_motion"][0, :3, :3], np.eye(3), atol=1e-9)
