"""The detector pipeline: synced keyframe inputs in, boxes in the output frame out.

One object, used by both the ROS node and the offline replay, so that what is validated on a
recording is exactly what runs on the car. It owns the transform buffer (calibration + ego motion),
builds the model's `Frame` (views without image, intrinsics or extrinsics are masked and reported),
brings radar sweeps into the keyframe ego frame, runs the detector and filters the result.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol, cast, runtime_checkable

import numpy as np

from imkd_ros.constants import CAMERA_NAMES
from imkd_ros.pipeline.radar import RadarSweepPoints, merge_sweeps
from imkd_ros.pipeline.transforms import TransformBuffer, TransformError
from imkd_ros.pipeline.validate import cap_radar_points
from imkd_ros.rig.intrinsics import decode_scale, scale_intrinsics
from imkd_ros.types import Boxes, Frame


class FrameDetector(Protocol):
    """What the pipeline needs of a model runtime (see imkd_ros.runtime for the backends)."""

    name: str

    def detect(self, frame: Frame) -> tuple[Boxes, dict[str, float]]:
        """Boxes in the frame's ego frame and per-stage timings in ms."""
        ...

    def decode_reduce(self, camera_width: int) -> int:
        """Decode reduction (1, 2, 4, 8) for a camera of this CameraInfo width."""
        ...


@runtime_checkable
class StagedDetector(FrameDetector, Protocol):
    """A detector whose ``detect`` splits in two: ``prepare`` (preprocessing: Python, holds the GIL)
    and ``finish`` (network + box decoding). The node runs them on two threads, so keyframe k+1 is
    prepared while keyframe k is in the network; ``detect(frame) == finish(prepare(frame))``."""

    def prepare(self, frame: Frame) -> Any:
        ...

    def finish(self, staged: Any) -> tuple[Boxes, dict[str, float]]:
        ...


@dataclass
class PipelineConfig:
    base_frame: str = "base_link"
    odom_frame: str = "odom"
    output_frame: str = "base_link"
    score_threshold: float = 0.3
    max_detections: int = 300
    # Radar points handed to the model (its padding size); None = the detector's cfg.radar_max_points.
    # Over it, the newest sweeps are kept whole and the rest by usefulness (nearest / strongest).
    radar_max_points: int | None = None


@dataclass
class CameraInput:
    """One decoded camera view. `intrinsics` is for an image of `info_size` (w, h) (CameraInfo);
    the image may be decoded smaller (reduced-size decode): the pipeline rescales K to the image,
    pixel-centre convention (imkd_ros.rig.intrinsics), and nowhere else."""

    image: np.ndarray | None  # (H, W, 3) uint8 RGB
    stamp_ns: int
    frame_id: str
    intrinsics: np.ndarray | None  # (3, 3)
    info_size: tuple[int, int] | None  # (width, height) the intrinsics refer to


@dataclass
class KeyframeInput:
    stamp_ns: int
    cameras: list[CameraInput | None]  # len 6, constants.CAMERA_NAMES order
    radar: list[RadarSweepPoints]
    gt: Boxes | None = None
    meta: dict = field(default_factory=dict)


@dataclass
class PipelineResult:
    stamp_ns: int
    frame_id: str
    boxes: Boxes
    timings_ms: dict[str, float]
    missing_cameras: list[str]
    radar_points: int
    frame: Frame | None = None  # kept for rendering/evaluation by the replay; None on the node


@dataclass
class PreparedKeyframe:
    """A keyframe between ``DetectorPipeline.prepare`` and ``finish``: its own view errors travel
    with it (with two keyframes in flight, ``last_view_errors`` may already be the next one's)."""

    stamp_ns: int
    frame: Frame
    missing: list[str]
    view_errors: dict[str, str]
    staged: Any  # StagedDetector.prepare's output; None for a plain detector (finish runs detect)
    prepare_ms: float


