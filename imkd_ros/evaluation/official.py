"""The official path: nuScenes submission JSON (global frame) + the devkit's ``DetectionEval``.

Predictions in the keyframe ego frame are moved to the global frame with the ego pose of the
sample's key ``LIDAR_TOP`` sample_data (the pose DetectionEval measures distances from), written
as the nuScenes results file, and scored by ``DetectionEval`` against the dataset's annotations.

Split resolution (DetectionEval only understands the devkit's hard-coded scene lists, which need a
matching version suffix, or a custom ``<dataroot>/<version>/splits.json`` whose split name is *not*
a predefined one):

* ``devkit``: the split resolves inside DetectionEval (real nuScenes val/mini_val, or a custom name
  in splits.json) and the results cover every sample of it -> plain ``DetectionEval``.
* ``tokens``: otherwise (our synthetic world's ``val`` in its splits.json, ``--max-samples``, a
  version the devkit's split check rejects) -> ``TokenDetectionEval``, a DetectionEval whose
  sample list is given explicitly; loading, ego distances, filtering (including bike racks) and
  ``evaluate`` are the devkit's own functions.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from nuscenes.eval.common.loaders import (
    add_center_dist,
    filter_eval_boxes,
    load_gt_of_sample_tokens,
    load_prediction_of_sample_tokens,
)
from nuscenes.eval.detection.data_classes import DetectionBox
from nuscenes.eval.detection.evaluate import DetectionEval
from nuscenes.utils.splits import create_splits_scenes, get_scenes_of_custom_split, is_predefined_split
from pyquaternion import Quaternion

from imkd_ros.constants import CLASSES, LIDAR_NAME
from imkd_ros.data.nuscenes_reader import get_nuscenes, load_split_scenes, parse_condition
from imkd_ros.evaluation.metrics import (
    CONFIG_NAME,
    DISTANCE_BANDS,
    attribute_name,
    breakdowns,
    detection_config,
    evaluate_eval_boxes,
    ranked_valid_predictions,
)
from imkd_ros.types import Boxes

DEFAULT_MODALITY: dict[str, bool] = {
    "use_camera": True,
    "use_lidar": False,
    "use_radar": True,
    "use_map": False,
    "use_external": False,
}


# ------------------------------------------------------------------------------------- geometry
def _quat_to_rotmat(q: Sequence[float]) -> np.ndarray:
    return Quaternion(*[float(v) for v in q]).rotation_matrix


def _rotmat_to_quat(r: np.ndarray) -> tuple[float, float, float, float]:
    q = Quaternion(matrix=np.asarray(r, np.float64), atol=1e-6).normalised
    return tuple(float(v) for v in q.elements)  # type: ignore[return-value]


def ego_pose_matrix(nusc, sample_token: str) -> np.ndarray:
    """4x4 ego -> global of the sample's key LIDAR_TOP sample_data (DetectionEval's reference)."""
    sample = nusc.get("sample", sample_token)
    sd = nusc.get("sample_data", sample["data"][LIDAR_NAME])
    pose = nusc.get("ego_pose", sd["ego_pose_token"])
    m = np.eye(4)
    m[:3, :3] = _quat_to_rotmat(pose["rotation"])
    m[:3, 3] = pose["translation"]
    return m


def boxes_to_results(sample_token: str, boxes: Boxes | None, ego_to_global: np.ndarray,
                     max_boxes: int = 500) -> list[dict]:
    """One sample's ego-frame ``Boxes`` as nuScenes result dicts in the global frame."""
    if boxes is None or len(boxes) == 0:
        return []
    m = np.asarray(ego_to_global, np.float64)
    rot, trans = m[:3, :3], m[:3, 3]
    out = []
    for i in ranked_valid_predictions(boxes, max_boxes):
        label = int(boxes.labels[i])
        yaw = float(boxes.yaw[i])
        rz = np.array([[np.cos(yaw), -np.sin(yaw), 0.0], [np.sin(yaw), np.cos(yaw), 0.0], [0.0, 0.0, 1.0]])
        center = rot @ np.asarray(boxes.center[i], np.float64) + trans
        vel = rot @ np.array([float(boxes.velocity[i, 0]), float(boxes.velocity[i, 1]), 0.0])
        out.append({
            "sample_token": sample_token,
            "translation": [float(v) for v in center],
            "size": [float(v) for v in boxes.size[i]],
            "rotation": list(_rotmat_to_quat(rot @ rz)),
            "velocity": [float(vel[0]), float(vel[1])],
            "detection_name": CLASSES[label],
            "detection_score": float(boxes.scores[i]),
            "attribute_name": attribute_name(boxes.attributes[i]),
        })
    return out


