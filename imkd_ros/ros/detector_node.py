"""The IMKD detector node: six cameras + radar in, 3D detections out.

Thin on purpose: callbacks only convert stamps and hand messages to the core sync policy (they
never wait for the model); a worker thread decodes, runs the shared DetectorPipeline and publishes.
Everything else (sync, transforms, model, decoding rules) lives in the core and is tested without
ROS. Run: `ros2 run imkd_ros detector_node --ros-args --params-file config/detector.yaml` or
`python -m imkd_ros.ros.detector_node --ros-args ...`.
"""

from __future__ import annotations

import sys
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

import numpy as np

from imkd_ros.constants import CAMERA_NAMES, RADAR_PCD_FIELDS
from imkd_ros.pipeline import (
    CameraInput,
    DetectorPipeline,
    FrameDetector,
    InferenceWorker,
    KeyframeInput,
    PipelineConfig,
    PipelineResult,
    RadarSweepPoints,
)
from imkd_ros.pipeline.radar import radar_point_filter
from imkd_ros.ros import convert
from imkd_ros.ros.params import NodeParams, ParameterError, declare_and_read
from imkd_ros.sync import SyncConfig, SyncedKeyframe, SyncPolicy

_F = {name: i for i, name in enumerate(RADAR_PCD_FIELDS)}
SHIPPED_STUDENT = Path(__file__).resolve().parents[2] / "models" / "imkd_student_cpu.pt"


def make_detector(params: NodeParams) -> tuple[FrameDetector, str]:
    """The model runtime the parameters ask for, and why it was chosen (for the log)."""
    from imkd_ros.runtime import create_detector

    model = params.model_path or str(SHIPPED_STUDENT)
    return create_detector(model, backend=params.backend, precision=params.precision)


def radar_sweep_from_cloud(points: np.ndarray, frame_id: str, stamp_ns: int) -> RadarSweepPoints:
    """(N, 18) nuScenes radar fields -> the pipeline's sweep (filters as in training)."""
    keep = radar_point_filter(points)
    p = points[keep]
    return RadarSweepPoints(frame_id, stamp_ns, p[:, 0:3].astype(np.float64), p[:, _F["rcs"]],
                            p[:, [_F["vx_comp"], _F["vy_comp"]]])


