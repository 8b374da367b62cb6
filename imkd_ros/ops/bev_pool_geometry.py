"""Precomputed BEVPoolv2 geometry: which BEV cell every frustum point falls into.

The frustum (camera, depth bin, feature pixel) -> ego mapping depends only on the calibration
and the image augmentation, so it is computed once and cached; per frame only the weighted sum
in ``imkd::bev_pool`` runs. BEV layout everywhere in imkd_ros: out[b, iy, ix] with
ix = floor((x - x_min) / res) along ego x (forward) and iy = floor((y - y_min) / res) along ego y.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from imkd_ros.ops.precision import fp32_index_math

# the op's geometry inputs, in order (also the ONNX / engine input names)
GEOMETRY_INPUTS = ("ranks_depth", "ranks_feat", "ranks_bev", "interval_starts", "interval_lengths")


@dataclass(frozen=True)
class BevGrid:
    """Square-cell BEV grid in the ego frame (metres); z bounds drop points above/below."""

    x_min: float = -51.2
    x_max: float = 51.2
    y_min: float = -51.2
    y_max: float = 51.2
    z_min: float = -5.0
    z_max: float = 3.0
    resolution: float = 0.8

    @property
    def nx(self) -> int:
        return int(round((self.x_max - self.x_min) / self.resolution))

    @property
    def ny(self) -> int:
        return int(round((self.y_max - self.y_min) / self.resolution))

    @property
    def shape(self) -> tuple[int, int]:
        """(bev_h, bev_w) = (ny, nx)."""
        return self.ny, self.nx

    def cell_index(self, xyz: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(ix, iy, inside) for points (..., 3); computed in fp32 (or fp64) in every precision."""
        return _cell_index(self, xyz)


