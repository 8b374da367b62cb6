"""imkd::bev_pool CPU kernel vs the naive index_add scatter, at the paper size.

6 cameras, D = 70 (2-58 m, 0.8 m), 16 x 44 features, C = 80, 128 x 128 BEV at 0.8 m, with
the real frustum geometry of a nuScenes-like rig. Prints figures; not a test.

    .venv/bin/python benchmarks/bench_bev_pool.py [--threads 2] [--iters 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from imkd_ros.model.config import load_config
from imkd_ros.model.preprocess import image_aug_matrix
from imkd_ros.model.synthetic import camera_rig
from imkd_ros.model.view_transform import depth_bin_centers, frustum_to_ego, make_frustum
from imkd_ros.ops import bev_pool, bev_pool_naive, compute_bev_pool_geometry


def timeit(fn, iters: int) -> float:
    fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--config", default="paper")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    img_hw = (cfg.image.height, cfg.image.width)
    feat_hw = (img_hw[0] // cfg.backbone.out_stride, img_hw[1] // cfg.backbone.out_stride)
    raw_hw = (900, 1600)
    intr, c2e = camera_rig(raw_hw)
    aug, _, _ = image_aug_matrix(raw_hw, img_hw, img_hw[1] / raw_hw[1])
    n = intr.shape[0]
    t0 = time.perf_counter()
    pts = frustum_to_ego(make_frustum(img_hw, feat_hw, depth_bin_centers(cfg.depth)).double(),
                         torch.from_numpy(intr).double(), torch.from_numpy(c2e).double(),
                         torch.from_numpy(aug).double()[None].expand(n, 3, 3))
    geo = compute_bev_pool_geometry(pts, cfg.grid.bev_grid(), 1)
    t_geo = time.perf_counter() - t0
    d, c = cfg.depth.num_bins, cfg.depth.context_channels
    depth = torch.rand(n, d, *feat_hw).softmax(1)
    feat = torch.randn(n, *feat_hw, c)
    print(f"config {cfg.name}: {n} cams, D={d}, feature {feat_hw[0]}x{feat_hw[1]}, C={c}, "
          f"BEV {geo.bev_h}x{geo.bev_w}; {geo.num_points} of {n * d * feat_hw[0] * feat_hw[1]} frustum "
          f"points in grid, {geo.interval_starts.numel()} occupied cells; threads={args.threads}")
    print(f"geometry precompute (once per calibration): {t_geo * 1e3:.1f} ms")
    fast = bev_pool(depth, feat, *geo.tensors(), 1, geo.bev_h, geo.bev_w)
    ref = bev_pool_naive(depth, feat, geo.ranks_depth, geo.ranks_feat, geo.ranks_bev, 1, geo.bev_h, geo.bev_w)
    print(f"max |fast - naive| = {(fast - ref).abs().max().item():.2e}")
    t_fast = timeit(lambda: bev_pool(depth, feat, *geo.tensors(), 1, geo.bev_h, geo.bev_w), args.iters)
    t_naive = timeit(lambda: bev_pool_naive(depth, feat, geo.ranks_depth, geo.ranks_feat, geo.ranks_bev,
                                            1, geo.bev_h, geo.bev_w), args.iters)
    print(f"forward  fast {t_fast * 1e3:8.2f} ms   naive {t_naive * 1e3:8.2f} ms   speed-up {t_naive / t_fast:5.1f}x")

    dq, fq = depth.clone().requires_grad_(), feat.clone().requires_grad_()
    grad = torch.randn_like(fast)

    def fwd_bwd(fn):
        dq.grad = fq.grad = None
        fn().backward(grad)

    t_fast_b = timeit(lambda: fwd_bwd(lambda: bev_pool(dq, fq, *geo.tensors(), 1, geo.bev_h, geo.bev_w)),
                      args.iters)
    t_naive_b = timeit(lambda: fwd_bwd(lambda: bev_pool_naive(dq, fq, geo.ranks_depth, geo.ranks_feat,
                                                              geo.ranks_bev, 1, geo.bev_h, geo.bev_w)),
                       args.iters)
    print(f"fwd+bwd  fast {t_fast_b * 1e3:8.2f} ms   naive {t_naive_b * 1e3:8.2f} ms   "
          f"speed-up {t_naive_b / t_fast_b:5.1f}x")


if __name__ == "__main__":
    main()
