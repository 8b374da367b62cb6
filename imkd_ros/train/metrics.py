"""Run a detector over frames and score it with the official nuScenes detection metrics.

``score(predictions, ground_truth)`` uses ``imkd_ros.evaluation.evaluate`` when that room is
present; otherwise it computes the same numbers in memory through nuscenes-devkit's
accumulate / calc_ap / calc_tp (ego-frame boxes: centre distances are frame-independent, and
``ego_translation`` = the box centre so the class ranges apply as in DetectionEval). The class
list is restricted to the classes present in the ground truth (a class absent from GT would
otherwise score AP 0 and cap mAP).
"""

from __future__ import annotations

import math

import torch
from nuscenes.eval.common.config import config_factory
from nuscenes.eval.common.data_classes import EvalBoxes
from nuscenes.eval.detection.algo import accumulate, calc_ap, calc_tp
from nuscenes.eval.detection.data_classes import DetectionBox, DetectionMetricDataList, DetectionMetrics
from tqdm import tqdm

from imkd_ros.constants import ATTRIBUTES, CLASSES
from imkd_ros.evaluation import evaluate
from imkd_ros.model.preprocess import Preprocessor, batch_to
from imkd_ros.train.data import drop_radar as _drop
from imkd_ros.types import Boxes, Frame

TP_KEYS = ("mATE", "mASE", "mAOE", "mAVE", "mAAE")
_TP_NAMES = ("trans_err", "scale_err", "orient_err", "vel_err", "attr_err")


def _eval_boxes(boxes: dict[str, Boxes], is_gt: bool):
    out = EvalBoxes()
    for token, b in boxes.items():
        rows = []
        for i in range(len(b)):
            yaw = float(b.yaw[i])
            c = [float(v) for v in b.center[i]]
            a = int(b.attributes[i])
            rows.append(DetectionBox(
                sample_token=token, translation=c, size=[float(v) for v in b.size[i]],
                rotation=(math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)),
                velocity=[float(v) for v in b.velocity[i]], ego_translation=c,
                num_pts=1 if is_gt else -1, detection_name=CLASSES[int(b.labels[i])],
                detection_score=-1.0 if is_gt else float(b.scores[i]),
                attribute_name=ATTRIBUTES[a] if 0 <= a < len(ATTRIBUTES) else ""))
        out.add_boxes(token, rows)
    return out


def devkit_metrics(predictions: dict[str, Boxes], ground_truth: dict[str, Boxes],
                   classes: list[str] | None = None) -> dict:
    cfg = config_factory("detection_cvpr_2019")
    if classes is None:
        present = sorted({int(lbl) for b in ground_truth.values() for lbl in b.labels})
        classes = [CLASSES[i] for i in present]
    cfg.class_names = list(classes)
    cfg.class_range = {k: v for k, v in cfg.class_range.items() if k in classes}
    gt = _eval_boxes(ground_truth, True)
    pred = _eval_boxes({t: predictions.get(t, Boxes.empty()) for t in ground_truth}, False)
    md_list = DetectionMetricDataList()
    metrics = DetectionMetrics(cfg)
    for name in cfg.class_names:
        for th in cfg.dist_ths:
            md = accumulate(gt, pred, name, cfg.dist_fcn_callable, th)
            md_list.set(name, th, md)
            metrics.add_label_ap(name, th, calc_ap(md, cfg.min_recall, cfg.min_precision))
        for metric in _TP_NAMES:
            md = md_list[(name, cfg.dist_th_tp)]
            if (name == "traffic_cone" and metric in ("attr_err", "vel_err", "orient_err")) or (
                    name == "barrier" and metric in ("attr_err", "vel_err")):
                tp = float("nan")
            else:
                tp = calc_tp(md, cfg.min_recall, metric)
            metrics.add_label_tp(name, metric, tp)
    s = metrics.serialize()
    out = {"mAP": s["mean_ap"], "NDS": s["nd_score"], "classes": list(classes),
           "per_class_AP": {k: float(v) for k, v in s["mean_dist_aps"].items()}}
    for key, name in zip(TP_KEYS, _TP_NAMES):
        out[key] = float(s["tp_errors"][name])
    return out


def score(predictions: dict[str, Boxes], ground_truth: dict[str, Boxes], meta: dict | None = None) -> dict:
    """mAP, NDS, mATE..mAAE (+ per-class AP) of ego-frame predictions against ground truth."""
    try:
        res = evaluate(predictions, ground_truth, meta or {})
        res = res if isinstance(res, dict) else getattr(res, "to_dict", lambda: vars(res))()
        if "NDS" in res and "mAP" in res:
            return res
    except Exception as exc:  # a failed evaluation must not break training
        print(f"imkd_ros.evaluation.evaluate failed ({exc!r}); using the in-memory devkit metrics")
    return devkit_metrics(predictions, ground_truth)


@torch.no_grad()
def predict(model, frames: list[Frame], cfg, batch_size: int = 2, device: str | torch.device = "cpu",
            teacher: bool = False, drop_radar: bool = False, progress: bool = False) -> dict[str, Boxes]:
    """sample token -> predicted Boxes for a Student (or a LidarTeacher with teacher=True)."""
    pre = Preprocessor(cfg, train=False)
    model.eval()
    preds: dict[str, Boxes] = {}
    starts = range(0, len(frames), batch_size)
    if progress:
        starts = tqdm(starts, desc="eval", leave=False)
    for s in starts:
        chunk = frames[s:s + batch_size]
        if drop_radar:
            chunk = [_drop(f) for f in chunk]
        batch = batch_to(pre(chunk, targets=False), device)
        if teacher:
            boxes = model.decode(model(batch["lidar"], batch["lidar_mask"]))
        else:
            boxes = model.decode(model(batch))
        for f, b in zip(chunk, boxes):
            preds[f.meta.get("sample_token", str(f.timestamp_us))] = b
    return preds


def ground_truth(frames: list[Frame]) -> dict[str, Boxes]:
    return {f.meta.get("sample_token", str(f.timestamp_us)): f.gt for f in frames if f.gt is not None}

