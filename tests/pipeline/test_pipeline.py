from __future__ import annotations

import threading

import numpy as np
import pytest

from imkd_ros.constants import CAMERA_NAMES
from imkd_ros.pipeline import (
    CameraInput,
    DetectorPipeline,
    InferenceWorker,
    KeyframeInput,
    PipelineConfig,
    RadarSweepPoints,
    StagedWorker,
    TransformBuffer,
)
from imkd_ros.rig.geometry import Transform
from imkd_ros.testing import wait_for
from imkd_ros.types import Boxes, Frame

K = np.array([[1266.0, 0, 800.0], [0, 1266.0, 450.0], [0, 0, 1]])


class RecordingDetector:
    """Returns one fixed box and remembers the frames it saw."""

    name = "recording"

    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def detect(self, frame: Frame) -> tuple[Boxes, dict[str, float]]:
        self.frames.append(frame)
        b = Boxes(center=np.array([[10.0, 0, 1], [5, 5, 1]], np.float32), size=np.ones((2, 3), np.float32),
                  yaw=np.zeros(2, np.float32), velocity=np.array([[1.0, 0], [0, 0]], np.float32),
                  labels=np.array([0, 8]), scores=np.array([0.9, 0.1], np.float32), attributes=np.array([0, 5]))
        return b, {"model": 1.0}


def make_tf() -> TransformBuffer:
    tf = TransformBuffer()
    for i, name in enumerate(CAMERA_NAMES):
        tf.set_transform("base_link", name.lower(), Transform.from_yaw(i * 1.0, [1, 0, 1.5]).matrix(), static=True)
    tf.set_transform("base_link", "radar_front", Transform.from_yaw(0.0, [3.6, 0, 0.5]).matrix(), static=True)
    tf.set_transform("base_link", "map_aligned", Transform.from_yaw(np.pi / 2, [0, 0, 0]).matrix(), static=True)
    # ego drives +x at 10 m/s
    for t in range(0, 11):
        ego = Transform.from_yaw(0.0, [t * 1.0, 0, 0]).matrix()
        tf.set_transform("odom", "base_link", ego, stamp_ns=t * 100_000_000)
    return tf


def cams(scale: float = 1.0, drop: tuple[int, ...] = ()) -> list[CameraInput | None]:
    h, w = int(900 * scale), int(1600 * scale)
    return [None if i in drop else
            CameraInput(np.zeros((h, w, 3), np.uint8), 900_000_000, n.lower(), K, (1600, 900))
            for i, n in enumerate(CAMERA_NAMES)]


def test_reduced_decode_scales_intrinsics_and_masks_missing_views() -> None:
    det = RecordingDetector()
    pipe = DetectorPipeline(det, transforms=make_tf())
    res = pipe.process(KeyframeInput(1_000_000_000, cams(0.5, drop=(3,)), []))
    f = det.frames[-1]
    half = K * np.array([[0.5], [0.5], [1]])
    half[:2, 2] -= 0.25  # pixel centres: u' = (u + 0.5) / 2 - 0.5
    np.testing.assert_allclose(f.intrinsics[0], half, rtol=1e-6)
    assert f.camera_valid.tolist() == [True, True, True, False, True, True]
    assert f.images[3].shape == (450, 800, 3)  # placeholder of the common size
    assert res.missing_cameras == ["CAM_BACK"]
    np.testing.assert_allclose(f.cam_to_ego[1], Transform.from_yaw(1.0, [1, 0, 1.5]).matrix(), atol=1e-6)
    assert len(res.boxes) == 1 and res.boxes.labels[0] == 0  # score threshold 0.3 applied


def test_radar_sweeps_are_motion_compensated_into_the_keyframe() -> None:
    det = RecordingDetector()
    pipe = DetectorPipeline(det, transforms=make_tf())
    # a static reflector at odom x=30: seen at t=0.5 s (ego x=5) and t=1.0 s (ego x=10)
    sweeps = [RadarSweepPoints("radar_front", t, np.array([[30 - ego - 3.6, 0.0, 0.0]]), np.array([5.0]),
                               np.array([[0.0, 0.0]])) for t, ego in ((500_000_000, 5.0), (1_000_000_000, 10.0))]
    res = pipe.process(KeyframeInput(1_000_000_000, cams(), sweeps))
    pts = det.frames[-1].radar
    assert res.radar_points == 2
    np.testing.assert_allclose(pts[:, 0], [20.0, 20.0], atol=1e-4)  # same place in the keyframe ego frame
    assert sorted(pts[:, 6].tolist()) == pytest.approx([0.0, 0.5])  # time lag
    assert sorted(pts[:, 7].tolist()) == [0.0, 1.0]  # sweep index, newest first


def test_nonfinite_radar_points_are_dropped_and_counted() -> None:
    pipe = DetectorPipeline(RecordingDetector(), transforms=make_tf())
    xyz = np.array([[10.0, 0, 0], [np.nan, 0, 0]])
    sweep = RadarSweepPoints("radar_front", 1_000_000_000, xyz, np.ones(2), np.zeros((2, 2)))
    res = pipe.process(KeyframeInput(1_000_000_000, cams(), [sweep]))
    assert res.radar_points == 1 and pipe.counters["radar_points_nonfinite"] == 1


