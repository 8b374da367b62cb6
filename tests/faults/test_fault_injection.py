"""Fault injection against the live node (issue 12): one bad sensor never silences the detector.

Per fault class one detector node (shipped student, torch-cpu, sim time) is fed over loopback DDS by
the real player with a copy of the recording that has the faults baked in, each on one sensor for a
stretch of the bag, the rest healthy. Asserted for every class: the node stays alive; detections
(boxes per frame, outside the view a camera fault masks) stay >= 80 % of the same frames in a
fault-free replay through the same front end; the fault is counted and the sensor named in
/diagnostics; the diagnostics level is back to OK within 5 s after the fault ends.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from imkd_msgs.msg import DetectorStatus, Object3DArray
from rclpy.qos import qos_profile_sensor_data
from rosbags.highlevel import AnyReader
from sensor_msgs.msg import CameraInfo

from imkd_ros.model.imkd import sidecar_path
from imkd_ros.replay.replay import Replay, ReplayOptions, load_params
from imkd_ros.ros.detections import object3d_array_to_boxes
from imkd_ros.ros.msgutil import time_to_ns
from imkd_ros.runtime import create_detector
from tests.faults import faultbag as fb
from tests.ros.test_node import NS, ROOT, play_and_wait, start_detector, wait_drained

pytestmark = [pytest.mark.ros, pytest.mark.slow]

SHIPPED = ROOT / "models" / "imkd_student_cpu.pt"
RATE = 0.25  # 3 s of bag = 12 s of wall time: a healthy tail long enough to see recovery
FAULT = (0.5, 1.5)  # bag seconds with a fault (the first 0.5 s: start-up, CameraInfo arriving)
RECOVERY_S = 5.0
# Keyframes at 4 Hz (every third camera cycle) keep a loaded 2-core CI box ahead of the player.
KEYFRAME_HZ = 4.0


# ---------------------------------------------------------------------------- recording helpers
@dataclass
class LiveRun:
    node: Any
    objects: dict[int, np.ndarray] = field(default_factory=dict)  # stamp -> (N, 3) box centres
    statuses: list[Any] = field(default_factory=list)
    diagnostics: list[tuple[float, Any]] = field(default_factory=list)  # (monotonic, DiagnosticArray)
    clock: list[tuple[float, int]] = field(default_factory=list)  # (monotonic, CAM_FRONT info stamp)

    def pipeline(self) -> list[tuple[float, Any]]:
        return [(t, s) for t, a in self.diagnostics for s in a.status if s.name.endswith(": pipeline")]

    def sensor(self, name: str) -> list[tuple[float, Any]]:
        return [(t, s) for t, a in self.diagnostics for s in a.status if s.name.endswith(f"sensor {name}")]

    def wall_at(self, stamp_ns: int) -> float:
        """Wall time when the player reached bag stamp ``stamp_ns`` (CAM_FRONT CameraInfo arrivals)."""
        return next(t for t, s in self.clock if s >= stamp_ns)

    def values(self) -> dict[str, str]:
        return {kv.key: kv.value for kv in self.pipeline()[-1][1].values}


def record(collector, topic: str, msg_type: Any, sink: list, convert=lambda m: m, qos: Any = 50) -> None:
    lock = threading.Lock()

    def cb(msg: Any) -> None:
        with lock:
            sink.append((time.monotonic(), convert(msg)))

    collector._subs.append(collector.node.create_subscription(msg_type, topic, cb, qos))


def run_live(start_node, collector, bag: Path, *node_args: str, rate: float = RATE) -> LiveRun:
    objs: list = []
    statuses: list = []
    run = LiveRun(node=None)
    record(collector, f"{NS}/objects", Object3DArray, objs)
    record(collector, f"{NS}/status", DetectorStatus, statuses)
    record(collector, "/diagnostics", DiagnosticArray, run.diagnostics)
    clock: list = []
    record(collector, "/cam_front/camera_info", CameraInfo, clock, lambda m: time_to_ns(m.header.stamp),
           qos_profile_sensor_data)
    collector.subscribe(f"{NS}/objects", Object3DArray)
    run.node = start_detector(start_node, SHIPPED, "-p", "pending_frames:=16", "-p",
                              f"keyframe_rate_hz:={KEYFRAME_HZ}", *node_args)
    collector.wait_for_publishers(f"{NS}/objects", timeout=90)
    play_and_wait(start_node, run.node, bag, rate=rate, timeout=240)
    wait_drained(collector, f"{NS}/objects", expected=None, quiet_s=6.0)
    assert run.node.alive(), run.node.log()
    for _, m in objs:
        run.objects[time_to_ns(m.header.stamp)] = object3d_array_to_boxes(m).center
    run.statuses = [m for _, m in statuses]
    run.clock = sorted(clock)
    return run


def in_sector(centres: np.ndarray, exclude: tuple[float, float] | None) -> np.ndarray:
    """Boxes outside an excluded azimuth sector (degrees, base_link): those a masked view cannot cost."""
    if exclude is None or len(centres) == 0:
        return centres
    az = np.degrees(np.arctan2(centres[:, 1], centres[:, 0]))
    lo, hi = exclude
    out = (az < lo) | (az > hi) if lo <= hi else (az < lo) & (az > hi)
    return centres[out]


CAM_BACK_SECTOR = (125.0, -125.0)  # wraps through 180 deg


def box_ratio(run: LiveRun, baseline: dict[int, np.ndarray], t0: int, span_s: tuple[float, float],
              exclude: tuple[float, float] | None = None, match_ns: int = 30_000_000) -> tuple[float, int]:
    """Boxes per frame of the live run over baseline frames in ``span_s`` (nearest stamp)."""
    live_stamps = np.array(sorted(run.objects))
    got = want = frames = 0
    for s, centres in baseline.items():
        if not t0 + span_s[0] * 1e9 <= s < t0 + span_s[1] * 1e9 or len(live_stamps) == 0:
            continue
        j = int(np.argmin(np.abs(live_stamps - s)))
        if abs(int(live_stamps[j]) - s) > match_ns:
            continue
        frames += 1
        want += len(in_sector(centres, exclude))
        got += len(in_sector(run.objects[int(live_stamps[j])], exclude))
    assert frames >= 2, f"only {frames} live frames matched the baseline in {span_s}"
    assert want > 0, "the baseline has no boxes there"
    return got / want, frames


def assert_named(run: LiveRun, sensor: str, kind: str) -> None:
    levels = [(s.level[0] if isinstance(s.level, bytes) else s.level, s.message) for _, s in run.sensor(sensor)]
    assert any(lv >= 1 and kind in m for lv, m in levels), (sensor, kind, levels[-10:])
    pipe = [s.message for _, s in run.pipeline()]
    assert any(sensor in m for m in pipe), (sensor, pipe[-10:])


def assert_recovers(run: LiveRun, t0: int, end_s: float) -> float:
    """Seconds from the fault's end (player past it) to the first pipeline OK; asserts <= 5 s."""
    t_end = run.wall_at(t0 + int(end_s * 1e9))
    after = [(t - t_end, s) for t, s in run.pipeline() if t >= t_end]
    ok = [dt for dt, s in after if (s.level[0] if isinstance(s.level, bytes) else s.level) == 0]
    assert ok and ok[0] <= RECOVERY_S, ("not OK within 5 s of the fault's end",
                                        [(round(dt, 1), s.message[:160]) for dt, s in after[:8]])
    return ok[0]


