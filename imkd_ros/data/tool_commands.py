"""``imkd data render`` and ``imkd data to-bag``: added to the ``imkd data`` parser by data/commands.py."""

from __future__ import annotations

import argparse
import sys


def _add_dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataroot", required=True, help="nuScenes-format dataset root (ours or real nuScenes)")
    p.add_argument("--version", default=None,
                   help="table folder under dataroot, e.g. v1.0-mini, v1.0-trainval (default: the only one there)")


def resolve_version(dataroot: str, version: str | None) -> str:
    """``--version`` or, when omitted, the one table folder under dataroot (one holding sample.json)."""
    if version:
        return version
    from pathlib import Path

    found = sorted(d.name for d in Path(dataroot).iterdir() if (d / "sample.json").is_file())
    if len(found) != 1:
        raise SystemExit(f"pass --version: table folders under {dataroot}: {found or 'none'}")
    return found[0]


def add_subcommands(subparsers) -> None:
    """Register render and to-bag on the ``imkd data`` subparsers."""
    p = subparsers.add_parser("render", help="render one keyframe: six cameras with boxes + BEV, to a PNG")
    _add_dataset_args(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--sample", help="sample token")
    which.add_argument("--index", type=int, help="keyframe index in scene order (of --split or --scene if given)")
    p.add_argument("--scene", help="restrict --index to this scene")
    p.add_argument("--split", help="restrict --index to this split (split file or nuScenes split name)")
    p.add_argument("--out", required=True, help="output PNG")
    p.add_argument("--radar-sweeps", type=int, default=6)
    p.add_argument("--lidar-sweeps", type=int, default=1)
    p.add_argument("--tile-width", type=int, default=480, help="camera tile width in pixels")
    p.add_argument("--bev-range", type=float, default=52.0, help="metres shown each side of the ego in BEV")
    p.add_argument("--keep-empty-boxes", action="store_true", help="do not drop GT boxes without LiDAR/radar points")
    p.add_argument("--results", help="nuScenes results JSON (e.g. from imkd eval): draw its boxes as predictions")
    p.add_argument("--score-threshold", type=float, default=0.3, help="predictions below are not drawn")
    p.set_defaults(func=cmd_render)

    b = subparsers.add_parser("to-bag", help="convert one nuScenes-format scene to a rosbag2 (MCAP or sqlite3)")
    _add_dataset_args(b)
    b.add_argument("--scene", required=True, help="scene name, e.g. scene-0061")
    b.add_argument("--out", required=True, help="output bag folder (must not exist unless --overwrite)")
    b.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    b.add_argument("--overwrite", action="store_true", help="replace an existing bag folder")
    b.add_argument("--no-lidar", action="store_true", help="leave out /lidar_top/points (largest topic)")
    b.add_argument("--no-gt", action="store_true", help="leave out the ground-truth topics")
    b.set_defaults(func=cmd_to_bag)


def cmd_render(args: argparse.Namespace) -> int:
    from imkd_ros.data.nuscenes_reader import NuScenesReader, ReaderConfig
    from imkd_ros.render import RenderOptions, render_frame

    cfg = ReaderConfig(
        radar_sweeps=args.radar_sweeps,
        lidar_sweeps=args.lidar_sweeps,
        load_lidar=args.lidar_sweeps > 0,
        filter_empty_boxes=not args.keep_empty_boxes,
    )
    reader = NuScenesReader(args.dataroot, resolve_version(args.dataroot, args.version), cfg)
    if args.sample:
        token = args.sample
    else:
        tokens = reader.sample_tokens(split=args.split, scenes=[args.scene] if args.scene else None)
        if not -len(tokens) <= args.index < len(tokens):
            print(f"--index {args.index} out of range: {len(tokens)} keyframes", file=sys.stderr)
            return 2
        token = tokens[args.index]
    frame = reader.frame(token)
    pred = None
    if args.results:
        from imkd_ros.data.results import load_results, results_to_boxes

        pred = results_to_boxes(load_results(args.results).get(token, []), frame.meta["ego_to_global"])
    opts = RenderOptions(tile_width=args.tile_width, bev_range=args.bev_range, score_threshold=args.score_threshold)
    path = render_frame(frame, pred, args.out, opts)
    print(f"wrote {path} (scene {frame.meta['scene']}, condition {frame.meta['condition']}, sample {token}, "
          f"{len(frame.gt) if frame.gt is not None else 0} GT boxes, {len(frame.radar)} radar points"
          + (f", {int((pred.scores >= args.score_threshold).sum())} predictions drawn)" if pred is not None else ")"))
    return 0


def cmd_to_bag(args: argparse.Namespace) -> int:
    from imkd_ros.data.bag_writer import BagOptions, write_scene_bag

    opts = BagOptions(storage=args.storage, overwrite=args.overwrite, lidar=not args.no_lidar,
                      ground_truth=not args.no_gt)
    version = resolve_version(args.dataroot, args.version)
    summary = write_scene_bag(args.dataroot, version, args.scene, args.out, opts)
    print("\n".join(summary.lines()))
    return 0
