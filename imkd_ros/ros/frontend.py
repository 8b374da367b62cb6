"""The sensor front end shared by the live node and the offline replay.

It takes sensor messages (rclpy messages live, rosbags messages offline: the conversions are
duck-typed) and turns them into detections: sync policy -> decode -> DetectorPipeline. It holds no
rclpy object, so `imkd replay` runs exactly this code on a recording, and what is validated offline
is what runs on the car. The node adds only subscriptions, a worker thread and publishers.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from imkd_ros.constants import CAMERA_NAMES, RADAR_PCD_FIELDS
from imkd_ros.pipeline import (
    CameraInput,
    DetectorPipeline,
    FrameDetector,
    KeyframeInput,
    PipelineConfig,
    PipelineResult,
    PreparedKeyframe,
    RadarSweepPoints,
)
from imkd_ros.pipeline.health import PIPELINE, HealthWindow
from imkd_ros.pipeline.radar import radar_point_filter
from imkd_ros.pipeline.transforms import TransformRejected
from imkd_ros.pipeline.validate import (
    ImageHeaderError,
    ImageLimits,
    RadarLimits,
    cap_radar_points,
    check_image_header,
    check_raw_image_size,
    cloud_point_count,
    radar_violations,
)
from imkd_ros.rig.intrinsics import REDUCE_FACTORS, reduced_size, scale_intrinsics
from imkd_ros.rig.rig import Rig
from imkd_ros.ros import calibration, clouds, images, msgutil
from imkd_ros.ros.params import NodeParams
from imkd_ros.sync import SyncConfig, SyncedKeyframe, SyncPolicy
from imkd_ros.types import Frame

_F = {name: i for i, name in enumerate(RADAR_PCD_FIELDS)}


def radar_display_name(topic: str) -> str:
    """'/radar_front/points' -> 'RADAR_FRONT' (the name diagnostics use for that sensor)."""
    parts = [x for x in topic.split("/") if x and x not in ("points", "pointcloud", "cloud")]
    return (parts[0] if parts else topic).upper()


def radar_sweep_from_cloud(points: np.ndarray, frame_id: str, stamp_ns: int,
                           max_points: int | None = None) -> RadarSweepPoints:
    """(N, 18) nuScenes radar fields -> the pipeline's sweep (the same point filter as training);
    over ``max_points`` the nearest / strongest points are kept."""
    p = points[radar_point_filter(points)]
    if max_points is not None and p.shape[0] > max_points:
        p = p[cap_radar_points(p[:, 0:3], p[:, _F["rcs"]], max_points)]
    return RadarSweepPoints(frame_id, stamp_ns, p[:, 0:3].astype(np.float64), p[:, _F["rcs"]],
                            p[:, [_F["vx_comp"], _F["vy_comp"]]])


def sync_config(p: NodeParams) -> SyncConfig:
    ms = 1_000_000
    return SyncConfig(
        max_spread_ns=int(p.sync_spread_ms * ms),
        camera_timeout_ns=int(p.camera_timeout_ms * ms),
        radar_window_ns=int(p.radar_window_ms * ms),
        radar_max_sweeps=p.radar_max_sweeps,
        radar_wait_ns=int(p.radar_wait_ms * ms),
        radar_names=tuple(p.radar_topics),
        min_interval_ns=int(1e9 / p.keyframe_rate_hz) if p.keyframe_rate_hz > 0 else 0,
    )


@dataclass
class KeyframeOutput:
    result: PipelineResult
    keyframe: SyncedKeyframe
    stages_ms: dict[str, float]  # decode, prepare, model stages, postprocess, pipeline_total


@dataclass
class PreparedFrontKeyframe:
    """A keyframe between the front end's two stages (decoded and preprocessed)."""

    keyframe: SyncedKeyframe
    prep: PreparedKeyframe
    decode_ms: float