def make_submission(predictions: Mapping[str, Boxes | None], ego_to_global: Mapping[str, np.ndarray],
                    tokens: Sequence[str] | None = None, modality: Mapping[str, bool] | None = None,
                    max_boxes: int = 500) -> dict:
    """The nuScenes results dict: ``{"meta": modality, "results": {token: [box, ...]}}``.

    ``tokens`` (default: the prediction keys) are all written, empty lists included, because
    DetectionEval requires an entry for every sample of the split.
    """
    tokens = list(predictions) if tokens is None else list(tokens)
    results = {tok: boxes_to_results(tok, predictions.get(tok), ego_to_global[tok], max_boxes) for tok in tokens}
    return {"meta": dict(modality or DEFAULT_MODALITY), "results": results}


def write_submission(path: str | Path, predictions: Mapping[str, Boxes | None], nusc=None,
                     ego_to_global: Mapping[str, np.ndarray] | None = None, tokens: Sequence[str] | None = None,
                     modality: Mapping[str, bool] | None = None) -> Path:
    """Write the results JSON; ego poses from ``ego_to_global`` or looked up in ``nusc``."""
    tokens = list(predictions) if tokens is None else list(tokens)
    poses = dict(ego_to_global or {})
    for tok in tokens:
        if tok not in poses:
            if nusc is None:
                raise ValueError(f"no ego pose for sample {tok}: pass nusc or ego_to_global")
            poses[tok] = ego_pose_matrix(nusc, tok)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(make_submission(predictions, poses, tokens, modality)))
    return path


# ----------------------------------------------------------------------------------- evaluation
def _detection_eval_class():
    class TokenDetectionEval(DetectionEval):
        """DetectionEval over an explicit list of sample tokens (any split definition)."""

        def __init__(self, nusc, config, result_path: str, sample_tokens: Sequence[str], output_dir: str,
                     verbose: bool = False):
            self.nusc, self.result_path, self.eval_set = nusc, result_path, "tokens"
            self.output_dir, self.verbose, self.cfg = output_dir, verbose, config
            assert os.path.exists(result_path), "Error: The result file does not exist!"
            self.plot_dir = os.path.join(output_dir, "plots")
            os.makedirs(self.plot_dir, exist_ok=True)
            tokens = list(sample_tokens)
            self.pred_boxes, self.meta = load_prediction_of_sample_tokens(
                result_path, config.max_boxes_per_sample, DetectionBox, sample_tokens=tokens, verbose=verbose)
            self.gt_boxes = load_gt_of_sample_tokens(nusc, tokens, DetectionBox, verbose=verbose)
            self.pred_boxes = add_center_dist(nusc, self.pred_boxes)
            self.gt_boxes = add_center_dist(nusc, self.gt_boxes)
            # The devkit's filter needs one box somewhere to learn the box type.
            if self.pred_boxes.all:
                self.pred_boxes = filter_eval_boxes(nusc, self.pred_boxes, config.class_range, verbose=verbose)
            if self.gt_boxes.all:
                self.gt_boxes = filter_eval_boxes(nusc, self.gt_boxes, config.class_range, verbose=verbose)
            self.sample_tokens = self.gt_boxes.sample_tokens

    return DetectionEval, TokenDetectionEval


def split_sample_tokens(nusc, dataroot: str | Path, version: str, split: str) -> list[str]:
    """Sample tokens of ``split``, scenes from the dataset's split file or the devkit's lists."""
    names = set(load_split_scenes(dataroot, version, split))
    tokens = []
    for scene in nusc.scene:
        if scene["name"] not in names:
            continue
        tok = scene["first_sample_token"]
        while tok:
            tokens.append(tok)
            tok = nusc.get("sample", tok)["next"]
    return tokens


