"""ROS message <-> numpy conversion: the in-package cv_bridge / sensor_msgs_py equivalents.

Neither cv_bridge nor sensor_msgs_py is on PyPI, so this module carries its own implementation.
Each conversion sits behind one seam (``image_to_rgb``, ``compressed_to_rgb``,
``read_pointcloud2``, ``array_to_pointcloud2``): the real library is used when importable, the
in-package code otherwise; inputs are validated the same way on both paths. ``backends()`` says
which one is active.

Decoders are duck-typed on field names, so they accept rclpy messages and rosbags messages alike
(offline replay). Builders import the rclpy message packages lazily, so importing this module needs
no ROS. Hot paths avoid copies: an rgb8 Image becomes a ``np.frombuffer`` view of the message
buffer (so the returned array shares memory with the message; copy it before mutating), a
PointCloud2 without row padding becomes a structured view.

Box convention: ``imkd_ros.types.Boxes`` follows nuScenes, size = (w, l, h) with l along the
heading (box x), w across it (box y). vision_msgs BoundingBox3D.size is the extent along the box's
own x/y/z axes, so it is written as (l, w, h): ``size.x = l = Boxes.size[:, 1]``,
``size.y = w = Boxes.size[:, 0]``, ``size.z = h``. The orientation is the yaw rotation about +z:
quaternion (x, y, z, w) = (0, 0, sin(yaw/2), cos(yaw/2)).
"""

from __future__ import annotations

import copy
import importlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, NamedTuple, cast

import numpy as np

from imkd_ros.constants import ATTRIBUTES, CLASS_TO_ID, CLASSES, RADAR_PCD_FIELDS
from imkd_ros.rig.geometry import box_corners, quat_to_rotmat, rotmat_to_quat
from imkd_ros.types import Boxes


def _optional_import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


# The seams: the real libraries when present (None here, tests patch these).
_cv_bridge_mod: Any = _optional_import("cv_bridge")
_pc2_mod: Any = _optional_import("sensor_msgs_py.point_cloud2")
# Optional accelerators (not seams): OpenCV for JPEG decode and BGR->RGB swaps.
_cv2_mod: Any = _optional_import("cv2")
_bridge: Any = None


def backends() -> dict[str, str]:
    """Which implementation each seam uses (for logs and diagnostics)."""
    return {
        "image": "cv_bridge" if _cv_bridge_mod is not None else "builtin",
        "pointcloud2": "sensor_msgs_py" if _pc2_mod is not None else "builtin",
        "jpeg_decoder": "opencv" if _cv2_mod is not None else "pillow",
    }


# ---------------------------------------------------------------------------- stamps and headers
def time_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (sec, nanosec) -> int nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_time(ns: int) -> Any:
    from builtin_interfaces.msg import Time

    sec, nsec = divmod(int(ns), 1_000_000_000)
    return Time(sec=sec, nanosec=nsec)


def make_header(frame_id: str, stamp_ns: int) -> Any:
    from std_msgs.msg import Header

    return Header(frame_id=frame_id, stamp=ns_to_time(stamp_ns))


def _as_u8(data: Any) -> np.ndarray:
    """A message's ``uint8[]`` (array.array, bytes, ndarray, list) as a flat uint8 array, no copy if possible."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.dtype.itemsize == 1 else data.view(np.uint8).reshape(-1)
    if isinstance(data, (bytes, bytearray, memoryview)) or hasattr(data, "buffer_info"):
        return np.frombuffer(data, dtype=np.uint8)
    return np.asarray(data, dtype=np.uint8).reshape(-1)


def _set_u8(msg: Any, name: str, arr: np.ndarray) -> None:
    """Assign bytes to a message's uint8[] field (rclpy stores array.array; bytes assign fast)."""
    setattr(msg, name, np.ascontiguousarray(arr).tobytes())


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
    data = _as_u8(msg.data)
    need = (h - 1) * step + row
    if data.size < need:
        raise ValueError(f"image data has {data.size} bytes, {w}x{h} {enc} step {step} needs {need}")
    if step == row:
        view = data[: h * row].reshape(h, w, ch)
    else:
        view = np.lib.stride_tricks.as_strided(data, shape=(h, w, ch), strides=(step, ch, 1), writeable=False)
    return view, enc


def _builtin_image_to_rgb(view: np.ndarray, enc: str, copy: bool) -> np.ndarray:
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


def image_to_rgb(msg: Any, *, copy: bool = False) -> np.ndarray:
    """sensor_msgs/Image -> (H, W, 3) uint8 RGB.

    rgb8 without row padding returns a zero-copy view of ``msg.data`` (``copy=True`` for an owned
    array); rgba8 a strided view; bgr8/bgra8/mono8 a new array. Bad encoding/size -> ValueError.
    """
    view, enc = _image_view(msg)
    if _cv_bridge_mod is not None:
        global _bridge
        if _bridge is None:
            _bridge = _cv_bridge_mod.CvBridge()
        try:
            out = np.asarray(_bridge.imgmsg_to_cv2(msg, desired_encoding="rgb8"))
        except Exception as exc:  # CvBridgeError and friends: same contract as the builtin path
            raise ValueError(f"cv_bridge could not convert {enc} image: {exc}") from exc
        return out.copy() if copy else out
    return _builtin_image_to_rgb(view, enc, copy)