def test_output_frame_transform() -> None:
    pipe = DetectorPipeline(RecordingDetector(), PipelineConfig(output_frame="map_aligned"), transforms=make_tf())
    res = pipe.process(KeyframeInput(1_000_000_000, cams(), []))
    # map_aligned is base_link rotated +90 deg: a box at base x=10 is at map_aligned y=-10
    np.testing.assert_allclose(res.boxes.center[0], [0, -10, 1], atol=1e-5)
    np.testing.assert_allclose(res.boxes.velocity[0], [0, -1], atol=1e-6)
    assert res.boxes.yaw[0] == pytest.approx(-np.pi / 2)
    assert res.frame_id == "map_aligned"


def test_no_camera_at_all_is_a_clear_error() -> None:
    pipe = DetectorPipeline(RecordingDetector(), transforms=make_tf())
    with pytest.raises(ValueError, match="no usable camera"):
        pipe.process(KeyframeInput(1, [None] * 6, []))


def test_worker_drops_oldest_and_survives_errors() -> None:
    gate = threading.Event()
    seen: list[int] = []

    def job(x: int) -> None:
        gate.wait(60)
        if x == 99:
            raise RuntimeError("boom")
        seen.append(x)

    errors: list[str] = []
    w = InferenceWorker(job, capacity=1, on_error=lambda e, tb: errors.append(str(e)))
    w.submit(0)
    # the worker has taken item 0 and blocks on the gate (an event, not a sleep: loaded machines)
    wait_for(lambda: w.pending() == 0 and not w.idle(), 60, "the worker to take item 0")
    for i in range(1, 6):
        w.submit(i)
    gate.set()
    assert w.wait_idle(60)
    assert seen == [0, 5]  # 1..4 were superseded by newer frames
    assert w.dropped == 4
    w.submit(99)
    assert w.wait_idle(60)
    w.submit(7)
    assert w.wait_idle(60)
    assert errors == ["boom"] and w.failed == 1 and seen[-1] == 7
    w.close()


def test_camera_ego_motion_from_capture_to_keyframe() -> None:
    """Cameras captured 100 ms before the keyframe at 10 m/s: their capture-time ego lies 1 m behind
    (meta camera_ego_motion, used by the model's optional capture-time compensation)."""
    det = RecordingDetector()
    pipe = DetectorPipeline(det, transforms=make_tf())
    pipe.process(KeyframeInput(1_000_000_000, cams(0.5, drop=(2,)), []))  # cameras stamped at 0.9 s
    mot = det.frames[-1].meta["camera_ego_motion"]
    assert mot.shape == (6, 4, 4)
    np.testing.assert_allclose(mot[0][:3, 3], [-1.0, 0.0, 0.0], atol=1e-6)  # p_key = p_capture - 1 m
    np.testing.assert_allclose(mot[2], np.eye(4))  # missing view: identity


def test_staged_worker_overlaps_the_stages_and_counts_every_item() -> None:
    """Stage 1 prepares item 2 while stage 2 still holds item 1 (an event, not a timing: if the
    stages ran one after the other, stage 2 would wait forever); items stage 1 finishes itself
    (None: a skipped keyframe) count as processed; drops of both stages add up; errors of either
    stage are counted and reported."""
    second_has_1, first_on_2 = threading.Event(), threading.Event()
    out: list[str] = []
    errors: list[str] = []

    def first(x: int) -> str | None:
        if x == 2:
            first_on_2.set()
        if x == 3:
            return None  # skipped in preprocessing
        if x == 4:
            raise ValueError("bad input")
        return f"p{x}"

    def second(item: str) -> None:
        if item == "p1":
            second_has_1.set()
            assert first_on_2.wait(60), "stage 1 did not run beside stage 2"
        if item == "p5":
            raise RuntimeError("network fault")
        out.append(item)

    w = StagedWorker(first, second, capacity=1, on_error=lambda e, tb: errors.append(str(e)))
    w.submit(1)
    assert second_has_1.wait(60)
    w.submit(2)
    assert w.wait_idle(60)
    for x in (3, 4, 5, 6):
        w.submit(x)
        assert w.wait_idle(60)
    assert out == ["p1", "p2", "p6"]
    assert w.processed == 4  # p1, p2, p6 through both stages and 3 skipped in stage 1
    assert w.failed == 2 and errors == ["bad input", "network fault"]
    assert w.dropped == 0 and w.stats()["dropped_before_network"] == 0
    # A busy network stage: the first stage prepares one item ahead and then waits; newer keyframes
    # replace the older ones in its queue (dropped before preprocessing, counted), never a
    # prepared one; the newest keyframe is the one that gets through.
    gate = threading.Event()
    prepared: list[int] = []
    done: list[int] = []

    def prep(x: int) -> int:
        prepared.append(x)
        return x

    def net(x: int) -> None:
        gate.wait(60)
        done.append(x)

    w2 = StagedWorker(prep, net, capacity=1)
    w2.submit(0)
    wait_for(lambda: done == [] and prepared == [0] and w2.pending() == 0 and not w2.idle(), 60,
             "item 0 in the network stage")
    w2.submit(1)
    wait_for(lambda: prepared == [0, 1], 60, "item 1 prepared one ahead")
    for x in range(2, 6):
        w2.submit(x)
    gate.set()
    assert w2.wait_idle(60)
    assert done[:2] == [0, 1] and done[-1] == 5 and done == sorted(done)
    assert prepared == done  # nothing prepared was thrown away
    assert w2.processed + w2.dropped == w2.submitted == 6
    assert w2.stats()["dropped_before_network"] == 0 and w2.dropped == 6 - len(done)
    w.close()
    w2.close()
