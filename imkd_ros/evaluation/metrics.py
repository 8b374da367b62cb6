"""nuScenes detection metrics (mAP, NDS, TP errors) on in-memory ``Boxes``, with breakdowns.

The numbers come from the nuscenes-devkit itself: boxes become ``DetectionBox``/``EvalBoxes`` and
the devkit's ``DetectionEval.evaluate`` (accumulate, calc_ap, calc_tp, DetectionMetrics) runs on
them, so there is no re-implementation to drift from the official code. What this module adds:

* conversion ``Boxes`` (ego frame, nuScenes (w, l, h), yaw, velocity) -> ``DetectionBox``. The
  metrics are invariant to a common rigid transform about +z, so ego-frame boxes give the official
  numbers; ``ego_translation`` is the box centre in ego axes (rotated to global axes when the
  sample's ``meta`` carries ``ego_to_global``) so the devkit's class-range filter sees the same
  distances as DetectionEval.
* the two filters DetectionEval applies before evaluating (class range by ego distance, GT with 0
  points), without the devkit's bike-rack filter (our ``Boxes`` carry no bike racks; on real
  nuScenes only the official path in ``official.py`` drops bicycles parked in racks).
* the class list: by default only classes present in the (filtered) ground truth are averaged, so
  a 4-class dataset is not scored as 6 zero APs; ``include_absent=True`` gives the official
  behaviour (every listed class counts, absent ones as AP 0).
* breakdowns by condition (``meta[token]["condition"]``) and by ego-distance band.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from nuscenes.eval.common.config import config_factory
from nuscenes.eval.common.data_classes import EvalBoxes
from nuscenes.eval.detection.data_classes import DetectionBox
from nuscenes.eval.detection.evaluate import DetectionEval

from imkd_ros.constants import ATTRIBUTES, CLASSES
from imkd_ros.types import Boxes

CONFIG_NAME = "detection_cvpr_2019"
CONDITIONS: tuple[str, ...] = ("day", "night", "rain", "fog")
# (name, lo, hi) in metres of xy distance from the ego; lo <= d < hi.
DISTANCE_BANDS: tuple[tuple[str, float, float], ...] = (
    ("0-20m", 0.0, 20.0),
    ("20-30m", 20.0, 30.0),
    ("30m+", 30.0, math.inf),
)
TP_NAMES: dict[str, str] = {  # devkit TP metric -> report name
    "trans_err": "ATE",
    "scale_err": "ASE",
    "orient_err": "AOE",
    "vel_err": "AVE",
    "attr_err": "AAE",
}
GT_SCORE = -1.0  # the devkit's GT boxes carry detection_score -1


# ------------------------------------------------------------------------------------ conversion
def detection_config(name: str = CONFIG_NAME):
    """A fresh devkit DetectionConfig (fresh because callers mutate ``class_names``)."""
    return config_factory(name)


def yaw_to_quaternion(yaw: float) -> tuple[float, float, float, float]:
    """Rotation about +z as a (w, x, y, z) quaternion, pyquaternion's order."""
    half = 0.5 * float(yaw)
    return (math.cos(half), 0.0, 0.0, math.sin(half))


def attribute_name(index: int) -> str:
    index = int(index)
    return ATTRIBUTES[index] if 0 <= index < len(ATTRIBUTES) else ""


def _ego_rotation(meta: Mapping[str, Any] | None) -> np.ndarray | None:
    if not meta or meta.get("ego_to_global") is None:
        return None
    m = np.asarray(meta["ego_to_global"], np.float64)
    return m[:3, :3]


def _num_pts(gt: Boxes, meta: Mapping[str, Any] | None) -> np.ndarray:
    """Points per GT box if known (``Boxes.num_pts`` or ``meta['gt_num_pts']``), else 1."""
    counts = getattr(gt, "num_pts", None)
    if counts is None and meta:
        counts = meta.get("gt_num_pts")
    if counts is None:
        return np.ones(len(gt), np.int64)
    counts = np.asarray(counts, np.int64).reshape(-1)
    if len(counts) != len(gt):
        raise ValueError(f"num_pts has {len(counts)} entries for {len(gt)} GT boxes")
    return counts


