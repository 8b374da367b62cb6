"""sensor_msgs/PointCloud2 <-> numpy structured arrays, and the nuScenes radar layout.

Rule: ONE reader for every valid cloud, on every machine. The message's own layout decides: each
PointField becomes a numpy field at its offset, in its datatype (INT8..FLOAT64) and the message's
byte order, ``count > 1`` as a sub-array under the field's own name; ``point_step`` padding is
kept as the itemsize and ``row_step`` padding is skipped row by row. Organised clouds
(height > 1) come back flat, row-major. sensor_msgs_py (present on a vehicle) is deliberately
not used: it reads a cloud with row padding wrongly, renames count > 1 fields and asserts on
rosbags messages, and is no faster (30 radar sweeps: 0.98 ms here, 0.86 ms read_points, measured
with benchmarks/bench_convert.py). Unknown datatypes, fields
outside the point, truncated data raise ValueError; NaN points are kept, dropped (counted) or
refused per ``nan_policy``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from imkd_ros.constants import RADAR_PCD_FIELDS
from imkd_ros.ros.msgutil import as_u8, make_header, set_u8

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
    names: list[str] = []
    formats: list[np.dtype] = []
    offsets: list[int] = []
    for f in fields:
        name, dt, off, count = str(f.name), int(f.datatype), int(f.offset), int(f.count)
        if not name:
            raise ValueError("PointField with an empty name")
        if dt not in _PF_TO_NP:
            raise ValueError(f"PointField {name!r} has unknown datatype {dt}")
        if name in names:
            raise ValueError(f"duplicate PointField {name!r}")
        base = np.dtype(bo + _PF_TO_NP[dt])
        count = max(count, 1)
        if off < 0 or off + base.itemsize * count > point_step:
            raise ValueError(f"PointField {name!r} (offset {off}, {count}x{base}) exceeds point_step {point_step}")
        names.append(name)
        formats.append(base if count == 1 else np.dtype((base, (count,))))
        offsets.append(off)
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": int(point_step)})


def _cloud_view(msg: Any) -> np.ndarray:
    """Validated structured (N,) array of the cloud's points: a view when rows are unpadded."""
    h, w = int(msg.height), int(msg.width)
    ps, rs = int(msg.point_step), int(msg.row_step)
    if h < 0 or w < 0:
        raise ValueError(f"PointCloud2 size {h}x{w} is negative")
    if ps <= 0 and h * w > 0:
        raise ValueError(f"PointCloud2 point_step {ps} must be > 0")
    dtype = fields_to_dtype(msg.fields, max(ps, 1), bool(msg.is_bigendian))
    if h * w == 0:
        return np.zeros(0, dtype)
    row = w * ps
    if rs < row:
        raise ValueError(f"PointCloud2 row_step {rs} < width*point_step {row}")
    data = as_u8(msg.data)
    need = (h - 1) * rs + row  # the last row may omit its padding
    if data.size < need:
        raise ValueError(f"PointCloud2 data truncated: {data.size} bytes, {h}x{w} points need {need}")
    if rs == row:
        return data[: h * row].view(dtype)
    rows = np.lib.stride_tricks.as_strided(data, shape=(h, row), strides=(rs, 1), writeable=False)
    return np.ascontiguousarray(rows).reshape(-1).view(dtype)


def _nan_fields(dtype: np.dtype, nan_fields: Sequence[str] | None) -> list[str]:
    names = dtype.names or ()
    if nan_fields is not None:
        return [n for n in nan_fields if n in names]
    xyz: list[str] = [n for n in ("x", "y", "z") if n in names]
    return xyz or [n for n in names if dtype[n].base.kind == "f"]


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


def read_pointcloud2(msg: Any, *, nan_policy: str = "keep", nan_fields: Sequence[str] | None = None) -> CloudRead:
    """sensor_msgs/PointCloud2 -> (structured (N,) array, dropped count); any fields/offsets/endianness.

    ``nan_policy``: "keep", "drop" (points with a non-finite value in ``nan_fields``, default
    x/y/z, are removed and counted) or "raise".
    """
    return _apply_nan_policy(_cloud_view(msg), nan_policy, nan_fields)


def pointcloud2_to_array(msg: Any) -> np.ndarray:
    """sensor_msgs/PointCloud2 -> structured (N,) array, NaNs kept (see ``read_pointcloud2``)."""
    return read_pointcloud2(msg).points


def dtype_to_fields(dtype: np.dtype) -> tuple[list[tuple[str, int, int, int]], bool]:
    """Structured dtype -> ([(name, offset, datatype, count)], is_bigendian)."""
    if dtype.names is None or dtype.fields is None:
        raise ValueError("expected a structured array (named fields)")
    out, orders = [], set()
    for name in dtype.names:
        ft, off = dtype.fields[name][:2]
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
    from sensor_msgs.msg import PointCloud2, PointField  # noqa: PLC0415  (optional: ROS msgs; replay imports this without ROS)

    arr = np.asarray(points)
    spec, big = dtype_to_fields(arr.dtype)
    if arr.ndim not in (1, 2):
        raise ValueError(f"expected a 1-D or 2-D structured array, got shape {arr.shape}")
    h, w = (1, arr.shape[0]) if arr.ndim == 1 else (arr.shape[0], arr.shape[1])
    fields = [PointField(name=n, offset=o, datatype=d, count=c) for n, o, d, c in spec]
    msg = PointCloud2(header=make_header(frame_id, stamp_ns), height=h, width=w, fields=fields, is_bigendian=big)
    msg.point_step = arr.dtype.itemsize
    msg.row_step = arr.dtype.itemsize * w
    msg.is_dense = bool(_apply_nan_policy(arr.reshape(-1), "drop", None).dropped == 0)
    set_u8(msg, "data", np.ascontiguousarray(arr).view(np.uint8))
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
    must be present as a scalar field. Points with non-finite x/y/z are dropped (and counted).
    """
    read = read_pointcloud2(msg, nan_policy=nan_policy)
    arr = read.points
    names = arr.dtype.names or ()
    missing = [n for n in RADAR_PCD_FIELDS if n not in names]
    if missing:
        raise ValueError(f"radar PointCloud2 lacks fields {missing} (has {list(names)})")
    vector = [n for n in RADAR_PCD_FIELDS if arr.dtype[n].shape != ()]
    if vector:
        raise ValueError(f"radar PointCloud2 fields {vector} have count > 1 (expected one value per point)")
    out = np.empty((arr.shape[0], len(RADAR_PCD_FIELDS)), np.float32)
    for i, n in enumerate(RADAR_PCD_FIELDS):
        out[:, i] = arr[n]
    return CloudRead(out, read.dropped)