def devkit_split_tokens(nusc, split: str) -> list[str] | None:
    """The samples DetectionEval itself would evaluate for ``split``, or None if it cannot resolve it."""
    if is_predefined_split(split):
        suffix = {"train": "trainval", "val": "trainval", "train_detect": "trainval", "train_track": "trainval",
                  "mini_train": "mini", "mini_val": "mini", "test": "test"}[split]
        if not nusc.version.endswith(suffix):
            return None
        names = set(create_splits_scenes()[split])
        custom = Path(nusc.dataroot) / nusc.version / "splits.json"
        if custom.is_file():  # our own split file says otherwise: the devkit would ignore it
            table = json.loads(custom.read_text())
            if split in table and set(table[split]) != names:
                return None
    else:
        try:
            names = set(get_scenes_of_custom_split(split, nusc))
        except (ValueError, OSError):
            return None
    tokens = [s["token"] for s in nusc.sample if nusc.get("scene", s["scene_token"])["name"] in names]
    return tokens or None


def official_evaluate(
    nusc,
    result_path: str | Path,
    split: str | None = None,
    sample_tokens: Sequence[str] | None = None,
    output_dir: str | Path | None = None,
    classes: Sequence[str] | None = None,
    include_absent: bool = False,
    with_breakdowns: bool = True,
    distance_bands: Sequence[tuple[str, float, float]] = DISTANCE_BANDS,
    config_name: str = CONFIG_NAME,
    conditions_by_token: Mapping[str, str] | None = None,
) -> dict:
    """Score a nuScenes results file with the devkit's DetectionEval; returns the report dict.

    Give ``split`` (resolved as the module docstring says) or explicit ``sample_tokens``. The
    class list follows metrics.evaluate (present classes unless ``include_absent``), so both paths
    give the same numbers on the same boxes; ``include_absent=True`` with no ``classes`` is the
    leaderboard's 10-class mAP/NDS.
    """
    detection_eval, token_eval = _detection_eval_class()
    cfg = detection_config(config_name)
    result_path = str(result_path)
    results = json.loads(Path(result_path).read_text())["results"]
    mode = "tokens"
    missing: list[str] = []
    tmp = None
    if output_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="imkd_eval_")
        output_dir = tmp.name
    try:
        if sample_tokens is None:
            if split is None:
                raise ValueError("give split or sample_tokens")
            native = devkit_split_tokens(nusc, split)
            has_boxes = any(len(v) for v in results.values())
            if native is not None and set(native) == set(results) and has_boxes:
                mode = "devkit"
                ev = detection_eval(nusc, cfg, result_path, split, str(output_dir), verbose=False)
            else:
                sample_tokens = split_sample_tokens(nusc, nusc.dataroot, nusc.version, split)
                missing = [t for t in sample_tokens if t not in results]
                if missing:  # e.g. --max-samples: evaluate the samples that were predicted
                    sample_tokens = [t for t in sample_tokens if t in results]
                    if not sample_tokens:
                        raise ValueError(f"the results file has no sample of split {split!r}")
        if mode == "tokens":
            assert sample_tokens is not None  # given, or taken from the split above
            ev = token_eval(nusc, cfg, result_path, list(sample_tokens), str(output_dir))
        gt, pred = ev.gt_boxes, ev.pred_boxes
        report = evaluate_eval_boxes(gt, pred, classes, include_absent, cfg=cfg)
        report["split"], report["split_mode"] = split, mode
        report["split_samples_without_results"] = len(missing)
        report["include_absent"] = bool(include_absent)
        report["result_meta"] = ev.meta
        if with_breakdowns:
            meta = None
            if conditions_by_token is None:
                conditions_by_token = conditions_of(nusc, gt.sample_tokens)
            meta = {t: {"condition": c} for t, c in conditions_by_token.items()}
            report.update(breakdowns(gt, pred, meta, classes, include_absent, config_name, distance_bands))
        return report
    finally:
        if tmp is not None:
            tmp.cleanup()


def conditions_of(nusc, tokens: Sequence[str]) -> dict[str, str]:
    """Sample -> condition parsed from its scene description (as the reader's meta)."""
    out = {}
    for tok in tokens:
        scene = nusc.get("scene", nusc.get("sample", tok)["scene_token"])
        out[tok] = parse_condition(scene.get("description", ""))
    return out


def evaluate_results_file(dataroot: str | Path, version: str, result_path: str | Path, split: str,
                          **kwargs: Any) -> dict:
    """Convenience: load the dataset through the reader's cached NuScenes and run official_evaluate."""
    nusc = get_nuscenes(dataroot, version)
    return official_evaluate(nusc, result_path, split=split, **kwargs)


__all__ = [
    "DEFAULT_MODALITY", "boxes_to_results", "conditions_of", "devkit_split_tokens", "ego_pose_matrix",
    "evaluate_results_file", "make_submission", "official_evaluate", "split_sample_tokens", "write_submission",
]
