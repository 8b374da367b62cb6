"""Tests for imkd_ros.ros.convert: images, compressed images, CameraInfo, PointCloud2, radar, TF,
detections and markers. Real rclpy message classes (no node, no DDS)."""

from __future__ import annotations

import io
import math
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg")

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from geometry_msgs.msg import Point, Quaternion, TransformStamped, Vector3
from PIL import Image as PILImage
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CameraInfo, PointField
from std_msgs.msg import ColorRGBA
from vision_msgs.msg import ObjectHypothesis
from visualization_msgs.msg import Marker

from imkd_ros.constants import ATTRIBUTES, CLASSES, RADAR_PCD_FIELDS
from imkd_ros.rig.geometry import box_corners
from imkd_ros.ros import convert as cv
from imkd_ros.types import Boxes


def _rgb(h=90, w=160, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _smooth_rgb(h=96, w=160) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)], -1).astype(np.uint8)


def _roundtrip(msg):
    return deserialize_message(serialize_message(msg), type(msg))


# ---------------------------------------------------------------------------- Image
def test_rgb8_is_zero_copy_view():
    rgb = _rgb()
    msg = cv.rgb_to_image(rgb, "cam", 5)
    out = cv.image_to_rgb(msg)
    assert out.shape == (90, 160, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, rgb)
    assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8))
    owned = cv.image_to_rgb(msg, copy=True)
    assert not np.shares_memory(owned, np.frombuffer(msg.data, np.uint8))
    np.testing.assert_array_equal(owned, rgb)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_color_encodings_roundtrip(encoding):
    rgb = _rgb(seed=1)
    msg = _roundtrip(cv.rgb_to_image(rgb, "cam", 7, encoding=encoding))
    assert msg.encoding == encoding and msg.step == 160 * (4 if "a" in encoding[3:] else 3)
    out = cv.image_to_rgb(msg)
    assert out.shape == (90, 160, 3)
    np.testing.assert_array_equal(out, rgb)


def test_bgr8_channel_order_explicit():
    msg = SimpleNamespace(encoding="bgr8", height=1, width=2, step=6, data=bytes([1, 2, 3, 4, 5, 6]))
    np.testing.assert_array_equal(cv.image_to_rgb(msg), [[[3, 2, 1], [6, 5, 4]]])
    msg = SimpleNamespace(encoding="bgra8", height=1, width=1, step=4, data=bytes([10, 20, 30, 40]))
    np.testing.assert_array_equal(cv.image_to_rgb(msg), [[[30, 20, 10]]])


def test_mono8():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    msg = SimpleNamespace(encoding="mono8", height=3, width=4, step=4, data=gray.tobytes())
    out = cv.image_to_rgb(msg)
    assert out.shape == (3, 4, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


@pytest.mark.parametrize("encoding,ch", [("rgb8", 3), ("bgr8", 3), ("rgba8", 4), ("mono8", 1)])
def test_step_padding_skipped(encoding, ch):
    h, w, pad = 5, 7, 9
    rng = np.random.default_rng(2)
    pix = rng.integers(0, 256, (h, w, ch), dtype=np.uint8)
    rows = np.full((h, w * ch + pad), 0xAB, np.uint8)
    rows[:, : w * ch] = pix.reshape(h, -1)
    msg = SimpleNamespace(encoding=encoding, height=h, width=w, step=w * ch + pad, data=rows.tobytes())
    out = cv.image_to_rgb(msg)
    if encoding == "mono8":
        expect = np.repeat(pix, 3, axis=2)
    elif encoding == "bgr8":
        expect = pix[..., ::-1]
    else:
        expect = pix[..., :3]
    np.testing.assert_array_equal(out, expect)
    # The last row may omit its padding (some drivers do).
    msg.data = rows.tobytes()[:-pad]
    np.testing.assert_array_equal(cv.image_to_rgb(msg), expect)


def test_rosbags_style_ndarray_data():
    rgb = _rgb(seed=3)
    msg = SimpleNamespace(encoding="rgb8", height=90, width=160, step=480, data=rgb.reshape(-1).copy())
    out = cv.image_to_rgb(msg)
    np.testing.assert_array_equal(out, rgb)
    assert np.shares_memory(out, msg.data)


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(encoding="16UC1"), "unsupported image encoding"),
        (dict(encoding="yuv422"), "unsupported image encoding"),
        (dict(step=100), "step 100 < width"),
        (dict(data=bytes(480 * 90 - 1)), "needs"),
        (dict(height=0), "empty image"),
    ],
)
def test_image_errors(kw, match):
    base = dict(encoding="rgb8", height=90, width=160, step=480, data=bytes(480 * 90))
    base.update(kw)
    with pytest.raises(ValueError, match=match):
        cv.image_to_rgb(SimpleNamespace(**base))