@fp32_index_math
def _cell_index(self: BevGrid, xyz: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    ix = torch.floor((xyz[..., 0] - self.x_min) / self.resolution).long()
    iy = torch.floor((xyz[..., 1] - self.y_min) / self.resolution).long()
    inside = (ix >= 0) & (ix < self.nx) & (iy >= 0) & (iy < self.ny)
    inside &= (xyz[..., 2] >= self.z_min) & (xyz[..., 2] < self.z_max)
    return ix, iy, inside


class GeometryError(ValueError):
    """A BevPoolGeometry the kernels cannot run safely (out-of-bounds or racing writes)."""


@dataclass
class BevPoolGeometry:
    """The five int32 tensors of the op plus its output shape; plain tensors so export works."""

    ranks_depth: Tensor
    ranks_feat: Tensor
    ranks_bev: Tensor
    interval_starts: Tensor
    interval_lengths: Tensor
    batch: int
    bev_h: int
    bev_w: int
    # bounds of the tensors the ranks index (0 = unknown): depth.numel() and feat rows (B*N*H*W)
    depth_numel: int = 0
    feat_rows: int = 0
    # what this geometry was computed from (GeometryCache sets the calibration key); backends key
    # their device copies and CUDA graphs on it, never on id()
    key: str = ""

    def to(self, device: torch.device | str) -> BevPoolGeometry:
        return BevPoolGeometry(
            self.ranks_depth.to(device), self.ranks_feat.to(device), self.ranks_bev.to(device),
            self.interval_starts.to(device), self.interval_lengths.to(device),
            self.batch, self.bev_h, self.bev_w, self.depth_numel, self.feat_rows, self.key,
        )

    def validate(self) -> BevPoolGeometry:
        """Raise GeometryError unless the kernels can run this geometry safely; returns self.

        Checked once per calibration (GeometryCache), not per frame: int32 1-D tensors of equal
        length P, every interval non-empty and inside 0..P-1, intervals tiling the points in
        order, one cell per interval (all its points share ranks_bev), cells strictly increasing
        (sorted and unique: the no-atomics kernels write each cell once), every cell inside
        batch*bev_h*bev_w and, when known, every rank inside depth / feat.
        """
        names = ("ranks_depth", "ranks_feat", "ranks_bev", "interval_starts", "interval_lengths")
        for name, t in zip(names, self.tensors()):
            if t.dtype != torch.int32 or t.dim() != 1:
                raise GeometryError(f"{name} must be a 1-D int32 tensor, got {t.dtype} {tuple(t.shape)}")
        p = self.ranks_bev.numel()
        if self.ranks_depth.numel() != p or self.ranks_feat.numel() != p:
            raise GeometryError(f"ranks differ in length: depth {self.ranks_depth.numel()}, feat "
                                f"{self.ranks_feat.numel()}, bev {p}")
        k = self.interval_starts.numel()
        if self.interval_lengths.numel() != k:
            raise GeometryError(f"{k} interval starts but {self.interval_lengths.numel()} lengths")
        cells = self.batch * self.bev_h * self.bev_w
        if cells <= 0:
            raise GeometryError(f"empty output grid {self.batch}x{self.bev_h}x{self.bev_w}")
        if p >= 2**31 or cells >= 2**31:
            raise GeometryError("geometry too large for int32 indexing")
        if k == 0:
            if p:
                raise GeometryError(f"{p} points but no intervals")
            return self
        starts = self.interval_starts.long().cpu()
        lengths = self.interval_lengths.long().cpu()
        rb = self.ranks_bev.long().cpu()
        if int(lengths.min()) <= 0:
            raise GeometryError(f"interval_lengths must be > 0 (min {int(lengths.min())})")
        if int(starts[0]) != 0 or bool((starts[1:] != starts[:-1] + lengths[:-1]).any()) \
                or int(starts[-1] + lengths[-1]) != p:
            raise GeometryError("intervals must tile the points 0..P-1 in order")
        if int(rb.min()) < 0 or int(rb.max()) >= cells:
            raise GeometryError(f"ranks_bev outside 0..{cells - 1} (min {int(rb.min())}, max {int(rb.max())})")
        cell_of = rb[starts]
        if bool((cell_of[1:] <= cell_of[:-1]).any()):
            raise GeometryError("interval cells must be sorted and unique (strictly increasing)")
        if not bool((torch.repeat_interleave(cell_of, lengths) == rb).all()):
            raise GeometryError("an interval holds points of more than one BEV cell")
        for name, t, bound in (("ranks_depth", self.ranks_depth, self.depth_numel),
                               ("ranks_feat", self.ranks_feat, self.feat_rows)):
            lo, hi = int(t.min()), int(t.max())
            if lo < 0 or (bound and hi >= bound):
                raise GeometryError(f"{name} outside 0..{(bound or 2**31) - 1} (min {lo}, max {hi})")
        return self

    def tensors(self) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        return (self.ranks_depth, self.ranks_feat, self.ranks_bev, self.interval_starts,
                self.interval_lengths)

    @property
    def num_points(self) -> int:
        return int(self.ranks_bev.numel())


def compute_bev_pool_geometry(points_ego: Tensor, grid: BevGrid, batch: int) -> BevPoolGeometry:
    """Ranks and intervals for frustum points (B*N, D, H, W, 3) in ego metres.

    Camera n of sample b is row b*N + n. Points outside the grid (x, y or z) are dropped.
    Points are sorted by (cell, feature pixel) so each cell is one contiguous interval.
    """
    bn, d, h, w, _ = points_ego.shape
    if bn % batch:
        raise ValueError(f"{bn} camera rows do not split into batch {batch}")
    n_cam = bn // batch
    pts = points_ego.detach().to(torch.float64)
    ix, iy, inside = grid.cell_index(pts)
    dev = pts.device
    cam = torch.arange(bn, device=dev).view(bn, 1, 1, 1).expand(bn, d, h, w)
    pix = torch.arange(h * w, device=dev).view(1, 1, h, w).expand(bn, d, h, w)
    ranks_depth = torch.arange(bn * d * h * w, device=dev).view(bn, d, h, w)
    ranks_feat = cam * (h * w) + pix
    sample = cam // n_cam
    ranks_bev = (sample * grid.ny + iy) * grid.nx + ix
    ranks_depth, ranks_feat, ranks_bev = ranks_depth[inside], ranks_feat[inside], ranks_bev[inside]
    # sort by cell, then by feature pixel (memory locality of the feature gather)
    key = ranks_bev * (bn * h * w) + ranks_feat
    order = torch.argsort(key, stable=True)
    ranks_depth, ranks_feat, ranks_bev = ranks_depth[order], ranks_feat[order], ranks_bev[order]
    if ranks_bev.numel():
        _, lengths = torch.unique_consecutive(ranks_bev, return_counts=True)
        starts = torch.cumsum(lengths, 0) - lengths
    else:
        lengths = starts = ranks_bev.new_zeros(0)
    i32 = torch.int32
    return BevPoolGeometry(
        ranks_depth.to(i32).contiguous(), ranks_feat.to(i32).contiguous(),
        ranks_bev.to(i32).contiguous(), starts.to(i32).contiguous(),
        lengths.to(i32).contiguous(), batch, grid.ny, grid.nx,
        depth_numel=bn * d * h * w, feat_rows=bn * h * w,
    )


def calibration_key(*arrays: np.ndarray | Tensor, extra: object = None) -> str:
    """Hash of calibration arrays (intrinsics, cam_to_ego, img_aug, ...) plus any config."""
    h = hashlib.sha1()
    for a in arrays:
        arr = a.detach().cpu().numpy() if isinstance(a, Tensor) else np.asarray(a)
        arr = np.ascontiguousarray(arr.astype(np.float32))
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    h.update(repr(extra).encode())
    return h.hexdigest()


class GeometryCache:
    """Small LRU of BevPoolGeometry keyed by calibration_key; the ROS node keeps one."""

    def __init__(self, max_entries: int = 8) -> None:
        self.max_entries = max_entries
        self._store: OrderedDict[str, BevPoolGeometry] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get_or_compute(self, key: str, compute) -> BevPoolGeometry:
        """The cached geometry for ``key``; a new one is validated (GeometryError) and tagged
        with ``key`` before it is stored, so every cached geometry is safe for the kernels."""
        if key in self._store:
            self._store.move_to_end(key)
            self.hits += 1
            return self._store[key]
        self.misses += 1
        geom = compute()
        geom.validate()
        geom.key = key
        self._store[key] = geom
        while len(self._store) > self.max_entries:
            self._store.popitem(last=False)
        return geom

    def __len__(self) -> int:
        return len(self._store)

    def clear(self) -> None:
        self._store.clear()