class DetectorPipeline:
    def __init__(self, detector: FrameDetector, config: PipelineConfig | None = None,
                 transforms: TransformBuffer | None = None) -> None:
        self.detector = detector
        self.config = config or PipelineConfig()
        self.tf = transforms or TransformBuffer()
        self.counters: Counter[str] = Counter()
        self._calib_cache: tuple[tuple, str] | None = None
        cap = self.config.radar_max_points
        if cap is None:
            cap = getattr(getattr(detector, "cfg", None), "radar_max_points", None)
        self.radar_cap: int | None = int(cap) if cap else None
        # Why each view of the last keyframe was masked ({camera name: reason}); read by health.
        self.last_view_errors: dict[str, str] = {}

    # -- calibration -------------------------------------------------------------------------
    def _camera_geometry(self, cam: CameraInput) -> tuple[np.ndarray, np.ndarray]:
        """(K for the decoded image size, cam_to_ego) or raise ValueError/TransformError."""
        if cam.intrinsics is None or cam.info_size is None:
            raise ValueError("no CameraInfo yet")
        h, w = cast(np.ndarray, cam.image).shape[:2]  # the caller checked the image
        sx, sy = decode_scale(cam.info_size, (w, h))  # ValueError if the image is not this camera's
        k = scale_intrinsics(cam.intrinsics, sx, sy)
        cam_to_ego = self.tf.lookup(self.config.base_frame, cam.frame_id, cam.stamp_ns)
        return k, cam_to_ego

    # -- one keyframe ------------------------------------------------------------------------
    def build_frame(self, inp: KeyframeInput) -> tuple[Frame, list[str]]:
        n = len(CAMERA_NAMES)
        intrinsics = np.tile(np.eye(3, dtype=np.float32), (n, 1, 1))
        cam_to_ego = np.tile(np.eye(4, dtype=np.float32), (n, 1, 1))
        valid = np.zeros(n, bool)
        images: list[np.ndarray | None] = [None] * n
        missing: list[str] = []
        why: list[str] = []
        errors: dict[str, str] = {}
        self.last_view_errors = errors
        for i, cam in enumerate(inp.cameras):
            if cam is None or cam.image is None:
                missing.append(CAMERA_NAMES[i])
                self.counters["camera_missing"] += 1
                why.append(f"{CAMERA_NAMES[i]}: no image")
                continue
            try:
                k, c2e = self._camera_geometry(cam)
            except (ValueError, TransformError) as exc:
                missing.append(CAMERA_NAMES[i])
                self.counters["camera_uncalibrated"] += 1
                why.append(f"{CAMERA_NAMES[i]}: {exc}")
                errors[CAMERA_NAMES[i]] = str(exc)
                continue
            intrinsics[i], cam_to_ego[i], valid[i], images[i] = k, c2e, True, cam.image
        if not valid.any():
            raise ValueError("no usable camera view in this keyframe (" + "; ".join(why) + ")")
        # Views may differ in size (the model's preprocessing resizes each view with its own K), so
        # one camera's resolution never masks another; masked views get a black image of the most
        # common size.
        shapes = Counter(img.shape for img in images if img is not None)
        ref_shape = shapes.most_common(1)[0][0]
        if len(shapes) > 1:
            self.counters["camera_size_differs"] += 1
        for i in range(n):
            if images[i] is None:
                images[i] = np.zeros(ref_shape, np.uint8)

        def key_from_base_at(stamp_ns: int) -> np.ndarray:
            try:
                return self.tf.lookup_between_times(self.config.base_frame, self.config.odom_frame,
                                                    inp.stamp_ns, stamp_ns)
            except TransformError:
                self.counters["radar_no_ego_motion"] += 1
                return np.eye(4)

        base_from_sensor: dict[str, np.ndarray] = {}
        usable: list[RadarSweepPoints] = []
        for sweep in inp.radar:
            if sweep.sensor_frame not in base_from_sensor:
                try:
                    base_from_sensor[sweep.sensor_frame] = self.tf.lookup(self.config.base_frame, sweep.sensor_frame)
                except TransformError:
                    self.counters["radar_uncalibrated"] += 1
                    continue
            usable.append(sweep)
        radar, bad = merge_sweeps(usable, inp.stamp_ns, base_from_sensor, key_from_base_at)
        self.counters["radar_points_nonfinite"] += bad
        if self.radar_cap is not None and radar.shape[0] > self.radar_cap:
            self.counters["radar_points_capped"] += radar.shape[0] - self.radar_cap
            radar = cap_merged_radar(radar, self.radar_cap)
        # each camera's ego motion from its capture to the keyframe (the model's optional per-camera
        # capture-time compensation, depth.capture_compensation, warps its BEV by it)
        cam_motion = np.tile(np.eye(4), (n, 1, 1))
        for i, cam in enumerate(inp.cameras):
            if valid[i] and cam is not None and cam.stamp_ns != inp.stamp_ns:
                try:
                    cam_motion[i] = self.tf.lookup_between_times(self.config.base_frame, self.config.odom_frame,
                                                                 inp.stamp_ns, cam.stamp_ns)
                except TransformError:
                    self.counters["camera_no_ego_motion"] += 1

        frame = Frame(
            timestamp_us=inp.stamp_ns // 1000,
            images=cast(list[np.ndarray], images),  # every None was replaced above
            intrinsics=intrinsics.astype(np.float32),
            cam_to_ego=cam_to_ego.astype(np.float32),
            camera_valid=valid,
            radar=radar,
            gt=inp.gt,
            # the model's GeometryCache keys the calibration itself
            meta={**inp.meta, "camera_ego_motion": cam_motion},
        )
        return frame, sorted(set(missing), key=CAMERA_NAMES.index)

    def prepare(self, inp: KeyframeInput) -> PreparedKeyframe:
        """Frame + the detector's preprocessing (raises ValueError when no view is usable)."""
        t0 = time.perf_counter()
        frame, missing = self.build_frame(inp)
        errors = self.last_view_errors
        t1 = time.perf_counter()
        staged = self.detector.prepare(frame) if isinstance(self.detector, StagedDetector) else None
        return PreparedKeyframe(inp.stamp_ns, frame, missing, errors, staged, (t1 - t0) * 1e3)

    def finish(self, prep: PreparedKeyframe, keep_frame: bool = False) -> PipelineResult:
        """Network, box decoding and the output rule for a prepared keyframe."""
        frame = prep.frame
        t1 = time.perf_counter()
        if prep.staged is not None:
            boxes, timings = cast(StagedDetector, self.detector).finish(prep.staged)
        else:
            boxes, timings = self.detector.detect(frame)
        t2 = time.perf_counter()
        finite = (np.isfinite(boxes.center).all(1) & np.isfinite(boxes.size).all(1) & np.isfinite(boxes.yaw)
                  & np.isfinite(boxes.velocity).all(1) & np.isfinite(boxes.scores))
        if not finite.all():  # never publish NaN boxes; a counted model fault instead
            self.counters["model_nonfinite_boxes"] += int((~finite).sum())
            boxes = boxes.select(finite)
        boxes = output_threshold(boxes, self.config.score_threshold, self.config.max_detections)
        out_frame = self.config.output_frame
        if out_frame != self.config.base_frame:
            boxes = transform_boxes(boxes, self.tf.lookup(out_frame, self.config.base_frame, prep.stamp_ns))
        t3 = time.perf_counter()
        self.counters["frames"] += 1
        # staged: the detector's preprocessing ran in prepare(), outside t1..t3
        preprocess_ms = timings.get("preprocess", 0.0) if prep.staged is not None else 0.0
        timings = {"prepare": prep.prepare_ms, **timings, "postprocess": (t3 - t2) * 1e3,
                   "pipeline_total": prep.prepare_ms + preprocess_ms + (t3 - t1) * 1e3}
        return PipelineResult(prep.stamp_ns, out_frame, boxes, timings, prep.missing, int(frame.radar.shape[0]),
                              frame if keep_frame else None)

    def process(self, inp: KeyframeInput, keep_frame: bool = False) -> PipelineResult:
        """One keyframe, start to end (the replay; the node runs the two halves on two threads)."""
        return self.finish(self.prepare(inp), keep_frame)


