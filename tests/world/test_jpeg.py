"""world/jpeg.py: upsampled renders encoded from YCbCr planes decode to what the RGB path gives."""

from __future__ import annotations

import cv2
import numpy as np

from imkd_ros.world.jpeg import encode_jpeg


def _render_like(h: int, w: int) -> np.ndarray:
    """A render-like BGR image: smooth gradients, flat coloured boxes, sensor noise."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([80 + 100 * yy / h, 120 + 60 * xx / w, 200 - 90 * yy / h], -1)
    for _ in range(12):
        x0, y0 = rng.integers(0, w - 20), rng.integers(0, h - 20)
        img[y0:y0 + rng.integers(5, 40), x0:x0 + rng.integers(5, 60)] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_upsampled_planes_decode_like_the_rgb_path():
    small = _render_like(225, 400)
    got = cv2.imdecode(np.frombuffer(encode_jpeg(small, (1600, 900), 85, bgr=True), np.uint8), cv2.IMREAD_COLOR)
    up = cv2.resize(small, (1600, 900), interpolation=cv2.INTER_LINEAR)
    ok, buf = cv2.imencode(".jpg", up, [cv2.IMWRITE_JPEG_QUALITY, 85])
    ref = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    assert got.shape == (900, 1600, 3)
    diff = np.abs(got.astype(np.int16) - ref)
    assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 8
    # Against the uncompressed upsample too: the file is as faithful as OpenCV's.
    assert np.abs(got.astype(np.int16) - up).mean() < np.abs(ref.astype(np.int16) - up).mean() + 0.5


def test_odd_sizes_and_rgb_order():
    small = _render_like(113, 200)  # -> 401x227: odd, chroma planes rounded up
    rgb = small[..., ::-1].copy()
    a = cv2.imdecode(np.frombuffer(encode_jpeg(small, (401, 227), 90, bgr=True), np.uint8), cv2.IMREAD_COLOR)
    b = cv2.imdecode(np.frombuffer(encode_jpeg(rgb, (401, 227), 90, bgr=False), np.uint8), cv2.IMREAD_COLOR)
    assert a.shape == (227, 401, 3)
    # The same picture (OpenCV's fixed-point colour conversion may round the two orders one level
    # apart, which the quantiser can amplify at an edge): a swapped-channel bug would be ~100.
    assert np.abs(a.astype(np.int16) - b).mean() < 0.2
    ref = cv2.resize(small, (401, 227), interpolation=cv2.INTER_LINEAR)
    assert np.abs(a.astype(np.int16) - ref).mean() < 3.0


def test_full_size_renders_keep_opencvs_bytes():
    """The training data's images are rendered at the file's size: same bytes as before."""
    img = _render_like(225, 400)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert encode_jpeg(img, (400, 225), 90, bgr=True) == buf.tobytes()
