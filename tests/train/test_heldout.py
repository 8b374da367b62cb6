"""The held-out diagnostics count what they claim: front/back flips split by motion, velocity error."""

from __future__ import annotations

import json
import math

import numpy as np
import torch

from imkd_ros.constants import CLASS_TO_ID
from imkd_ros.model.config import load_config
from imkd_ros.model.imkd import Student, save_checkpoint
from imkd_ros.train import heldout
from imkd_ros.train.heldout import _summary, diagnostics
from imkd_ros.types import Boxes


def _boxes(xy, yaw, vel, score=0.9) -> Boxes:
    n = len(xy)
    return Boxes(center=np.column_stack([np.asarray(xy, np.float32), np.zeros(n, np.float32)]),
                 size=np.tile(np.float32([1.9, 4.5, 1.6]), (n, 1)), yaw=np.asarray(yaw, np.float32),
                 velocity=np.asarray(vel, np.float32), labels=np.full(n, CLASS_TO_ID["car"]),
                 scores=np.full(n, score, np.float32), attributes=np.full(n, -1, np.int64))


def test_flips_split_by_motion_and_velocity_error():
    gt = _boxes([[0, 0], [10, 0], [20, 0], [30, 0]], [0.0, 0.0, 1.0, 0.5],
                [[5, 0], [0, 0], [0, 0], [np.nan, np.nan]])
    # mover right, parked one flipped, parked one right, unknown-velocity one flipped
    pred = _boxes([[0.2, 0], [10, 0.3], [20, 0], [30, 0]], [0.05, math.pi, 1.0, 0.5 - math.pi],
                  [[4, 0], [0, 0], [0.5, 0], [0, 0]])
    d = diagnostics({"t": pred}, {"t": gt})["car"]
    assert d["matched"] == 4 and d["flipped_share"] == 0.5
    assert d["flipped_moving"] == 0.0 and math.isclose(d["flipped_static"], 2 / 3)
    # the yaw error split the same way (an unknown velocity counts with the statics)
    assert math.isclose(d["yaw_err_moving"], 0.05, abs_tol=1e-6) and d["n_static"] == 3
    assert math.isclose(d["yaw_err_static"], 2 * math.pi / 3, abs_tol=1e-5)
    assert d["n_moving"] == 1 and math.isclose(d["vel_err_moving"], 1.0)
    assert math.isclose(d["vel_err_static"], 0.25)  # (0 + 0.5) / 2; the unknown one is left out
    # below the score floor nothing is matched
    assert diagnostics({"t": _boxes([[0, 0]], [0.0], [[0, 0]], score=0.1)}, {"t": gt}) == {}


def test_summary_keeps_the_per_class_heading_and_velocity_errors():
    """mAOE is a class mean; the summary keeps what each class adds to it."""
    report = {"NDS": 0.4, "mAP": 0.3, "mAOE": 1.0, "per_class": {
        "car": {"AP": 0.5, "AOE": 0.3, "AVE": 0.8, "AAE": 0.1, "num_gt": 2000, "AP@0.5": 0.2},
        "construction_vehicle": {"AP": 0.01, "AOE": 3.1, "AVE": None, "num_gt": 4}}}
    s = _summary(report)
    assert s["per_class"]["construction_vehicle"] == {"AP": 0.01, "AOE": 3.1, "AVE": None, "num_gt": 4}
    assert s["per_class"]["car"] == {"AP": 0.5, "AOE": 0.3, "AVE": 0.8, "num_gt": 2000}
    assert _summary({"NDS": 0.1})["per_class"] == {}


def test_a_camera_only_student_is_scored_without_radar(tmp_path, monkeypatch):
    """Its radar branch never saw a point: scored with radar it detects nothing (NDS 0 on every
    TP error 1.0 was what that looked like); the checkpoint's own record decides, not a flag."""
    torch.manual_seed(0)
    cfg = load_config("cpu")
    student = Student(cfg)
    save_checkpoint(tmp_path / "cam.pt", student, cfg, extra={"variant": "camera_only", "drop_radar": True})
    save_checkpoint(tmp_path / "fused.pt", student, cfg, extra={"variant": "no_distill", "drop_radar": False})
    save_checkpoint(tmp_path / "old.pt", student, cfg)  # before the trainer recorded it
    assert heldout.trained_without_radar(tmp_path / "cam.pt")
    assert not heldout.trained_without_radar(tmp_path / "fused.pt")
    assert not heldout.trained_without_radar(tmp_path / "old.pt")

    seen: dict[str, bool] = {}
    empty = {"NDS": 0.0, "mAP": 0.0, "mAOE": 1.0, "mAVE": 1.0, "by_condition": {}, "per_class": {}}

    def fake_eval(model, cfg, frames, teacher, node_threshold=0.3, batch_size=2, drop_radar=False):
        seen[str(len(seen))] = drop_radar
        return {"before_threshold": empty, f"at_{node_threshold}": empty, "diagnostics": {}}

    monkeypatch.setattr(heldout, "load_frames", lambda *a, **k: [])
    monkeypatch.setattr(heldout, "evaluate_model", fake_eval)
    out = tmp_path / "r.json"
    heldout.main(["--data", str(tmp_path), "--ckpt", str(tmp_path / "cam.pt"), str(tmp_path / "fused.pt"),
                  "--json", str(out)])
    assert list(seen.values()) == [True, False]
    res = json.loads(out.read_text())
    assert res[str(tmp_path / "cam.pt")]["radar_dropped"] and not res[str(tmp_path / "fused.pt")]["radar_dropped"]