def masked_in(run: LiveRun, t0: int, span_s: tuple[float, float]) -> set[str]:
    out: set[str] = set()
    for st in run.statuses:
        if t0 + span_s[0] * 1e9 <= time_to_ns(st.header.stamp) < t0 + span_s[1] * 1e9:
            out |= set(st.missing_cameras)
    return out


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def bag_t0(synthetic_recording) -> int:
    with AnyReader([synthetic_recording["bag"]]) as r:
        return next(t for _, t, _ in r.messages())


def replay_baseline(bag: Path, out_dir: Path, keyframe_hz: float) -> dict[int, np.ndarray]:
    """Box centres per keyframe of a fault-free replay through the node's front end (same params)."""
    params = replace(load_params(ROOT / "config" / "detector.yaml"), backend="torch-cpu", keyframe_rate_hz=keyframe_hz)
    det, _ = create_detector(str(SHIPPED), backend="torch-cpu")
    rep = Replay(bag, det, params, ReplayOptions(out_dir=out_dir, write_bag=False, render=[], render_worst=0))
    rep.run()
    # what the node would publish (replay scores every decoded box; the node keeps those >= its threshold)
    return {o.result.stamp_ns: rep.at_node_threshold(o.result.boxes).center for o in rep.outputs}


@pytest.fixture(scope="session")
def baseline(synthetic_recording, tmp_path_factory) -> dict[int, np.ndarray]:
    return replay_baseline(synthetic_recording["bag"], tmp_path_factory.mktemp("baseline"), KEYFRAME_HZ)