def rgb_to_image(rgb: np.ndarray, frame_id: str = "", stamp_ns: int = 0, encoding: str = "rgb8") -> Any:
    """(H, W, 3) uint8 RGB -> sensor_msgs/Image in ``encoding`` (rgb8, bgr8, rgba8, bgra8, mono8)."""
    from sensor_msgs.msg import Image

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
    _set_u8(msg, "data", arr)
    return msg


# ---------------------------------------------------------------------------- CompressedImage
def _compressed_kind(fmt: str) -> str:
    f = str(fmt).lower()
    if "png" in f:
        return "png"
    if "jpeg" in f or "jpg" in f or f == "":
        return "jpeg"
    raise ValueError(f"unsupported CompressedImage format {fmt!r} (jpeg or png)")


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
    from PIL import Image as PILImage

    try:
        im: PILImage.Image = PILImage.open(io.BytesIO(cast(bytes, data)))  # an ndarray is a buffer
        w, h = im.size
        want = (-(-w // reduce), -(-h // reduce))  # ceil, as libjpeg's DCT scaling
        if kind == "jpeg" and reduce > 1:
            im.draft("RGB", (max(w // reduce, 1), max(h // reduce, 1)))  # PIL picks scale = w // this
        if im.mode != "RGB":
            im = im.convert("RGB")
        if im.size != want:  # PNG, or a JPEG the decoder would not scale
            im = im.reduce(reduce) if im.size == (w, h) else im.resize(want, PILImage.Resampling.BOX)
        return np.asarray(im)
    except (OSError, SyntaxError) as exc:  # PIL's UnidentifiedImageError is an OSError
        raise ValueError(f"could not decode {kind} CompressedImage ({data.size} bytes): {exc}") from exc


def compressed_to_rgb(msg: Any, *, reduce: int = 1) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg/png) -> (H, W, 3) uint8 RGB.

    ``reduce`` in {1, 2, 4, 8} decodes JPEG at 1/reduce size through libjpeg's DCT scaling
    (OpenCV's reduced modes when cv2 is importable, else PIL's draft mode): cheaper than decoding
    full size and resizing. The result is ceil(W/reduce) x ceil(H/reduce); scale the intrinsics with
    ``scale_intrinsics`` by the output/input size ratio. PNG is decoded full size and box-reduced.
    Both decoders release the GIL, so a thread pool decodes six views in parallel
    (``compressed_to_rgb_many``).
    """
    if reduce not in (1, 2, 4, 8):
        raise ValueError(f"reduce must be 1, 2, 4 or 8, got {reduce}")
    kind = _compressed_kind(msg.format)
    data = _as_u8(msg.data)
    if data.size == 0:
        raise ValueError("empty CompressedImage")
    if reduce == 1 and _cv_bridge_mod is not None:
        global _bridge
        if _bridge is None:
            _bridge = _cv_bridge_mod.CvBridge()
        try:
            return np.ascontiguousarray(_bridge.compressed_imgmsg_to_cv2(msg, desired_encoding="rgb8"))
        except Exception as exc:
            raise ValueError(f"cv_bridge could not decode {kind}: {exc}") from exc
    if kind == "jpeg":
        out = _decode_jpeg_cv2(data, reduce)
        if out is not None:
            return out
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
    from PIL import Image as PILImage
    from sensor_msgs.msg import CompressedImage

    kind = _compressed_kind(fmt)
    buf = io.BytesIO()
    if kind == "jpeg":
        PILImage.fromarray(np.asarray(rgb, np.uint8)).save(buf, "JPEG", quality=quality)
    else:
        PILImage.fromarray(np.asarray(rgb, np.uint8)).save(buf, "PNG", compress_level=1)
    msg = CompressedImage(header=make_header(frame_id, stamp_ns), format=kind)
    msg.data = buf.getvalue()
    return msg


# ---------------------------------------------------------------------------- CameraInfo
@dataclass
class CameraIntrinsics:
    """Pinhole intrinsics of the image as published (ROI offset and binning applied)."""

    K: np.ndarray  # (3, 3) float64
    width: int
    height: int
    distortion_model: str
    D: np.ndarray  # (n,) float64

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


def camera_info_to_intrinsics(msg: Any, *, require_undistorted: bool = True, tol: float = 1e-6) -> CameraIntrinsics:
    """sensor_msgs/CameraInfo -> CameraIntrinsics.

    The model assumes rectified pinhole images (as nuScenes): with ``require_undistorted`` any
    distortion coefficient above ``tol`` raises ValueError rather than silently misplacing points.
    """
    K = np.asarray(msg.k, dtype=np.float64).reshape(-1)
    if K.size != 9:
        raise ValueError(f"CameraInfo.k must have 9 values, got {K.size}")
    K = K.reshape(3, 3).copy()
    if not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0 or abs(K[2, 2] - 1.0) > 1e-9:
        raise ValueError(f"CameraInfo.k is not a valid pinhole matrix: {K.tolist()}")
    if abs(K[1, 0]) > 1e-9 or abs(K[2, 0]) > 1e-9 or abs(K[2, 1]) > 1e-9:
        raise ValueError(f"CameraInfo.k is not upper triangular: {K.tolist()}")
    width, height = int(msg.width), int(msg.height)
    if width <= 0 or height <= 0:
        raise ValueError(f"CameraInfo size {width}x{height} is empty (uncalibrated camera?)")
    D = np.asarray(msg.d, dtype=np.float64).reshape(-1).copy()
    if require_undistorted and D.size and np.max(np.abs(D)) > tol:
        raise ValueError(
            f"camera has distortion {msg.distortion_model} D={D.tolist()}: the detector needs rectified "
            "images (publish image_rect, or pass require_undistorted=False)"
        )
    roi = getattr(msg, "roi", None)
    if roi is not None and int(roi.width) > 0 and int(roi.height) > 0:
        K[0, 2] -= int(roi.x_offset)
        K[1, 2] -= int(roi.y_offset)
        width, height = int(roi.width), int(roi.height)
    bx = max(int(getattr(msg, "binning_x", 0) or 0), 1)
    by = max(int(getattr(msg, "binning_y", 0) or 0), 1)
    if bx > 1 or by > 1:
        K = scale_intrinsics(K, 1.0 / bx, 1.0 / by)
        width, height = width // bx, height // by
    return CameraIntrinsics(K, width, height, str(msg.distortion_model), D)


def scale_intrinsics(K: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """K of an image resized by (sx, sy), pixel-centre convention: u' = (u + 0.5) * s - 0.5."""
    K2 = np.array(K, dtype=np.float64, copy=True)
    K2[0, 0] *= sx
    K2[0, 1] *= sx
    K2[0, 2] = (K2[0, 2] + 0.5) * sx - 0.5
    K2[1, 1] *= sy
    K2[1, 2] = (K2[1, 2] + 0.5) * sy - 0.5
    return K2


def intrinsics_to_camera_info(
    K: np.ndarray, width: int, height: int, frame_id: str = "", stamp_ns: int = 0, D: Sequence[float] | None = None
) -> Any:
    """(3, 3) K and size -> sensor_msgs/CameraInfo (plumb_bob, R = I, P = [K | 0])."""
    from sensor_msgs.msg import CameraInfo

    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    P = np.zeros((3, 4))
    P[:, :3] = K
    msg = CameraInfo(header=make_header(frame_id, stamp_ns), width=int(width), height=int(height))
    msg.distortion_model = "plumb_bob"
    msg.d = [float(x) for x in (D if D is not None else [0.0] * 5)]
    msg.k = K.reshape(-1).tolist()
    msg.r = np.eye(3).reshape(-1).tolist()
    msg.p = P.reshape(-1).tolist()
    return msg


# ---------------------------------------------------------------------------- PointCloud2
# sensor_msgs/PointField datatypes
INT8, UINT8, INT16, UINT16, INT32, UINT32, FLOAT32, FLOAT64 = range(1, 9)
_PF_TO_NP = {
    INT8: "i1", UINT8: "u1", INT16: "i2", UINT16: "u2", INT32: "i4", UINT32: "u4", FLOAT32: "f4", FLOAT64: "f8"
}
_NP_TO_PF = {np.dtype(v).str[1:]: k for k, v in _PF_TO_NP.items()}
NAN_POLICIES = ("keep", "drop", "raise")


class CloudRead(NamedTuple):
    """Points read from a PointCloud2 and how many were dropped by the NaN filter."""

    points: np.ndarray
    dropped: int


def fields_to_dtype(fields: Sequence[Any], point_step: int, is_bigendian: bool) -> np.dtype:
    """PointField list -> numpy structured dtype with the message's offsets and point_step."""
    bo = ">" if is_bigendian else "<"
    names, formats, offsets = [], [], []
    for f in fields:
        if int(f.datatype) not in _PF_TO_NP:
            raise ValueError(f"PointField {f.name!r} has unknown datatype {f.datatype}")
        if f.name in names:
            raise ValueError(f"duplicate PointField {f.name!r}")
        base = np.dtype(bo + _PF_TO_NP[int(f.datatype)])
        count = max(int(f.count), 1)
        if int(f.offset) + base.itemsize * count > point_step:
            raise ValueError(
                f"PointField {f.name!r} (offset {f.offset}, {count}x{base}) exceeds point_step {point_step}"
            )
        names.append(str(f.name))
        formats.append(base if count == 1 else np.dtype((base, (count,))))
        offsets.append(int(f.offset))
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": int(point_step)})


def _cloud_view(msg: Any) -> np.ndarray:
    """Validated structured array of the cloud's points (flat, a view when rows are unpadded)."""
    h, w = int(msg.height), int(msg.width)
    ps, rs = int(msg.point_step), int(msg.row_step)
    if ps <= 0 and h * w > 0:
        raise ValueError(f"PointCloud2 point_step {ps} must be > 0")
    dtype = fields_to_dtype(msg.fields, max(ps, 1), bool(msg.is_bigendian))
    if h * w == 0:
        return np.zeros(0, dtype)
    row = w * ps
    if rs < row:
        raise ValueError(f"PointCloud2 row_step {rs} < width*point_step {row}")
    data = _as_u8(msg.data)
    need = (h - 1) * rs + row
    if data.size < need:
        raise ValueError(f"PointCloud2 data truncated: {data.size} bytes, {h}x{w} points need {need}")
    if rs == row:
        return data[: h * row].view(dtype)
    rows = np.lib.stride_tricks.as_strided(data, shape=(h, row), strides=(rs, 1), writeable=False)
    return np.ascontiguousarray(rows).view(dtype).reshape(-1)


def _nan_fields(dtype: np.dtype, nan_fields: Sequence[str] | None) -> list[str]:
    names = dtype.names or ()
    if nan_fields is not None:
        return [n for n in nan_fields if n in names]
    xyz: list[str] = [n for n in ("x", "y", "z") if n in names]
    return xyz or [n for n in names if dtype[n].kind == "f"]


def _apply_nan_policy(arr: np.ndarray, nan_policy: str, nan_fields: Sequence[str] | None) -> CloudRead:
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"nan_policy must be one of {NAN_POLICIES}")
    if nan_policy == "keep" or arr.size == 0:
        return CloudRead(arr, 0)
    mask = np.ones(arr.shape[0], bool)
    for name in _nan_fields(arr.dtype, nan_fields):
        col = arr[name]
        if col.dtype.kind == "f":
            mask &= np.isfinite(col).reshape(col.shape[0], -1).all(axis=1)
    bad = int(arr.shape[0] - np.count_nonzero(mask))
    if bad == 0:
        return CloudRead(arr, 0)
    if nan_policy == "raise":
        raise ValueError(f"PointCloud2 has {bad} of {arr.shape[0]} points with non-finite coordinates")
    return CloudRead(arr[mask], bad)


def read_pointcloud2(
    msg: Any, *, nan_policy: str = "keep", nan_fields: Sequence[str] | None = None
) -> CloudRead:
    """sensor_msgs/PointCloud2 -> (structured (N,) array, dropped count); any fields/offsets/endianness.

    Organised clouds (height > 1) come back flat (row-major). ``nan_policy``: "keep", "drop" (points
    with a non-finite value in ``nan_fields``, default x/y/z, are removed and counted) or "raise".
    Truncated data, bad offsets or unknown datatypes raise ValueError.
    """
    arr = _cloud_view(msg)  # validates on both paths
    if _pc2_mod is not None:
        lib = np.asarray(_pc2_mod.read_points(msg, skip_nans=False))
        if lib.dtype.names is not None:  # Iron+ returns a structured array; older: tuples
            arr = lib.reshape(-1)
    return _apply_nan_policy(arr, nan_policy, nan_fields)


def pointcloud2_to_array(msg: Any) -> np.ndarray:
    """sensor_msgs/PointCloud2 -> structured (N,) array, NaNs kept (see ``read_pointcloud2``)."""
    return read_pointcloud2(msg).points


def dtype_to_fields(dtype: np.dtype) -> tuple[list[tuple[str, int, int, int]], bool]:
    """Structured dtype -> ([(name, offset, datatype, count)], is_bigendian)."""
    if dtype.names is None:
        raise ValueError("expected a structured array (named fields)")
    out, orders = [], set()
    for name in dtype.names:
        ft, off = cast(Any, dtype.fields)[name][:2]
        base, shape = (ft.base, ft.shape) if ft.subdtype is not None else (ft, ())
        key = base.str[1:]
        if key not in _NP_TO_PF:
            raise ValueError(f"field {name!r} has dtype {base} with no PointField datatype")
        if base.byteorder in "<>":
            orders.add(base.byteorder)
        elif base.byteorder == "=":
            orders.add("<" if np.little_endian else ">")
        out.append((name, int(off), _NP_TO_PF[key], int(np.prod(shape)) if shape else 1))
    if len(orders) > 1:
        raise ValueError("fields mix byte orders; convert the array to one byte order first")
    return out, orders == {">"}


def array_to_pointcloud2(points: np.ndarray, frame_id: str = "", stamp_ns: int = 0) -> Any:
    """Structured (N,) or organised (H, W) array -> sensor_msgs/PointCloud2 (same layout and byte order)."""
    from sensor_msgs.msg import PointCloud2, PointField

    arr = np.asarray(points)
    spec, big = dtype_to_fields(arr.dtype)
    h, w = (1, arr.shape[0]) if arr.ndim == 1 else (arr.shape[0], arr.shape[1]) if arr.ndim == 2 else (0, 0)
    if arr.ndim not in (1, 2):
        raise ValueError(f"expected a 1-D or 2-D structured array, got shape {arr.shape}")
    fields = [PointField(name=n, offset=o, datatype=d, count=c) for n, o, d, c in spec]
    header = make_header(frame_id, stamp_ns)
    dense = bool(_apply_nan_policy(arr.reshape(-1), "drop", None).dropped == 0)
    if _pc2_mod is not None and arr.ndim == 1:
        try:
            msg = _pc2_mod.create_cloud(header, fields, arr)
            msg.is_dense = dense
            return msg
        except (TypeError, ValueError, AssertionError):
            pass  # older sensor_msgs_py wants tuples: use ours
    msg = PointCloud2(header=header, height=h, width=w, fields=fields, is_bigendian=big)
    msg.point_step = arr.dtype.itemsize
    msg.row_step = arr.dtype.itemsize * w
    msg.is_dense = dense
    _set_u8(msg, "data", np.ascontiguousarray(arr).view(np.uint8))
    return msg


# ---------------------------------------------------------------------------- radar PointCloud2
# The nuScenes radar PCD layout (types and sizes as the .pcd header of the dataset): 43-byte points.
_RADAR_TYPES = {
    "x": "f4", "y": "f4", "z": "f4", "dyn_prop": "i1", "id": "i2", "rcs": "f4", "vx": "f4", "vy": "f4",
    "vx_comp": "f4", "vy_comp": "f4", "is_quality_valid": "i1", "ambig_state": "i1", "x_rms": "i1",
    "y_rms": "i1", "invalid_state": "i1", "pdh0": "i1", "vx_rms": "i1", "vy_rms": "i1",
}
RADAR_DTYPE = np.dtype([(n, "<" + _RADAR_TYPES[n]) for n in RADAR_PCD_FIELDS])


def radar_to_pointcloud2(points: np.ndarray, frame_id: str = "", stamp_ns: int = 0) -> Any:
    """nuScenes radar points -> PointCloud2 with the 18 RADAR_PCD_FIELDS in the PCD's types.

    ``points``: (N, 18) numeric array in RADAR_PCD_FIELDS order, or a structured array with those
    names. Integer fields are rounded.
    """
    arr = np.asarray(points)
    out = np.zeros(arr.shape[0] if arr.ndim else 0, RADAR_DTYPE)
    if arr.dtype.names is not None:
        missing = [n for n in RADAR_PCD_FIELDS if n not in arr.dtype.names]
        if missing:
            raise ValueError(f"radar array lacks fields {missing}")
        cols = [arr[n] for n in RADAR_PCD_FIELDS]
    else:
        if arr.ndim != 2 or arr.shape[1] != len(RADAR_PCD_FIELDS):
            raise ValueError(f"expected (N, {len(RADAR_PCD_FIELDS)}) radar points, got {arr.shape}")
        cols = [arr[:, i] for i in range(arr.shape[1])]
    for name, col in zip(RADAR_PCD_FIELDS, cols):
        if RADAR_DTYPE[name].kind == "i":
            info = np.iinfo(RADAR_DTYPE[name])
            col = np.clip(np.rint(np.nan_to_num(np.asarray(col, np.float64))), info.min, info.max)
        out[name] = col
    return array_to_pointcloud2(out, frame_id, stamp_ns)


def pointcloud2_to_radar(msg: Any, *, nan_policy: str = "drop") -> CloudRead:
    """Radar PointCloud2 -> ((N, 18) float32 in RADAR_PCD_FIELDS order, dropped count).

    Field types and order in the message may differ (any driver); every RADAR_PCD_FIELDS name
    must be present. Points with non-finite x/y/z are dropped (and counted) by default.
    """
    read = read_pointcloud2(msg, nan_policy=nan_policy)
    arr = read.points
    names = arr.dtype.names or ()
    missing = [n for n in RADAR_PCD_FIELDS if n not in names]
    if missing:
        raise ValueError(f"radar PointCloud2 lacks fields {missing} (has {list(names)})")
    out = np.empty((arr.shape[0], len(RADAR_PCD_FIELDS)), np.float32)
    for i, n in enumerate(RADAR_PCD_FIELDS):
        out[:, i] = arr[n]
    return CloudRead(out, read.dropped)


# ---------------------------------------------------------------------------- TransformStamped
def transform_to_matrix(msg: Any) -> np.ndarray:
    """geometry_msgs/TransformStamped (or Transform) -> (4, 4) float64, child -> parent."""
    tf = getattr(msg, "transform", msg)
    t, q = tf.translation, tf.rotation
    quat = np.array([q.w, q.x, q.y, q.z], np.float64)
    n = float(np.linalg.norm(quat))
    if not math.isfinite(n) or n < 1e-6:
        raise ValueError(f"transform quaternion is not usable: {quat.tolist()}")
    m = np.eye(4)
    m[:3, :3] = quat_to_rotmat(quat / n)
    m[:3, 3] = (t.x, t.y, t.z)
    if not np.all(np.isfinite(m)):
        raise ValueError("transform has non-finite translation")
    return m


def matrix_to_transform(matrix: np.ndarray, parent_frame: str, child_frame: str, stamp_ns: int = 0) -> Any:
    """(4, 4) rigid child -> parent matrix -> geometry_msgs/TransformStamped."""
    from geometry_msgs.msg import TransformStamped

    m = np.asarray(matrix, np.float64)
    if m.shape != (4, 4):
        raise ValueError(f"expected a 4x4 matrix, got {m.shape}")
    r = m[:3, :3]
    if not np.allclose(r @ r.T, np.eye(3), atol=1e-5) or np.linalg.det(r) < 0:
        raise ValueError("matrix rotation is not a proper rotation")
    w, x, y, z = rotmat_to_quat(r)
    msg = TransformStamped(header=make_header(parent_frame, stamp_ns), child_frame_id=child_frame)
    msg.transform.translation.x, msg.transform.translation.y, msg.transform.translation.z = map(float, m[:3, 3])
    rot = msg.transform.rotation
    rot.x, rot.y, rot.z, rot.w = float(x), float(y), float(z), float(w)
    return msg


# ---------------------------------------------------------------------------- fast message building
# Output builders create thousands of small messages per keyframe (24 Points per box in a
# MarkerArray). rclpy's generated constructors default-construct every nested message before the
# caller replaces it, which dominates the cost. Flat messages (only primitive fields) are therefore
# filled slot by slot, nested ones are shallow copies of a per-call template whose sub-messages
# are then *replaced* (never mutated in place). Both tricks are verified once per class against
# the constructor and fall back to it; tests compare both paths (``_FAST_MSGS``).
_FAST_MSGS = True
_PRIMITIVE_TYPES = {"double": 1.5, "float": 0.5, "string": "s", "int32": 3, "uint64": 4, "boolean": True}


@cache
def _flat_fields(cls: Any) -> tuple[str, ...] | None:
    """Field names of a flat message class that can be filled through its slots, else None."""
    try:
        fields = cls.get_fields_and_field_types()
        if set(cls.__slots__) != {"_" + f for f in fields} | {"_check_fields"}:
            return None
        if not all(t in _PRIMITIVE_TYPES for t in fields.values()):
            return None
        names = tuple(fields)
        probe = {f: _PRIMITIVE_TYPES[t] for f, t in fields.items()}
        m = cls.__new__(cls)
        m._check_fields = False
        for n in names:
            setattr(m, "_" + n, probe[n])
        return names if m == cls(**probe) else None
    except Exception:
        return None


def _msg(cls: Any, **kw: Any) -> Any:
    """Flat message from all its field values (Python scalars of the right type)."""
    names = _flat_fields(cls) if _FAST_MSGS else None
    if names is None or len(kw) != len(names):
        return cls(**kw)
    m = cls.__new__(cls)
    m._check_fields = False
    for n in names:
        setattr(m, "_" + n, kw[n])
    return m


def _clone(template: Any) -> Any:
    """Shallow copy of a message; callers assign whole new sub-messages to the fields they change."""
    return copy.copy(template) if _FAST_MSGS else copy.deepcopy(template)


def _make_points(xyz: np.ndarray) -> list[Any]:
    """(N, 3) -> [geometry_msgs/Point]."""
    from geometry_msgs.msg import Point

    vals = np.asarray(xyz, np.float64).reshape(-1, 3).tolist()
    if not _FAST_MSGS or _flat_fields(Point) != ("x", "y", "z"):
        return [Point(x=x, y=y, z=z) for x, y, z in vals]
    new, out = Point.__new__, []
    for x, y, z in vals:  # the hottest loop: _msg inlined
        p = new(Point)
        p._check_fields, p._x, p._y, p._z = False, x, y, z
        out.append(p)
    return out


# ---------------------------------------------------------------------------- detections
def _yaw_quat_xyzw(yaw: float) -> tuple[float, float, float, float]:
    return 0.0, 0.0, math.sin(yaw / 2.0), math.cos(yaw / 2.0)


def _quat_yaw(q: Any) -> float:
    return math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))


def _class_name(label: int) -> str:
    return CLASSES[label] if 0 <= label < len(CLASSES) else str(label)


def _pose(center: np.ndarray, yaw: float, template: Any = None) -> Any:
    from geometry_msgs.msg import Point, Pose, Quaternion

    qx, qy, qz, qw = _yaw_quat_xyzw(yaw)
    pose = Pose() if template is None else _clone(template)
    pose.position = _msg(Point, x=float(center[0]), y=float(center[1]), z=float(center[2]))
    pose.orientation = _msg(Quaternion, x=qx, y=qy, z=qz, w=qw)
    return pose


def boxes_to_detection3d_array(boxes: Boxes, frame_id: str, stamp_ns: int) -> Any:
    """Boxes -> vision_msgs/Detection3DArray.

    One hypothesis per detection: class_id = nuScenes class name, score; its pose = the box pose.
    bbox.size = (l, w, h) along the box x/y/z axes (nuScenes size is (w, l, h)); id = track id or "".
    Velocity and attribute do not fit vision_msgs: see ``boxes_to_object3d_array``.
    """
    from geometry_msgs.msg import Pose, PoseWithCovariance, Vector3
    from vision_msgs.msg import BoundingBox3D, Detection3D, Detection3DArray, ObjectHypothesis, ObjectHypothesisWithPose

    header = make_header(frame_id, stamp_ns)
    out = Detection3DArray(header=header)
    # Per-call templates (see _clone): every field that differs per box is assigned a new object.
    t_pose, t_pwc, t_hyp = Pose(), PoseWithCovariance(), ObjectHypothesisWithPose()
    t_box, t_det = BoundingBox3D(), Detection3D(header=header)
    dets = []
    for i in range(len(boxes)):
        pose = _pose(boxes.center[i], float(boxes.yaw[i]), t_pose)
        w, l, h = (float(v) for v in boxes.size[i])
        hyp = _clone(t_hyp)
        name = _class_name(int(boxes.labels[i]))
        hyp.hypothesis = _msg(ObjectHypothesis, class_id=name, score=float(boxes.scores[i]))
        hyp.pose = _clone(t_pwc)  # covariance: the template's zeros, shared read-only
        hyp.pose.pose = pose
        bbox = _clone(t_box)
        bbox.center = pose
        bbox.size = _msg(Vector3, x=l, y=w, z=h)
        det = _clone(t_det)
        det.results = [hyp]
        det.bbox = bbox
        det.id = str(int(boxes.track_ids[i])) if boxes.track_ids is not None else ""
        dets.append(det)
    out.detections = dets
    return out


def detection3d_array_to_boxes(msg: Any) -> Boxes:
    """vision_msgs/Detection3DArray -> Boxes (best hypothesis; velocity 0, attribute -1).

    Unknown class names get label -1.
    """
    n = len(msg.detections)
    b = Boxes(
        center=np.zeros((n, 3), np.float32), size=np.zeros((n, 3), np.float32), yaw=np.zeros(n, np.float32),
        velocity=np.zeros((n, 2), np.float32), labels=np.full(n, -1, np.int64), scores=np.zeros(n, np.float32),
        attributes=np.full(n, -1, np.int64),
    )
    ids = []
    for i, d in enumerate(msg.detections):
        c, s = d.bbox.center, d.bbox.size
        b.center[i] = (c.position.x, c.position.y, c.position.z)
        b.size[i] = (s.y, s.x, s.z)
        b.yaw[i] = _quat_yaw(c.orientation)
        if d.results:
            best = max(d.results, key=lambda r: r.hypothesis.score)
            b.labels[i] = CLASS_TO_ID.get(best.hypothesis.class_id, -1)
            b.scores[i] = best.hypothesis.score
        ids.append(d.id)
    if n and all(x.isdigit() for x in ids):
        b.track_ids = np.array([int(x) for x in ids], np.int64)
    return b


def boxes_to_object3d_array(boxes: Boxes, frame_id: str, stamp_ns: int) -> Any:
    """Boxes -> imkd_msgs/Object3DArray (keeps velocity, attribute and the nuScenes (w, l, h) size)."""
    from geometry_msgs.msg import Point
    from imkd_msgs.msg import Object3D, Object3DArray

    objs = []
    for i in range(len(boxes)):
        label = int(boxes.labels[i])
        attr = int(boxes.attributes[i])
        c = boxes.center[i]
        objs.append(
            Object3D(
                class_name=_class_name(label),
                class_id=label if 0 <= label < len(CLASSES) else -1,
                score=float(boxes.scores[i]),
                center=Point(x=float(c[0]), y=float(c[1]), z=float(c[2])),
                yaw=float(boxes.yaw[i]),
                width=float(boxes.size[i, 0]),
                length=float(boxes.size[i, 1]),
                height=float(boxes.size[i, 2]),
                vx=float(boxes.velocity[i, 0]),
                vy=float(boxes.velocity[i, 1]),
                attribute=ATTRIBUTES[attr] if 0 <= attr < len(ATTRIBUTES) else "",
                track_id=max(int(boxes.track_ids[i]), 0) if boxes.track_ids is not None else 0,
            )
        )
    return Object3DArray(header=make_header(frame_id, stamp_ns), objects=objs)


def object3d_array_to_boxes(msg: Any) -> Boxes:
    """imkd_msgs/Object3DArray -> Boxes (track_ids set when any object carries one)."""
    objs = list(msg.objects)
    n = len(objs)
    attr_id = {a: i for i, a in enumerate(ATTRIBUTES)}
    b = Boxes(
        center=np.array([(o.center.x, o.center.y, o.center.z) for o in objs], np.float32).reshape(n, 3),
        size=np.array([(o.width, o.length, o.height) for o in objs], np.float32).reshape(n, 3),
        yaw=np.array([o.yaw for o in objs], np.float32),
        velocity=np.array([(o.vx, o.vy) for o in objs], np.float32).reshape(n, 2),
        labels=np.array([CLASS_TO_ID.get(o.class_name, o.class_id) for o in objs], np.int64),
        scores=np.array([o.score for o in objs], np.float32),
        attributes=np.array([attr_id.get(o.attribute, -1) for o in objs], np.int64),
    )
    if any(o.track_id for o in objs):
        b.track_ids = np.array([o.track_id for o in objs], np.int64)
    return b


# ---------------------------------------------------------------------------- markers
# RGB per class (order constants.CLASSES), nuScenes devkit-like hues.
CLASS_COLORS: tuple[tuple[float, float, float], ...] = (
    (1.00, 0.62, 0.00),  # car: orange
    (1.00, 0.39, 0.28),  # truck: tomato
    (0.91, 0.59, 0.48),  # construction_vehicle
    (1.00, 0.27, 0.00),  # bus: orange-red
    (1.00, 0.55, 0.00),  # trailer
    (0.44, 0.50, 0.56),  # barrier: slate grey
    (1.00, 0.24, 0.59),  # motorcycle
    (0.86, 0.08, 0.24),  # bicycle: crimson
    (0.00, 0.00, 0.90),  # pedestrian: blue
    (0.18, 0.31, 0.31),  # traffic_cone
)
_UNKNOWN_COLOR = (0.8, 0.8, 0.8)
# The 12 edges of a box as pairs of box_corners() indices (front face 0-3, back face 4-7).
_EDGES = np.array(
    [(0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7)], np.int64
)


def boxes_to_marker_array(
    boxes: Boxes,
    frame_id: str,
    stamp_ns: int,
    *,
    ns: str = "imkd",
    line_width: float = 0.08,
    labels: bool = True,
    velocities: bool = True,
    min_speed: float = 0.2,
    lifetime_s: float = 0.0,
) -> Any:
    """Boxes -> visualization_msgs/MarkerArray for RViz / Foxglove.

    A DELETEALL comes first so boxes from the previous keyframe vanish; then one LINE_LIST with all
    box edges (per-vertex class colours), a TEXT_VIEW_FACING "class score" per box, and an ARROW per
    box moving faster than ``min_speed`` m/s (from the box centre, 1 s of motion long).
    Markers share read-only sub-messages (header, scale, colours): copy one before mutating it.
    """
    from builtin_interfaces.msg import Duration
    from geometry_msgs.msg import Point, Vector3
    from std_msgs.msg import ColorRGBA
    from visualization_msgs.msg import Marker, MarkerArray

    header = make_header(frame_id, stamp_ns)
    sec = int(lifetime_s)
    lifetime = Duration(sec=sec, nanosec=int(round((lifetime_s - sec) * 1e9)))
    markers = [Marker(header=header, ns=ns, id=0, action=Marker.DELETEALL)]

    def template(kind: int, sub: str) -> Any:
        m = Marker(header=header, ns=f"{ns}/{sub}", type=kind, action=Marker.ADD, lifetime=lifetime)
        m.pose.orientation.w = 1.0
        return m

    palette = [_msg(ColorRGBA, r=r, g=g, b=b, a=1.0) for r, g, b in CLASS_COLORS]
    unknown = _msg(ColorRGBA, r=_UNKNOWN_COLOR[0], g=_UNKNOWN_COLOR[1], b=_UNKNOWN_COLOR[2], a=1.0)

    def color(label: int) -> Any:  # shared, read-only colour objects
        return palette[label] if 0 <= label < len(palette) else unknown

    n = len(boxes)
    if n == 0:
        return MarkerArray(markers=markers)
    corners = box_corners(boxes.center, boxes.size, boxes.yaw)  # (N, 8, 3)
    seg = corners[:, _EDGES.reshape(-1)]  # (N, 24, 3)
    lines = template(Marker.LINE_LIST, "boxes")
    lines.id = 0
    lines.scale = _msg(Vector3, x=float(line_width), y=0.0, z=0.0)
    lines.color = _msg(ColorRGBA, r=1.0, g=1.0, b=1.0, a=1.0)
    lines.points = _make_points(seg.reshape(-1, 3))
    lines.colors = [c for i in range(n) for c in [color(int(boxes.labels[i]))] * 24]
    markers.append(lines)
    t_text, t_arrow = template(Marker.TEXT_VIEW_FACING, "labels"), template(Marker.ARROW, "velocity")
    t_text.scale = _msg(Vector3, x=0.0, y=0.0, z=0.8)  # text height
    t_arrow.scale = _msg(Vector3, x=0.15, y=0.3, z=0.3)  # shaft diameter, head diameter, head length
    t_pose = t_text.pose
    top = (boxes.center[:, 2] + boxes.size[:, 2] / 2 + 0.5).tolist()
    centers, vel = boxes.center.tolist(), boxes.velocity.tolist()
    for i in range(n):
        label = int(boxes.labels[i])
        cx, cy, cz = centers[i]
        if labels:
            t = _clone(t_text)
            t.id = i
            t.pose = _clone(t_pose)
            t.pose.position = _msg(Point, x=cx, y=cy, z=top[i])
            t.color = color(label)
            t.text = f"{_class_name(label)} {float(boxes.scores[i]):.2f}"
            markers.append(t)
        if velocities:
            vx, vy = vel[i]
            if math.hypot(vx, vy) >= min_speed:
                a = _clone(t_arrow)
                a.id = i
                a.points = [_msg(Point, x=cx, y=cy, z=cz), _msg(Point, x=cx + vx, y=cy + vy, z=cz)]
                a.color = color(label)
                markers.append(a)
    return MarkerArray(markers=markers)
