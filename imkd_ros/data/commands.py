"""``imkd data ...``: dataset commands.

``register(subparsers)`` adds one ``data`` parser with its own subcommands: ``synth`` (the
synthetic world, handler in imkd_ros.world.synth) and, from data/tool_commands.py, ``render`` and
``to-bag``. Handlers import their rooms lazily so ``imkd --help`` stays fast.
"""

from __future__ import annotations

import argparse


def _synth(args: argparse.Namespace) -> int:
    from imkd_ros.world.synth import run_synth

    return run_synth(args)


def add_synth_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="dataroot to write (nuScenes v1.0 layout)")
    p.add_argument("--scenes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--version", default="v1.0-synth", help="table folder name (NuScenes(version=...))")
    p.add_argument("--scene-seconds", type=float, default=20.0, help="scene length (2 key frames per second)")
    p.add_argument("--image-scale", type=float, default=1.0,
                   help="camera resolution factor (1.0 = 1600x900; intrinsics scaled to match)")
    p.add_argument("--render-scale", type=float, default=0.5,
                   help="internal render resolution of key-frame images, relative to 1600x900 (capped at the "
                        "image size; the image is upsampled from it)")
    p.add_argument("--sweep-render-scale", type=float, default=0.25,
                   help="internal render resolution of camera sweeps, relative to 1600x900")
    p.add_argument("--camera-sweeps", choices=("full", "none"), default="full",
                   help="write the 12 Hz camera sweeps, or key-frame images only")
    p.add_argument("--exact-sweeps", action="store_true",
                   help="render camera sweeps with the exact z-buffer (default: painter's algorithm, cheaper)")
    p.add_argument("--lidar-sweeps", choices=("full", "none"), default="full",
                   help="write the 20 Hz LiDAR sweeps (~0.6 MB each), or key-frame LiDAR only")
    p.add_argument("--jpeg-quality", type=int, default=90)
    p.add_argument("--val-fraction", type=float, default=0.2, help="last scenes go to the val split")
    p.add_argument("--first-scene", type=int, default=0, help="index of the first scene (for sharding)")
    p.add_argument("--condition", choices=("day", "night", "rain", "fog"), default=None,
                   help="force one condition (default: random per scene)")
    p.add_argument("--road", choices=("straight", "curved", "intersection"), default=None,
                   help="force one road layout (default: random per scene)")
    p.add_argument("--rig", default=None, help="rig YAML (default: imkd_ros/rig/nuscenes_rig.yaml)")
    p.add_argument("--jobs", type=int, default=1,
                   help="worker processes, one scene each (same bytes as --jobs 1; use on many-core boxes)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")


def register(subparsers) -> argparse.ArgumentParser:
    data = subparsers.add_parser("data", help="datasets: synthesise, render, convert to rosbag2")
    data_sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")

    def _help(args: argparse.Namespace) -> int:
        data.print_help()
        return 2

    data.set_defaults(func=_help)
    synth = data_sub.add_parser("synth", help="write a synthetic nuScenes-format dataset (all sensors, GT)")
    add_synth_arguments(synth)
    synth.set_defaults(func=_synth)
    try:
        from imkd_ros.data import tool_commands
    except ModuleNotFoundError as exc:  # the render / to-bag room is optional
        if exc.name != "imkd_ros.data.tool_commands":
            raise
    else:
        tool_commands.add_subcommands(data_sub)
    return data
