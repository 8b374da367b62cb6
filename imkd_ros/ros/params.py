"""The node's parameters: declared with descriptors, read once, validated with clear errors.

Kept apart from the node so the launch test and the docs can list them, and so a wrong value
stops the node at start-up with the parameter's name instead of failing later on the car.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields
from typing import Any

import yaml

from imkd_ros.constants import CAMERA_NAMES, RADAR_NAMES

BACKENDS = ("auto", "tensorrt", "torch-cuda", "torch-cpu")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")


def _default_cameras(suffix: str) -> list[str]:
    return [f"/{n.lower()}/{suffix}" for n in CAMERA_NAMES]


@dataclass
class NodeParams:
    camera_topics: list[str] = field(default_factory=lambda: _default_cameras("image_raw/compressed"))
    camera_info_topics: list[str] = field(default_factory=lambda: _default_cameras("camera_info"))
    radar_topics: list[str] = field(default_factory=lambda: [f"/{n.lower()}/points" for n in RADAR_NAMES])
    base_frame: str = "base_link"
    odom_frame: str = "odom"
    output_frame: str = "base_link"
    calibration_source: str = "tf"
    calibration_file: str = ""
    model: str = ""
    model_override: str = ""
    backend: str = "auto"
    precision: str = "fp32"
    score_threshold: float = 0.3
    max_detections: int = 300
    sync_spread_ms: float = 60.0
    camera_timeout_ms: float = 150.0
    radar_window_ms: float = 500.0
    radar_max_sweeps: int = 6
    radar_wait_ms: float = 80.0
    keyframe_rate_hz: float = 0.0
    pending_frames: int = 1
    pipeline_stages: int = 2
    diagnostics_period_s: float = 1.0
    health_window_s: float = 3.0
    radar_max_points_per_sweep: int = 512
    max_image_pixels: int = 4096 * 3072

    @property
    def model_path(self) -> str:
        return self.model_override or self.model


DESCRIPTIONS: dict[str, str] = {
    "camera_topics": "Six camera topics, nuScenes order; '/compressed' suffix = CompressedImage, else Image.",
    "camera_info_topics": "Six CameraInfo topics, same order as camera_topics.",
    "radar_topics": "Radar PointCloud2 topics with the nuScenes radar fields (x, y, z, rcs, vx_comp, ...).",
    "base_frame": "Ego frame the model works in.",
    "odom_frame": "Fixed frame for ego motion between radar sweeps and the keyframe.",
    "output_frame": "Frame of the published detections.",
    "calibration_source": "Where camera/radar extrinsics come from: 'tf' (/tf_static) or 'yaml'.",
    "calibration_file": "Rig YAML (imkd_ros/rig format) when calibration_source is 'yaml'.",
    "model": "Checkpoint (.pt) or TensorRT engine; empty = the shipped student in models/.",
    "model_override": "Overrides 'model' when not empty (the launch file's model:= argument).",
    "backend": "Inference backend: " + " | ".join(BACKENDS) + ".",
    "precision": "Numeric precision: " + " | ".join(PRECISIONS) + " (int8: TensorRT only; bf16: torch backends, "
                 "on a CPU only where it is native, else fp32).",
    "score_threshold": "Detections below this score are not published.",
    "max_detections": "At most this many detections per keyframe (highest scores).",
    "sync_spread_ms": "Largest stamp spread of the six images of one keyframe.",
    "camera_timeout_ms": "After this, a keyframe runs with the missing camera masked (reported).",
    "radar_window_ms": "Radar sweeps within this window before the keyframe are used.",
    "radar_max_sweeps": "Newest sweeps per radar used per keyframe.",
    "radar_wait_ms": "Hold a keyframe up to this long for each radar's first sweep after it, so the sweeps "
                     "used depend on stamps, not on arrival order (replay == live); 0 = no wait, less latency.",
    "keyframe_rate_hz": "Run the model at most at this rate (0 = every complete camera set).",
    "pending_frames": "Keyframes waiting for the model; when full the oldest is dropped and counted.",
    "pipeline_stages": "2: preprocess the next keyframe while the network runs (more keyframes/s, ~one "
                       "network time more latency); 1: one keyframe at a time (lowest latency).",
    "diagnostics_period_s": "Period of /diagnostics.",
    "health_window_s": "Diagnostics levels are computed over this sliding window (a fault clears after it).",
    "radar_max_points_per_sweep": "Points kept per radar sweep (nearest / strongest first; more are counted).",
    "max_image_pixels": "Images whose header claims more pixels are dropped before decoding (counted).",
}


class ParameterError(ValueError):
    """A parameter value the node cannot run with; the message names the parameter."""


def validate(p: NodeParams) -> NodeParams:
    def bad(name: str, why: str) -> ParameterError:
        return ParameterError(f"parameter '{name}': {why} (got {getattr(p, name)!r})")

    if len(p.camera_topics) != len(CAMERA_NAMES) or not all(p.camera_topics):
        raise bad("camera_topics", f"needs {len(CAMERA_NAMES)} non-empty topic names in nuScenes order")
    if len(p.camera_info_topics) != len(CAMERA_NAMES) or not all(p.camera_info_topics):
        raise bad("camera_info_topics", f"needs {len(CAMERA_NAMES)} non-empty topic names")
    if len(set(p.camera_topics)) != len(p.camera_topics):
        raise bad("camera_topics", "topics must be distinct")
    if not all(p.radar_topics) or len(set(p.radar_topics)) != len(p.radar_topics):
        raise bad("radar_topics", "topics must be non-empty and distinct (an empty list runs without radar)")
    for name in ("base_frame", "odom_frame", "output_frame"):
        if not getattr(p, name) or getattr(p, name).startswith("/"):
            raise bad(name, "must be a non-empty frame id without a leading '/'")
    if p.calibration_source not in ("tf", "yaml"):
        raise bad("calibration_source", "must be 'tf' or 'yaml'")
    if p.calibration_source == "yaml" and not p.calibration_file:
        raise bad("calibration_file", "is required when calibration_source is 'yaml'")
    if p.backend not in BACKENDS:
        raise bad("backend", "must be one of " + ", ".join(BACKENDS))
    if p.precision not in PRECISIONS:
        raise bad("precision", "must be one of " + ", ".join(PRECISIONS))
    if p.precision == "int8" and p.backend not in ("tensorrt", "auto"):
        raise bad("precision", "int8 needs the tensorrt backend")
    if p.precision == "bf16" and p.backend == "tensorrt":
        raise bad("precision", "bf16 runs on the torch backends (torch-cpu, torch-cuda, auto), not tensorrt")
    if not 0.0 <= p.score_threshold <= 1.0:
        raise bad("score_threshold", "must lie in [0, 1]")
    if p.max_detections < 1:
        raise bad("max_detections", "must be >= 1")
    for name in ("sync_spread_ms", "camera_timeout_ms", "radar_window_ms", "diagnostics_period_s"):
        if getattr(p, name) <= 0:
            raise bad(name, "must be > 0")
    if p.camera_timeout_ms < p.sync_spread_ms:
        raise bad("camera_timeout_ms", "must be >= sync_spread_ms")
    if p.radar_wait_ms < 0:
        raise bad("radar_wait_ms", "must be >= 0")
    if p.radar_max_sweeps < 1:
        raise bad("radar_max_sweeps", "must be >= 1")
    if p.keyframe_rate_hz < 0:
        raise bad("keyframe_rate_hz", "must be >= 0")
    if not 0.5 <= p.health_window_s <= 60.0:
        raise bad("health_window_s", "must lie in [0.5, 60]")
    if not 1 <= p.radar_max_points_per_sweep <= 65536:
        raise bad("radar_max_points_per_sweep", "must lie in [1, 65536]")
    if not 64 * 64 <= p.max_image_pixels <= 100_000_000:
        raise bad("max_image_pixels", "must lie in [4096, 1e8]")
    if p.pipeline_stages not in (1, 2):
        raise bad("pipeline_stages", "must be 1 or 2")
    if not 1 <= p.pending_frames <= 16:
        raise bad("pending_frames", "must lie in [1, 16] (the queue is bounded on purpose)")
    return p


def coerce(name: str, value: Any, default: Any) -> Any:
    """``value`` as the type of ``default``, or ParameterError naming the parameter and both types.

    Why by hand: rclpy either raises its own exception for a wrong-typed override or (an empty
    list, ``radar_topics:=[]``) leaves the parameter "uninitialized"; the node must say which
    parameter is wrong, in one line, and run camera-only on an empty radar list."""
    def wrong(expected: str) -> ParameterError:
        return ParameterError(f"parameter '{name}': expected {expected}, got {value!r} ({type(value).__name__})")

    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise wrong("a bool")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong("a number")
        return float(value)  # YAML ints for float params are fine
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("an integer")
        return value
    if isinstance(default, str):
        if not isinstance(value, str):
            raise wrong("a string")
        return value
    if isinstance(default, list):
        if value is None:  # `name:=[]` arrives untyped
            return []
        if isinstance(value, str) or not all(isinstance(v, str) for v in value):
            raise wrong("a list of strings")
        return list(value)
    return value


def cli_overrides(argv: list[str]) -> dict[str, Any]:
    """``-p name:=value`` / ``--param name:=value`` pairs after ``--ros-args`` (YAML-parsed, as rcl does).

    Why: when a params file sets the same parameter, rcl keeps both values in one variant and rclpy
    picks the file's double over a command-line string, so ``-p score_threshold:=high`` would be
    silently ignored; the command line is checked here so it is refused instead."""

    out: dict[str, Any] = {}
    in_ros = False
    it = iter(argv)
    for tok in it:
        if tok == "--ros-args":
            in_ros = True
        elif tok == "--":
            in_ros = False
        elif in_ros and tok in ("-p", "--param"):
            item = next(it, "")
            name, sep, raw = item.partition(":=")
            if not sep:
                continue
            name = name.rsplit(":", 1)[-1]  # node-scoped form: node_name:param
            try:
                out[name] = yaml.safe_load(raw) if raw != "" else ""
            except yaml.YAMLError:
                out[name] = raw
    return out


def declare_and_read(node: Any, argv: list[str] | None = None) -> NodeParams:
    """Declare every NodeParams field on an rclpy node (with descriptors) and read it back, typed;
    ParameterError for a wrong-typed value, also one given with -p next to a params file."""

    from rcl_interfaces.msg import ParameterDescriptor  # noqa: PLC0415  (optional: ROS msgs; replay imports this without ROS)

    cli = cli_overrides(list(sys.argv if argv is None else argv))
    defaults = NodeParams()
    values: dict[str, Any] = {}
    for f in fields(NodeParams):
        default = getattr(defaults, f.name)
        # dynamic_typing: a wrong-typed override is read and refused by `coerce` with a clear error
        desc = ParameterDescriptor(description=DESCRIPTIONS[f.name], read_only=True, dynamic_typing=True)
        if f.name in cli:  # the command line wins over a params file (also for `radar_topics:=[]`)
            node.declare_parameter(f.name, coerce(f.name, cli[f.name], default), desc, ignore_override=True)
        else:
            node.declare_parameter(f.name, default, desc)
        values[f.name] = coerce(f.name, node.get_parameter(f.name).value, default)
    return validate(NodeParams(**values))
