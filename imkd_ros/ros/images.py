"""sensor_msgs/Image and CompressedImage <-> (H, W, 3) uint8 RGB arrays (the in-package cv_bridge).

Rule: one decode path on every machine (cv_bridge is not consulted even where a ROS install has
it), so the node sees the same pixels in CI, in `imkd replay` and on the vehicle. Inputs are
validated before any decode: an unsupported encoding, a short buffer, a 16-bit PNG or a corrupt
JPEG raises ValueError (the frontend counts and drops it), never a silently wrong image.
A reduced decode (``reduce`` = 2, 4, 8) is a box average over reduce x reduce blocks, output size
ceil(W / reduce) x ceil(H / reduce); its intrinsics follow the pixel-centre convention of
``imkd_ros.rig.intrinsics.scale_intrinsics``. rgb8 without row padding is returned as a zero-copy
view of the message buffer (copy it before mutating).
"""

from __future__ import annotations

import importlib
import io
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image as PILImage

from imkd_ros.rig.intrinsics import REDUCE_FACTORS
from imkd_ros.ros.msgutil import as_u8, make_header, set_u8


def _optional_import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


# An accelerator, not a different result: OpenCV's libjpeg-turbo decode with DCT scaling (and fast
# BGR->RGB swaps); PIL (same libjpeg scaling) otherwise. Tests run both.
_cv2_mod: Any = _optional_import("cv2")


def backends() -> dict[str, str]:
    """Which decoder is active (for logs and diagnostics)."""
    return {"image": "builtin", "jpeg_decoder": "opencv" if _cv2_mod is not None else "pillow"}


def _check_reduce(reduce: int) -> None:
    if reduce not in REDUCE_FACTORS:
        raise ValueError(f"reduce must be 1, 2, 4 or 8, got {reduce}")


# ---------------------------------------------------------------------------- Image
# encoding -> (channels, channel order to take for RGB or None for gray)
_ENCODINGS: dict[str, tuple[int, tuple[int, int, int] | None]] = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, None),
}
IMAGE_ENCODINGS: tuple[str, ...] = tuple(_ENCODINGS)


def _image_view(msg: Any) -> tuple[np.ndarray, str]:
    """Validated (H, W, C) uint8 view of an Image's buffer (row padding skipped by strides)."""
    enc = str(msg.encoding).lower()
    if enc not in _ENCODINGS:
        raise ValueError(f"unsupported image encoding {msg.encoding!r}; supported: {', '.join(IMAGE_ENCODINGS)}")
    ch = _ENCODINGS[enc][0]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise ValueError(f"empty image {w}x{h}")
    row = w * ch
    if step < row:
        raise ValueError(f"image step {step} < width*channels {row} ({w}x{h} {enc})")
    data = as_u8(msg.data)
    need = (h - 1) * step + row
    if data.size < need:
        raise ValueError(f"image data has {data.size} bytes, {w}x{h} {enc} step {step} needs {need}")
    if step == row:
        view = data[: h * row].reshape(h, w, ch)
    else:
        view = np.lib.stride_tricks.as_strided(data, shape=(h, w, ch), strides=(step, ch, 1), writeable=False)
    return view, enc


def _to_rgb(view: np.ndarray, enc: str, copy: bool) -> np.ndarray:
    order = _ENCODINGS[enc][1]
    if order is None:  # mono8
        return np.repeat(view, 3, axis=2)
    if order == (0, 1, 2):
        out = view if view.shape[2] == 3 else view[:, :, :3]
        return out.copy() if copy else out
    cv2 = _cv2_mod
    src = np.ascontiguousarray(view)
    if cv2 is not None:
        code = cv2.COLOR_BGR2RGB if view.shape[2] == 3 else cv2.COLOR_BGRA2RGB
        return cv2.cvtColor(src, code)
    out = np.empty(view.shape[:2] + (3,), np.uint8)
    out[..., 0] = view[..., 2]
    out[..., 1] = view[..., 1]
    out[..., 2] = view[..., 0]
    return out


def box_reduce(rgb: np.ndarray, reduce: int) -> np.ndarray:
    """(H, W, 3) uint8 -> box average over reduce x reduce blocks, ceil(H/r) x ceil(W/r).

    The same sampling as libjpeg's DCT scaling, so raw and JPEG images share one K convention.
    """
    _check_reduce(reduce)
    if reduce == 1:
        return rgb

    return np.asarray(PILImage.fromarray(np.ascontiguousarray(rgb)).reduce(reduce))


def image_to_rgb(msg: Any, *, copy: bool = False, reduce: int = 1) -> np.ndarray:
    """sensor_msgs/Image -> (H, W, 3) uint8 RGB, box-reduced by ``reduce`` (1, 2, 4, 8).

    rgb8 without row padding at reduce 1 returns a zero-copy view of ``msg.data`` (``copy=True`` for
    an owned array); rgba8 a strided view; everything else a new array. Bad encoding/size -> ValueError.
    """
    _check_reduce(reduce)
    view, enc = _image_view(msg)
    out = _to_rgb(view, enc, copy)
    return box_reduce(out, reduce) if reduce > 1 else out