def t_in(rel: float, span: tuple[float, float]) -> bool:
    return span[0] <= rel < span[1]


# ---------------------------------------------------------------------------- the fault classes
def test_radar_faults(start_node, collector, synthetic_recording, baseline, bag_t0, tmp_path):
    """FLT_MAX RCS, FLT_MAX vx_comp, big-endian flag on LE data, a 10k-point flood, one 100k cloud."""
    segs = {"/radar_front/points": (0.5, 0.75), "/radar_front_left/points": (0.75, 1.0),
            "/radar_back_left/points": (1.0, 1.25), "/radar_back_right/points": (1.25, 1.5)}

    def mutate(topic: str, msg: Any, rel: float) -> Any:
        if topic in segs and t_in(rel, segs[topic]):
            return {"/radar_front/points": lambda m: fb.radar_field(m, "rcs", fb.FLT_MAX),
                    "/radar_front_left/points": lambda m: fb.radar_field(m, "vx_comp", fb.FLT_MAX),
                    "/radar_back_left/points": fb.radar_bigendian,
                    "/radar_back_right/points": lambda m: fb.radar_dense(m, 10_000)}[topic](msg)
        return msg

    def huge(template: Any) -> Any:
        fb.set_stamp(template, fb.stamp_ns(template) + 600_000_000)
        return fb.radar_dense(template, 100_000)

    bag = fb.rewrite(synthetic_recording["bag"], tmp_path / "radar", mutate, extra=[("/radar_front/points", 0.6, huge)])
    run = run_live(start_node, collector, bag)
    ratio, frames = box_ratio(run, baseline, bag_t0, FAULT)
    print(f"[faults] radar: boxes {ratio:.2f} of baseline over {frames} frames")
    assert ratio >= 0.8, ratio
    v = run.values()
    assert int(v["input radar_points_invalid_rcs"]) > 0 and int(v["input radar_points_invalid_vx_comp"]) > 0, v
    assert int(v["input radar_cloud_oversize"]) == 1, v
    assert int(v["input radar_points_capped"]) > 0, v
    assert_named(run, "RADAR_FRONT", "points_invalid_rcs")
    assert_named(run, "RADAR_FRONT_LEFT", "points_invalid_vx_comp")
    assert_named(run, "RADAR_BACK_LEFT", "points_invalid")
    assert_named(run, "RADAR_BACK_RIGHT", "points_capped_nearest_strongest")
    print(f"[faults] radar: OK {assert_recovers(run, bag_t0, FAULT[1]):.1f} s after the fault")
    assert run.node.stop() in (0, -2), run.node.log()


def test_image_faults(start_node, collector, synthetic_recording, baseline, bag_t0, tmp_path):
    """A PNG header claiming 20000x20000 on CAM_BACK, then CAM_FRONT at 3840x2160 (CameraInfo 1600x900)."""
    bomb, big = (0.5, 1.0), (1.0, 1.5)

    def mutate(topic: str, msg: Any, rel: float) -> Any:
        if topic == "/cam_back/image_raw/compressed" and t_in(rel, bomb):
            return fb.image_bomb(msg)
        if topic == "/cam_front/image_raw/compressed" and t_in(rel, big):
            return fb.image_upscaled(msg, 3840, 2160)
        return msg

    bag = fb.rewrite(synthetic_recording["bag"], tmp_path / "image", mutate)
    run = run_live(start_node, collector, bag)
    assert masked_in(run, bag_t0, bomb) == {"CAM_BACK"}
    assert masked_in(run, bag_t0, big) == set(), "a 4K view of the right aspect masks nothing"
    r1, n1 = box_ratio(run, baseline, bag_t0, bomb, exclude=CAM_BACK_SECTOR)
    r2, n2 = box_ratio(run, baseline, bag_t0, big)
    print(f"[faults] image: boxes {r1:.2f} (bomb, outside CAM_BACK, {n1} frames), {r2:.2f} (4K, {n2} frames)")
    assert r1 >= 0.8 and r2 >= 0.8, (r1, r2)
    assert int(run.values()["input camera_image_oversize"]) > 0
    assert_named(run, "CAM_BACK", "camera_image_oversize")
    print(f"[faults] image: OK {assert_recovers(run, bag_t0, FAULT[1]):.1f} s after the fault")
    assert run.node.stop() in (0, -2), run.node.log()


