"""``imkd train``: one teacher or student run (the ablation: ``python -m imkd_ros.train.ablation``)."""

from __future__ import annotations

import yaml


def _spec(source: str | None, args, split: str | None, limit: int | None):
    from imkd_ros.train.data import DataSpec

    if source is None:
        return None
    return DataSpec(source, version=args.version, split=split or None, image_downscale=args.image_downscale,
                    limit=limit, lidar_sweeps=args.lidar_sweeps, max_lidar_points=args.max_lidar_points)


def _run(args) -> int:
    from imkd_ros.train.augment import BevAugConfig, RadarDropoutConfig
    from imkd_ros.train.trainer import TrainConfig, train

    overrides = {}
    for item in args.set or []:
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)
    tc = TrainConfig(
        model=args.model, variant=args.variant, overrides=overrides,
        train_data=_spec(args.data, args, args.train_split, args.limit),
        val_data=_spec(args.val_data or (args.data if args.val_split else None), args, args.val_split,
                       args.val_limit),
        cache_dir=args.cache_dir, out=args.out, teacher_ckpt=args.teacher,
        label_teacher_ckpt=args.label_teacher, init_ckpt=args.init, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, schedule=args.schedule, grad_clip=args.grad_clip,
        amp=args.amp, seed=args.seed, bev_aug=None if args.no_bev_aug else BevAugConfig.with_flips(args.bev_flip),
        radar_dropout=RadarDropoutConfig(frame_p=args.radar_dropout[0], sector_p=args.radar_dropout[1]),
        img_aug=not args.no_img_aug, threads=args.threads, device=args.device,
        eval_every=args.eval_every, max_steps=args.max_steps, progress=not args.quiet)
    summary = train(tc)
    if "val" in summary:
        v = summary["val"]
        print(f"{args.variant}: NDS {v['NDS']:.4f} mAP {v['mAP']:.4f} ({summary['time_s']:.0f} s)")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train the LiDAR teacher or an IMKD student (torchrun-ready)",
                              description=__doc__)
    p.add_argument("--model", default="cpu", help="model config: cpu / paper / a YAML path")
    p.add_argument("--variant", default="imkd",
                   help="teacher | label_teacher | camera_only | no_distill | l1 | l1_l2 | imkd | ...")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="model config override, e.g. distill.level2_weight=0.5 (repeatable)")
    p.add_argument("--data", help="nuScenes-format dataroot (or simple:N:SEED)")
    p.add_argument("--version", default="v1.0-trainval")
    p.add_argument("--train-split", default="train")
    p.add_argument("--val-split", default=None)
    p.add_argument("--val-data", default=None, help="another dataroot for validation")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--val-limit", type=int, default=None)
    p.add_argument("--image-downscale", type=int, default=4, help="JPEG reduced decode (1/2/4/8)")
    p.add_argument("--cache-dir", default="runs/cache")
    p.add_argument("--out", default="runs/train")
    p.add_argument("--teacher", help="teacher checkpoint (student variants that distil)")
    p.add_argument("--label-teacher", help="label teacher checkpoint (variant label_teacher; with "
                   "--set distill.label=true)")
    p.add_argument("--init", help="start from these weights (teacher.pt / student.pt of the same config), "
                   "fresh optimizer + schedule: continue a finished campaign run")
    p.add_argument("--lidar-sweeps", type=int, default=3, help="LiDAR sweeps per frame (teacher input, "
                   "depth supervision)")
    p.add_argument("--max-lidar-points", type=int, default=8000,
                   help="LiDAR points kept per frame (random subsample, cached)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--schedule", default="onecycle", choices=("onecycle", "cosine"))
    p.add_argument("--grad-clip", type=float, default=5.0)
    p.add_argument("--amp", default="auto", choices=("auto", "on", "off"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-bev-aug", action="store_true")
    p.add_argument("--bev-flip", default="left-right", choices=("both", "left-right", "none"),
                   help="BEV mirrors drawn with p = 0.5 each: left/right (y -> -y) and front/back "
                        "(x -> -x). The front/back mirror turns 'parked cars face the way the ego "
                        "drives' into a coin flip (docs/ablation.md, parked heading)")
    p.add_argument("--no-img-aug", action="store_true")
    p.add_argument("--radar-dropout", type=float, nargs=2, default=[0.0, 0.0], metavar=("FRAME_P", "SECTOR_P"),
                   help="drop a frame's radar with FRAME_P, else one sensor-sized azimuth sector with "
                        "SECTOR_P (train for radar outages; default off)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--eval-every", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_run)
