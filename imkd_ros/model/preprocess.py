"""Frames -> batched model tensors: image resize/crop (+ img_aug matrices), padded radar/LiDAR
points, and the training targets (head targets from GT boxes, LiDAR depth per feature cell).

img_aug maps raw pixel coordinates (pixel centres at integers) to network-input pixels:
resize by s, then crop (x: centred, y: keep the bottom, where the road is), then optional flip.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from imkd_ros.model.config import IMKDConfig
from imkd_ros.model.head import BoxCoder
from imkd_ros.model.view_transform import lidar_depth_target
from imkd_ros.types import LIDAR_FEATURES, RADAR_FEATURES, Frame


def image_aug_matrix(raw_hw: tuple[int, int], out_hw: tuple[int, int], scale: float,
                     flip: bool = False) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
    """(3x3 img_aug, resized (h, w), crop offset (y0, x0)) for one image."""
    rh, rw = raw_hw
    oh, ow = out_hw
    nh, nw = int(round(rh * scale)), int(round(rw * scale))
    x0 = (nw - ow) // 2
    y0 = nh - oh
    sx, sy = nw / rw, nh / rh
    # resize with half-pixel centres: u' = (u + 0.5) * s - 0.5, then shift by the crop
    mat = np.array([[sx, 0.0, 0.5 * sx - 0.5 - x0],
                    [0.0, sy, 0.5 * sy - 0.5 - y0],
                    [0.0, 0.0, 1.0]], np.float64)
    if flip:
        mat = np.array([[-1.0, 0.0, ow - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ mat
    return mat.astype(np.float32), (nh, nw), (y0, x0)


def _crop_pad(img: Tensor, y0: int, x0: int, oh: int, ow: int) -> Tensor:
    """img (C, h, w) -> (C, oh, ow) window at (y0, x0), zero outside."""
    c, h, w = img.shape
    out = img.new_zeros(c, oh, ow)
    sy0, sx0 = max(y0, 0), max(x0, 0)
    sy1, sx1 = min(y0 + oh, h), min(x0 + ow, w)
    if sy1 > sy0 and sx1 > sx0:
        out[:, sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = img[:, sy0:sy1, sx0:sx1]
    return out


def pad_points(points: list[np.ndarray | None], columns: int, max_points: int,
               rng: np.random.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Pad / subsample point arrays to (B, P, columns) + mask (B, P)."""
    sizes = [0 if p is None else min(len(p), max_points) for p in points]
    p_max = max(max(sizes), 1)
    out = np.zeros((len(points), p_max, columns), np.float32)
    mask = np.zeros((len(points), p_max), bool)
    for i, p in enumerate(points):
        if p is None or len(p) == 0:
            continue
        p = np.asarray(p, np.float32)[:, :columns]
        if len(p) > max_points:
            idx = (rng or np.random.default_rng(0)).choice(len(p), max_points, replace=False)
            p = p[np.sort(idx)]
        out[i, : len(p)] = p
        mask[i, : len(p)] = True
    return torch.from_numpy(out), torch.from_numpy(mask)