def test_camera_info_faults(start_node, collector, synthetic_recording, baseline, bag_t0, tmp_path):
    """CAM_BACK_RIGHT CameraInfo broken (zero K, 0x0) after a good one; CAM_FRONT_RIGHT images at
    3200x1800 against its 1600x900 CameraInfo."""

    def mutate(topic: str, msg: Any, rel: float) -> Any:
        if topic == "/cam_back_right/camera_info" and t_in(rel, FAULT):
            return fb.camera_info_broken(msg)
        if topic == "/cam_front_right/image_raw/compressed" and t_in(rel, FAULT):
            return fb.image_upscaled(msg, 3200, 1800)
        return msg

    bag = fb.rewrite(synthetic_recording["bag"], tmp_path / "info", mutate)
    run = run_live(start_node, collector, bag)
    assert masked_in(run, bag_t0, FAULT) == set(), "the last good calibration stays in use"
    ratio, frames = box_ratio(run, baseline, bag_t0, FAULT)
    print(f"[faults] camera_info: boxes {ratio:.2f} of baseline over {frames} frames")
    assert ratio >= 0.8
    assert int(run.values()["input camera_info_invalid"]) > 0
    assert_named(run, "CAM_BACK_RIGHT", "camera_info_invalid")
    print(f"[faults] camera_info: OK {assert_recovers(run, bag_t0, FAULT[1]):.1f} s after the fault")
    assert run.node.stop() in (0, -2), run.node.log()


def test_tf_faults(start_node, collector, synthetic_recording, baseline, bag_t0, tmp_path):
    """`base_link -> odom` on /tf (a loop), `base_link -> cam_front` on /tf (a static frame), then a new
    /tf_static frame (which used to expose the broken tree: every camera "uncalibrated")."""
    def edge(parent: str, child: str, dt: float):
        return lambda m: fb.tf_edge(m, parent, child, bag_t0 + int(dt * 1e9))

    extra = [("/tf", 0.6, edge("base_link", "odom", 0.6)), ("/tf", 0.8, edge("base_link", "cam_front", 0.8)),
             ("/tf_static", 1.0, lambda m: fb.tf_edge(m, "base_link", "lidar_extra"))]
    bag = fb.rewrite(synthetic_recording["bag"], tmp_path / "tf", lambda t, m, r: m, extra=extra)
    run = run_live(start_node, collector, bag)
    assert masked_in(run, bag_t0, (0.6, 3.0)) == set(), "no camera made uncalibrated"
    ratio, frames = box_ratio(run, baseline, bag_t0, (0.6, 3.0))
    print(f"[faults] tf: boxes {ratio:.2f} of baseline over {frames} frames")
    assert ratio >= 0.8
    v = run.values()
    assert int(v["tf rejected loop"]) >= 1 and int(v["tf rejected static_owned"]) >= 1, v
    assert_named(run, "TF", "tf_rejected")
    print(f"[faults] tf: OK {assert_recovers(run, bag_t0, 1.0):.1f} s after the last bad transform")
    assert run.node.stop() in (0, -2), run.node.log()


