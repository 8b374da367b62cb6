"""The model card's comparison lines: means over the seeds actually in the ablation's results."""

from __future__ import annotations

import json
from pathlib import Path

from imkd_ros.train.ship import _comparison


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
