"""nuScenes detection results (submission JSON, global frame) -> ego-frame ``Boxes`` for renders.

The inverse of imkd_ros.evaluation.official.boxes_to_results, so ``imkd data render --results``
can overlay what ``imkd eval`` wrote (or any nuScenes results file) on a keyframe.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from imkd_ros.constants import ATTR_TO_ID, CLASS_TO_ID, NO_ATTRIBUTE
from imkd_ros.data.nuscenes_reader import invert_rigid, quat_to_rotmat, rotmat_yaw
from imkd_ros.types import Boxes


def load_results(path: str | Path) -> dict[str, list[dict]]:
    """``{sample_token: [result box, ...]}`` of a nuScenes results file."""
    data = json.loads(Path(path).read_text())
    return data["results"] if isinstance(data, dict) and "results" in data else data


def results_to_boxes(entries: list[dict], ego_to_global: np.ndarray) -> Boxes:
    """Result dicts (global frame) -> Boxes in the keyframe ego frame; unknown classes are skipped."""
    g2e = invert_rigid(np.asarray(ego_to_global, np.float64))
    rot, trans = g2e[:3, :3], g2e[:3, 3]
    rows = [e for e in entries if e.get("detection_name") in CLASS_TO_ID]
    if not rows:
        return Boxes.empty()
    center = np.array([rot @ np.asarray(e["translation"], np.float64) + trans for e in rows])
    yaw = np.array([rotmat_yaw(rot @ quat_to_rotmat(e["rotation"])) for e in rows])
    vel = np.array([(rot @ np.array([*np.asarray(e.get("velocity", (0.0, 0.0)), np.float64)[:2], 0.0]))[:2]
                    for e in rows])
    return Boxes(
        center=center.astype(np.float32),
        size=np.array([e["size"] for e in rows], np.float32),
        yaw=yaw.astype(np.float32),
        velocity=np.nan_to_num(vel).astype(np.float32),
        labels=np.array([CLASS_TO_ID[e["detection_name"]] for e in rows], np.int64),
        scores=np.array([e.get("detection_score", 1.0) for e in rows], np.float32),
        attributes=np.array([ATTR_TO_ID.get(e.get("attribute_name", ""), NO_ATTRIBUTE) for e in rows], np.int64),
    )