def test_stamp_faults(start_node, collector, synthetic_recording, baseline, bag_t0, tmp_path):
    """12 ms stamp jitter on every camera and CAM_BACK_LEFT arriving 100 ms late, then zero stamps."""
    rng = np.random.default_rng(0)
    jitter, zero = (0.5, 1.3), (1.3, 1.5)

    def mutate(topic: str, msg: Any, rel: float) -> Any:
        if topic.endswith("image_raw/compressed") and t_in(rel, jitter) and topic != "/cam_front/image_raw/compressed":
            return fb.set_stamp(msg, fb.stamp_ns(msg) + int(rng.integers(-12, 13)) * 1_000_000)
        if topic == "/cam_back_left/image_raw/compressed" and t_in(rel, zero):
            return fb.set_stamp(msg, 0)
        return msg

    def late(topic: str, rel: float) -> int:
        return 100_000_000 if topic == "/cam_back_left/image_raw/compressed" and t_in(rel, jitter) else 0

    bag = fb.rewrite(synthetic_recording["bag"], tmp_path / "stamps", mutate, log_shift_ns=late)
    run = run_live(start_node, collector, bag)
    assert masked_in(run, bag_t0, jitter) == set(), "jittered / late views still join their cycle"
    ratio, frames = box_ratio(run, baseline, bag_t0, jitter)
    print(f"[faults] stamps: boxes {ratio:.2f} of baseline over {frames} frames")
    assert ratio >= 0.8
    n_cycles = sum(1 for s in baseline)
    assert len(run.objects) <= n_cycles + 1, (len(run.objects), n_cycles)
    assert int(run.values()["input camera_zero_stamp"]) > 0
    assert_named(run, "CAM_BACK_LEFT", "camera_zero_stamp")
    print(f"[faults] stamps: OK {assert_recovers(run, bag_t0, FAULT[1]):.1f} s after the fault")
    assert run.node.stop() in (0, -2), run.node.log()


# Overload: every camera cycle is a keyframe (12 Hz) and the bag plays at 2x, so the node is asked
# for ~24 keyframes/s, far above what the CPU model does on any 2-core box (~1-5/s measured), while
# the player's ~800 messages/s still reach the node intact. (At 12x the executor itself lost
# images, so the processed keyframes had masked views and their box counts depended on luck.)
OVERLOAD_RATE = 2.0
OVERLOAD_KEYFRAME_HZ = 12.0


def test_overload(start_node, collector, synthetic_recording, bag_t0, tmp_path):
    """Keyframes requested far faster than processed, with a one-frame queue: the oldest are dropped,
    counted and named (WARN: the requested keyframe rate is not met), never an ERROR; each keyframe
    that is processed is complete and gives the boxes the fault-free replay gives for that stamp."""
    run = run_live(start_node, collector, synthetic_recording["bag"], "-p", "pending_frames:=1",
                   "-p", f"keyframe_rate_hz:={OVERLOAD_KEYFRAME_HZ}", rate=OVERLOAD_RATE)
    base = replay_baseline(synthetic_recording["bag"], tmp_path / "baseline", OVERLOAD_KEYFRAME_HZ)
    v = run.values()
    print(f"[faults] overload: {len(run.objects)} of {len(base)} keyframes processed, "
          f"dropped {v['worker dropped']}")
    assert int(v["worker dropped"]) > 0, v
    assert run.objects, run.node.log()
    assert len(run.objects) < len(base), (len(run.objects), len(base))
    # the node's keyframes are the replay's keyframes (same sync policy, same stamps): overload
    # changes which ones are processed, never what a processed one contains
    missing = sorted(set(run.objects) - set(base))
    assert not missing, ("processed keyframes the replay does not have", missing, sorted(base))
    masked = {time_to_ns(st.header.stamp): list(st.missing_cameras) for st in run.statuses if st.missing_cameras}
    assert not masked, masked
    got = sum(len(run.objects[s]) for s in run.objects)
    want = sum(len(base[s]) for s in run.objects)
    print(f"[faults] overload: boxes {got} of {want} over {len(run.objects)} processed keyframes")
    assert want > 0 and got >= 0.8 * want, (got, want, {s: (len(run.objects[s]), len(base[s])) for s in run.objects})
    pipe = run.pipeline()
    assert any("keyframes_dropped_overload" in s.message for _, s in pipe), [s.message for _, s in pipe]
    assert all((s.level[0] if isinstance(s.level, bytes) else s.level) < 2 for _, s in pipe[3:])
    assert run.node.stop() in (0, -2), run.node.log()