class DetectorNode:
    """Owns the rclpy node; built by `main` (or a test) with an optional injected detector."""

    def __init__(self, node: Any, detector: FrameDetector | None = None) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from imkd_msgs.msg import DetectorStatus, Object3DArray
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
        from tf2_msgs.msg import TFMessage
        from vision_msgs.msg import Detection3DArray
        from visualization_msgs.msg import MarkerArray

        self.node = node
        self.log = node.get_logger()
        self.p = declare_and_read(node)
        p = self.p
        if detector is None:
            detector, why = make_detector(p)
            self.log.info(f"backend {detector.name}: {why}")
        self.detector = detector
        self.decode_reduce = int(getattr(detector, "decode_reduce", 1))
        self.pipeline = DetectorPipeline(
            detector,
            PipelineConfig(p.base_frame, p.odom_frame, p.output_frame, p.score_threshold, p.max_detections),
        )
        if p.calibration_source == "yaml":
            self._load_calibration_yaml(p.calibration_file)
        ms = 1_000_000
        self.sync = SyncPolicy(SyncConfig(
            max_spread_ns=int(p.sync_spread_ms * ms),
            camera_timeout_ns=int(p.camera_timeout_ms * ms),
            radar_window_ns=int(p.radar_window_ms * ms),
            radar_max_sweeps=p.radar_max_sweeps,
            radar_names=tuple(p.radar_topics),
            min_interval_ns=int(1e9 / p.keyframe_rate_hz) if p.keyframe_rate_hz > 0 else 0,
        ))
        self.camera_info: list[convert.CameraIntrinsics | None] = [None] * len(CAMERA_NAMES)
        self.counters: Counter[str] = Counter()
        self.rx: Counter[str] = Counter()
        self.latency_ms: deque[float] = deque(maxlen=50)
        self.stage_ms: dict[str, deque[float]] = {}
        self.last_result: PipelineResult | None = None
        self._last_resets = 0
        self._diag_t = time.monotonic()
        self._diag_rx: Counter[str] = Counter()

        sensor_qos = qos_profile_sensor_data  # best effort matches reliable and best-effort publishers
        self._subs = []
        for i, topic in enumerate(p.camera_topics):
            msg_type = CompressedImage if topic.rstrip("/").endswith("compressed") else Image
            self._subs.append(node.create_subscription(
                msg_type, topic, lambda m, i=i: self._on_camera(i, m), sensor_qos))
        for i, topic in enumerate(p.camera_info_topics):
            self._subs.append(node.create_subscription(
                CameraInfo, topic, lambda m, i=i: self._on_camera_info(i, m), sensor_qos))
        for topic in p.radar_topics:
            self._subs.append(node.create_subscription(
                PointCloud2, topic, lambda m, t=topic: self._on_radar(t, m), sensor_qos))
        if p.calibration_source == "tf" or p.odom_frame:
            self._subs.append(node.create_subscription(TFMessage, "tf", lambda m: self._on_tf(m, False), 100))
            static_qos = QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                                    reliability=ReliabilityPolicy.RELIABLE)
            self._subs.append(node.create_subscription(
                TFMessage, "tf_static", lambda m: self._on_tf(m, True), static_qos))

        self.pub_det = node.create_publisher(Detection3DArray, "~/detections", 10)
        self.pub_obj = node.create_publisher(Object3DArray, "~/objects", 10)
        self.pub_markers = node.create_publisher(MarkerArray, "~/markers", 10)
        self.pub_status = node.create_publisher(DetectorStatus, "~/status", 10)
        self.pub_diag = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._DetectorStatus = DetectorStatus

        self.worker = InferenceWorker(self._run_keyframe, capacity=p.pending_frames, on_error=self._on_worker_error)
        self._poll_timer = node.create_timer(0.02, self._poll)
        self._diag_timer = node.create_timer(p.diagnostics_period_s, self._publish_diagnostics)
        self.log.info(
            f"ready: {len(p.camera_topics)} cameras, {len(p.radar_topics)} radars, output "
            f"{node.resolve_topic_name('~/detections')} in {p.output_frame}, decode 1/{self.decode_reduce}"
        )

    # -- callbacks: cheap, never wait for the model ---------------------------------------------
    def _now_ns(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def _on_camera(self, i: int, msg: Any) -> None:
        self.rx[self.p.camera_topics[i]] += 1
        stamp = convert.time_to_ns(msg.header.stamp)
        if stamp <= 0:
            self._bad("camera_zero_stamp", f"{self.p.camera_topics[i]}: zero stamp")
            return
        self.sync.push_camera(i, stamp, msg)
        self._poll()

    def _on_camera_info(self, i: int, msg: Any) -> None:
        self.rx[self.p.camera_info_topics[i]] += 1
        try:
            info = convert.camera_info_to_intrinsics(msg)
        except ValueError as exc:
            self._bad("camera_info_invalid", f"{self.p.camera_info_topics[i]}: {exc}")
            return
        old = self.camera_info[i]
        if old is None or old.size != info.size or not np.allclose(old.K, info.K):
            self.camera_info[i] = info  # geometry caches key on the resulting calibration

    def _on_radar(self, topic: str, msg: Any) -> None:
        self.rx[topic] += 1
        stamp = convert.time_to_ns(msg.header.stamp)
        if stamp <= 0:
            self._bad("radar_zero_stamp", f"{topic}: zero stamp")
            return
        self.sync.push_radar(topic, stamp, msg)

    def _on_tf(self, msg: Any, static: bool) -> None:
        for t in msg.transforms:
            try:
                m = convert.transform_to_matrix(t)
                if not np.isfinite(m).all():
                    raise ValueError("non-finite transform")
            except ValueError as exc:
                self._bad("tf_invalid", f"{t.header.frame_id} <- {t.child_frame_id}: {exc}")
                continue
            self.pipeline.tf.set_transform(t.header.frame_id.lstrip("/"), t.child_frame_id.lstrip("/"), m,
                                           convert.time_to_ns(t.header.stamp), static=static)

    def _poll(self) -> None:
        for kf in self.sync.poll(self._now_ns()):
            self.worker.submit((kf, time.perf_counter()))
        resets = self.sync.stats()["resets"]
        if resets != self._last_resets:  # time jumped back (bag loop): forget the old ego motion
            self._last_resets = resets
            self.pipeline.tf.clear_dynamic()
            self.log.warn("time jumped backwards: sync buffers and ego-motion history reset")

    def _bad(self, key: str, text: str) -> None:
        self.counters["bad_messages"] += 1
        self.counters[key] += 1
        self.log.warn(f"dropped bad input ({key}): {text}", throttle_duration_sec=5.0)

    def _on_worker_error(self, exc: BaseException, tb: str) -> None:
        self.counters["inference_errors"] += 1
        self.log.error(f"keyframe failed: {exc}\n{tb}", throttle_duration_sec=5.0)

    # -- worker thread ---------------------------------------------------------------------------
    def _decode(self, i: int, msg: Any) -> CameraInput | None:
        try:
            if hasattr(msg, "format"):
                img = convert.compressed_to_rgb(msg, reduce=self.decode_reduce)
            else:
                img = convert.image_to_rgb(msg)
                if self.decode_reduce > 1:
                    img = img[:: self.decode_reduce, :: self.decode_reduce]
        except ValueError as exc:
            self._bad("camera_image_invalid", f"{self.p.camera_topics[i]}: {exc}")
            return None
        info = self.camera_info[i]
        return CameraInput(img, convert.time_to_ns(msg.header.stamp), msg.header.frame_id.lstrip("/")
                           or CAMERA_NAMES[i].lower(), None if info is None else info.K,
                           None if info is None else info.size)

    def _run_keyframe(self, item: tuple[SyncedKeyframe, float]) -> None:
        kf, t_ready = item
        t0 = time.perf_counter()
        cams = [None if m is None else self._decode(i, m) for i, m in enumerate(kf.camera_payloads)]
        sweeps = []
        for s in kf.radar:
            try:
                read = convert.pointcloud2_to_radar(s.payload)
            except ValueError as exc:
                self._bad("radar_cloud_invalid", f"{s.name}: {exc}")
                continue
            if read.dropped:
                self.counters["radar_points_nonfinite"] += read.dropped
            sweeps.append(radar_sweep_from_cloud(read.points, s.payload.header.frame_id.lstrip("/"), s.stamp_ns))
        t1 = time.perf_counter()
        try:
            result = self.pipeline.process(KeyframeInput(kf.stamp_ns, cams, sweeps))
        except ValueError as exc:  # e.g. no usable camera: counted, the node goes on
            self.counters["keyframes_skipped"] += 1
            self.log.warn(f"keyframe {kf.stamp_ns} skipped: {exc}", throttle_duration_sec=5.0)
            return
        self._publish(result, kf)
        t_end = time.perf_counter()
        stages = {"decode": (t1 - t0) * 1e3, **result.timings_ms, "publish": 0.0}
        stages["publish"] = (t_end - t1) * 1e3 - result.timings_ms.get("pipeline_total", 0.0)
        for k, v in stages.items():
            self.stage_ms.setdefault(k, deque(maxlen=50)).append(v)
        self.latency_ms.append((t_end - t_ready) * 1e3)
        self.last_result = result
        self.counters["keyframes_published"] += 1

    def _publish(self, r: PipelineResult, kf: SyncedKeyframe) -> None:
        self.pub_det.publish(convert.boxes_to_detection3d_array(r.boxes, r.frame_id, r.stamp_ns))
        self.pub_obj.publish(convert.boxes_to_object3d_array(r.boxes, r.frame_id, r.stamp_ns))
        self.pub_markers.publish(convert.boxes_to_marker_array(r.boxes, r.frame_id, r.stamp_ns))
        st = self._DetectorStatus(header=convert.make_header(r.frame_id, r.stamp_ns), backend=self.detector.name,
                                  missing_cameras=r.missing_cameras, radar_points=r.radar_points,
                                  sync_skew_ms=kf.skew_ns / 1e6, latency_ms=r.timings_ms["pipeline_total"],
                                  frames_processed=self.worker.processed + 1, frames_dropped=self.worker.dropped,
                                  bad_messages=self.counters["bad_messages"])
        self.pub_status.publish(st)

    # -- diagnostics ---------------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

        now = time.monotonic()
        dt = max(now - self._diag_t, 1e-6)
        self._diag_t = now
        sync = self.sync.stats()
        work = self.worker.stats()
        kv: list[tuple[str, Any]] = [("backend", self.detector.name)]
        for topic in [*self.p.camera_topics, *self.p.radar_topics]:
            kv.append((f"rate_hz {topic}", f"{(self.rx[topic] - self._diag_rx[topic]) / dt:.2f}"))
        self._diag_rx = Counter(self.rx)
        if self.latency_ms:
            kv.append(("latency_ms mean", f"{np.mean(self.latency_ms):.1f}"))
            kv.append(("latency_ms max", f"{np.max(self.latency_ms):.1f}"))
        for stage, vals in self.stage_ms.items():
            kv.append((f"stage_ms {stage}", f"{np.mean(vals):.2f}"))
        kv += [(f"worker {k}", v) for k, v in work.items()]
        kv += [(f"sync {k}", v) for k, v in sync.items() if k != "missing_per_camera"]
        kv += [(f"missing {CAMERA_NAMES[i]}", n) for i, n in enumerate(sync["missing_per_camera"])]
        kv += [(f"pipeline {k}", v) for k, v in sorted(self.pipeline.counters.items())]
        kv += [(f"node {k}", v) for k, v in sorted(self.counters.items())]
        if self.last_result is not None:
            kv.append(("last missing cameras", ",".join(self.last_result.missing_cameras) or "none"))
        uncalibrated = [CAMERA_NAMES[i] for i, c in enumerate(self.camera_info) if c is None]
        kv.append(("cameras without CameraInfo", ",".join(uncalibrated) or "none"))
        level, message = DiagnosticStatus.OK, "ok"
        if work["dropped"] or self.counters["bad_messages"] or uncalibrated:
            level, message = DiagnosticStatus.WARN, "degraded: see drops / bad messages / calibration"
        if self.counters["inference_errors"]:
            level, message = DiagnosticStatus.ERROR, f"{self.counters['inference_errors']} inference errors"
        status = DiagnosticStatus(level=level, name=f"{self.node.get_fully_qualified_name()}: pipeline",
                                  message=message, hardware_id=self.detector.name,
                                  values=[KeyValue(key=k, value=str(v)) for k, v in kv])
        arr = DiagnosticArray(status=[status])
        arr.header.stamp = self.node.get_clock().now().to_msg()
        self.pub_diag.publish(arr)

    def _load_calibration_yaml(self, path: str) -> None:
        from imkd_ros.rig.rig import Rig

        rig = Rig.from_yaml(path)
        for spec in [*rig.cameras, *rig.radars]:
            self.pipeline.tf.set_transform(self.p.base_frame, spec.name.lower(), spec.to_ego().matrix(), static=True)

    def close(self) -> None:
        self.worker.close()


def main(argv: list[str] | None = None) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException

    rclpy.init(args=argv if argv is not None else sys.argv)
    node = rclpy.create_node("imkd_detector")
    try:
        detector = DetectorNode(node)
    except (ParameterError, FileNotFoundError, RuntimeError) as exc:
        node.get_logger().fatal(str(exc))
        node.destroy_node()
        rclpy.try_shutdown()
        return 2
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        detector.close()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