class DetectionFrontend:
    """Messages in, detections out; thread-safe where the node needs it (sync has its own lock)."""

    def __init__(self, params: NodeParams, detector: FrameDetector,
                 warn: Callable[[str], None] | None = None, decode_threads: int = 2) -> None:
        p = self.p = params
        self.detector = detector
        self.pipeline = DetectorPipeline(
            detector, PipelineConfig(p.base_frame, p.odom_frame, p.output_frame, p.score_threshold, p.max_detections)
        )
        self.sync = SyncPolicy(sync_config(p))
        self.camera_info: list[calibration.CameraIntrinsics | None] = [None] * len(CAMERA_NAMES)
        self.counters: Counter[str] = Counter()
        self.rx: Counter[str] = Counter()
        self.radar_limits = RadarLimits(max_points_per_sweep=p.radar_max_points_per_sweep)
        self.image_limits = ImageLimits(max_pixels=p.max_image_pixels)
        self.radar_names = {t: radar_display_name(t) for t in p.radar_topics}
        # With keyframe_rate_hz 0 the node runs on every camera set it can: dropping the oldest one
        # when the model is slower is the design (counted, shown), not a fault.
        self.health = HealthWindow([*CAMERA_NAMES, *self.radar_names.values(), "TF"], window_s=p.health_window_s,
                                   info_kinds=("keyframes_dropped_overload",) if p.keyframe_rate_hz == 0 else (),
                                   event_only=("TF",))
        self._warn = warn or (lambda text: None)
        self.last_skip_reason = ""
        self._last_resets = 0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=decode_threads, thread_name_prefix="imkd-decode")
        # A radar sweep belongs to several consecutive keyframes (window > camera period): parse once.
        self._radar_cache: OrderedDict[tuple[str, int], RadarSweepPoints | None] = OrderedDict()
        self._radar_cache_size = 8 * max(1, len(p.radar_topics)) * p.radar_max_sweeps
        self._cache_lock = threading.Lock()
        if p.calibration_source == "yaml":
            self.load_calibration_yaml(p.calibration_file)

    # -- inputs (cheap: called from executor callbacks) ----------------------------------------
    def on_camera(self, i: int, msg: Any) -> None:
        self.rx[self.p.camera_topics[i]] += 1
        cam = CAMERA_NAMES[i]
        self.health.rx(cam)
        stamp = msgutil.time_to_ns(msg.header.stamp)
        if stamp <= 0:
            self.bad("camera_zero_stamp", f"{self.p.camera_topics[i]}: zero stamp", cam)
            return
        try:  # size from the header, before the image is buffered or decoded
            if hasattr(msg, "format"):
                check_image_header(msg.data, self.image_limits)
            else:
                check_raw_image_size(int(msg.width), int(msg.height), self.image_limits)
        except ImageHeaderError as exc:
            self.bad("camera_image_oversize", f"{self.p.camera_topics[i]}: {exc}", cam)
            return
        self.sync.push_camera(i, stamp, msg)

    def on_camera_info(self, i: int, msg: Any) -> None:
        self.rx[self.p.camera_info_topics[i]] += 1
        try:
            info = calibration.camera_info_to_intrinsics(msg)
        except ValueError as exc:  # the last good calibration stays in use
            self.bad("camera_info_invalid", f"{self.p.camera_info_topics[i]}: {exc}", CAMERA_NAMES[i])
            return
        old = self.camera_info[i]
        if old is None or old.size != info.size or not np.allclose(old.K, info.K):
            self.camera_info[i] = info  # the model's geometry cache keys on the resulting calibration

    def on_radar(self, topic: str, msg: Any) -> None:
        self.rx[topic] += 1
        name = self.radar_names.get(topic, topic)
        self.health.rx(name)
        stamp = msgutil.time_to_ns(msg.header.stamp)
        if stamp <= 0:
            self.bad("radar_zero_stamp", f"{topic}: zero stamp", name)
            return
        try:
            n = cloud_point_count(msg.width, msg.height, len(msg.data), msg.point_step)
        except (TypeError, ValueError, AttributeError) as exc:
            self.bad("radar_cloud_invalid", f"{topic}: {exc}", name)
            return
        if n > self.radar_limits.max_cloud_points:  # refused before parsing or buffering
            self.bad("radar_cloud_oversize", f"{topic}: {n} points > {self.radar_limits.max_cloud_points}", name)
            return
        # Parsed and validated on arrival (a sweep is a few hundred points): its faults are counted
        # when they happen, and a sweep that cannot be read never enters the sync buffers.
        if self._radar_sweep(topic, stamp, msg) is None:
            return
        self.sync.push_radar(topic, stamp, msg)

    def on_tf(self, msg: Any, static: bool) -> None:
        if static and self.p.calibration_source == "yaml":
            return  # the YAML calibration wins; /tf_static is ignored on purpose
        for t in msg.transforms:
            try:
                m = calibration.transform_to_matrix(t)
                if not np.isfinite(m).all():
                    raise ValueError("non-finite transform")
            except ValueError as exc:
                self.bad("tf_invalid", f"{t.header.frame_id} <- {t.child_frame_id}: {exc}", "TF")
                continue
            try:
                self.pipeline.tf.set_transform(t.header.frame_id.lstrip("/"), t.child_frame_id.lstrip("/"), m,
                                               msgutil.time_to_ns(t.header.stamp), static=static)
            except TransformRejected as exc:  # the tree (and every calibration in it) stays as it was
                self.counters[f"tf_rejected_{exc.reason}"] += 1
                self.bad("tf_rejected", f"{'/tf_static' if static else '/tf'}: {exc}", "TF")

    def poll(self, now_ns: int) -> list[SyncedKeyframe]:
        """Keyframes the sync policy has finished at `now_ns` (ROS or bag time)."""
        ready = self.sync.poll(now_ns)
        self._check_reset()
        return ready

    def flush(self) -> list[SyncedKeyframe]:
        return self.sync.flush()

    def _check_reset(self) -> None:
        resets = self.sync.stats()["resets"]
        if resets != self._last_resets:  # time jumped back (bag loop): forget the old ego motion
            self._last_resets = resets
            self.pipeline.tf.clear_dynamic()
            self.counters["time_resets"] += 1
            self._warn("time jumped backwards: sync buffers and ego-motion history reset")

    def bad(self, key: str, text: str, sensor: str = PIPELINE) -> None:
        """Count (lifetime and in the health window of ``sensor``) and warn about one bad input."""
        with self._lock:
            self.counters["bad_messages"] += 1
            self.counters[key] += 1
        self.health.event(sensor, key)
        self._warn(f"dropped bad input ({key}): {text}")

    # -- one keyframe (worker thread) ------------------------------------------------------------
    def decode_reduce(self, i: int) -> int:
        """Decode reduction for camera i, from its CameraInfo width and the model's input width."""
        return self._reduce_for(self.camera_info[i])

    def _reduce_for(self, info: calibration.CameraIntrinsics | None) -> int:
        # without CameraInfo the pipeline drops the view as uncalibrated: decode it at the cheapest
        return REDUCE_FACTORS[-1] if info is None else self.detector.decode_reduce(info.width)

    def _decode(self, i: int, msg: Any) -> CameraInput | None:
        info = self.camera_info[i]  # read once: the reduction and the K the pipeline scales agree
        reduce = self._reduce_for(info)
        try:
            if hasattr(msg, "format"):
                img = images.compressed_to_rgb(msg, reduce=reduce)
            else:  # raw: box-reduced, the same sampling (and K convention) as the JPEG decode
                img = images.image_to_rgb(msg, reduce=reduce)
        except Exception as exc:  # any decoder failure (PIL bomb, cv2, OSError) masks this view only
            self.bad("camera_image_invalid", f"{self.p.camera_topics[i]}: {type(exc).__name__}: {exc}",
                     CAMERA_NAMES[i])
            return None
        frame_id = msg.header.frame_id.lstrip("/") or CAMERA_NAMES[i].lower()
        return CameraInput(img, msgutil.time_to_ns(msg.header.stamp), frame_id,
                           None if info is None else info.K, None if info is None else info.size)

    def prepare(self, kf: SyncedKeyframe) -> PreparedFrontKeyframe | None:
        """Decode and preprocess (the first stage); None (counted, warned) when the keyframe
        cannot be used."""
        t0 = time.perf_counter()
        # libjpeg releases the GIL: the six views decode in parallel on the small pool
        cams = list(self._pool.map(lambda im: None if im[1] is None else self._decode(*im),
                                   enumerate(kf.camera_payloads)))
        sweeps = [sw for s in kf.radar if (sw := self._radar_sweep(s.name, s.stamp_ns, s.payload)) is not None]
        t1 = time.perf_counter()
        try:
            prep = self.pipeline.prepare(KeyframeInput(kf.stamp_ns, cams, sweeps))
        except ValueError as exc:  # e.g. no usable camera view
            self._skip(kf, exc)
            return None
        return PreparedFrontKeyframe(kf, prep, (t1 - t0) * 1e3)

    def finish(self, pf: PreparedFrontKeyframe, keep_frame: bool = False) -> KeyframeOutput | None:
        """Network, decoding and the output rule (the second stage); None when it fails as a
        keyframe (ValueError), like ``prepare``."""
        try:
            result = self.pipeline.finish(pf.prep, keep_frame=keep_frame)
        except ValueError as exc:
            self._skip(pf.keyframe, exc)
            return None
        for cam, why in pf.prep.view_errors.items():
            self.health.event(cam, "view_unusable")
            self._warn(f"{cam} masked: {why}")
        self.health.keyframe(result.missing_cameras)
        self.counters["keyframes_processed"] += 1
        return KeyframeOutput(result, pf.keyframe, {"decode": pf.decode_ms, **result.timings_ms})

    def process(self, kf: SyncedKeyframe, keep_frame: bool = False) -> KeyframeOutput | None:
        """Both stages on the calling thread (the replay and the tests)."""
        pf = self.prepare(kf)
        return None if pf is None else self.finish(pf, keep_frame)

    def _skip(self, kf: SyncedKeyframe, exc: ValueError) -> None:
        self.counters["keyframes_skipped"] += 1
        self.health.event(PIPELINE, "keyframe_skipped")
        self.health.keyframe(CAMERA_NAMES)
        self.last_skip_reason = str(exc)
        self._warn(f"keyframe {kf.stamp_ns} skipped: {exc}")

    def _radar_sweep(self, name: str, stamp_ns: int, msg: Any) -> RadarSweepPoints | None:
        key = (name, stamp_ns)
        with self._cache_lock:
            if key in self._radar_cache:
                self._radar_cache.move_to_end(key)
                return self._radar_cache[key]
        sensor = self.radar_names.get(name, name)
        try:
            read = clouds.pointcloud2_to_radar(msg)
            self.counters["radar_points_nonfinite"] += read.dropped
            self.health.event(sensor, "points_nonfinite", read.dropped)
            ok, violations = radar_violations(read.points, self.radar_limits)
            for field_name, n in violations.items():
                self.counters[f"radar_points_invalid_{field_name}"] += n
                self.health.event(sensor, f"points_invalid_{field_name}", n)
            if violations:
                self._warn(f"{name}: dropped {int((~ok).sum())}/{len(ok)} points outside physical limits "
                           f"({', '.join(f'{k} {v}' for k, v in sorted(violations.items()))})")
            points = read.points[ok]
            n_valid = points.shape[0]
            sweep = radar_sweep_from_cloud(points, msg.header.frame_id.lstrip("/"), stamp_ns,
                                           self.radar_limits.max_points_per_sweep)
            capped = int(radar_point_filter(points).sum()) - len(sweep.rcs) if n_valid else 0
            if capped > 0:
                self.counters["radar_points_capped"] += capped
                self.health.event(sensor, "points_capped_nearest_strongest", capped)
        except ValueError as exc:
            self.bad("radar_cloud_invalid", f"{name}: {exc}", sensor)
            sweep = None
        with self._cache_lock:
            self._radar_cache[key] = sweep
            while len(self._radar_cache) > self._radar_cache_size:
                self._radar_cache.popitem(last=False)
        return sweep

    def warmup(self) -> float:
        """One inference on a blank frame of the default rig, so the first real keyframe does not pay
        for lazy initialisation (allocator, thread pools, kernels); returns its seconds."""

        rig = Rig.default()
        sizes, ks = [], []
        for c, k in zip(rig.cameras, rig.intrinsics_array()):
            r = self.detector.decode_reduce(c.width)
            sizes.append(reduced_size(c.width, c.height, r))
            ks.append(scale_intrinsics(k, 1.0 / r, 1.0 / r))
        blank = [np.zeros((h, w, 3), np.uint8) for w, h in sizes]
        k = np.stack(ks).astype(np.float32)
        frame = Frame(timestamp_us=0, images=blank, intrinsics=k, cam_to_ego=rig.cam_to_ego_array().astype(np.float32),
                      camera_valid=np.ones(len(blank), bool), radar=np.zeros((0, 8), np.float32),
                      meta={"warmup": True})
        t0 = time.perf_counter()
        self.detector.detect(frame)
        return time.perf_counter() - t0

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def load_calibration_yaml(self, path: str) -> None:
        rig = Rig.from_yaml(path)
        specs: list[Any] = [*rig.cameras, *rig.radars]  # CameraSpec | RadarSpec: name, to_ego
        for spec in specs:
            self.pipeline.tf.set_transform(self.p.base_frame, spec.name.lower(), spec.to_ego.matrix(), static=True)
