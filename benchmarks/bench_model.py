"""Per-stage forward latency of the student (batch 1, eval, no grad, precomputed geometry).

Stages: backbone (ResNet + neck), depth (radar prior + depth net), pooling (imkd::bev_pool),
radar (pillars + BEV convs), fusion (fusion + BEV encoder), head. Then the whole forward eager
NCHW, eager NHWC, and as the torch-cpu backend runs it (NHWC, frozen TorchScript trace; with
--bf16 in bf16 where the CPU has it natively). Prints figures; not a test.

    .venv/bin/python benchmarks/bench_model.py [--configs cpu paper] [--threads 2] [--iters 10]
        [--bf16] [--raw 900 1600]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from imkd_ros.model import Preprocessor, Student, load_config
from imkd_ros.model.imkd import STAGES
from imkd_ros.model.synthetic import random_frame
from imkd_ros.runtime import Detector
from imkd_ros.runtime.torch_backend import TorchBackend, cpu_bf16_status


def bench(name: str, iters: int, bf16: bool = False, raw_hw: tuple[int, int] = (900, 1600)) -> None:
    cfg = load_config(name)
    frame = random_frame(0, raw_hw=raw_hw, num_boxes=8)
    pre = Preprocessor(cfg)
    pre([frame], targets=False)
    t0 = time.perf_counter()
    for _ in range(3):
        batch = pre([frame], targets=False)
    t_pre = (time.perf_counter() - t0) / 3
    model = Student(cfg).eval()
    params = sum(p.numel() for p in model.parameters()) / 1e6
    amp = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
    with torch.inference_mode(), amp:
        t0 = time.perf_counter()
        geo = model.geometry(batch["intrinsics"], batch["cam_to_ego"], batch["img_aug"])
        t_geo = time.perf_counter() - t0
        for _ in range(2):
            model(batch, geo)
        per_stage = {s: [] for s in STAGES}
        totals, decode = [], []
        for _ in range(iters):
            timings: dict[str, float] = {}
            t0 = time.perf_counter()
            out = model(batch, geo, timings=timings)
            totals.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            model.decode(out)
            decode.append(time.perf_counter() - t0)
            for s in STAGES:
                per_stage[s].append(timings[s])
        # Eager NHWC (what the torch-cpu backend ran before it traced the network).
        nhwc = copy.deepcopy(model).to(memory_format=torch.channels_last)
        for _ in range(2):
            nhwc(batch, geo)
        totals_nhwc = []
        for _ in range(iters):
            t0 = time.perf_counter()
            nhwc(batch, geo)
            totals_nhwc.append(time.perf_counter() - t0)
    # The torch-cpu backend itself: NHWC, frozen TorchScript trace, bf16 where asked and native.
    backend = TorchBackend("cpu", "bf16" if bf16 and cpu_bf16_status() is None else "fp32")
    inputs = Detector(model, backend).inputs([frame])
    for _ in range(3):  # the first call traces and freezes
        backend.infer(inputs)
    totals_be = []
    for _ in range(iters):
        t0 = time.perf_counter()
        backend.infer(inputs)
        totals_be.append(time.perf_counter() - t0)
    med = statistics.median
    print(f"\n== {name}: image {cfg.image.height}x{cfg.image.width} x{cfg.num_cameras}, "
          f"BEV {cfg.grid.bev_grid().shape}, {params:.2f} M params, threads {torch.get_num_threads()}"
          f"{', bf16 autocast' if bf16 else ''}")
    print(f"   preprocess (1 frame, raw {raw_hw[0]}x{raw_hw[1]}): {t_pre * 1e3:.1f} ms; geometry (once per calib): "
          f"{t_geo * 1e3:.1f} ms, {geo.num_points} points")
    for s in STAGES:
        print(f"   {s:9s} {med(per_stage[s]) * 1e3:8.1f} ms")
    total = med(totals)
    print(f"   forward   {total * 1e3:8.1f} ms  ({1 / total:.1f} frames/s); decode {med(decode) * 1e3:.1f} ms")
    t_nhwc = med(totals_nhwc)
    print(f"   forward, channels_last eager {t_nhwc * 1e3:.1f} ms ({1 / t_nhwc:.1f} frames/s), "
          f"{total / t_nhwc:.2f}x the NCHW forward (no per-stage timing, no decode in between)")
    t_be = med(totals_be)
    print(f"   the {backend.name} backend (NHWC, frozen TorchScript trace) {t_be * 1e3:.1f} ms "
          f"({1 / t_be:.1f} frames/s), {total / t_be:.2f}x the NCHW forward")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", nargs="+", default=["cpu", "paper"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--bf16", action="store_true", help="CPU bf16 autocast")
    ap.add_argument("--raw", type=int, nargs=2, default=[900, 1600], help="raw camera image H W")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.configs:
        bench(name, args.iters if name != "paper" else max(2, args.iters // 3), args.bf16,
              (args.raw[0], args.raw[1]))


if __name__ == "__main__":
    main()
