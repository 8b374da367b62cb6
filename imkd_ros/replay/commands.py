"""`imkd replay BAG` (offline, same pipeline as the node) and `imkd play BAG` (publish a bag)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="run the detector over a rosbag2 recording; metrics, MCAP, PNGs")
    p.add_argument("bag", type=Path)
    p.add_argument("--model", default="", help="checkpoint or engine (default: the shipped student)")
    p.add_argument("--backend", default="auto", choices=["auto", "tensorrt", "torch-cuda", "torch-cpu"])
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16", "int8"])
    p.add_argument("--params", default=None, help="node parameters YAML (default: built-in defaults)")
    p.add_argument("--out", type=Path, default=Path("out/replay"))
    p.add_argument("--rate", type=float, default=None, help="x real time (default: as fast as possible)")
    p.add_argument("--render", type=int, nargs="*", default=[0], help="evaluated keyframe indices to render")
    p.add_argument("--render-worst", type=int, default=2)
    p.add_argument("--no-bag", action="store_true", help="do not write the output MCAP")
    p.add_argument("--max-keyframes", type=int, default=None)
    p.add_argument("--only-gt-keyframes", action="store_true", help="run the model only at ground-truth keyframes")
    p.set_defaults(func=_replay)

    q = sub.add_parser("play", help="publish a rosbag2 recording with its timing and /clock (no ros2 bag needed)")
    from imkd_ros.ros.player import add_arguments

    add_arguments(q)
    q.set_defaults(func=_play)

    from imkd_ros.replay.demo import register as register_demo

    register_demo(sub)


def _replay(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from imkd_ros.replay.replay import Replay, ReplayOptions, load_params
    from imkd_ros.ros.detector_node import make_detector

    params = replace(load_params(args.params), backend=args.backend, precision=args.precision,
                     model_override=args.model)
    detector, why = make_detector(params)
    print(f"backend {detector.name}: {why}")
    opts = ReplayOptions(out_dir=args.out, rate=args.rate, write_bag=not args.no_bag, render=args.render,
                         render_worst=args.render_worst, max_keyframes=args.max_keyframes,
                         only_gt_keyframes=args.only_gt_keyframes)
    report = Replay(args.bag, detector, params, opts).run()
    m = report.get("metrics") or {}
    print(f"keyframes {report['keyframes_processed']} (with GT {report['keyframes_with_ground_truth']}), "
          f"NDS {m.get('NDS', float('nan')):.3f} mAP {m.get('mAP', float('nan')):.3f}; report: {args.out}/report.md")
    return 0


def _play(args: argparse.Namespace) -> int:
    from imkd_ros.ros.player import play

    return play(args.bag, args.rate, args.loop, not args.no_clock, args.start_delay, args.topics,
                args.wait_for_subscribers)
