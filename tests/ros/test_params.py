from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

import pytest
import yaml

from imkd_ros.ros.params import DESCRIPTIONS, NodeParams, ParameterError, validate

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_valid_and_documented() -> None:
    validate(NodeParams())
    assert set(DESCRIPTIONS) == {f.name for f in fields(NodeParams)}


def test_shipped_params_file_matches_the_node() -> None:
    data = yaml.safe_load((ROOT / "config" / "detector.yaml").read_text())
    params = data["/**"]["ros__parameters"]
    assert set(params) == {f.name for f in fields(NodeParams)}
    validate(NodeParams(**params))


@pytest.mark.parametrize(("change", "name"), [
    ({"camera_topics": ["/a"] * 6}, "camera_topics"),
    ({"camera_topics": ["/a", "/b"]}, "camera_topics"),
    ({"backend": "cuda"}, "backend"),
    ({"precision": "int8", "backend": "torch-cpu"}, "precision"),
    ({"score_threshold": 1.5}, "score_threshold"),
    ({"pending_frames": 0}, "pending_frames"),
    ({"pending_frames": 1000}, "pending_frames"),
    ({"pipeline_stages": 3}, "pipeline_stages"),
    ({"calibration_source": "yaml"}, "calibration_file"),
    ({"output_frame": "/base_link"}, "output_frame"),
    ({"camera_timeout_ms": 10.0}, "camera_timeout_ms"),
])
def test_bad_values_name_the_parameter(change: dict, name: str) -> None:
    with pytest.raises(ParameterError, match=f"'{name}'"):
        validate(replace(NodeParams(), **change))