def test_image_seam_uses_cv_bridge_when_present(monkeypatch):
    calls = []

    class FakeBridge:
        def imgmsg_to_cv2(self, msg, desired_encoding):
            calls.append(desired_encoding)
            return np.full((2, 2, 3), 42, np.uint8)

    monkeypatch.setattr(cv, "_cv_bridge_mod", SimpleNamespace(CvBridge=FakeBridge))
    monkeypatch.setattr(cv, "_bridge", None)
    assert cv.backends()["image"] == "cv_bridge"
    msg = SimpleNamespace(encoding="rgb8", height=2, width=2, step=6, data=bytes(12))
    assert cv.image_to_rgb(msg)[0, 0, 0] == 42 and calls == ["rgb8"]
    # Validation is the same on both paths: a bad message never reaches the library.
    with pytest.raises(ValueError, match="unsupported"):
        cv.image_to_rgb(SimpleNamespace(encoding="weird", height=2, width=2, step=6, data=bytes(12)))
    assert calls == ["rgb8"]


def test_default_backends_are_builtin_here():
    b = cv.backends()
    assert set(b) == {"image", "pointcloud2", "jpeg_decoder"}
    if cv._cv_bridge_mod is None:
        assert b["image"] == "builtin"


# ---------------------------------------------------------------------------- CompressedImage
@pytest.fixture(params=["opencv", "pillow"])
def jpeg_decoder(request, monkeypatch):
    """Run a test with each JPEG decoder (OpenCV when importable, and the PIL fallback)."""
    if request.param == "pillow":
        monkeypatch.setattr(cv, "_cv2_mod", None)
    elif cv._cv2_mod is None:
        pytest.skip("cv2 not importable")
    assert cv.backends()["jpeg_decoder"] == request.param
    return request.param