def test_parameter_faults(start_node, collector, synthetic_recording):
    """A wrong-typed override stops the node with one line naming it; radar_topics:=[] runs camera-only."""
    bad = start_detector(start_node, SHIPPED, "-p", "score_threshold:=high")
    bad.proc.wait(60)
    assert bad.proc.returncode == 2, bad.log()
    fatal = [ln for ln in bad.log().splitlines() if "FATAL" in ln]
    assert len(fatal) == 1 and "'score_threshold'" in fatal[0] and "Traceback" not in bad.log(), bad.log()

    # Threshold 0: this checks that the camera-only path runs the model end to end, not how well
    # the model sees without radar (the shipped students score ~0.01-0.03 NDS camera-only and
    # almost nothing above 0.3: docs/ablation.md, "camera-only").
    run = run_live(start_node, collector, synthetic_recording["bag"], "-p", "radar_topics:=[]",
                   "-p", "score_threshold:=0.0")
    assert len(run.objects) >= 10 and sum(len(c) for c in run.objects.values()) > 0, run.node.log()
    assert max(s.radar_points for s in run.statuses) == 0
    names = {s.name for _, a in run.diagnostics for s in a.status}
    assert not any("RADAR" in n for n in names), names
    assert any((s.level[0] if isinstance(s.level, bytes) else s.level) == 0 for _, s in run.pipeline())
    assert run.node.stop() in (0, -2), run.node.log()


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "imkd_ros.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_file_faults(start_node, synthetic_recording, tmp_path):
    """Bad checkpoints to the node, bad recordings / checkpoints / datasets to the tools: one line,
    exit 2; a truncated MCAP replays its readable part and says where it stopped."""

    flipped = tmp_path / "flipped.pt"
    data = bytearray(SHIPPED.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 4096] = bytes(b ^ 0xFF for b in data[mid:mid + 4096])
    flipped.write_bytes(bytes(data))
    sidecar_path(flipped).write_text(sidecar_path(SHIPPED).read_text())
    (tmp_path / "dir.pt").mkdir()
    for model in (tmp_path / "dir.pt", flipped):
        node = start_detector(start_node, model)
        node.proc.wait(90)
        assert node.proc.returncode == 2, node.log()
        fatal = [ln for ln in node.log().splitlines() if "FATAL" in ln]
        assert len(fatal) == 1 and str(model) in fatal[0] and "Traceback" not in node.log(), node.log()
    assert "does not match" in fatal[0], fatal  # the flipped copy: its sha256 sidecar refuses it

    bag = synthetic_recording["bag"]
    cut = tmp_path / "cut"
    cut.mkdir()
    mcap = next(bag.glob("*.mcap"))
    (cut / mcap.name).write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    (cut / "metadata.yaml").write_text((bag / "metadata.yaml").read_text())
    r = _cli("replay", str(cut), "--out", str(tmp_path / "r_cut"), "--backend", "torch-cpu", "--no-bag",
             "--max-keyframes", "2", "--render-worst", "0")
    assert r.returncode == 0, r.stderr
    assert "truncated" in r.stdout and "replayed the first" in r.stdout, r.stdout

    nocam = fb.rewrite(bag, tmp_path / "nocam", lambda t, m, rel: None if "cam_" in t else m)
    (tmp_path / "emptydir").mkdir()
    bad_ckpt = tmp_path / "random.pt"
    bad_ckpt.write_bytes(np.random.default_rng(1).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    cases = [
        ("replay", str(tmp_path / "emptydir"), "--out", str(tmp_path / "r1")),
        ("replay", str(nocam), "--out", str(tmp_path / "r2"), "--backend", "torch-cpu"),
        ("replay", str(bag), "--model", str(bad_ckpt), "--out", str(tmp_path / "r3"), "--backend", "torch-cpu"),
        ("eval", "--dataroot", str(synthetic_recording["dataset"]), "--version", "v1.0-synth",
         "--checkpoint", str(bad_ckpt), "--out", str(tmp_path / "e1")),
        ("eval", "--dataroot", str(tmp_path / "emptydir"), "--version", "v1.0-synth",
         "--checkpoint", str(SHIPPED), "--out", str(tmp_path / "e2")),
        ("data", "render", "--dataroot", str(tmp_path / "emptydir"), "--version", "v1.0-synth", "--index", "0",
         "--out", str(tmp_path / "x.png")),
    ]
    for args in cases:
        r = _cli(*args)
        err = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 2 and len(err) == 1 and "error:" in err[0], (args, r.returncode, r.stderr[-2000:])
    assert "none of the camera topics" in _cli(*cases[1]).stderr
