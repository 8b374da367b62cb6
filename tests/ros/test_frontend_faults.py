"""Issue 12: one bad sensor never silences the detector (front end without DDS).

Each case is one single-sensor fault the fault-injection run found: the faulty sensor loses its
data (counted, named in the health report), every healthy sensor keeps feeding the model.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from sensor_msgs.msg import PointCloud2
from tf2_msgs.msg import TFMessage

from imkd_ros.constants import CAMERA_NAMES, RADAR_NAMES, RADAR_PCD_FIELDS
from imkd_ros.pipeline.health import OK, WARN, HealthWindow
from imkd_ros.ros import calibration, clouds, images, msgutil
from imkd_ros.ros.frontend import DetectionFrontend
from imkd_ros.ros.params import NodeParams
from imkd_ros.types import Boxes

K = np.array([[1266.0, 0, 816], [0, 1266, 491], [0, 0, 1]])
F = {n: i for i, n in enumerate(RADAR_PCD_FIELDS)}
FLT_MAX = float(np.finfo(np.float32).max)


class Recorder:
    name = "recorder"

    def decode_reduce(self, camera_width: int) -> int:
        return 4

    def __init__(self) -> None:
        self.frames = []

    def detect(self, frame):
        self.frames.append(frame)
        return Boxes.empty(), {}


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def static_tf(front: DetectionFrontend, names) -> None:
    front.on_tf(TFMessage(transforms=[calibration.matrix_to_transform(np.eye(4), "base_link", n.lower())
                                      for n in names]), True)


@pytest.fixture
def front():
    f = DetectionFrontend(NodeParams(radar_wait_ms=0.0), Recorder())
    f.health._clock = FakeClock()
    static_tf(f, [*CAMERA_NAMES, *RADAR_NAMES])
    for i, n in enumerate(CAMERA_NAMES):
        f.on_camera_info(i, calibration.intrinsics_to_camera_info(K, 1600, 900, n.lower()))
    yield f
    f.close()


JPEG = images.rgb_to_compressed(np.full((900, 1600, 3), 90, np.uint8))


def radar_points(n: int = 4, seed: int = 0) -> np.ndarray:
    pts = np.zeros((n, len(RADAR_PCD_FIELDS)), np.float32)
    rng = np.random.default_rng(seed)
    pts[:, 0] = rng.uniform(5, 80, n) if n > 4 else [10, 20, 30, 40][:n]
    pts[:, 1] = rng.uniform(-10, 10, n) if n > 4 else 0
    pts[:, F["rcs"]] = rng.uniform(-5, 30, n) if n > 4 else 5
    pts[:, F["ambig_state"]] = 3
    return pts


def feed(front: DetectionFrontend, stamp: int, views: dict | None = None, radar: dict | None = None) -> list:
    """One cycle: every radar (override per index) and six JPEG views (override per index)."""
    views, radar = views or {}, radar or {}
    for r, n in enumerate(RADAR_NAMES):
        msg = radar.get(r) or clouds.radar_to_pointcloud2(radar_points(), n.lower(), stamp - 5_000_000)
        msg.header = msgutil.make_header(n.lower(), stamp - 5_000_000)
        front.on_radar(f"/{n.lower()}/points", msg)
    for i in range(6):
        msg = views.get(i)
        if msg is None:
            msg = images.rgb_to_compressed(np.zeros((1, 1, 3), np.uint8))
            msg.data, msg.format = JPEG.data, JPEG.format
        msg.header = msgutil.make_header(CAMERA_NAMES[i].lower(), stamp + i * 7_000_000)
        front.on_camera(i, msg)
    return [o for kf in front.poll(stamp + 200_000_000) if (o := front.process(kf)) is not None]


def report(front: DetectionFrontend) -> dict:
    return {r.name: r for r in front.health.report()}


# ----------------------------------------------------------------------------- radar
@pytest.mark.parametrize("field", ["rcs", "vx_comp"])
def test_radar_flt_max_marker_is_dropped_and_named(front, field) -> None:
    bad = radar_points()
    bad[:2, F[field]] = FLT_MAX
    cloud = clouds.radar_to_pointcloud2(bad, "radar_front", 0)
    outs = feed(front, 10 * 10**9, radar={0: cloud})
    assert outs
    frame = front.detector.frames[-1]
    assert np.isfinite(frame.radar).all() and np.abs(frame.radar[:, 3:6]).max() < 200
    assert frame.radar.shape[0] == 4 * len(RADAR_NAMES) - 2  # only the two marked points lost
    assert front.counters[f"radar_points_invalid_{field}"] == 2
    rep = report(front)
    assert rep["RADAR_FRONT"].level == WARN and field in rep["RADAR_FRONT"].message
    assert rep["RADAR_FRONT_LEFT"].level == OK
    assert "RADAR_FRONT" in rep["pipeline"].message


def test_radar_bigendian_flag_on_little_endian_data(front) -> None:
    cloud = clouds.radar_to_pointcloud2(radar_points(), "radar_front", 0)
    cloud.is_bigendian = True
    feed(front, 10 * 10**9, radar={0: cloud})
    frame = front.detector.frames[-1]
    assert np.isfinite(frame.radar).all() and np.abs(frame.radar[:, :3]).max() < 300
    assert frame.radar.shape[0] >= 4 * (len(RADAR_NAMES) - 1)  # the healthy radars are all there
    assert report(front)["RADAR_FRONT"].level == WARN


def test_dense_radar_keeps_nearest_and_strongest_not_random(front) -> None:
    pts = radar_points(10_000, seed=3)
    cloud = clouds.radar_to_pointcloud2(pts, "radar_front", 0)
    feed(front, 10 * 10**9, radar={0: cloud})
    frame = front.detector.frames[-1]
    cap = front.radar_limits.max_points_per_sweep
    others = 4 * (len(RADAR_NAMES) - 1)
    assert frame.radar.shape[0] == cap + others
    kept_x = np.sort(frame.radar[:, 0])
    nearest = np.sort(np.hypot(pts[:, 0], pts[:, 1]))[: cap // 2]
    assert np.hypot(frame.radar[:, 0], frame.radar[:, 1]).min() == pytest.approx(nearest[0], abs=1e-3)
    assert kept_x.size and front.counters["radar_points_capped"] == 10_000 - cap
    assert "points_capped" in report(front)["RADAR_FRONT"].message


def test_huge_cloud_refused_from_its_header_before_parsing(front) -> None:
    small = clouds.radar_to_pointcloud2(radar_points(), "radar_front", 0)
    huge = PointCloud2(height=1, width=1_000_000, fields=small.fields, point_step=small.point_step,
                       row_step=small.point_step * 1_000_000, is_dense=True)
    huge.data = bytes(small.data)  # the header claims 1M points; never parsed
    huge.header = msgutil.make_header("radar_front", 9 * 10**9)
    before = front.sync.stats()["radar_received"]
    front.on_radar("/radar_front/points", huge)
    assert front.counters["radar_cloud_oversize"] == 1
    assert front.sync.stats()["radar_received"] == before  # not buffered
    assert feed(front, 10 * 10**9)


def test_total_radar_capped_to_the_model_padding_by_usefulness() -> None:
    class Capped(Recorder):
        class cfg:  # the detector's model config, as the real runtime has it
            radar_max_points = 10

    f = DetectionFrontend(NodeParams(radar_wait_ms=0.0), Capped())
    static_tf(f, [*CAMERA_NAMES, *RADAR_NAMES])
    for i, n in enumerate(CAMERA_NAMES):
        f.on_camera_info(i, calibration.intrinsics_to_camera_info(K, 1600, 900, n.lower()))
    try:
        feed(f, 10 * 10**9)
        assert f.detector.frames[-1].radar.shape[0] == 10
        assert f.pipeline.counters["radar_points_capped"] == 4 * len(RADAR_NAMES) - 10
    finally:
        f.close()


# ----------------------------------------------------------------------------- images
def png_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_png_bomb_header_masks_only_its_view(front) -> None:
    bomb = images.rgb_to_compressed(np.zeros((1, 1, 3), np.uint8), fmt="png")
    bomb.data = png_claiming(20000, 20000)
    outs = feed(front, 10 * 10**9, views={3: bomb})
    assert len(outs) == 1 and outs[0].result.missing_cameras == ["CAM_BACK"]
    assert front.counters["camera_image_oversize"] == 1
    outs = feed(front, 10 * 10**9 + 83_333_333)
    assert len(outs) == 1 and not outs[0].result.missing_cameras  # the next keyframe is whole again
    assert "camera_image_oversize" in report(front)["CAM_BACK"].message


def test_any_decoder_exception_masks_only_its_view(front, monkeypatch) -> None:
    real = images.compressed_to_rgb

    def flaky(msg, **kw):
        if msg.header.frame_id == "cam_back_left":
            raise Image.DecompressionBombError("decompression bomb")
        return real(msg, **kw)

    monkeypatch.setattr(images, "compressed_to_rgb", flaky)
    outs = feed(front, 10 * 10**9)
    assert len(outs) == 1 and outs[0].result.missing_cameras == ["CAM_BACK_LEFT"]
    assert front.counters["camera_image_invalid"] == 1
    assert report(front)["CAM_BACK_LEFT"].level == WARN


def test_4k_camera_with_matching_camerainfo_masks_nothing(front) -> None:
    big = images.rgb_to_compressed(np.full((2160, 3840, 3), 60, np.uint8), quality=50)
    outs = feed(front, 10 * 10**9, views={0: big})
    assert len(outs) == 1 and not outs[0].result.missing_cameras
    frame = front.detector.frames[-1]
    assert frame.camera_valid.all()
    assert frame.images[0].shape == (540, 960, 3) and frame.images[1].shape == (225, 400, 3)
    np.testing.assert_allclose(frame.intrinsics[0][:2], K[:2] * (960 / 1600), rtol=1e-3)


def test_camera_with_wrong_aspect_for_its_camerainfo_masks_only_itself(front) -> None:
    odd = images.rgb_to_compressed(np.full((1200, 1600, 3), 60, np.uint8), quality=50)
    outs = feed(front, 10 * 10**9, views={2: odd})
    assert len(outs) == 1 and outs[0].result.missing_cameras == ["CAM_BACK_RIGHT"]
    assert "CAM_BACK_RIGHT" in report(front)["pipeline"].message


# ----------------------------------------------------------------------------- CameraInfo / TF
def test_bad_camerainfo_keeps_the_last_good_calibration(front) -> None:
    front.on_camera_info(1, calibration.intrinsics_to_camera_info(np.zeros((3, 3)), 1600, 900, "cam_front_right"))
    outs = feed(front, 10 * 10**9)
    assert outs and not outs[0].result.missing_cameras
    assert report(front)["CAM_FRONT_RIGHT"].level == WARN


@pytest.mark.parametrize(("parent", "child", "reason"), [
    ("base_link", "odom", "loop"),
    ("base_link", "cam_front", "static_owned"),
    ("odom", "cam_back", "static_owned"),
    ("cam_front", "cam_front", "self_parent"),
])
def test_misdirected_tf_is_rejected_and_cameras_stay_calibrated(front, parent, child, reason) -> None:
    def dynamic(p: str, c: str, stamp: int):
        return TFMessage(transforms=[calibration.matrix_to_transform(np.eye(4), p, c, stamp)])

    front.on_tf(dynamic("odom", "base_link", 10 * 10**9), False)
    front.on_tf(dynamic(parent, child, 10 * 10**9 + 1), False)
    assert front.counters["tf_rejected"] == 1 and front.counters[f"tf_rejected_{reason}"] == 1
    static_tf(front, ["lidar_top"])  # a new /tf_static frame used to expose the broken tree
    for k in range(3):
        front.on_tf(dynamic("odom", "base_link", 10 * 10**9 + (k + 1) * 50_000_000), False)
        outs = feed(front, 10 * 10**9 + k * 83_333_333)
        assert len(outs) == 1 and not outs[0].result.missing_cameras, k
    rep = report(front)
    assert rep["TF"].level == WARN and "tf_rejected" in rep["TF"].message


def test_static_frame_may_not_be_reparented_by_tf_static(front) -> None:
    front.on_tf(TFMessage(transforms=[calibration.matrix_to_transform(np.eye(4), "cam_back", "cam_front")]), True)
    assert front.counters["tf_rejected_reparent"] == 1
    assert feed(front, 10 * 10**9)[0].result.missing_cameras == []


def test_skipped_keyframe_says_what_is_missing() -> None:
    f = DetectionFrontend(NodeParams(radar_wait_ms=0.0), Recorder())
    try:
        assert feed(f, 10 * 10**9) == []
        assert "CAM_FRONT: no CameraInfo yet" in f.last_skip_reason, f.last_skip_reason
        assert "no images" not in f.last_skip_reason
    finally:
        f.close()


# ----------------------------------------------------------------------------- health window
def test_health_ok_when_healthy_and_clears_after_a_fault(front) -> None:
    clock = front.health._clock
    for k in range(3):
        feed(front, 10 * 10**9 + k * 83_333_333)
    assert report(front)["pipeline"].level == OK, report(front)["pipeline"].message
    bad = radar_points()
    bad[:, F["rcs"]] = FLT_MAX
    feed(front, 11 * 10**9, radar={4: clouds.radar_to_pointcloud2(bad, "radar_back_right", 0)})
    rep = report(front)
    assert rep["pipeline"].level == WARN and "RADAR_BACK_RIGHT" in rep["pipeline"].message
    clock.t += front.health.window_s + 0.1
    feed(front, 12 * 10**9)  # healthy again
    assert report(front)["pipeline"].level == OK, report(front)["pipeline"].message


def test_health_stale_sensor_and_masked_camera() -> None:
    clock = FakeClock()
    h = HealthWindow(["CAM_FRONT", "RADAR_FRONT"], window_s=3.0, stale_s=2.0, clock=clock)
    h.rx("CAM_FRONT")
    h.rx("RADAR_FRONT")
    for _ in range(4):
        h.keyframe([])
    assert [r.level for r in h.report()] == [OK, OK, OK]
    clock.t += 2.5
    h.rx("CAM_FRONT")
    for _ in range(4):
        h.keyframe(["CAM_FRONT"])
    rep = {r.name: r for r in h.report()}
    assert "no data for 2.5 s" in rep["RADAR_FRONT"].message
    assert "masked in 4/8 keyframes" in rep["CAM_FRONT"].message
    h.event("pipeline", "inference_error")
    assert h.report()[-1].level == 2
    clock.t += 3.1
    h.rx("CAM_FRONT")
    h.rx("RADAR_FRONT")
    assert h.report()[-1].level == OK