def valid_prediction_mask(boxes: Boxes) -> np.ndarray:
    """Predictions the devkit can score: finite score/centre/size/yaw, positive size (its IoU asserts)."""
    size = np.asarray(boxes.size, np.float64).reshape(-1, 3)
    ok = np.isfinite(np.asarray(boxes.scores, np.float64)) & np.isfinite(np.asarray(boxes.yaw, np.float64))
    ok &= np.isfinite(np.asarray(boxes.center, np.float64)).all(1) & np.isfinite(size).all(1) & (size > 0).all(1)
    labels = np.asarray(boxes.labels)
    return ok & (labels >= 0) & (labels < len(CLASSES))


def ranked_valid_predictions(boxes: Boxes, max_boxes: int | None) -> np.ndarray:
    """Indices of the valid predictions, best score first, at most ``max_boxes``."""
    idx = np.flatnonzero(valid_prediction_mask(boxes))
    idx = idx[np.argsort(-np.asarray(boxes.scores, np.float64)[idx], kind="stable")]
    return idx if max_boxes is None else idx[:max_boxes]


def boxes_to_detection_boxes(
    sample_token: str,
    boxes: Boxes | None,
    is_gt: bool,
    meta: Mapping[str, Any] | None = None,
    max_boxes: int | None = None,
) -> list:
    """``Boxes`` of one sample -> devkit ``DetectionBox`` list (ego frame).

    Predictions keep the ``max_boxes`` highest scores (DetectionEval refuses samples with more than
    ``max_boxes_per_sample``); labels outside constants.CLASSES, non-finite values and non-positive
    sizes are dropped (the devkit would assert); a nan velocity is kept (the devkit skips it).
    """
    if boxes is None or len(boxes) == 0:
        return []
    n = len(boxes)
    order = np.arange(n)
    if not is_gt:
        order = ranked_valid_predictions(boxes, max_boxes)
    num_pts = _num_pts(boxes, meta) if is_gt else None
    rot = _ego_rotation(meta)
    center = np.asarray(boxes.center, np.float64)
    ego_xyz = center if rot is None else center @ rot.T
    out = []
    for i in order:
        label = int(boxes.labels[i])
        if not 0 <= label < len(CLASSES):
            continue
        vel = np.asarray(boxes.velocity[i], np.float64)
        out.append(
            DetectionBox(
                sample_token=sample_token,
                translation=tuple(float(v) for v in center[i]),
                size=tuple(float(v) for v in boxes.size[i]),
                rotation=yaw_to_quaternion(float(boxes.yaw[i])),
                velocity=(float(vel[0]), float(vel[1])),
                ego_translation=tuple(float(v) for v in ego_xyz[i]),
                num_pts=int(num_pts[i]) if num_pts is not None else -1,
                detection_name=CLASSES[label],
                detection_score=GT_SCORE if is_gt else float(boxes.scores[i]),
                attribute_name=attribute_name(boxes.attributes[i]),
            )
        )
    return out


def to_eval_boxes(
    boxes_by_token: Mapping[str, Boxes | None],
    tokens: Iterable[str],
    is_gt: bool,
    meta: Mapping[str, Mapping[str, Any]] | None = None,
    max_boxes: int | None = None,
):
    """EvalBoxes with an entry (possibly empty) for every token, in ``tokens`` order."""
    eb = EvalBoxes()
    for tok in tokens:
        eb.add_boxes(tok, boxes_to_detection_boxes(tok, boxes_by_token.get(tok), is_gt,
                                                   (meta or {}).get(tok), max_boxes))
    return eb


# --------------------------------------------------------------------------------------- filters
def filter_boxes(eval_boxes, keep) -> Any:
    """New EvalBoxes with the boxes for which ``keep(box)`` holds (every token kept)."""
    out = EvalBoxes()
    for tok in eval_boxes.sample_tokens:
        out.add_boxes(tok, [b for b in eval_boxes[tok] if keep(b)])
    return out


def devkit_filter(eval_boxes, class_range: Mapping[str, float]):
    """DetectionEval's filters minus bike racks: ego distance < class range, then num_pts != 0."""
    return filter_boxes(
        eval_boxes, lambda b: b.ego_dist < class_range.get(b.detection_name, -1.0) and b.num_pts != 0
    )


