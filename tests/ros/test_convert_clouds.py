"""imkd_ros.ros.clouds: PointCloud2 and the radar layout."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg")

from imkd_ros.constants import RADAR_PCD_FIELDS
from imkd_ros.ros import clouds


def _roundtrip(msg):
    from rclpy.serialization import deserialize_message, serialize_message

    return deserialize_message(serialize_message(msg), type(msg))



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
    msg = _roundtrip(clouds.array_to_pointcloud2(pts, "lidar", 11))
    assert msg.point_step == 40 and msg.row_step == 40 * 50 and msg.height == 1 and msg.width == 50
    fields = {f.name: (f.offset, f.datatype, f.count) for f in msg.fields}
    assert fields["intensity"] == (12, clouds.UINT16, 1)
    assert fields["ring"] == (14, clouds.UINT8, 1)
    assert fields["t"] == (16, clouds.FLOAT64, 1)
    assert fields["normal"] == (24, clouds.FLOAT32, 3)
    assert msg.is_dense and not msg.is_bigendian
    out = clouds.pointcloud2_to_array(msg)
    _assert_struct_equal(out, pts)


def test_pointcloud2_is_zero_copy_view():
    msg = clouds.array_to_pointcloud2(_mixed_points())
    out = clouds.pointcloud2_to_array(msg)
    assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8))


def test_pointcloud2_big_endian():
    pts = _mixed_points(7).astype(MIXED.newbyteorder(">"))
    msg = clouds.array_to_pointcloud2(pts)
    assert msg.is_bigendian
    raw = np.frombuffer(msg.data, np.uint8)
    assert raw[:4].tobytes() == np.float32(pts["x"][0]).byteswap().tobytes() or raw[:4].tobytes() == np.array(
        pts["x"][0], ">f4"
    ).tobytes()
    out = clouds.pointcloud2_to_array(msg)
    np.testing.assert_array_equal(out["x"], pts["x"])
    np.testing.assert_array_equal(out["normal"], pts["normal"])


def test_pointcloud2_manual_layout_with_row_padding():
    """Organised 2x3 cloud, fields out of offset order, padded points and padded rows."""
    from sensor_msgs.msg import PointField

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
        PointField(name="x", offset=8, datatype=clouds.FLOAT32, count=1),
        PointField(name="id", offset=0, datatype=clouds.INT16, count=1),
    ]
    msg = SimpleNamespace(height=h, width=w, fields=fields, is_bigendian=False, point_step=ps, row_step=rs,
                          data=buf.tobytes())
    out = clouds.pointcloud2_to_array(msg)
    assert out.shape == (6,)
    np.testing.assert_array_equal(out["x"], vals)
    np.testing.assert_array_equal(out["id"], -np.arange(6))


def test_pointcloud2_organised_roundtrip():
    pts = _mixed_points(12).reshape(3, 4)
    msg = clouds.array_to_pointcloud2(pts)
    assert (msg.height, msg.width, msg.row_step) == (3, 4, 160)
    _assert_struct_equal(clouds.pointcloud2_to_array(msg), pts.reshape(-1))


def test_pointcloud2_errors():
    from sensor_msgs.msg import PointField

    msg = clouds.array_to_pointcloud2(_mixed_points(10))
    msg.data = bytes(msg.data)[:-1]
    with pytest.raises(ValueError, match="truncated"):
        clouds.pointcloud2_to_array(msg)
    msg = clouds.array_to_pointcloud2(_mixed_points(10))
    msg.row_step = 10
    with pytest.raises(ValueError, match="row_step"):
        clouds.pointcloud2_to_array(msg)
    msg = clouds.array_to_pointcloud2(_mixed_points(10))
    msg.fields = list(msg.fields) + [PointField(name="far", offset=38, datatype=clouds.FLOAT32, count=1)]
    with pytest.raises(ValueError, match="exceeds point_step"):
        clouds.pointcloud2_to_array(msg)
    msg.fields = [PointField(name="x", offset=0, datatype=99, count=1)]
    with pytest.raises(ValueError, match="unknown datatype"):
        clouds.pointcloud2_to_array(msg)
    with pytest.raises(ValueError, match="structured"):
        clouds.array_to_pointcloud2(np.zeros((3, 3), np.float32))


def test_pointcloud2_nan_policies():
    pts = _mixed_points(20)
    pts["x"][[2, 5]] = np.nan
    pts["z"][7] = np.inf
    pts["t"][9] = np.nan  # not a coordinate: kept by the default x/y/z check
    msg = clouds.array_to_pointcloud2(pts)
    assert not msg.is_dense
    keep = clouds.read_pointcloud2(msg)
    assert keep.points.shape == (20,) and keep.dropped == 0
    drop = clouds.read_pointcloud2(msg, nan_policy="drop")
    assert drop.points.shape == (17,) and drop.dropped == 3
    assert np.all(np.isfinite(drop.points["x"])) and np.isnan(drop.points["t"]).sum() == 1
    with pytest.raises(ValueError, match="3 of 20"):
        clouds.read_pointcloud2(msg, nan_policy="raise")
    drop_t = clouds.read_pointcloud2(msg, nan_policy="drop", nan_fields=("t",))
    assert drop_t.dropped == 1
    with pytest.raises(ValueError, match="nan_policy"):
        clouds.read_pointcloud2(msg, nan_policy="ignore")


def test_empty_pointcloud2():
    msg = clouds.array_to_pointcloud2(np.zeros(0, MIXED))
    out = clouds.read_pointcloud2(msg, nan_policy="drop")
    assert out.points.shape == (0,) and out.dropped == 0 and out.points.dtype.names == MIXED.names





# ---------------------------------------------------------------------------- radar
def _radar_points(n=30, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pts = rng.normal(size=(n, 18)).astype(np.float32) * 10
    for i, name in enumerate(RADAR_PCD_FIELDS):
        if clouds.RADAR_DTYPE[name].kind == "i":
            pts[:, i] = rng.integers(0, 20, n)
    return pts


def test_radar_roundtrip_and_layout():
    pts = _radar_points()
    msg = _roundtrip(clouds.radar_to_pointcloud2(pts, "RADAR_FRONT", 3))
    assert [f.name for f in msg.fields] == list(RADAR_PCD_FIELDS)
    assert msg.point_step == 43  # the nuScenes PCD layout: 10 float32, 1 int16, 7 int8
    types = {f.name: f.datatype for f in msg.fields}
    assert types["x"] == clouds.FLOAT32 and types["id"] == clouds.INT16 and types["dyn_prop"] == clouds.INT8
    read = clouds.pointcloud2_to_radar(msg)
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
    read = clouds.pointcloud2_to_radar(clouds.array_to_pointcloud2(arr))
    assert read.dropped == 1
    np.testing.assert_array_equal(read.points, np.delete(pts, 3, axis=0))


def test_radar_errors():
    with pytest.raises(ValueError, match=r"\(N, 18\)"):
        clouds.radar_to_pointcloud2(np.zeros((4, 5), np.float32))
    msg = clouds.array_to_pointcloud2(np.zeros(3, np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4")])))
    with pytest.raises(ValueError, match="lacks fields"):
        clouds.pointcloud2_to_radar(msg)


def test_radar_structured_input_and_int_rounding():
    arr = np.zeros(2, np.dtype([(n, "<f8") for n in RADAR_PCD_FIELDS]))
    arr["id"] = [3.6, 40000]  # rounds, and clips to int16
    read = clouds.pointcloud2_to_radar(clouds.radar_to_pointcloud2(arr))
    assert read.points[:, RADAR_PCD_FIELDS.index("id")].tolist() == [4, 32767]