def test_jpeg_full_and_reduced(jpeg_decoder):
    rgb = _smooth_rgb(96, 160)
    msg = _roundtrip(cv.rgb_to_compressed(rgb, "cam", 3, "jpeg", quality=95))
    assert msg.format == "jpeg"
    full = cv.compressed_to_rgb(msg)
    assert full.shape == (96, 160, 3) and full.dtype == np.uint8
    assert np.abs(full.astype(int) - rgb).mean() < 3
    for r in (2, 4, 8):
        red = cv.compressed_to_rgb(msg, reduce=r)
        assert red.shape == (math.ceil(96 / r), math.ceil(160 / r), 3)
        # Compare against a box-downsampled original (DCT scaling ~ area average).
        ref = rgb.reshape(96 // r, r, 160 // r, r, 3).mean(axis=(1, 3))
        assert np.abs(red.astype(float) - ref).mean() < 4


def test_jpeg_reduced_size_is_ceil(jpeg_decoder):
    rgb = _smooth_rgb(90, 161)
    msg = cv.rgb_to_compressed(rgb, fmt="jpeg")
    assert cv.compressed_to_rgb(msg, reduce=2).shape == (45, 81, 3)
    assert cv.compressed_to_rgb(msg, reduce=4).shape == (23, 41, 3)


def test_image_transport_format_string_and_png(jpeg_decoder):
    rgb = _rgb(seed=4)
    png = cv.rgb_to_compressed(rgb, fmt="png")
    np.testing.assert_array_equal(cv.compressed_to_rgb(png), rgb)  # lossless
    png.format = "rgb8; png compressed rgb8"
    np.testing.assert_array_equal(cv.compressed_to_rgb(png), rgb)
    assert cv.compressed_to_rgb(png, reduce=2).shape == (45, 80, 3)
    jpg = cv.rgb_to_compressed(rgb, fmt="jpeg")
    jpg.format = "bgr8; jpeg compressed bgr8"
    assert cv.compressed_to_rgb(jpg).shape == (90, 160, 3)


def test_compressed_gray_jpeg_becomes_rgb(jpeg_decoder):
    buf = io.BytesIO()
    PILImage.fromarray(np.full((16, 16), 128, np.uint8)).save(buf, "JPEG")
    out = cv.compressed_to_rgb(SimpleNamespace(format="jpeg", data=buf.getvalue()))
    assert out.shape == (16, 16, 3) and abs(int(out[8, 8, 0]) - 128) <= 2


def test_decoders_agree_and_batch_decode():
    msgs = [cv.rgb_to_compressed(_smooth_rgb(96, 160) // (i + 1), fmt="jpeg") for i in range(4)]
    serial = cv.compressed_to_rgb_many(msgs, reduce=2)
    with ThreadPoolExecutor(2) as pool:
        parallel = cv.compressed_to_rgb_many(msgs, reduce=2, executor=pool)
    assert len(parallel) == 4
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)
    if cv._cv2_mod is not None:
        pil = cv._decode_pil(cv._as_u8(msgs[0].data), "jpeg", 2)
        assert pil.shape == serial[0].shape
        assert np.abs(pil.astype(int) - serial[0]).mean() < 2  # same libjpeg, same scaling


def test_compressed_errors(jpeg_decoder):
    with pytest.raises(ValueError, match="unsupported CompressedImage format"):
        cv.compressed_to_rgb(SimpleNamespace(format="tiff", data=b"xx"))
    with pytest.raises(ValueError, match="could not decode"):
        cv.compressed_to_rgb(SimpleNamespace(format="jpeg", data=b"not a jpeg at all"))
    with pytest.raises(ValueError, match="empty"):
        cv.compressed_to_rgb(SimpleNamespace(format="jpeg", data=b""))
    with pytest.raises(ValueError, match="reduce"):
        cv.compressed_to_rgb(SimpleNamespace(format="jpeg", data=b"x"), reduce=3)


# ---------------------------------------------------------------------------- CameraInfo
K_NUSC = np.array([[1266.4, 0.0, 816.3], [0.0, 1266.4, 491.5], [0.0, 0.0, 1.0]])


def test_camera_info_roundtrip():
    msg = _roundtrip(cv.intrinsics_to_camera_info(K_NUSC, 1600, 900, "CAM_FRONT", 9))
    intr = cv.camera_info_to_intrinsics(msg)
    np.testing.assert_allclose(intr.K, K_NUSC)
    assert intr.size == (1600, 900) and intr.distortion_model == "plumb_bob"
    assert intr.K.shape == (3, 3) and intr.K.dtype == np.float64


def test_camera_info_distortion_check():
    msg = cv.intrinsics_to_camera_info(K_NUSC, 1600, 900, D=[-0.3, 0.1, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="distortion"):
        cv.camera_info_to_intrinsics(msg)
    intr = cv.camera_info_to_intrinsics(msg, require_undistorted=False)
    np.testing.assert_allclose(intr.D, [-0.3, 0.1, 0, 0, 0])


def test_camera_info_invalid():
    with pytest.raises(ValueError, match="pinhole"):
        cv.camera_info_to_intrinsics(CameraInfo(width=10, height=10))  # uncalibrated: K all zero
    with pytest.raises(ValueError, match="empty"):
        cv.camera_info_to_intrinsics(cv.intrinsics_to_camera_info(K_NUSC, 0, 900))
    bad = K_NUSC.copy()
    bad[2, 0] = 0.5
    with pytest.raises(ValueError, match="upper triangular"):
        cv.camera_info_to_intrinsics(cv.intrinsics_to_camera_info(bad, 1600, 900))


def test_camera_info_roi_and_binning():
    msg = cv.intrinsics_to_camera_info(K_NUSC, 1600, 900)
    msg.roi.x_offset, msg.roi.y_offset, msg.roi.width, msg.roi.height = 100, 50, 1200, 600
    intr = cv.camera_info_to_intrinsics(msg)
    assert intr.size == (1200, 600)
    assert intr.K[0, 2] == pytest.approx(716.3) and intr.K[1, 2] == pytest.approx(441.5)
    msg = cv.intrinsics_to_camera_info(K_NUSC, 1600, 900)
    msg.binning_x = msg.binning_y = 2
    intr = cv.camera_info_to_intrinsics(msg)
    assert intr.size == (800, 450) and intr.K[0, 0] == pytest.approx(633.2)


def test_scale_intrinsics_matches_pixel_centres():
    """A point at full-res pixel centre u lands at (u + 0.5) / 2 - 0.5 in the half-size image."""
    K2 = cv.scale_intrinsics(K_NUSC, 0.5, 0.5)
    p = np.array([1.5, -0.7, 12.0])
    uv = (K_NUSC @ p)[:2] / p[2]
    uv2 = (K2 @ p)[:2] / p[2]
    np.testing.assert_allclose(uv2, (uv + 0.5) / 2 - 0.5)


# ---------------------------------------------------------------------------- PointCloud2
MIXED = np.dtype(
    {
        "names": ["x", "y", "z", "intensity", "ring", "t", "normal"],
        "formats": ["<f4", "<f4", "<f4", "<u2", "<u1", "<f8", ("<f4", (3,))],
        "offsets": [0, 4, 8, 12, 14, 16, 24],
        "itemsize": 40,  # 4 bytes of padding at the end of every point
    }
)


def _mixed_points(n=50, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = np.zeros(n, MIXED)
    for name in ("x", "y", "z"):
        a[name] = rng.normal(size=n).astype(np.float32)
    a["intensity"] = rng.integers(0, 65535, n)
    a["ring"] = rng.integers(0, 32, n)
    a["t"] = rng.random(n)
    a["normal"] = rng.normal(size=(n, 3))
    return a


def _assert_struct_equal(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype.names == b.dtype.names and a.shape == b.shape
    for n in a.dtype.names:
        np.testing.assert_array_equal(a[n], b[n])


def test_pointcloud2_roundtrip_any_fields():
    pts = _mixed_points()
    msg = _roundtrip(cv.array_to_pointcloud2(pts, "lidar", 11))
    assert msg.point_step == 40 and msg.row_step == 40 * 50 and msg.height == 1 and msg.width == 50
    fields = {f.name: (f.offset, f.datatype, f.count) for f in msg.fields}
    assert fields["intensity"] == (12, cv.UINT16, 1)
    assert fields["ring"] == (14, cv.UINT8, 1)
    assert fields["t"] == (16, cv.FLOAT64, 1)
    assert fields["normal"] == (24, cv.FLOAT32, 3)
    assert msg.is_dense and not msg.is_bigendian
    out = cv.pointcloud2_to_array(msg)
    _assert_struct_equal(out, pts)


def test_pointcloud2_is_zero_copy_view():
    msg = cv.array_to_pointcloud2(_mixed_points())
    out = cv.pointcloud2_to_array(msg)
    assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8))


def test_pointcloud2_big_endian():
    pts = _mixed_points(7).astype(MIXED.newbyteorder(">"))
    msg = cv.array_to_pointcloud2(pts)
    assert msg.is_bigendian
    raw = np.frombuffer(msg.data, np.uint8)
    assert raw[:4].tobytes() == np.float32(pts["x"][0]).byteswap().tobytes() or raw[:4].tobytes() == np.array(
        pts["x"][0], ">f4"
    ).tobytes()
    out = cv.pointcloud2_to_array(msg)
    np.testing.assert_array_equal(out["x"], pts["x"])
    np.testing.assert_array_equal(out["normal"], pts["normal"])


def test_pointcloud2_manual_layout_with_row_padding():
    """Organised 2x3 cloud, fields out of offset order, padded points and padded rows."""
    h, w, ps, rs = 2, 3, 16, 3 * 16 + 8
    buf = np.full(h * rs, 0xEE, np.uint8)
    vals = np.arange(h * w, dtype=np.float32)
    for r in range(h):
        for c in range(w):
            k = r * w + c
            o = r * rs + c * ps
            buf[o + 8 : o + 12] = np.frombuffer(np.float32(vals[k]).tobytes(), np.uint8)  # x at 8
            buf[o + 0 : o + 2] = np.frombuffer(np.int16(-k).tobytes(), np.uint8)  # id at 0
    fields = [
        PointField(name="x", offset=8, datatype=cv.FLOAT32, count=1),
        PointField(name="id", offset=0, datatype=cv.INT16, count=1),
    ]
    msg = SimpleNamespace(height=h, width=w, fields=fields, is_bigendian=False, point_step=ps, row_step=rs,
                          data=buf.tobytes())
    out = cv.pointcloud2_to_array(msg)
    assert out.shape == (6,)
    np.testing.assert_array_equal(out["x"], vals)
    np.testing.assert_array_equal(out["id"], -np.arange(6))


def test_pointcloud2_organised_roundtrip():
    pts = _mixed_points(12).reshape(3, 4)
    msg = cv.array_to_pointcloud2(pts)
    assert (msg.height, msg.width, msg.row_step) == (3, 4, 160)
    _assert_struct_equal(cv.pointcloud2_to_array(msg), pts.reshape(-1))


def test_pointcloud2_errors():
    msg = cv.array_to_pointcloud2(_mixed_points(10))
    msg.data = bytes(msg.data)[:-1]
    with pytest.raises(ValueError, match="truncated"):
        cv.pointcloud2_to_array(msg)
    msg = cv.array_to_pointcloud2(_mixed_points(10))
    msg.row_step = 10
    with pytest.raises(ValueError, match="row_step"):
        cv.pointcloud2_to_array(msg)
    msg = cv.array_to_pointcloud2(_mixed_points(10))
    msg.fields = list(msg.fields) + [PointField(name="far", offset=38, datatype=cv.FLOAT32, count=1)]
    with pytest.raises(ValueError, match="exceeds point_step"):
        cv.pointcloud2_to_array(msg)
    msg.fields = [PointField(name="x", offset=0, datatype=99, count=1)]
    with pytest.raises(ValueError, match="unknown datatype"):
        cv.pointcloud2_to_array(msg)
    with pytest.raises(ValueError, match="structured"):
        cv.array_to_pointcloud2(np.zeros((3, 3), np.float32))


def test_pointcloud2_nan_policies():
    pts = _mixed_points(20)
    pts["x"][[2, 5]] = np.nan
    pts["z"][7] = np.inf
    pts["t"][9] = np.nan  # not a coordinate: kept by the default x/y/z check
    msg = cv.array_to_pointcloud2(pts)
    assert not msg.is_dense
    keep = cv.read_pointcloud2(msg)
    assert keep.points.shape == (20,) and keep.dropped == 0
    drop = cv.read_pointcloud2(msg, nan_policy="drop")
    assert drop.points.shape == (17,) and drop.dropped == 3
    assert np.all(np.isfinite(drop.points["x"])) and np.isnan(drop.points["t"]).sum() == 1
    with pytest.raises(ValueError, match="3 of 20"):
        cv.read_pointcloud2(msg, nan_policy="raise")
    drop_t = cv.read_pointcloud2(msg, nan_policy="drop", nan_fields=("t",))
    assert drop_t.dropped == 1
    with pytest.raises(ValueError, match="nan_policy"):
        cv.read_pointcloud2(msg, nan_policy="ignore")


def test_empty_pointcloud2():
    msg = cv.array_to_pointcloud2(np.zeros(0, MIXED))
    out = cv.read_pointcloud2(msg, nan_policy="drop")
    assert out.points.shape == (0,) and out.dropped == 0 and out.points.dtype.names == MIXED.names


def test_pointcloud_seam_uses_sensor_msgs_py_when_present(monkeypatch):
    seen = []

    def read_points(msg, skip_nans=False):
        seen.append(skip_nans)
        return np.zeros(3, np.dtype([("x", "<f4")]))

    def create_cloud(header, fields, points):
        raise TypeError("old API wants tuples")  # forces the builtin fallback

    monkeypatch.setattr(cv, "_pc2_mod", SimpleNamespace(read_points=read_points, create_cloud=create_cloud))
    assert cv.backends()["pointcloud2"] == "sensor_msgs_py"
    msg = cv.array_to_pointcloud2(_mixed_points(5))
    assert msg.width == 5  # fallback built it
    out = cv.pointcloud2_to_array(msg)
    assert out.shape == (3,) and seen == [False]


# ---------------------------------------------------------------------------- radar
def _radar_points(n=30, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pts = rng.normal(size=(n, 18)).astype(np.float32) * 10
    for i, name in enumerate(RADAR_PCD_FIELDS):
        if cv.RADAR_DTYPE[name].kind == "i":
            pts[:, i] = rng.integers(0, 20, n)
    return pts


def test_radar_roundtrip_and_layout():
    pts = _radar_points()
    msg = _roundtrip(cv.radar_to_pointcloud2(pts, "RADAR_FRONT", 3))
    assert [f.name for f in msg.fields] == list(RADAR_PCD_FIELDS)
    assert msg.point_step == 43  # the nuScenes PCD layout: 10 float32, 1 int16, 7 int8
    types = {f.name: f.datatype for f in msg.fields}
    assert types["x"] == cv.FLOAT32 and types["id"] == cv.INT16 and types["dyn_prop"] == cv.INT8
    read = cv.pointcloud2_to_radar(msg)
    assert read.dropped == 0 and read.points.shape == (30, 18) and read.points.dtype == np.float32
    np.testing.assert_array_equal(read.points, pts)


def test_radar_from_other_driver_layout():
    """Fields in another order and all float32 (a different driver) still read by name."""
    pts = _radar_points(8, seed=1)
    order = list(reversed(RADAR_PCD_FIELDS)) + ["extra"]
    dt = np.dtype([(n, "<f4") for n in order])
    arr = np.zeros(8, dt)
    for i, n in enumerate(RADAR_PCD_FIELDS):
        arr[n] = pts[:, i]
    arr["x"][3] = np.nan
    read = cv.pointcloud2_to_radar(cv.array_to_pointcloud2(arr))
    assert read.dropped == 1
    np.testing.assert_array_equal(read.points, np.delete(pts, 3, axis=0))


def test_radar_errors():
    with pytest.raises(ValueError, match=r"\(N, 18\)"):
        cv.radar_to_pointcloud2(np.zeros((4, 5), np.float32))
    msg = cv.array_to_pointcloud2(np.zeros(3, np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4")])))
    with pytest.raises(ValueError, match="lacks fields"):
        cv.pointcloud2_to_radar(msg)


def test_radar_structured_input_and_int_rounding():
    arr = np.zeros(2, np.dtype([(n, "<f8") for n in RADAR_PCD_FIELDS]))
    arr["id"] = [3.6, 40000]  # rounds, and clips to int16
    read = cv.pointcloud2_to_radar(cv.radar_to_pointcloud2(arr))
    assert read.points[:, RADAR_PCD_FIELDS.index("id")].tolist() == [4, 32767]


# ---------------------------------------------------------------------------- TF
def _random_rigid(seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    m = np.eye(4)
    m[:3, :3] = q
    m[:3, 3] = rng.normal(size=3) * 5
    return m


def test_transform_roundtrip():
    for seed in range(5):
        m = _random_rigid(seed)
        msg = _roundtrip(cv.matrix_to_transform(m, "base_link", "CAM_FRONT", 123))
        assert msg.header.frame_id == "base_link" and msg.child_frame_id == "CAM_FRONT"
        assert cv.time_to_ns(msg.header.stamp) == 123
        np.testing.assert_allclose(cv.transform_to_matrix(msg), m, atol=1e-9)


def test_transform_known_values():
    t = TransformStamped()
    t.transform.translation.x = 1.0
    t.transform.rotation.z = math.sin(math.pi / 4)
    t.transform.rotation.w = math.cos(math.pi / 4)  # 90 deg about z
    m = cv.transform_to_matrix(t)
    np.testing.assert_allclose(m @ [1, 0, 0, 1], [1, 1, 0, 1], atol=1e-12)  # child x -> parent y, +t
    np.testing.assert_allclose(cv.transform_to_matrix(t.transform), m)


def test_transform_errors():
    t = TransformStamped()
    t.transform.rotation.w = 0.0
    with pytest.raises(ValueError, match="quaternion"):
        cv.transform_to_matrix(t)
    m = np.eye(4)
    m[0, 0] = 2.0
    with pytest.raises(ValueError, match="rotation"):
        cv.matrix_to_transform(m, "a", "b")
    m = np.diag([1.0, 1.0, -1.0, 1.0])  # reflection
    with pytest.raises(ValueError, match="rotation"):
        cv.matrix_to_transform(m, "a", "b")


def test_stamp_conversion():
    assert cv.time_to_ns(cv.ns_to_time(1_700_000_000_123_456_789)) == 1_700_000_000_123_456_789
    t = cv.ns_to_time(2_500_000_000)
    assert (t.sec, t.nanosec) == (2, 500_000_000)


# ---------------------------------------------------------------------------- detections
def _boxes(track=True) -> Boxes:
    return Boxes(
        center=np.array([[10.0, 2.0, 0.5], [-5.0, 3.0, 1.0], [0.0, -8.0, 0.3]], np.float32),
        size=np.array([[1.9, 4.6, 1.7], [0.7, 0.8, 1.8], [0.5, 0.5, 1.0]], np.float32),  # (w, l, h)
        yaw=np.array([0.3, -2.0, 3.0], np.float32),
        velocity=np.array([[5.0, 1.0], [0.1, 0.0], [0.0, -1.5]], np.float32),
        labels=np.array([0, 8, 9], np.int64),
        scores=np.array([0.9, 0.6, 0.4], np.float32),
        attributes=np.array([0, 5, -1], np.int64),
        track_ids=np.array([7, 8, 9], np.int64) if track else None,
    )


def test_detection3d_array_fields_and_size_mapping():
    b = _boxes()
    msg = _roundtrip(cv.boxes_to_detection3d_array(b, "base_link", 42))
    assert msg.header.frame_id == "base_link" and cv.time_to_ns(msg.header.stamp) == 42
    assert len(msg.detections) == 3
    d = msg.detections[0]
    assert d.header.frame_id == "base_link" and d.id == "7"
    hyp = d.results[0]
    assert hyp.hypothesis.class_id == "car" and hyp.hypothesis.score == pytest.approx(0.9)
    # size = (l, w, h) along the box axes; nuScenes (w, l, h) = (1.9, 4.6, 1.7)
    assert (d.bbox.size.x, d.bbox.size.y, d.bbox.size.z) == pytest.approx((4.6, 1.9, 1.7))
    q = d.bbox.center.orientation
    assert (q.x, q.y) == (0.0, 0.0)
    assert (q.z, q.w) == pytest.approx((math.sin(0.15), math.cos(0.15)))
    assert hyp.pose.pose.position.x == pytest.approx(10.0)
    assert [x.results[0].hypothesis.class_id for x in msg.detections] == ["car", "pedestrian", "traffic_cone"]
    back = cv.detection3d_array_to_boxes(msg)
    np.testing.assert_allclose(back.center, b.center, atol=1e-6)
    np.testing.assert_allclose(back.size, b.size, atol=1e-6)
    np.testing.assert_allclose(np.cos(back.yaw - b.yaw), 1.0, atol=1e-6)
    np.testing.assert_array_equal(back.labels, b.labels)
    np.testing.assert_array_equal(back.track_ids, [7, 8, 9])


def test_detection3d_size_matches_box_geometry():
    """bbox.size.x is the extent along the box's heading: rotate a corner back and check."""
    b = _boxes()
    d = cv.boxes_to_detection3d_array(b, "base_link", 0).detections[0]
    corners = box_corners(b.center[:1], b.size[:1], b.yaw[:1])[0] - b.center[0]
    c, s = math.cos(b.yaw[0]), math.sin(b.yaw[0])
    local_x = corners[:, 0] * c + corners[:, 1] * s
    local_y = -corners[:, 0] * s + corners[:, 1] * c
    assert np.ptp(local_x) == pytest.approx(d.bbox.size.x, abs=1e-5)
    assert np.ptp(local_y) == pytest.approx(d.bbox.size.y, abs=1e-5)


def test_empty_detections():
    msg = cv.boxes_to_detection3d_array(Boxes.empty(), "base_link", 1)
    assert len(msg.detections) == 0
    assert len(cv.detection3d_array_to_boxes(msg)) == 0
    msg = cv.boxes_to_object3d_array(Boxes.empty(), "base_link", 1)
    assert len(cv.object3d_array_to_boxes(msg)) == 0


def test_object3d_array_roundtrip():
    b = _boxes()
    msg = _roundtrip(cv.boxes_to_object3d_array(b, "base_link", 99))
    o = msg.objects[0]
    assert (o.class_name, o.class_id, o.attribute, o.track_id) == ("car", 0, ATTRIBUTES[0], 7)
    assert (o.width, o.length, o.height) == pytest.approx((1.9, 4.6, 1.7))
    assert (o.vx, o.vy) == pytest.approx((5.0, 1.0))
    assert msg.objects[2].attribute == ""
    back = cv.object3d_array_to_boxes(msg)
    for name in ("center", "size", "yaw", "velocity", "scores"):
        np.testing.assert_allclose(getattr(back, name), getattr(b, name), atol=1e-6)
    np.testing.assert_array_equal(back.labels, b.labels)
    np.testing.assert_array_equal(back.attributes, b.attributes)
    np.testing.assert_array_equal(back.track_ids, b.track_ids)
    assert cv.object3d_array_to_boxes(cv.boxes_to_object3d_array(_boxes(False), "b", 0)).track_ids is None


# ---------------------------------------------------------------------------- markers
def test_marker_array():
    b = _boxes()
    msg = _roundtrip(cv.boxes_to_marker_array(b, "base_link", 5, min_speed=0.2))
    ms = list(msg.markers)
    assert ms[0].action == Marker.DELETEALL
    lines = [m for m in ms if m.type == Marker.LINE_LIST and m.action == Marker.ADD]
    texts = [m for m in ms if m.type == Marker.TEXT_VIEW_FACING]
    arrows = [m for m in ms if m.type == Marker.ARROW and m.action == Marker.ADD]
    assert len(lines) == 1 and len(lines[0].points) == 3 * 24 and len(lines[0].colors) == 3 * 24
    assert [t.text for t in texts] == ["car 0.90", "pedestrian 0.60", "traffic_cone 0.40"]
    assert len(arrows) == 2  # the pedestrian at 0.1 m/s gets none
    a = arrows[0]
    assert (a.points[1].x - a.points[0].x, a.points[1].y - a.points[0].y) == pytest.approx((5.0, 1.0))
    # Every segment endpoint is a box corner, every box edge is present (12 per box).
    pts = np.array([(p.x, p.y, p.z) for p in lines[0].points]).reshape(3, 12, 2, 3)
    corners = box_corners(b.center, b.size, b.yaw)
    for i in range(3):
        seg_len = np.linalg.norm(pts[i, :, 0] - pts[i, :, 1], axis=1)
        w, l, h = b.size[i]
        np.testing.assert_allclose(np.sort(seg_len), np.sort([l] * 4 + [w] * 4 + [h] * 4), atol=1e-5)
        for p in pts[i].reshape(-1, 3):
            assert np.min(np.linalg.norm(corners[i] - p, axis=1)) < 1e-5
    # Class colours: car orange, pedestrian blue.
    assert (lines[0].colors[0].r, lines[0].colors[0].b) == pytest.approx(cv.CLASS_COLORS[0][::2])
    assert lines[0].colors[24].b == pytest.approx(cv.CLASS_COLORS[CLASSES.index("pedestrian")][2])
    # Unique (ns, id) among ADD markers, all in the keyframe's frame and stamp.
    keys = [(m.ns, m.id) for m in ms[1:]]
    assert len(keys) == len(set(keys))
    assert all(m.header.frame_id == "base_link" and cv.time_to_ns(m.header.stamp) == 5 for m in ms)


def test_marker_fast_points_match_constructor():
    xyz = np.array([[1.0, -2.5, 3.25], [0.0, 1e-3, -7.0]])
    pts = cv._make_points(xyz)
    assert pts == [Point(x=1.0, y=-2.5, z=3.25), Point(x=0.0, y=1e-3, z=-7.0)]
    assert all(isinstance(p.x, float) for p in pts)


def test_fast_message_paths_are_active_here():
    for cls in (Point, Quaternion, Vector3, ColorRGBA, ObjectHypothesis):
        assert cv._flat_fields(cls) is not None, cls

    assert cv._flat_fields(Marker) is None  # nested: cloned from templates instead


@pytest.mark.parametrize("builder", ["boxes_to_detection3d_array", "boxes_to_object3d_array", "boxes_to_marker_array"])
def test_fast_builders_equal_plain_constructors(builder, monkeypatch):
    """The slot-filling / template-cloning fast path builds exactly what plain constructors build."""
    fn = getattr(cv, builder)
    b = _boxes()
    fast = fn(b, "base_link", 77)
    monkeypatch.setattr(cv, "_FAST_MSGS", False)
    slow = fn(b, "base_link", 77)
    assert fast == slow
    assert _roundtrip(fast) == _roundtrip(slow)  # (float32 fields round on the wire)


def test_marker_array_empty_still_clears():
    msg = cv.boxes_to_marker_array(Boxes.empty(), "base_link", 5)
    assert len(msg.markers) == 1 and msg.markers[0].action == Marker.DELETEALL


def test_decoders_need_no_ros():
    """Offline replay decodes rosbags messages: importing and decoding must not need rclpy/ROS."""
    code = (
        "import sys\n"
        "for m in ('rclpy', 'sensor_msgs', 'geometry_msgs', 'std_msgs', 'builtin_interfaces',\n"
        "          'vision_msgs', 'imkd_msgs', 'visualization_msgs'):\n"
        "    sys.modules[m] = None\n"
        "import types\n"
        "import numpy as np\n"
        "from imkd_ros.ros import convert as cv\n"
        "img = cv.image_to_rgb(types.SimpleNamespace(encoding='bgr8', height=2, width=2, step=6,\n"
        "                                             data=np.arange(12, dtype=np.uint8)))\n"
        "assert img[0, 0].tolist() == [2, 1, 0]\n"
        "f = types.SimpleNamespace(name='x', offset=0, datatype=7, count=1)\n"
        "pc = types.SimpleNamespace(height=1, width=2, fields=[f], is_bigendian=False, point_step=4,\n"
        "                           row_step=8, data=np.array([1, 2], '<f4').view(np.uint8))\n"
        "assert cv.pointcloud2_to_array(pc)['x'].tolist() == [1.0, 2.0]\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