class Preprocessor:
    """Turns Frames into the batch dict Student/IMKD consume. ``train`` enables augmentation;
    head targets are built whenever every frame has ``gt`` (unless targets=False)."""

    def __init__(self, cfg: IMKDConfig, train: bool = False, seed: int = 0):
        self.cfg = cfg
        self.train = train
        self.rng = np.random.default_rng(seed)
        self.coder = BoxCoder(cfg.head, cfg.grid.bev_grid())
        # a teacher on its own (finer) grid is trained on targets encoded there
        tg = cfg.teacher.bev_grid(cfg.grid)
        self.teacher_coder = BoxCoder(cfg.head, tg) if tg != self.coder.grid else None
        self.mean = torch.tensor(cfg.image.mean).view(3, 1, 1) * 255.0
        self.std = torch.tensor(cfg.image.std).view(3, 1, 1) * 255.0

    @property
    def feat_hw(self) -> tuple[int, int]:
        s = self.cfg.backbone.out_stride
        return self.cfg.image.height // s, self.cfg.image.width // s

    def images(self, frame: Frame) -> tuple[Tensor, Tensor]:
        """(N, 3, H, W) normalised images and (N, 3, 3) img_aug of one frame."""
        ic = self.cfg.image
        out_hw = (ic.height, ic.width)
        scale_jitter = 1.0
        flip = False
        if self.train:
            scale_jitter = float(self.rng.uniform(ic.aug_resize[0], ic.aug_resize[1]))
            if ic.flip_with_bev:  # mirror the images with the scene (see ImageConfig.flip_with_bev)
                bev = frame.meta.get("bev_aug")  # (rot, scale, flip_x, flip_y) from train.augment
                flip = bool(bev is not None and bev[2] != bev[3])
            else:
                flip = bool(ic.aug_flip and self.rng.random() < 0.5)
        imgs, augs = [], []
        for n in range(self.cfg.num_cameras):
            img = frame.images[n] if n < len(frame.images) else None
            valid = bool(frame.camera_valid[n]) and img is not None and np.asarray(img).size > 0
            shape = np.asarray(img).shape
            raw_hw = (int(shape[0]), int(shape[1])) if valid else out_hw
            base = ic.resize if ic.resize is not None else ic.width / raw_hw[1]
            mat, new_hw, (y0, x0) = image_aug_matrix(raw_hw, out_hw, base * scale_jitter, flip)
            if valid:
                # resize in uint8 (HWC memory = channels-last: the fast antialiased kernel),
                # crop (padding is black, as BEVDet), then normalise the small image
                a = np.ascontiguousarray(img, dtype=np.uint8)
                if not a.flags.writeable:  # a read-only buffer (a decoded or cached frame): torch
                    a = a.copy()           # may not share it; one small copy, never a warning
                t = torch.from_numpy(a).permute(2, 0, 1)[None]
                t = F.interpolate(t, size=new_hw, mode="bilinear", align_corners=False,
                                  antialias=new_hw[0] < raw_hw[0])[0]
                t = (_crop_pad(t, y0, x0, *out_hw).float() - self.mean) / self.std
                if flip:
                    t = t.flip(-1)
            else:
                t = torch.zeros(3, *out_hw)
            imgs.append(t)
            augs.append(torch.from_numpy(mat))
        return torch.stack(imgs), torch.stack(augs)

    def __call__(self, frames: list[Frame], targets: bool | None = None) -> dict:
        imgs, augs = zip(*(self.images(f) for f in frames))
        batch: dict = {
            "images": torch.stack(imgs),
            "img_aug": torch.stack(augs),
            "intrinsics": torch.from_numpy(np.stack([f.intrinsics for f in frames]).astype(np.float32)),
            "cam_to_ego": torch.from_numpy(np.stack([f.cam_to_ego for f in frames]).astype(np.float32)),
            "camera_valid": torch.from_numpy(np.stack([np.asarray(f.camera_valid, bool) for f in frames])),
        }
        if self.cfg.depth.capture_compensation:
            eye = np.tile(np.eye(4, dtype=np.float32), (self.cfg.num_cameras, 1, 1))
            batch["cam_motion"] = torch.from_numpy(np.stack([
                np.asarray(f.meta.get("camera_ego_motion", eye), np.float32) for f in frames]))
        batch["radar"], batch["radar_mask"] = pad_points([f.radar for f in frames], len(RADAR_FEATURES),
                                                         self.cfg.radar_max_points, self.rng)
        if all(f.lidar is not None for f in frames):
            batch["lidar"], batch["lidar_mask"] = pad_points(
                [f.lidar for f in frames], len(LIDAR_FEATURES), self.cfg.lidar_max_points, self.rng)
            batch["depth_target"] = lidar_depth_target(
                batch["lidar"][..., :3], batch["lidar_mask"], batch["intrinsics"], batch["cam_to_ego"],
                batch["img_aug"], (self.cfg.image.height, self.cfg.image.width), self.feat_hw,
                self.cfg.depth)
            # no depth supervision for missing / masked views (their image is blank)
            valid = batch["camera_valid"].reshape(-1, 1, 1)
            batch["depth_target"] = torch.where(valid, batch["depth_target"], -1)
        if targets is not False and all(f.gt is not None for f in frames):
            batch["gt"] = [f.gt for f in frames]
            batch["targets"] = self.coder.encode_batch(batch["gt"])
            if self.teacher_coder is not None:
                batch["teacher_targets"] = self.teacher_coder.encode_batch(batch["gt"])
        return batch


def batch_to(batch: dict, device: torch.device | str) -> dict:
    """Move every tensor of a batch dict (including the per-task target dicts) to a device."""
    out: dict = {}
    for k, v in batch.items():
        if isinstance(v, Tensor):
            out[k] = v.to(device)
        elif k in ("targets", "teacher_targets"):
            out[k] = [{kk: vv.to(device) for kk, vv in t.items()} for t in v]
        else:
            out[k] = v
    return out
