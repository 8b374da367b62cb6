"""The IMKD detector node: six cameras + radar in, 3D detections out.

Thin on purpose: callbacks only convert stamps and hand messages to the core sync policy (they
never wait for the model); two worker threads run the shared DetectorPipeline, one decoding and
preprocessing keyframe k+1 while the other runs keyframe k through the network and publishes.
Everything else (sync, transforms, model, decoding rules) lives in the core and is tested without
ROS. Run: `ros2 run imkd_ros detector_node --ros-args --params-file config/detector.yaml` or
`python -m imkd_ros.ros.detector_node --ros-args ...`.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections import Counter, deque
from pathlib import Path
from typing import Any

import numpy as np

from imkd_ros.constants import CAMERA_NAMES
from imkd_ros.pipeline import FrameDetector, InferenceWorker, StagedWorker
from imkd_ros.ros import detections, markers, msgutil
from imkd_ros.ros.frontend import DetectionFrontend, KeyframeOutput, PreparedFrontKeyframe
from imkd_ros.ros.params import NodeParams, ParameterError, declare_and_read
from imkd_ros.runtime import create_detector
from imkd_ros.share import share_file
from imkd_ros.sync import SyncedKeyframe

SHIPPED_STUDENT = ("models", "imkd_student_cpu.pt")  # under the package share dir (imkd_ros.share)


def shipped_student() -> Path:
    """The shipped student checkpoint of this installation (source tree or share/imkd_ros)."""
    return share_file(*SHIPPED_STUDENT)


def make_detector(params: NodeParams) -> tuple[FrameDetector, str]:
    """The model runtime the parameters ask for, and why it was chosen (for the log).

    ``model`` / ``model_override`` name a checkpoint or a TensorRT engine (runtime.model_file);
    empty means the shipped student. Errors: ModelFileError / BackendUnavailableError, one line.
    """

    model = params.model_path or str(shipped_student())
    detector, why = create_detector(model, backend=params.backend, precision=params.precision)
    return detector, f"{why}; model {model}"


class DetectorNode:
    """Owns the rclpy wiring; built by `main` (or a test) with an optional injected detector."""

    def __init__(self, node: Any, detector: FrameDetector | None = None) -> None:
        from diagnostic_msgs.msg import DiagnosticArray  # noqa: PLC0415  (optional: ROS msgs; replay imports this without ROS)
        from imkd_msgs.msg import DetectorStatus, Object3DArray  # noqa: PLC0415  (optional: ROS msgs; replay imports this without ROS)
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: PLC0415  (optional: ROS msgs; replay imports this without ROS)
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2  # noqa: PLC0415  (optional: ROS msgs; replay imports this without ROS)
        from tf2_msgs.msg import TFMessage  # noqa: PLC0415  (optional: ROS msgs; replay imports this without ROS)
        from vision_msgs.msg import Detection3DArray  # noqa: PLC0415  (optional: ROS msgs; replay imports this without ROS)
        from visualization_msgs.msg import MarkerArray  # noqa: PLC0415  (optional: ROS msgs; replay imports this without ROS)

        self.node = node
        self.log = node.get_logger()
        p = self.p = declare_and_read(node)
        if detector is None:
            detector, why = make_detector(p)
            self.log.info(f"backend {detector.name}: {why}")
        self.front = DetectionFrontend(p, detector, warn=lambda t: self.log.warning(t, throttle_duration_sec=5.0))
        self.log.info(f"warm-up inference: {self.front.warmup() * 1e3:.0f} ms")
        self.latency_ms: deque[float] = deque(maxlen=100)
        self.stage_ms: dict[str, deque[float]] = {}
        self.last: KeyframeOutput | None = None
        self.errors = 0
        self._last_dropped = 0
        self._diag_t = time.monotonic()
        self._diag_rx: Counter[str] = Counter()

        sensor_qos = qos_profile_sensor_data  # best effort: matches reliable and best-effort publishers
        f = self.front
        self._subs = []
        for i, topic in enumerate(p.camera_topics):
            msg_type = CompressedImage if topic.rstrip("/").endswith("compressed") else Image
            self._subs.append(node.create_subscription(msg_type, topic, lambda m, i=i: self._on_camera(i, m),
                                                       sensor_qos))
        for i, topic in enumerate(p.camera_info_topics):
            self._subs.append(node.create_subscription(CameraInfo, topic, lambda m, i=i: f.on_camera_info(i, m),
                                                       sensor_qos))
        for topic in p.radar_topics:
            self._subs.append(node.create_subscription(PointCloud2, topic, lambda m, t=topic: f.on_radar(t, m),
                                                       sensor_qos))
        static_qos = QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                                reliability=ReliabilityPolicy.RELIABLE)
        self._subs.append(node.create_subscription(TFMessage, "/tf", lambda m: f.on_tf(m, False), 100))
        self._subs.append(node.create_subscription(TFMessage, "/tf_static", lambda m: f.on_tf(m, True),
                                                   static_qos))

        self.pub_det = node.create_publisher(Detection3DArray, "~/detections", 10)
        self.pub_obj = node.create_publisher(Object3DArray, "~/objects", 10)
        self.pub_markers = node.create_publisher(MarkerArray, "~/markers", 10)
        self.pub_status = node.create_publisher(DetectorStatus, "~/status", 10)
        self.pub_diag = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._DetectorStatus = DetectorStatus

        self.worker: StagedWorker | InferenceWorker
        if p.pipeline_stages == 2:
            self.worker = StagedWorker(self._prepare, self._run, capacity=p.pending_frames,
                                       on_error=self._on_worker_error)
        else:
            self.worker = InferenceWorker(self._prepare_and_run, capacity=p.pending_frames,
                                          on_error=self._on_worker_error)
        self._poll_timer = node.create_timer(0.02, self._poll)
        # Diagnostics on the steady clock: with use_sim_time they must not slow down with a slow
        # replay, nor stop when /clock stops (that is when an operator most needs them).
        from rclpy.clock import Clock, ClockType  # noqa: PLC0415  (optional: ROS msgs; replay imports this without ROS)

        self._diag_timer = node.create_timer(p.diagnostics_period_s, self._publish_diagnostics,
                                             clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.log.info(
            f"ready: {len(p.camera_topics)} cameras, {len(p.radar_topics)} radars, output "
            f"{node.resolve_topic_name('~/detections')} in {p.output_frame}, decode reduction per camera "
            "from its CameraInfo width"
        )

    # -- executor thread: cheap, never waits for the model ---------------------------------------
    def _on_camera(self, i: int, msg: Any) -> None:
        self.front.on_camera(i, msg)
        self._poll()  # a complete set goes to the worker at once, not at the next timer tick

    def _poll(self) -> None:
        for kf in self.front.poll(self.node.get_clock().now().nanoseconds):
            self.worker.submit((kf, time.perf_counter()))

    def _on_worker_error(self, exc: BaseException, tb: str) -> None:
        self.errors += 1
        self.front.health.event("pipeline", "inference_error")
        self.log.error(f"keyframe failed: {exc}\n{tb}", throttle_duration_sec=5.0)

    # -- worker threads --------------------------------------------------------------------------
    def _prepare(self, item: tuple[SyncedKeyframe, float]) -> tuple[PreparedFrontKeyframe, float] | None:
        """First stage: decode + preprocess; the result goes to ``_run`` (None: skipped)."""
        kf, t_ready = item
        pf = self.front.prepare(kf)
        if pf is None:
            self._publish_skipped(kf, t_ready)
            return None
        return pf, t_ready

    def _prepare_and_run(self, item: tuple[SyncedKeyframe, float]) -> None:
        """``pipeline_stages: 1``: both stages on one thread, one keyframe at a time."""
        nxt = self._prepare(item)
        if nxt is not None:
            self._run(nxt)

    def _publish_skipped(self, kf: SyncedKeyframe, t_ready: float) -> None:
        """Skipped keyframes get a status too: all views unusable, nothing detected."""
        self.pub_status.publish(self._DetectorStatus(
            header=msgutil.make_header(self.p.output_frame, kf.stamp_ns), backend=self.front.detector.name,
            missing_cameras=list(CAMERA_NAMES), radar_points=0, sync_skew_ms=kf.skew_ns / 1e6,
            latency_ms=(time.perf_counter() - t_ready) * 1e3, frames_processed=self.worker.processed + 1,
            frames_dropped=self.worker.dropped, bad_messages=self.front.counters["bad_messages"]))

    def _run(self, item: tuple[PreparedFrontKeyframe, float]) -> None:
        """Second stage: network, decoding, publishing."""
        pf, t_ready = item
        kf = pf.keyframe
        out = self.front.finish(pf)
        if out is None:
            self._publish_skipped(kf, t_ready)
            return
        t0 = time.perf_counter()
        r = out.result
        self.pub_det.publish(detections.boxes_to_detection3d_array(r.boxes, r.frame_id, r.stamp_ns))
        self.pub_obj.publish(detections.boxes_to_object3d_array(r.boxes, r.frame_id, r.stamp_ns))
        t_end = time.perf_counter()
        if self.pub_markers.get_subscription_count():  # visualisation costs ~0.3 ms/box: only for a viewer
            self.pub_markers.publish(markers.boxes_to_marker_array(r.boxes, r.frame_id, r.stamp_ns))
        self.pub_status.publish(self._DetectorStatus(
            header=msgutil.make_header(r.frame_id, r.stamp_ns), backend=self.front.detector.name,
            missing_cameras=r.missing_cameras, radar_points=r.radar_points, sync_skew_ms=kf.skew_ns / 1e6,
            latency_ms=(t_end - t_ready) * 1e3, frames_processed=self.worker.processed + 1,
            frames_dropped=self.worker.dropped, bad_messages=self.front.counters["bad_messages"]))
        for k, v in {**out.stages_ms, "publish": (t_end - t0) * 1e3}.items():
            self.stage_ms.setdefault(k, deque(maxlen=100)).append(v)
        self.latency_ms.append((t_end - t_ready) * 1e3)  # last input message -> detections out
        self.last = out

    # -- diagnostics -----------------------------------------------------------------------------
    def diagnostics(self) -> tuple[int, str, list[tuple[str, Any]]]:
        """(level, message, key/values): level and message from the sliding health window, the
        key/values are rates since the last call and lifetime counters."""
        f = self.front
        now = time.monotonic()
        dt = max(now - self._diag_t, 1e-6)
        self._diag_t = now
        sync, work = f.sync.stats(), self.worker.stats()
        kv: list[tuple[str, Any]] = [("backend", f.detector.name)]
        for topic in [*self.p.camera_topics, *self.p.radar_topics]:
            kv.append((f"rate_hz {topic}", f"{(f.rx[topic] - self._diag_rx[topic]) / dt:.2f}"))
        self._diag_rx = Counter(f.rx)
        if self.latency_ms:
            kv += [("latency_ms mean", f"{np.mean(self.latency_ms):.1f}"),
                   ("latency_ms max", f"{np.max(self.latency_ms):.1f}")]
        kv += [(f"stage_ms {k}", f"{np.mean(v):.2f}") for k, v in self.stage_ms.items()]
        kv += [(f"worker {k}", v) for k, v in work.items()]
        kv += [(f"sync {k}", v) for k, v in sync.items() if k != "missing_per_camera"]
        kv += [(f"missing {CAMERA_NAMES[i]}", n) for i, n in enumerate(sync["missing_per_camera"])]
        kv += [(f"pipeline {k}", v) for k, v in sorted(f.pipeline.counters.items())]
        kv += [(f"input {k}", v) for k, v in sorted(f.counters.items())]
        if self.last is not None:
            kv.append(("last missing cameras", ",".join(self.last.result.missing_cameras) or "none"))
        uncalibrated = [CAMERA_NAMES[i] for i, c in enumerate(f.camera_info) if c is None]
        kv.append(("cameras without CameraInfo", ",".join(uncalibrated) or "none"))
        if f.last_skip_reason:
            kv.append(("last skipped keyframe", f.last_skip_reason))
        kv += [(f"tf rejected {k}", v) for k, v in sorted(f.pipeline.tf.rejected.items())]
        return self._health_level(uncalibrated, work) + (kv,)

    def _health_level(self, uncalibrated: list[str], work: dict[str, int]) -> tuple[int, str]:
        """Level and reason line of the pipeline from the health window (clears when faults end)."""
        h = self.front.health
        for i, cam in enumerate(CAMERA_NAMES):
            seen = self.front.rx[self.p.camera_topics[i]] > 0  # never seen: "no data", not "no CameraInfo"
            h.set_condition(cam, "no CameraInfo" if cam in uncalibrated and seen else None)
        h.event("pipeline", "keyframes_dropped_overload", work["dropped"] - self._last_dropped)
        self._last_dropped = work["dropped"]
        self.health_reports = h.report()
        top = self.health_reports[-1]
        return top.level, top.message

    def _publish_diagnostics(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue  # noqa: PLC0415  (optional: ROS msgs; replay imports this without ROS)

        level, message, kv = self.diagnostics()
        name = self.node.get_fully_qualified_name()
        statuses = [DiagnosticStatus(level=bytes([r.level]), name=f"{name}: sensor {r.name}", message=r.message,
                                     hardware_id=r.name, values=[KeyValue(key=k, value=v) for k, v in r.values])
                    for r in self.health_reports[:-1]]
        statuses.append(DiagnosticStatus(level=bytes([level]), name=f"{name}: pipeline", message=message,
                                         hardware_id=self.front.detector.name,
                                         values=[KeyValue(key=k, value=str(v)) for k, v in kv]))
        arr = DiagnosticArray(status=statuses)
        arr.header.stamp = self.node.get_clock().now().to_msg()
        self.pub_diag.publish(arr)

    def summary(self) -> str:
        """One line for the log at shutdown: what a run did and where its time went."""
        w = self.worker.stats()
        line = (f"processed {w['processed']} keyframes, dropped {w['dropped']} (model busy), "
                f"failed {w['failed']}, bad messages {self.front.counters['bad_messages']}")
        if self.latency_ms:
            line += f"; latency mean {np.mean(self.latency_ms):.0f} ms, max {np.max(self.latency_ms):.0f} ms"
        if self.stage_ms:
            line += "; mean ms per keyframe (last 100): " + ", ".join(
                f"{k} {np.mean(v):.1f}" for k, v in self.stage_ms.items())
        return line

    def close(self) -> None:
        self.worker.close()
        self.front.close()


def main(argv: list[str] | None = None) -> int:
    import rclpy  # noqa: PLC0415  (optional: ROS msgs; replay imports this without ROS)

    from imkd_ros.ros.spin import spin_until_shutdown  # noqa: PLC0415  (optional: ROS msgs; replay imports this without ROS)

    rclpy.init(args=argv if argv is not None else sys.argv)
    node = rclpy.create_node("imkd_detector")
    try:
        detector = DetectorNode(node)
    except (ParameterError, ValueError, OSError, RuntimeError) as exc:
        # a bad parameter, model file (ModelFileError names it and what was expected), missing
        # backend or broken install: one FATAL line, exit 2 (a launch with on_exit ends)
        node.get_logger().fatal(" ".join(str(exc).split()) or type(exc).__name__)
        node.get_logger().debug(traceback.format_exc())  # --log-level debug shows where
        node.destroy_node()
        rclpy.try_shutdown()
        return 2
    try:
        spin_until_shutdown(node)
    finally:
        detector.close()
        # stderr, not the node's logger: after Ctrl-C the context (and /rosout) is already gone
        print(f"[{node.get_fully_qualified_name()}] run summary: {detector.summary()}", file=sys.stderr, flush=True)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
