"""Benchmarks for deployment: bev_pool implementations and model latency per backend.

Always: ``imkd::bev_pool`` CPU op (CSR sparse matmul) vs the naive lift + index_add scatter, on a
BEVDepth-sized problem (6 cameras x D bins x 16x44 features, 128x128 BEV, C channels).
With CUDA: the CUDA kernel (sparse and dense launch, fp32/fp16) vs torch index_add on the GPU,
and the student's network latency per available backend.

    .venv/bin/python benchmarks/bench_backends.py [--depth-bins 59] [--channels 80] [--threads 2]
    .venv/bin/python benchmarks/bench_backends.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imkd_ros.ops import bev_pool_cuda as cuda_kernels
from imkd_ros.ops.bev_pool import bev_pool, bev_pool_naive
from imkd_ros.runtime.doctor import check_backends, random_case, time_it


def bench_cpu(depth_bins: int, channels: int, iters: int) -> dict[str, float]:
    depth, feat, g = random_case(d=depth_bins, c=channels)
    args = (g.batch, g.bev_h, g.bev_w)
    res = {
        "points": g.num_points,
        "intervals": len(g.interval_starts),
        "cpu_op_ms": time_it(lambda: bev_pool(depth, feat, *g.tensors(), *args), iters=iters),
        "cpu_naive_ms": time_it(lambda: bev_pool_naive(depth, feat, g.ranks_depth, g.ranks_feat, g.ranks_bev,
                                                       *args), iters=iters),
    }
    ref = bev_pool(depth, feat, *g.tensors(), *args)
    naive = bev_pool_naive(depth, feat, g.ranks_depth, g.ranks_feat, g.ranks_bev, *args)
    res["cpu_op_vs_naive_max_abs_diff"] = float((ref - naive).abs().max())
    return res


def bench_cuda(depth_bins: int, channels: int, iters: int) -> dict[str, float | str]:

    depth, feat, g = random_case(d=depth_bins, c=channels, device="cuda")
    args = (g.batch, g.bev_h, g.bev_w)
    res: dict[str, float | str] = {}
    for dtype, tag in ((torch.float32, "fp32"), (torch.float16, "fp16")):
        d, f = depth.to(dtype), feat.to(dtype)
        res[f"cuda_index_add_{tag}_ms"] = time_it(
            lambda d=d, f=f: bev_pool_naive(d, f, g.ranks_depth, g.ranks_feat, g.ranks_bev, *args),
            iters=iters, cuda=True)
        why = cuda_kernels.try_register_cuda_kernels()
        if why:
            res["cuda_kernel"] = f"skipped: {why}"
            continue
        for dense in (False, True):
            cuda_kernels.DENSE_FORWARD = dense
            res[f"cuda_kernel_{'dense' if dense else 'sparse'}_{tag}_ms"] = time_it(
                lambda d=d, f=f: torch.ops.imkd.bev_pool(d, f, *g.tensors(), *args), iters=iters, cuda=True)
        cuda_kernels.DENSE_FORWARD = False
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depth-bins", type=int, default=59, help="BEVDepth: 2-58 m at 0.95 m ~ 59 bins")
    p.add_argument("--channels", type=int, default=80)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--config", default="cpu", help="model config for the backend latency")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--no-model", action="store_true", help="skip the model latency part")
    p.add_argument("--json", default=None, help="write the results here too")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    results: dict[str, object] = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    results["cpu"] = bench_cpu(a.depth_bins, a.channels, a.iters)
    print(f"bev_pool CPU ({results['cpu']['points']} points, {results['cpu']['intervals']} cells, "
          f"C={a.channels}, {torch.get_num_threads()} threads):")
    for k, v in results["cpu"].items():
        print(f"  {k}: {v:.4g}" if isinstance(v, float) else f"  {k}: {v}")
    if torch.cuda.is_available():
        results["gpu"] = torch.cuda.get_device_name(0)
        results["cuda"] = bench_cuda(a.depth_bins, a.channels, a.iters)
        print(f"bev_pool CUDA ({results['gpu']}):")
        for k, v in results["cuda"].items():
            print(f"  {k}: {v:.4g}" if isinstance(v, float) else f"  {k}: {v}")
    else:
        print("bev_pool CUDA: skipped (no CUDA GPU visible to torch)")
    if not a.no_model:
        checks = check_backends(a.checkpoint, a.config, iters=a.iters)
        results["backends"] = [c.line() for c in checks]
        print("model latency per backend (network only, batch 1):")
        for line in results["backends"]:
            print("  " + line)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
