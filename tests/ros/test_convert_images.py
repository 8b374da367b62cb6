"""imkd_ros.ros.images: raw and compressed images to RGB (real rclpy message classes, no DDS)."""

from __future__ import annotations

import io
import math
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image as PILImage
from rclpy.serialization import deserialize_message, serialize_message
from tf2_msgs.msg import TFMessage

from imkd_ros.constants import CAMERA_NAMES
from imkd_ros.ros import calibration
from imkd_ros.ros.frontend import DetectionFrontend
from imkd_ros.ros.params import NodeParams

pytest.importorskip("sensor_msgs.msg")

from imkd_ros.ros import images, msgutil


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
    msg = images.rgb_to_image(rgb, "cam", 5)
    out = images.image_to_rgb(msg)
    assert out.shape == (90, 160, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, rgb)
    assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8))
    owned = images.image_to_rgb(msg, copy=True)
    assert not np.shares_memory(owned, np.frombuffer(msg.data, np.uint8))
    np.testing.assert_array_equal(owned, rgb)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_color_encodings_roundtrip(encoding):
    rgb = _rgb(seed=1)
    msg = _roundtrip(images.rgb_to_image(rgb, "cam", 7, encoding=encoding))
    assert msg.encoding == encoding and msg.step == 160 * (4 if "a" in encoding[3:] else 3)
    out = images.image_to_rgb(msg)
    assert out.shape == (90, 160, 3)
    np.testing.assert_array_equal(out, rgb)


def test_bgr8_channel_order_explicit():
    msg = SimpleNamespace(encoding="bgr8", height=1, width=2, step=6, data=bytes([1, 2, 3, 4, 5, 6]))
    np.testing.assert_array_equal(images.image_to_rgb(msg), [[[3, 2, 1], [6, 5, 4]]])
    msg = SimpleNamespace(encoding="bgra8", height=1, width=1, step=4, data=bytes([10, 20, 30, 40]))
    np.testing.assert_array_equal(images.image_to_rgb(msg), [[[30, 20, 10]]])


def test_mono8():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    msg = SimpleNamespace(encoding="mono8", height=3, width=4, step=4, data=gray.tobytes())
    out = images.image_to_rgb(msg)
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
    out = images.image_to_rgb(msg)
    if encoding == "mono8":
        expect = np.repeat(pix, 3, axis=2)
    elif encoding == "bgr8":
        expect = pix[..., ::-1]
    else:
        expect = pix[..., :3]
    np.testing.assert_array_equal(out, expect)
    # The last row may omit its padding (some drivers do).
    msg.data = rows.tobytes()[:-pad]
    np.testing.assert_array_equal(images.image_to_rgb(msg), expect)


def test_rosbags_style_ndarray_data():
    rgb = _rgb(seed=3)
    msg = SimpleNamespace(encoding="rgb8", height=90, width=160, step=480, data=rgb.reshape(-1).copy())
    out = images.image_to_rgb(msg)
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
        images.image_to_rgb(SimpleNamespace(**base))


# ---------------------------------------------------------------------------- CompressedImage
@pytest.fixture(params=["opencv", "pillow"])
def jpeg_decoder(request, monkeypatch):
    """Run a test with each JPEG decoder (OpenCV when importable, and the PIL fallback)."""
    if request.param == "pillow":
        monkeypatch.setattr(images, "_cv2_mod", None)
    elif images._cv2_mod is None:
        pytest.skip("cv2 not importable")
    assert images.backends()["jpeg_decoder"] == request.param
    return request.param