def rgb_to_image(rgb: np.ndarray, frame_id: str = "", stamp_ns: int = 0, encoding: str = "rgb8") -> Any:
    """(H, W, 3) uint8 RGB -> sensor_msgs/Image in ``encoding`` (rgb8, bgr8, rgba8, bgra8, mono8)."""
    from sensor_msgs.msg import Image  # noqa: PLC0415  (optional: ROS msgs; replay imports this without ROS)

    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    if encoding not in _ENCODINGS:
        raise ValueError(f"unsupported image encoding {encoding!r}")
    h, w = rgb.shape[:2]
    if encoding == "rgb8":
        arr = rgb
    elif encoding == "bgr8":
        arr = rgb[..., ::-1]
    elif encoding == "mono8":
        gray = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        arr = np.clip(np.rint(gray), 0, 255).astype(np.uint8)[..., None]
    else:
        alpha = np.full((h, w, 1), 255, np.uint8)
        arr = np.concatenate([rgb if encoding == "rgba8" else rgb[..., ::-1], alpha], axis=2)
    msg = Image(header=make_header(frame_id, stamp_ns), height=h, width=w, encoding=encoding, is_bigendian=0)
    msg.step = w * arr.shape[2]
    set_u8(msg, "data", arr)
    return msg


# ---------------------------------------------------------------------------- CompressedImage
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _compressed_kind(fmt: str) -> str:
    f = str(fmt).lower()
    if "png" in f:
        return "png"
    if "jpeg" in f or "jpg" in f or f == "":
        return "jpeg"
    raise ValueError(f"unsupported CompressedImage format {fmt!r} (jpeg or png)")


def png_bit_depth(data: np.ndarray) -> int | None:
    """Bit depth from a PNG's IHDR chunk (None if the bytes are not a PNG)."""
    head = data[:26].tobytes()
    if len(head) < 26 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">B", head[24:25])[0]


def _decode_jpeg_cv2(data: np.ndarray, reduce: int) -> np.ndarray | None:
    """OpenCV's libjpeg-turbo decode with DCT scaling, straight to RGB; None if cv2 is absent."""
    cv2 = _cv2_mod
    if cv2 is None:
        return None
    flag = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}[reduce] | cv2.IMREAD_IGNORE_ORIENTATION
    rgb_flag = getattr(cv2, "IMREAD_COLOR_RGB", None)  # OpenCV >= 4.10 decodes to RGB directly
    out = cv2.imdecode(data, flag | rgb_flag if rgb_flag is not None else flag)
    if out is None:
        raise ValueError(f"could not decode jpeg CompressedImage ({data.size} bytes)")
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=2)
    elif rgb_flag is None:
        out = cv2.cvtColor(out, cv2.COLOR_BGR2RGB)
    return out


def _decode_pil(data: np.ndarray, kind: str, reduce: int) -> np.ndarray:
    try:
        src = PILImage.open(io.BytesIO(data.tobytes()))
        w, h = src.size
        want = (-(-w // reduce), -(-h // reduce))  # ceil, as libjpeg's DCT scaling
        if kind == "jpeg" and reduce > 1:
            src.draft("RGB", (max(w // reduce, 1), max(h // reduce, 1)))  # PIL picks scale = w // this
        im: PILImage.Image = src
        if im.mode != "RGB":
            im = im.convert("RGB")
        if im.size != want:  # PNG, or a JPEG the decoder would not scale
            im = im.reduce(reduce) if im.size == (w, h) else im.resize(want, PILImage.Resampling.BOX)
        return np.asarray(im)
    except (OSError, SyntaxError) as exc:  # PIL's UnidentifiedImageError is an OSError
        raise ValueError(f"could not decode {kind} CompressedImage ({data.size} bytes): {exc}") from exc


def compressed_to_rgb(msg: Any, *, reduce: int = 1) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg/png, 8 bit) -> (H, W, 3) uint8 RGB.

    ``reduce`` in {1, 2, 4, 8} decodes JPEG at 1/reduce size through libjpeg's DCT scaling
    (OpenCV's reduced modes when cv2 is importable, else PIL's draft mode): cheaper than decoding
    full size and resizing. PNG is decoded full size and box-reduced. A 16-bit PNG (depth or
    HDR data, not a camera image the model was trained on) raises ValueError rather than being
    clipped to 0..255. Both decoders release the GIL (``compressed_to_rgb_many``).
    """
    _check_reduce(reduce)
    kind = _compressed_kind(msg.format)
    data = as_u8(msg.data)
    if data.size == 0:
        raise ValueError("empty CompressedImage")
    if kind == "jpeg":
        out = _decode_jpeg_cv2(data, reduce)
        if out is not None:
            return out
    else:
        depth = png_bit_depth(data)
        if depth is not None and depth > 8:
            raise ValueError(f"{depth}-bit PNG CompressedImage is not supported (the detector takes 8-bit colour; "
                             "publish rgb8/bgr8/mono8 images)")
    return _decode_pil(data, kind, reduce)


def compressed_to_rgb_many(msgs: Sequence[Any], *, reduce: int = 1, executor: Any = None) -> list[np.ndarray]:
    """Decode several CompressedImages, in parallel on ``executor`` (a concurrent.futures pool) if given."""
    if executor is None:
        return [compressed_to_rgb(m, reduce=reduce) for m in msgs]
    return list(executor.map(lambda m: compressed_to_rgb(m, reduce=reduce), msgs))


def rgb_to_compressed(
    rgb: np.ndarray, frame_id: str = "", stamp_ns: int = 0, fmt: str = "jpeg", quality: int = 90
) -> Any:
    """(H, W, 3) uint8 RGB -> sensor_msgs/CompressedImage (format "jpeg" or "png")."""
    from sensor_msgs.msg import CompressedImage  # noqa: PLC0415  (optional: ROS msgs; replay imports this without ROS)

    kind = _compressed_kind(fmt)
    buf = io.BytesIO()
    if kind == "jpeg":
        PILImage.fromarray(np.asarray(rgb, np.uint8)).save(buf, "JPEG", quality=quality)
    else:
        PILImage.fromarray(np.asarray(rgb, np.uint8)).save(buf, "PNG", compress_level=1)
    msg = CompressedImage(header=make_header(frame_id, stamp_ns), format=kind)
    msg.data = buf.getvalue()
    return msg
