"""The model card's comparison lines: means over the seeds actually in the ablation's results."""

from __future__ import annotations

import json
from pathlib import Path

from imkd_ros.train.ship import _augmentation, _comparison


def test_comparison_names_the_seeds_it_averages(tmp_path: Path) -> None:
    res = {"imkd": [{"seed": 1, "val": {"NDS": 0.30, "mAP": 0.20}}, {"seed": 2, "val": {"NDS": 0.34, "mAP": 0.10}},
                    None],
           "no_distill": [{"seed": 2, "val": {"NDS": 0.28, "mAP": 0.18}}]}
    (tmp_path / "results.json").write_text(json.dumps(res))
    lines = _comparison({"student": {"run": str(tmp_path / "imkd_s2")}})
    assert "- full IMKD student, this recipe: NDS 0.320, mAP 0.150 (seeds 1, 2)" in lines
    assert "- camera + radar student without distillation: NDS 0.280, mAP 0.180 (seed 2)" in lines
    assert not any("camera-only" in ln for ln in lines)
    assert _comparison({"student": {"run": str(tmp_path / "elsewhere" / "x")}}) == [
        "Same split, same budget, other rows: docs/ablation.md."]


def test_card_describes_the_runs_own_augmentation():
    """The card reads each run's train_config.json: a left/right-only student is not called 'both flips'."""
    bev = {"rotate_deg": 22.5, "scale": [0.95, 1.05], "flip_x": True, "flip_y": False}
    img = {"image": {"aug_resize": [0.9, 1.1], "aug_flip": True, "flip_with_bev": True}}
    text = _augmentation({"bev_aug": bev, "img_aug": True}, img)
    assert "left/right mirror only" in text and "mirrored exactly with the BEV" in text and "0.9-1.1" in text
    both = _augmentation({"bev_aug": {**bev, "flip_y": True}}, None)
    assert "left/right and front/back mirrors" in both and "image" not in both
    assert _augmentation({"bev_aug": None}, None) == "no BEV augmentation"
