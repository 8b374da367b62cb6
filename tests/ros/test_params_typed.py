"""Typed parameters (issue 12): a wrong-typed override is an error naming the parameter, also next
to a params file (where rclpy used to keep the file's value silently); an empty radar list works."""

from __future__ import annotations

from pathlib import Path

import pytest
import rclpy
from rclpy.context import Context

from imkd_ros.ros.params import NodeParams, ParameterError, cli_overrides, coerce, declare_and_read, validate


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("score_threshold", "high", "a number"),
    ("score_threshold", True, "a number"),
    ("max_detections", 1.5, "an integer"),
    ("backend", 3, "a string"),
    ("camera_topics", "/a", "a list of strings"),
    ("radar_topics", [1, 2], "a list of strings"),
])
def test_wrong_type_names_parameter_and_types(name, value, expected) -> None:
    with pytest.raises(ParameterError, match=f"parameter '{name}': expected {expected}"):
        coerce(name, value, getattr(NodeParams(), name))


def test_right_types_pass() -> None:
    assert coerce("score_threshold", 1, 0.3) == 1.0 and isinstance(coerce("score_threshold", 1, 0.3), float)
    assert coerce("radar_topics", None, ["/a"]) == []  # `radar_topics:=[]` arrives untyped
    assert validate(NodeParams(radar_topics=[])).radar_topics == []


def test_cli_overrides_parsed_like_rcl() -> None:
    argv = ["node", "--ros-args", "--params-file", "x.yaml", "-p", "score_threshold:=high", "--param",
            "imkd_detector:max_detections:=5", "-p", "radar_topics:=[]", "-r", "__ns:=/p", "--", "-p", "x:=1"]
    assert cli_overrides(argv) == {"score_threshold": "high", "max_detections": 5, "radar_topics": []}


def test_declare_and_read_refuses_string_next_to_params_file(tmp_path) -> None:
    """rclpy keeps the file's 0.3 for `-p score_threshold:=high`; declare_and_read refuses it."""

    yaml_file = tmp_path / "p.yaml"
    yaml_file.write_text("/**:\n  ros__parameters:\n    score_threshold: 0.3\n")
    argv = ["x", "--ros-args", "--params-file", str(yaml_file), "-p", "score_threshold:=high"]
    ctx = Context()
    rclpy.init(args=argv, context=ctx)
    try:
        node = rclpy.create_node("imkd_detector", context=ctx)
        with pytest.raises(ParameterError, match="'score_threshold'"):
            declare_and_read(node, argv)
        node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)


def test_empty_radar_list_next_to_params_file_runs_camera_only(tmp_path) -> None:
    """`radar_topics:=[]` with the shipped params file (which lists five radars): camera-only."""

    argv = ["x", "--ros-args", "--params-file", str(Path(__file__).resolve().parents[2] / "config" / "detector.yaml"),
            "-p", "radar_topics:=[]", "-p", "score_threshold:=0.5"]
    ctx = Context()
    rclpy.init(args=argv, context=ctx)
    try:
        node = rclpy.create_node("imkd_detector", context=ctx)
        p = declare_and_read(node, argv)
        assert p.radar_topics == [] and p.score_threshold == 0.5
        assert node.get_parameter("radar_topics").value == []
        node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)