def subset_tokens(eval_boxes, tokens: Iterable[str]):
    out = EvalBoxes()
    for tok in tokens:
        out.add_boxes(tok, list(eval_boxes[tok]) if tok in eval_boxes.boxes else [])
    return out


def present_classes(gt_boxes) -> list[str]:
    names = {b.detection_name for b in gt_boxes.all}
    return [c for c in CLASSES if c in names]


def resolve_classes(gt_boxes, classes: Sequence[str] | None, include_absent: bool) -> list[str]:
    """Classes to average over: ``classes`` (default all 10) minus those absent from GT unless asked."""
    wanted = list(CLASSES) if classes is None else [c for c in CLASSES if c in set(classes)]
    unknown = set(classes or ()) - set(CLASSES)
    if unknown:
        raise ValueError(f"unknown detection classes {sorted(unknown)}; expected names from {CLASSES}")
    if include_absent:
        return wanted
    present = set(present_classes(gt_boxes))
    return [c for c in wanted if c in present]


# ------------------------------------------------------------------------------------ evaluation
def run_devkit(gt_boxes, pred_boxes, cfg, class_names: Sequence[str]):
    """The devkit's DetectionEval.evaluate on already filtered EvalBoxes for ``class_names``.

    Runs the unmodified method on an instance that skips DetectionEval's file loading, so the
    per-class special cases (no velocity/attribute for barriers and cones) are the devkit's own.
    """
    cfg.class_names = list(class_names)
    ev = DetectionEval.__new__(DetectionEval)
    ev.cfg, ev.gt_boxes, ev.pred_boxes, ev.verbose = cfg, gt_boxes, pred_boxes, False
    ev.sample_tokens = gt_boxes.sample_tokens
    return ev.evaluate()


