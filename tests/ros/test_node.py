"""The detector node as a vehicle runs it: a separate process fed by the bag player over loopback
DDS (sim time), checked by a collector; then the same under faults."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TransformStamped
from imkd_msgs.msg import DetectorStatus, Object3DArray
from rclpy.qos import qos_profile_sensor_data
from rosbags.highlevel import AnyReader
from sensor_msgs.msg import CameraInfo, CompressedImage, PointCloud2
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection3DArray

from imkd_ros.bag import make_typestore
from imkd_ros.constants import RADAR_PCD_FIELDS
from imkd_ros.replay.demo import score_stamped
from imkd_ros.ros import clouds, msgutil
from imkd_ros.ros.detections import object3d_array_to_boxes
from imkd_ros.ros.msgutil import time_to_ns
from imkd_ros.testing import wait_for

pytestmark = [pytest.mark.ros, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
NS = "/perception/imkd_detector"


def bag_stamps(bag: Path, topic: str) -> list[int]:
    with AnyReader([bag], default_typestore=make_typestore()) as r:
        conns = [c for c in r.connections if c.topic == topic]
        return [time_to_ns(r.deserialize(raw, c.msgtype).header.stamp) for c, _, raw in r.messages(conns)]


def bag_topics(bag: Path) -> list[str]:
    with AnyReader([bag]) as r:
        return sorted({c.topic for c in r.connections})


def start_detector(start_node, model: Path, *extra: str):
    return start_node("imkd_ros.ros.detector_node", name="detector", ros_args=[
        "--params-file", str(ROOT / "config" / "detector.yaml"), "-r", "__ns:=/perception",
        "-p", "use_sim_time:=true", "-p", f"model:={model}", "-p", "backend:=torch-cpu", *extra])


def subscribe_outputs(collector) -> None:
    collector.subscribe(f"{NS}/detections", Detection3DArray)
    collector.subscribe(f"{NS}/objects", Object3DArray)
    collector.subscribe(f"{NS}/status", DetectorStatus)
    collector.subscribe("/diagnostics", DiagnosticArray)


# Generous on purpose: a loaded 2-core machine imports torch, loads the model and warms up slowly.
# Every wait below ends on an event (publisher matched, player exited, all keyframes accounted for);
# the timeouts only bound a hang.
START_TIMEOUT_S = 300.0
PLAY_TIMEOUT_S = 300.0
DRAIN_TIMEOUT_S = 300.0
PENDING = 16  # the node's largest queue: the newest PENDING keyframes are always processed
RATE = 0.25  # slow playback leaves the node's executor slack on a loaded machine (no loss of input)


def play_and_wait(start_node, node, bag: Path, rate: float = RATE, topics: list[str] | None = None,
                  timeout: float = PLAY_TIMEOUT_S, wait_for: tuple[str, ...] = ()):
    args = [str(bag), "--rate", str(rate), "--wait-for-subscribers", "/cam_front/image_raw/compressed", *wait_for]
    if topics:
        args += ["--topics", *topics]
    player = start_node("imkd_ros.ros.player", args=args, name="player")
    deadline = time.monotonic() + timeout
    while player.alive():
        assert node.alive(), node.log()
        assert time.monotonic() < deadline, "player did not finish\n" + player.log()
        with contextlib.suppress(subprocess.TimeoutExpired):
            player.proc.wait(0.2)
    assert player.proc.returncode == 0, player.log()
    return player


def wait_drained(collector, topic: str, expected: int | None, timeout: float = DRAIN_TIMEOUT_S,
                 quiet_s: float = 30.0) -> list:
    """Wait until the node has worked off its queue: every one of `expected` keyframes is either
    published on `topic` or counted as dropped in the node's latest status. Without that event
    (input lost), return after quiet_s without a new message, and let the caller's assertions say
    what is missing. No rate assumption: a slow node just takes longer. expected=None: wait for
    the quiet period only (the caller cannot know how many keyframes the node will emit)."""
    deadline = time.monotonic() + timeout
    n, t_last = -1, time.monotonic()
    while time.monotonic() < deadline:
        msgs = collector.received(topic)
        statuses = collector.received(f"{NS}/status")
        dropped = statuses[-1].frames_dropped if statuses else 0
        if expected is not None and len(msgs) + dropped >= expected:
            break
        if len(msgs) != n:
            n, t_last = len(msgs), time.monotonic()
        elif time.monotonic() - t_last > quiet_s:
            break
        time.sleep(0.2)
    return collector.received(topic)


def diag_values(collector) -> dict[str, str]:
    arrays = collector.received("/diagnostics")
    assert arrays, "no /diagnostics"
    status = [s for a in arrays for s in a.status if "imkd_detector" in s.name][-1]
    return {kv.key: kv.value for kv in status.values}


def wait_diag(collector, ok, timeout: float = 60.0) -> dict[str, str]:
    """The node's latest diagnostics once `ok(values)` holds (its counters only grow); on timeout
    the last values, for the caller's assertions to report."""
    with contextlib.suppress(TimeoutError):
        wait_for(lambda: bool(collector.received("/diagnostics")) and ok(diag_values(collector)), timeout,
                 "diagnostics with the expected counters")
    return diag_values(collector)


