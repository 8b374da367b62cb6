"""``imkd eval``: score a student checkpoint (or a nuScenes results file) on a dataset split.

    imkd eval --dataroot DIR --version V --split val --checkpoint models/x.pt [--max-samples N] [--out DIR]
    imkd eval --dataroot DIR --version V --split val --results results.json [--out DIR]

With a checkpoint the student runs over the split through the dataset reader (tqdm progress);
its ego-frame boxes are scored in memory (overall, per class, per condition, per distance band),
written as the nuScenes submission (results.json, global frame) and, unless ``--no-official``,
also scored by the devkit's DetectionEval from that file. Reports: <out>/report.json, report.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataroot", required=True, help="nuScenes-format dataset root")
    p.add_argument("--version", required=True, help="table folder, e.g. v1.0-trainval, v1.0-mini")
    p.add_argument("--split", default="val", help="split name (devkit split or the dataset's splits.json)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="student (or IMKD) checkpoint to run")
    src.add_argument("--results", help="an existing nuScenes results JSON to score")
    p.add_argument("--max-samples", type=int, default=None, help="first N samples of the split only")
    p.add_argument("--out", default=None, help="output folder (default: eval/<checkpoint or results stem>)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--score-threshold", type=float, default=None, help="override the head's score threshold")
    p.add_argument("--image-downscale", default="auto",
                   help="JPEG reduced decode 1/2/4/8, or auto (largest that keeps the network width)")
    p.add_argument("--classes", nargs="+", default=None, help="evaluate these detection classes only")
    p.add_argument("--include-absent", action="store_true",
                   help="count listed classes absent from the GT as AP 0 (the leaderboard's 10-class mean)")
    p.add_argument("--no-official", action="store_true", help="skip the DetectionEval run on results.json")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("eval", help="nuScenes detection metrics (mAP, NDS) of a checkpoint or results file",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def _auto_downscale(nusc, tokens: list[str], width: int) -> int:
    """Largest of 8/4/2/1 whose reduced decode is still at least the network input width."""
    from imkd_ros.constants import CAMERA_NAMES

    if not tokens:
        return 1
    sample = nusc.get("sample", tokens[0])
    cam = sample["data"].get(CAMERA_NAMES[0])
    raw_w = int(nusc.get("sample_data", cam).get("width") or 0) if cam else 0
    if raw_w <= 0:
        return 1
    for s in (8, 4, 2):
        if raw_w // s >= width:
            return s
    return 1


def predict_split(model, reader, tokens: list[str], batch_size: int = 1, score_threshold: float | None = None,
                  device: str = "cpu", progress: bool = True) -> tuple[dict, dict, dict, dict[str, float]]:
    """Run the student over ``tokens``: predictions, ground truth, meta (per token) and timings."""
    import torch

    from imkd_ros.model.preprocess import Preprocessor, batch_to

    pre = Preprocessor(model.cfg, train=False)
    preds: dict[str, Any] = {}
    gts: dict[str, Any] = {}
    metas: dict[str, dict] = {}
    t_read = t_model = 0.0
    starts = range(0, len(tokens), max(1, batch_size))
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="eval", unit="batch")
    for s in starts:
        t0 = time.perf_counter()
        frames = [reader.frame(tok) for tok in tokens[s:s + batch_size]]
        t1 = time.perf_counter()
        with torch.inference_mode():
            batch = batch_to(pre(frames, targets=False), device)
            boxes = model.decode(model(batch), score_threshold)
        t_model += time.perf_counter() - t1
        t_read += t1 - t0
        for f, b in zip(frames, boxes):
            tok = f.meta["sample_token"]
            preds[tok], gts[tok] = b, f.gt
            metas[tok] = {k: f.meta.get(k) for k in ("condition", "scene", "ego_to_global", "timestamp_us")}
    n = max(1, len(tokens))
    return preds, gts, metas, {"read_s_per_sample": t_read / n, "model_s_per_sample": t_model / n}


def run(args: argparse.Namespace) -> int:
    from imkd_ros.evaluation.official import official_evaluate, write_submission
    from imkd_ros.evaluation.report import summary_line, write_reports

    stem = Path(args.checkpoint or args.results).stem
    out = Path(args.out) if args.out else Path("eval") / stem
    info: dict[str, Any] = {"dataroot": str(args.dataroot), "version": args.version, "split": args.split}
    t_start = time.perf_counter()
    if args.results:
        from imkd_ros.data.nuscenes_reader import get_nuscenes

        nusc = get_nuscenes(args.dataroot, args.version)
        info["results"] = str(args.results)
        report = official_evaluate(nusc, args.results, split=args.split, classes=args.classes,
                                   include_absent=args.include_absent, output_dir=out / "devkit")
        info["split_mode"] = report.get("split_mode")
    else:
        report = _run_checkpoint(args, out, info, official_evaluate, write_submission)
    info["wall_s"] = round(time.perf_counter() - t_start, 2)
    report["info"] = info
    json_path, md_path = write_reports(report, out, title=f"Detection evaluation: {stem}")
    print(summary_line(report))
    if isinstance(report.get("official"), dict):
        print("official DetectionEval: " + summary_line(report["official"]))
    print(f"wrote {json_path} and {md_path}")
    return 0


def _run_checkpoint(args, out: Path, info: dict, official_evaluate, write_submission) -> dict:
    import torch

    from imkd_ros.data.nuscenes_reader import NuScenesReader, ReaderConfig, get_nuscenes
    from imkd_ros.evaluation.metrics import evaluate
    from imkd_ros.model.imkd import load_student

    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_student(args.checkpoint, map_location=args.device).to(args.device).eval()
    nusc = get_nuscenes(args.dataroot, args.version)
    probe = NuScenesReader(args.dataroot, args.version, ReaderConfig(), nusc=nusc)
    tokens = probe.sample_tokens(split=args.split)
    if args.max_samples:
        tokens = tokens[: args.max_samples]
    if str(args.image_downscale) == "auto":
        downscale = _auto_downscale(nusc, tokens, model.cfg.image.width)
    else:
        downscale = int(args.image_downscale)
    # GT exactly as DetectionEval loads it: empty boxes dropped, unknown velocities stay nan.
    rc = ReaderConfig(load_lidar=False, image_downscale=downscale, nan_velocity_to_zero=False,
                      filter_empty_boxes=True)
    reader = NuScenesReader(args.dataroot, args.version, rc, nusc=nusc)
    preds, gts, metas, timing = predict_split(model, reader, tokens, args.batch_size, args.score_threshold,
                                              args.device)
    report = evaluate(preds, gts, metas, classes=args.classes, include_absent=args.include_absent)
    results_path = write_submission(out / "results.json", preds, nusc=nusc, tokens=tokens,
                                    ego_to_global={t: m["ego_to_global"] for t, m in metas.items()})
    info.update({"checkpoint": str(args.checkpoint), "samples": len(tokens), "image_downscale": downscale,
                 "results_json": str(results_path), **{k: round(v, 4) for k, v in timing.items()}})
    if not args.no_official:
        official = official_evaluate(nusc, results_path, split=args.split if not args.max_samples else None,
                                     sample_tokens=tokens if args.max_samples else None, classes=args.classes,
                                     include_absent=args.include_absent, with_breakdowns=False,
                                     output_dir=out / "devkit")
        report["official"] = {k: v for k, v in official.items() if k != "result_meta"}
    return report
