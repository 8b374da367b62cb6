"""`imkd data render` / `imkd data to-bag` through the CLI, and results JSON -> Boxes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from imkd_ros.cli import main
from imkd_ros.data.nuscenes_reader import NuScenesReader
from imkd_ros.data.results import load_results, results_to_boxes
from imkd_ros.evaluation.official import boxes_to_results

from .nusc_fixture import SCENE


def test_results_round_trip(fixture_root: Path, fixture_version: str) -> None:
    reader = NuScenesReader(fixture_root, fixture_version)
    frame = reader.frame(reader.sample_tokens()[1])
    entries = boxes_to_results(frame.meta["sample_token"], frame.gt, frame.meta["ego_to_global"])
    back = results_to_boxes(entries, frame.meta["ego_to_global"])
    order = np.argsort(-frame.gt.scores, kind="stable")
    np.testing.assert_allclose(back.center, frame.gt.center[order], atol=1e-4)
    np.testing.assert_allclose(back.size, frame.gt.size[order], atol=1e-6)
    np.testing.assert_allclose(np.cos(back.yaw - frame.gt.yaw[order]), 1.0, atol=1e-6)
    np.testing.assert_allclose(back.velocity, frame.gt.velocity[order], atol=1e-4)
    assert back.labels.tolist() == frame.gt.labels[order].tolist()
    assert back.attributes.tolist() == frame.gt.attributes[order].tolist()


def test_render_and_to_bag_commands(fixture_root: Path, fixture_version: str, tmp_path: Path, capsys) -> None:
    reader = NuScenesReader(fixture_root, fixture_version)
    token = reader.sample_tokens()[2]
    frame = reader.frame(token)

    pred = frame.gt.select(np.arange(len(frame.gt)))
    pred.center[:, 0] += 1.0
    pred.scores[:] = 0.7
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"meta": {}, "results": {token: boxes_to_results(token, pred,
                                                                                     frame.meta["ego_to_global"])}}))
    assert len(load_results(results)[token]) == len(frame.gt)
    out = tmp_path / "r.png"
    args = ["data", "render", "--dataroot", str(fixture_root), "--version", fixture_version, "--index", "2",
            "--out", str(out), "--results", str(results), "--tile-width", "200"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert f"sample {token}" in text and "2 predictions drawn" in text
    assert Image.open(out).size[0] > 600
    assert main(["data", "render", "--dataroot", str(fixture_root), "--sample", token,  # version found
                 "--out", str(tmp_path / "s.png")]) == 0
    bag = tmp_path / "bag"
    assert main(["data", "to-bag", "--dataroot", str(fixture_root), "--version", fixture_version, "--scene", SCENE,
                 "--out", str(bag), "--storage", "sqlite3", "--no-lidar"]) == 0
    text = capsys.readouterr().out
    assert "/ground_truth/objects" in text and "/lidar_top/points" not in text
    assert any(bag.glob("*.db3"))