def test_node_detects_on_a_replayed_recording(start_node, collector, synthetic_recording, untrained_student):
    bag = synthetic_recording["bag"]
    subscribe_outputs(collector)
    node = start_detector(start_node, untrained_student, "-p", f"pending_frames:={PENDING}",
                          "-p", "score_threshold:=0.0")
    collector.wait_for_publishers(f"{NS}/detections", timeout=START_TIMEOUT_S)
    cam_front = set(bag_stamps(bag, "/cam_front/image_raw/compressed"))
    play_and_wait(start_node, node, bag)
    # the last camera set may wait for radar past the end of the recording (sim time stops there)
    dets = wait_drained(collector, f"{NS}/detections", expected=len(cam_front) - 1)
    # objects go out right after detections (same worker): wait until they caught up
    wait_for(lambda: len(collector.received(f"{NS}/objects")) >= len(dets), DRAIN_TIMEOUT_S, "objects")
    objs = collector.received(f"{NS}/objects")
    statuses = collector.received(f"{NS}/status")
    assert node.alive(), node.log()

    cam_front = set(bag_stamps(bag, "/cam_front/image_raw/compressed"))
    stamps = [time_to_ns(d.header.stamp) for d in dets]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert set(stamps) <= cam_front, "detections must carry the keyframe (CAM_FRONT) stamp"
    dropped = statuses[-1].frames_dropped
    assert len(dets) + dropped >= len(cam_front) - 1, (len(dets), dropped, len(cam_front))
    # however slow the node, drop-oldest keeps the newest PENDING keyframes and works them off
    assert len(dets) >= min(PENDING, len(cam_front) - 1), (len(dets), dropped, len(cam_front))
    assert all(d.header.frame_id == "base_link" for d in dets)
    # the last keyframe's pair may have come in between the two snapshots (objects one ahead)
    obj_stamps = [time_to_ns(o.header.stamp) for o in objs]
    assert obj_stamps[: len(stamps)] == stamps and len(obj_stamps) - len(stamps) <= 1, (obj_stamps, stamps)
    assert all(len(d.detections) == len(o.objects) for d, o in zip(dets, objs))
    assert all(not s.missing_cameras for s in statuses)
    assert max(s.radar_points for s in statuses) > 0, "radar must reach the model"
    diag = diag_values(collector)
    assert diag["backend"] == "torch-cpu"
    assert "latency_ms mean" in diag and float(diag["latency_ms mean"]) > 0
    assert diag["cameras without CameraInfo"] == "none"
    assert node.stop() in (0, -2), node.log()
    # Ctrl-C leaves one line saying what the run did and where the time went
    summary = [ln for ln in node.log().splitlines() if "run summary: processed " in ln]
    assert len(summary) == 1, node.log()
    processed = int(summary[0].split("processed ")[1].split()[0])
    assert processed >= len(dets) and "network" in summary[0] and "latency mean" in summary[0], summary