def output_threshold(boxes: Boxes, threshold: float, max_detections: int) -> Boxes:
    """The node's output rule: scores >= threshold, the best max_detections (stable on ties).
    One place, so the replay and the demo apply to a wider set exactly what the node publishes."""
    boxes = boxes.select(boxes.scores >= threshold)
    if len(boxes) > max_detections:
        boxes = boxes.select(np.argsort(-boxes.scores, kind="stable")[:max_detections])
    return boxes


def cap_merged_radar(radar: np.ndarray, cap: int) -> np.ndarray:
    """At most ``cap`` rows of a merged (P, len(RADAR_FEATURES)) cloud: newest sweeps first, the
    sweep that no longer fits by usefulness (nearest / strongest), older ones dropped."""

    order = np.argsort(radar[:, 7], kind="stable")
    radar = radar[order]
    keep: list[np.ndarray] = []
    left = cap
    for idx in np.unique(radar[:, 7]):
        group = radar[radar[:, 7] == idx]
        if len(group) <= left:
            keep.append(group)
            left -= len(group)
        else:
            keep.append(group[cap_radar_points(group[:, 0:3], group[:, 3], left)])
            break
    return np.concatenate(keep, 0) if keep else radar[:0]


def transform_boxes(boxes: Boxes, m: np.ndarray) -> Boxes:
    """Apply a 4x4 rigid transform (rotation about z assumed dominant) to boxes."""
    rot = m[:3, :3]
    dyaw = float(np.arctan2(rot[1, 0], rot[0, 0]))
    vel = np.concatenate([boxes.velocity, np.zeros((len(boxes), 1), np.float32)], 1) @ rot.T
    return Boxes(
        center=(boxes.center @ rot.T + m[:3, 3]).astype(np.float32),
        size=boxes.size,
        yaw=((boxes.yaw + dyaw + np.pi) % (2 * np.pi) - np.pi).astype(np.float32),
        velocity=vel[:, :2].astype(np.float32),
        labels=boxes.labels,
        scores=boxes.scores,
        attributes=boxes.attributes,
        track_ids=boxes.track_ids,
    )