def _num(x) -> float | None:
    """JSON-friendly float: nan/inf -> None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def metrics_to_dict(metrics, class_names: Sequence[str], gt_boxes, pred_boxes, cfg) -> dict:
    """A DetectionMetrics (or None when no class could be evaluated) as our report dict."""
    n_gt = {c: 0 for c in CLASSES}
    n_pred = {c: 0 for c in CLASSES}
    for b in gt_boxes.all:
        n_gt[b.detection_name] += 1
    for b in pred_boxes.all:
        n_pred[b.detection_name] += 1
    out: dict[str, Any] = {
        "mAP": None, "NDS": None, **{"m" + v: None for v in TP_NAMES.values()},
        "classes": list(class_names),
        "num_samples": len(gt_boxes.sample_tokens),
        "num_gt": sum(n_gt[c] for c in class_names) if class_names else 0,
        "num_pred": sum(n_pred[c] for c in class_names) if class_names else 0,
        "per_class": {},
        "tp_scores": {},
    }
    if metrics is None or not class_names:
        return out
    with warnings.catch_warnings():  # a TP error undefined for every class (cones only): nan, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        errors, tp_scores, nds = metrics.tp_errors, metrics.tp_scores, metrics.nd_score
    out["mAP"] = _num(metrics.mean_ap)
    out["NDS"] = _num(nds)
    for k, v in TP_NAMES.items():
        out["m" + v] = _num(errors[k])
    out["tp_scores"] = {TP_NAMES[k]: _num(v) for k, v in tp_scores.items()}
    mean_dist_aps = metrics.mean_dist_aps
    for c in class_names:
        row: dict[str, Any] = {"AP": _num(mean_dist_aps[c])}
        for th in cfg.dist_ths:
            row[f"AP@{th:g}"] = _num(metrics.get_label_ap(c, th))
        for k, v in TP_NAMES.items():
            row[v] = _num(metrics.get_label_tp(c, k))
        row["num_gt"], row["num_pred"] = n_gt[c], n_pred[c]
        out["per_class"][c] = row
    return out


def evaluate_eval_boxes(gt_boxes, pred_boxes, classes: Sequence[str] | None = None,
                        include_absent: bool = False, cfg=None, config_name: str = CONFIG_NAME) -> dict:
    """Metrics of filtered devkit EvalBoxes (both with the same tokens) as a report dict."""
    cfg = cfg or detection_config(config_name)
    names = resolve_classes(gt_boxes, classes, include_absent)
    metrics = run_devkit(gt_boxes, pred_boxes, cfg, names)[0] if names else None
    return metrics_to_dict(metrics, names, gt_boxes, pred_boxes, cfg)


def _band_keep(lo: float, hi: float):
    def keep(b) -> bool:
        return lo <= b.ego_dist < hi

    return keep


def breakdowns(gt_boxes, pred_boxes, meta: Mapping[str, Mapping[str, Any]] | None,
               classes: Sequence[str] | None, include_absent: bool, config_name: str,
               distance_bands: Sequence[tuple[str, float, float]] = DISTANCE_BANDS,
               conditions: Sequence[str] = CONDITIONS) -> dict:
    """Per-condition (samples grouped by meta condition) and per-distance-band metric sets."""
    out: dict[str, dict] = {"by_condition": {}, "by_distance": {}}
    tokens = gt_boxes.sample_tokens
    if meta:
        groups: dict[str, list[str]] = {}
        for tok in tokens:
            cond = (meta.get(tok) or {}).get("condition")
            if cond:
                groups.setdefault(str(cond), []).append(tok)
        order = [c for c in conditions if c in groups] + sorted(set(groups) - set(conditions))
        for cond in order:
            toks = groups[cond]
            out["by_condition"][cond] = evaluate_eval_boxes(
                subset_tokens(gt_boxes, toks), subset_tokens(pred_boxes, toks), classes, include_absent,
                config_name=config_name)
    for name, lo, hi in distance_bands:
        keep = _band_keep(lo, hi)
        report = evaluate_eval_boxes(filter_boxes(gt_boxes, keep), filter_boxes(pred_boxes, keep), classes,
                                     include_absent, config_name=config_name)
        report["range_m"] = [lo, None if math.isinf(hi) else hi]
        out["by_distance"][name] = report
    return out


def evaluate(
    predictions: Mapping[str, Boxes | None],
    ground_truth: Mapping[str, Boxes | None],
    meta: Mapping[str, Mapping[str, Any]] | None = None,
    classes: Sequence[str] | None = None,
    include_absent: bool = False,
    with_breakdowns: bool = True,
    distance_bands: Sequence[tuple[str, float, float]] = DISTANCE_BANDS,
    config_name: str = CONFIG_NAME,
) -> dict:
    """nuScenes detection metrics of ``predictions`` against ``ground_truth`` (both ego frame).

    The evaluated samples are the keys of ``ground_truth`` (a sample without GT boxes still counts:
    its predictions are false positives); predictions for other tokens are ignored and counted in
    ``ignored_prediction_samples``; a missing prediction entry means no detections. ``meta`` (per
    sample: ``condition``, optionally ``ego_to_global``, ``gt_num_pts``) drives the condition
    breakdown. Returns the report dict (see docs/evaluation.md).
    """
    t0 = time.perf_counter()
    cfg = detection_config(config_name)
    tokens = list(ground_truth.keys())
    gt = devkit_filter(to_eval_boxes(ground_truth, tokens, True, meta), cfg.class_range)
    pred = devkit_filter(to_eval_boxes(predictions, tokens, False, meta, cfg.max_boxes_per_sample),
                         cfg.class_range)
    report = evaluate_eval_boxes(gt, pred, classes, include_absent, cfg=cfg)
    report["ignored_prediction_samples"] = len(set(predictions) - set(ground_truth))
    report["include_absent"] = bool(include_absent)
    report["config"] = {"name": config_name, **_config_summary(cfg)}
    if with_breakdowns:
        report.update(breakdowns(gt, pred, meta, classes, include_absent, config_name, distance_bands))
    report["eval_seconds"] = time.perf_counter() - t0
    return report


def _config_summary(cfg) -> dict:
    return {"class_range": dict(cfg.class_range), "dist_ths": list(cfg.dist_ths), "dist_th_tp": cfg.dist_th_tp,
            "min_recall": cfg.min_recall, "min_precision": cfg.min_precision,
            "max_boxes_per_sample": cfg.max_boxes_per_sample, "mean_ap_weight": cfg.mean_ap_weight}


__all__ = [
    "CONDITIONS", "DISTANCE_BANDS", "TP_NAMES", "boxes_to_detection_boxes", "breakdowns", "detection_config",
    "devkit_filter", "evaluate", "evaluate_eval_boxes", "metrics_to_dict", "resolve_classes", "run_devkit",
    "to_eval_boxes", "yaw_to_quaternion",
]
