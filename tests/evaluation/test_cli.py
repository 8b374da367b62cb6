"""``imkd eval`` end to end on the fixture, and the report writers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imkd_ros.cli import main
from imkd_ros.data.nuscenes_reader import NuScenesReader, ReaderConfig
from imkd_ros.evaluation import evaluate, write_reports
from imkd_ros.evaluation.official import write_submission
from imkd_ros.model.config import load_config
from imkd_ros.model.imkd import Student, save_checkpoint
from imkd_ros.types import Boxes

from . import fixture

SPLITS = {"train": ["scene-e003"], "val": ["scene-e001", "scene-e002"]}


@pytest.fixture(scope="module")
def dataroot(tmp_path_factory):
    return fixture.build(tmp_path_factory.mktemp("evalcli"), splits=SPLITS)


def test_report_writers_handle_undefined_numbers(tmp_path):
    gt = {"a": Boxes(center=np.array([[5.0, 1.0, 0.5]], np.float32), size=np.array([[0.4, 0.4, 0.8]], np.float32),
                     yaw=np.zeros(1, np.float32), velocity=np.zeros((1, 2), np.float32),
                     labels=np.array([9]), scores=np.ones(1, np.float32), attributes=np.array([-1]))}
    rep = evaluate(gt, gt, {"a": {"condition": "fog"}})  # cones only: AOE/AVE/AAE undefined
    assert rep["mAOE"] is None and rep["NDS"] == pytest.approx((5 + 2 + 0 * 3) / 10)
    js, md = write_reports({**rep, "info": {"what": "cones"}}, tmp_path / "r", title="T")
    data = json.loads(js.read_text())  # strict JSON: no NaN
    assert data["mAP"] == pytest.approx(1.0) and data["by_condition"]["fog"]["num_gt"] == 1
    text = md.read_text()
    assert text.startswith("# T") and "## Per class" in text and "## Per condition" in text
    assert "| traffic_cone |" in text and "| fog |" in text and "| 0-20m |" in text


def test_eval_results_file(dataroot, tmp_path):
    """``imkd eval --results``: the official DetectionEval on a submission (perfect boxes -> 1.0)."""
    reader = NuScenesReader(dataroot, "v1.0-evalfix", ReaderConfig(nan_velocity_to_zero=False))
    tokens = reader.sample_tokens(split="val")
    preds = {t: reader.gt_boxes(t)[0] for t in tokens}
    res = write_submission(tmp_path / "results.json", preds, nusc=reader.nusc, tokens=tokens)
    assert main(["eval", "--dataroot", str(dataroot), "--version", "v1.0-evalfix", "--split", "val",
                 "--results", str(res), "--out", str(tmp_path / "out")]) == 0
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data["mAP"] == pytest.approx(1.0) and data["NDS"] == pytest.approx(1.0, abs=1e-5)
    assert data["split_mode"] == "tokens" and data["num_samples"] == len(tokens) == 8
    assert set(data["by_condition"]) == {"day", "night"}
    assert (tmp_path / "out" / "report.md").is_file()


def test_eval_checkpoint(dataroot, tmp_path):
    """``imkd eval --checkpoint``: student over the split via the reader, in-memory + official reports."""
    torch = pytest.importorskip("torch")

    torch.manual_seed(0)
    cfg = load_config("cpu")
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(ckpt, Student(cfg), cfg)
    out = tmp_path / "eval"
    assert main(["eval", "--dataroot", str(dataroot), "--version", "v1.0-evalfix", "--split", "val",
                 "--checkpoint", str(ckpt), "--max-samples", "2", "--out", str(out), "--threads", "1"]) == 0
    data = json.loads((out / "report.json").read_text())
    assert data["info"]["samples"] == 2 and data["num_samples"] == 2
    assert data["official"]["num_samples"] == 2
    for k in ("mAP", "NDS"):  # same boxes through both paths
        assert data[k] == pytest.approx(data["official"][k], abs=1e-6)
    sub = json.loads((out / "results.json").read_text())
    assert len(sub["results"]) == 2 and sub["meta"]["use_radar"]
    assert "| official (DetectionEval) |" in (out / "report.md").read_text()
