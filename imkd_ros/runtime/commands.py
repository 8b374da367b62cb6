"""``imkd doctor [--gpu]``: what can run here (torch / CUDA / TensorRT), and with --gpu whether the
CUDA kernel, the TensorRT engine and the backends agree with the CPU reference, and how fast."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("doctor", help="report torch/CUDA/TensorRT availability; --gpu validates kernels, "
                                             "engine and latency")
    p.add_argument("--gpu", action="store_true", help="run the GPU checks (skipped loudly when CUDA/TensorRT miss)")
    p.add_argument("--checkpoint", default=None, help="student checkpoint for the backend checks "
                                                      "(default: random weights)")
    p.add_argument("--config", default="cpu", help="model config for random weights (models/<name>.yaml)")
    p.set_defaults(func=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    from imkd_ros.runtime.doctor import run

    return run(args.gpu, args.checkpoint, args.config)
