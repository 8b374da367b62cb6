"""JPEG files of upsampled renders, encoded from YCbCr planes (simplejpeg, libjpeg-turbo).

Why: the renderer draws at a fraction of the 1600x900 sensor (key frames at 1/2, sweeps at 1/4)
and the file is 1600x900. Upsampling RGB and then letting the encoder convert and subsample the
colour costs a full-resolution 3-channel resize and a full-resolution colour conversion per
image. Converting at render size, resizing the luma plane to full size and the chroma planes to
half size (the file's 4:2:0 layout, which the RGB path produces by averaging anyway) writes the
same kind of file in ~30 % less time (benchmarks/bench_synth.py; docs/data.md). Decoded, an
image differs from the RGB path by well under 1 of 255 on average (tests/world/test_jpeg.py).

Renders already at the file's size (the training data's small images) take OpenCV's encoder, as
before: those files are byte for byte what earlier code wrote.
"""

from __future__ import annotations

import cv2
import numpy as np
import simplejpeg


def encode_jpeg(img: np.ndarray, size: tuple[int, int], quality: int, bgr: bool = False) -> bytes:
    """JPEG bytes of ``img`` (h, w, 3) uint8 shown at ``size`` = (width, height) pixels."""
    w, h = size
    if img.shape[:2] == (h, w):
        ok, buf = cv2.imencode(".jpg", img if bgr else cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise RuntimeError(f"OpenCV could not encode a {w}x{h} JPEG")
        return buf.tobytes()
    ycc = cv2.cvtColor(img, cv2.COLOR_BGR2YCrCb if bgr else cv2.COLOR_RGB2YCrCb)
    y, cr, cb = cv2.split(ycc)
    y = cv2.resize(y, (w, h), interpolation=cv2.INTER_LINEAR)
    cw, ch = (w + 1) // 2, (h + 1) // 2  # 4:2:0 chroma planes (simplejpeg infers it from the shape)
    if cb.shape != (ch, cw):
        shrink = cb.shape[1] > cw
        mode = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        cb = cv2.resize(cb, (cw, ch), interpolation=mode)
        cr = cv2.resize(cr, (cw, ch), interpolation=mode)
    return simplejpeg.encode_jpeg_yuv_planes(y, cb, cr, int(quality))


__all__ = ["encode_jpeg"]