def test_node_survives_missing_camera_radar_dropout_and_malformed_input(
        start_node, collector, synthetic_recording, untrained_student):
    bag = synthetic_recording["bag"]
    subscribe_outputs(collector)
    node = start_detector(start_node, untrained_student, "-p", f"pending_frames:={PENDING}")
    collector.wait_for_publishers(f"{NS}/detections", timeout=START_TIMEOUT_S)
    keep = [t for t in bag_topics(bag) if t not in ("/cam_back/image_raw/compressed", "/radar_front/points",
                                                   "/radar_back_left/points")]

    # malformed input on the node's real topics, while the recording plays
    bad_img = collector.publisher("/cam_back/image_raw/compressed", CompressedImage, qos_profile_sensor_data)
    bad_radar = collector.publisher("/radar_front/points", PointCloud2, qos_profile_sensor_data)
    bad_info = collector.publisher("/cam_back/camera_info", CameraInfo, qos_profile_sensor_data)
    bad_tf = collector.publisher("/tf", TFMessage, 10)
    for topic in ("/cam_back/image_raw/compressed", "/radar_front/points", "/cam_back/camera_info", "/tf"):
        collector.wait_for_subscribers(topic, timeout=START_TIMEOUT_S)  # best effort: lost before matching
    t0 = bag_stamps(bag, "/cam_front/image_raw/compressed")[0]

    def inject(k: int) -> None:
        stamp = t0 + k * 50_000_000
        img = CompressedImage(format="jpeg", data=b"\xff\xd8 this is not a jpeg")
        img.header = msgutil.make_header("cam_back", stamp)
        bad_img.publish(img)
        pts = np.zeros((5, len(RADAR_PCD_FIELDS)), np.float32)
        pts[:, 0] = np.nan
        cloud = clouds.radar_to_pointcloud2(pts, "radar_front", stamp)
        bad_radar.publish(cloud)  # NaN points: dropped and counted
        trunc = clouds.radar_to_pointcloud2(np.zeros((5, len(RADAR_PCD_FIELDS)), np.float32), "radar_front",
                                             stamp + 1)
        trunc.data = bytes(trunc.data)[: len(trunc.data) // 2]  # truncated cloud
        bad_radar.publish(trunc)
        info = CameraInfo(width=0, height=0)
        info.header = msgutil.make_header("cam_back", stamp)
        bad_info.publish(info)  # wrong size / zero K
        t = TransformStamped(child_frame_id="cam_back")
        t.header = msgutil.make_header("base_link", stamp)
        t.transform.rotation.w = float("nan")
        bad_tf.publish(TFMessage(transforms=[t]))

    for k in range(5):
        inject(k)
    play_and_wait(start_node, node, bag, topics=keep)
    # sets without CAM_BACK close on the camera timeout (sim time), which the last ones never reach
    n_sets = len(bag_stamps(bag, "/cam_front/image_raw/compressed"))
    dets = wait_drained(collector, f"{NS}/detections", expected=n_sets - 3)
    statuses = collector.received(f"{NS}/status")
    assert node.alive(), node.log()
    assert len(dets) >= 5, node.log()
    assert any("CAM_BACK" in s.missing_cameras for s in statuses)

    def counted(d: dict[str, str]) -> bool:
        return (int(d.get("input bad_messages", 0)) >= 5 and int(d.get("input tf_invalid", 0)) >= 1
                and int(d.get("input camera_image_invalid", 0)) + int(d.get("input camera_info_invalid", 0)) >= 1)

    diag = wait_diag(collector, counted)
    assert int(diag.get("input bad_messages", 0)) >= 5, diag
    assert int(diag.get("input camera_image_invalid", 0)) + int(diag.get("input camera_info_invalid", 0)) >= 1, diag
    assert int(diag.get("input tf_invalid", 0)) >= 1, diag
    assert node.stop() in (0, -2), node.log()


SHIPPED = ROOT / "models" / "imkd_student_cpu.pt"


def test_node_with_shipped_model_finds_the_ground_truth(start_node, collector, synthetic_recording):
    """The product as a vehicle sees it: shipped student, live node, detections vs ground truth."""
    assert SHIPPED.exists(), "the shipped student (models/imkd_student_cpu.pt) is part of the product"
    bag = synthetic_recording["bag"]
    subscribe_outputs(collector)
    collector.subscribe("/ground_truth/objects", Object3DArray)
    node = start_detector(start_node, SHIPPED, "-p", f"pending_frames:={PENDING}")
    collector.wait_for_publishers(f"{NS}/objects", timeout=START_TIMEOUT_S)
    # the player starts only once the collector is matched on the GT topic too (volatile QoS)
    play_and_wait(start_node, node, bag, wait_for=("/ground_truth/objects",))
    n_sets = len(bag_stamps(bag, "/cam_front/image_raw/compressed"))
    wait_drained(collector, f"{NS}/objects", expected=n_sets - 1)
    assert node.alive(), node.log()
    preds = {time_to_ns(m.header.stamp): object3d_array_to_boxes(m) for m in collector.received(f"{NS}/objects")}
    gts = {time_to_ns(m.header.stamp): object3d_array_to_boxes(m) for m in collector.received("/ground_truth/objects")}
    assert len(gts) == len(bag_stamps(bag, "/ground_truth/objects")) >= 5
    report = score_stamped(preds, gts)
    assert report is not None, (len(preds), len(gts))
    # A node that kept up scores every GT keyframe (the last one may wait for radar past the end);
    # one that had to drop (counted) still has the newest PENDING camera sets = 1.3 s = >= 2 keyframes.
    dropped = collector.received(f"{NS}/status")[-1].frames_dropped
    need = len(gts) - 1 if dropped == 0 else 2
    assert report["keyframes_scored"] >= need, (report["keyframes_scored"], len(gts), dropped)
    # an untrained student scores NDS ~0.0-0.02 here (tests/train/test_shipped_model.py measures both)
    assert report["NDS"] > 0.15 and report["mAP"] > 0.05, {k: report[k] for k in ("NDS", "mAP", "mATE")}