def test_jpeg_full_and_reduced(jpeg_decoder):
    rgb = _smooth_rgb(96, 160)
    msg = _roundtrip(images.rgb_to_compressed(rgb, "cam", 3, "jpeg", quality=95))
    assert msg.format == "jpeg"
    full = images.compressed_to_rgb(msg)
    assert full.shape == (96, 160, 3) and full.dtype == np.uint8
    assert np.abs(full.astype(int) - rgb).mean() < 3
    for r in (2, 4, 8):
        red = images.compressed_to_rgb(msg, reduce=r)
        assert red.shape == (math.ceil(96 / r), math.ceil(160 / r), 3)
        # Compare against a box-downsampled original (DCT scaling ~ area average).
        ref = rgb.reshape(96 // r, r, 160 // r, r, 3).mean(axis=(1, 3))
        assert np.abs(red.astype(float) - ref).mean() < 4


def test_jpeg_reduced_size_is_ceil(jpeg_decoder):
    rgb = _smooth_rgb(90, 161)
    msg = images.rgb_to_compressed(rgb, fmt="jpeg")
    assert images.compressed_to_rgb(msg, reduce=2).shape == (45, 81, 3)
    assert images.compressed_to_rgb(msg, reduce=4).shape == (23, 41, 3)


def test_image_transport_format_string_and_png(jpeg_decoder):
    rgb = _rgb(seed=4)
    png = images.rgb_to_compressed(rgb, fmt="png")
    np.testing.assert_array_equal(images.compressed_to_rgb(png), rgb)  # lossless
    png.format = "rgb8; png compressed rgb8"
    np.testing.assert_array_equal(images.compressed_to_rgb(png), rgb)
    assert images.compressed_to_rgb(png, reduce=2).shape == (45, 80, 3)
    jpg = images.rgb_to_compressed(rgb, fmt="jpeg")
    jpg.format = "bgr8; jpeg compressed bgr8"
    assert images.compressed_to_rgb(jpg).shape == (90, 160, 3)


def test_compressed_gray_jpeg_becomes_rgb(jpeg_decoder):
    buf = io.BytesIO()
    PILImage.fromarray(np.full((16, 16), 128, np.uint8)).save(buf, "JPEG")
    out = images.compressed_to_rgb(SimpleNamespace(format="jpeg", data=buf.getvalue()))
    assert out.shape == (16, 16, 3) and abs(int(out[8, 8, 0]) - 128) <= 2


def test_decoders_agree_and_batch_decode():
    msgs = [images.rgb_to_compressed(_smooth_rgb(96, 160) // (i + 1), fmt="jpeg") for i in range(4)]
    serial = images.compressed_to_rgb_many(msgs, reduce=2)
    with ThreadPoolExecutor(2) as pool:
        parallel = images.compressed_to_rgb_many(msgs, reduce=2, executor=pool)
    assert len(parallel) == 4
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)
    if images._cv2_mod is not None:
        pil = images._decode_pil(msgutil.as_u8(msgs[0].data), "jpeg", 2)
        assert pil.shape == serial[0].shape
        assert np.abs(pil.astype(int) - serial[0]).mean() < 2  # same libjpeg, same scaling


def test_compressed_errors(jpeg_decoder):
    with pytest.raises(ValueError, match="unsupported CompressedImage format"):
        images.compressed_to_rgb(SimpleNamespace(format="tiff", data=b"xx"))
    with pytest.raises(ValueError, match="could not decode"):
        images.compressed_to_rgb(SimpleNamespace(format="jpeg", data=b"not a jpeg at all"))
    with pytest.raises(ValueError, match="empty"):
        images.compressed_to_rgb(SimpleNamespace(format="jpeg", data=b""))
    with pytest.raises(ValueError, match="reduce"):
        images.compressed_to_rgb(SimpleNamespace(format="jpeg", data=b"x"), reduce=3)


def test_decoders_need_no_ros():
    """Offline replay decodes rosbags messages: importing and decoding must not need rclpy/ROS."""

    code = (
        "import sys\n"
        "for m in ('rclpy', 'sensor_msgs', 'geometry_msgs', 'std_msgs', 'builtin_interfaces',\n"
        "          'vision_msgs', 'imkd_msgs', 'visualization_msgs'):\n"
        "    sys.modules[m] = None\n"
        "import types\n"
        "import numpy as np\n"
        "from imkd_ros.ros import clouds, images\n"
        "img = images.image_to_rgb(types.SimpleNamespace(encoding='bgr8', height=2, width=2, step=6,\n"
        "                                             data=np.arange(12, dtype=np.uint8)))\n"
        "assert img[0, 0].tolist() == [2, 1, 0]\n"
        "f = types.SimpleNamespace(name='x', offset=0, datatype=7, count=1)\n"
        "pc = types.SimpleNamespace(height=1, width=2, fields=[f], is_bigendian=False, point_step=4,\n"
        "                           row_step=8, data=np.array([1, 2], '<f4').view(np.uint8))\n"
        "assert clouds.pointcloud2_to_array(pc)['x'].tolist() == [1.0, 2.0]\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_16bit_png_is_refused_not_clipped(jpeg_decoder):
    depth = np.array([[0, 300], [40000, 65535]], np.uint16)  # values a clip to 0..255 would destroy
    buf = io.BytesIO()
    PILImage.fromarray(depth).save(buf, "PNG")
    data = buf.getvalue()
    assert data[24] == 16  # IHDR bit depth, read by hand
    with pytest.raises(ValueError, match="16-bit PNG"):
        images.compressed_to_rgb(SimpleNamespace(format="16UC1; png compressed", data=data))
    gray8 = io.BytesIO()
    PILImage.fromarray(np.array([[0, 7], [200, 255]], np.uint8)).save(gray8, "PNG")
    out = images.compressed_to_rgb(SimpleNamespace(format="png", data=gray8.getvalue()))
    np.testing.assert_array_equal(out[..., 1], [[0, 7], [200, 255]])  # 8-bit gray PNG: exact


def test_raw_image_reduce_is_a_box_average():
    """A reduced raw image averages r x r blocks (ceil size), like the JPEG DCT-scaled decode."""
    rgb = _rgb(9, 10, seed=5)
    msg = SimpleNamespace(encoding="rgb8", height=9, width=10, step=30, data=rgb.tobytes())
    out = images.image_to_rgb(msg, reduce=2)
    assert out.shape == (5, 5, 3)
    block = rgb[2:4, 4:6].astype(float).mean(axis=(0, 1))
    np.testing.assert_allclose(out[1, 2], block, atol=0.51)
    np.testing.assert_allclose(out[4, 4], rgb[8, 8:10].astype(float).mean(axis=0), atol=0.51)  # partial block
    with pytest.raises(ValueError, match="reduce"):
        images.image_to_rgb(msg, reduce=3)


def test_16bit_png_camera_is_counted_as_invalid_by_the_frontend():
    """Through the node's front end the refusal is a counted, warned drop, not an exception."""

    class Never:
        name = "never"

        def detect(self, frame):
            raise AssertionError("no usable view: the model must not run")

        def decode_reduce(self, camera_width: int) -> int:
            return 1

    buf = io.BytesIO()
    PILImage.fromarray(np.full((9, 16), 1000, np.uint16)).save(buf, "PNG")
    warnings = []
    front = DetectionFrontend(NodeParams(radar_wait_ms=0.0, radar_topics=[]), Never(), warn=warnings.append)
    try:
        front.on_tf(TFMessage(transforms=[calibration.matrix_to_transform(np.eye(4), "base_link", n.lower())
                                          for n in CAMERA_NAMES]), True)
        K = np.array([[10.0, 0, 8], [0, 10, 4.5], [0, 0, 1]])
        for i, n in enumerate(CAMERA_NAMES):
            front.on_camera_info(i, calibration.intrinsics_to_camera_info(K, 16, 9, n.lower()))
            msg = images.rgb_to_compressed(np.zeros((1, 1, 3), np.uint8), n.lower(), 10**9 + i, fmt="png")
            msg.data, msg.format = buf.getvalue(), "mono16; png compressed"
            front.on_camera(i, msg)
        outs = [front.process(kf) for kf in front.poll(2 * 10**9)]
    finally:
        front.close()
    assert outs == [None] and front.counters["camera_image_invalid"] == 6
    assert front.counters["keyframes_skipped"] == 1 and any("16-bit PNG" in w for w in warnings)
