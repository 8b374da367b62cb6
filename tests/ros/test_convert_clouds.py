"""imkd_ros.ros.clouds: PointCloud2 and the radar layout."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import PointCloud2, PointField

from imkd_ros.bag.typestore import make_typestore

pytest.importorskip("sensor_msgs.msg")

from imkd_ros.constants import RADAR_PCD_FIELDS
from imkd_ros.ros import clouds
from tests.vendor import ROOT, require_vendor


def _roundtrip(msg):
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


# ---------------------------------------------------------------------------- hand-built clouds
# Bytes packed with struct, expected values written down directly: nothing here goes through the
# converter's own dtype logic, so a wrong offset, byte order or row stride shows up as a mismatch.
# (name, offset, datatype, count, struct code); declared out of offset order on purpose.
HAND_FIELDS = [
    ("intensity", 16, clouds.FLOAT64, 1, "d"),
    ("x", 4, clouds.FLOAT32, 1, "f"),
    ("ring", 0, clouds.UINT16, 1, "H"),
    ("id", 2, clouds.INT8, 1, "b"),
    ("normal", 24, clouds.FLOAT32, 3, "fff"),
    ("flags", 12, clouds.UINT32, 1, "I"),
]
HAND_POINT_STEP = 40  # 36 bytes of fields + 4 of padding (and the gap at 3 and 8..11)
HAND_ROW_PAD = 12


def _hand_values(r: int, c: int) -> dict[str, tuple]:
    k = r * 10 + c
    return {"intensity": (1e6 + k / 8,), "x": (k + 0.25,), "ring": (60000 + k,), "id": (-100 + k,),
            "normal": (0.5 * k, -1.5, 2.0 ** -k), "flags": (0xDEADBE00 + k,)}


def _hand_cloud(h: int, w: int, big: bool, omit_last_pad: bool = False):
    bo = ">" if big else "<"
    row_step = w * HAND_POINT_STEP + HAND_ROW_PAD
    buf = bytearray(b"\xee" * (h * row_step))  # padding holds garbage, never zeros
    for r in range(h):
        for c in range(w):
            vals = _hand_values(r, c)
            base = r * row_step + c * HAND_POINT_STEP
            for name, off, _, _, code in HAND_FIELDS:
                struct.pack_into(bo + code, buf, base + off, *vals[name])
    data = bytes(buf[:-HAND_ROW_PAD] if omit_last_pad else buf)
    fields = [PointField(name=n, offset=o, datatype=d, count=k) for n, o, d, k, _ in HAND_FIELDS]
    return PointCloud2(height=h, width=w, fields=fields, is_bigendian=big, point_step=HAND_POINT_STEP,
                       row_step=row_step, data=data, is_dense=True)


@pytest.mark.parametrize("big", [False, True], ids=["little", "big"])
@pytest.mark.parametrize("omit_last_pad", [False, True], ids=["full", "last-row-unpadded"])
def test_hand_built_organised_cloud_with_point_and_row_padding(big, omit_last_pad):
    h, w = 3, 2
    out = clouds.pointcloud2_to_array(_roundtrip(_hand_cloud(h, w, big, omit_last_pad)))
    assert out.shape == (h * w,)
    assert out.dtype.names == tuple(f[0] for f in HAND_FIELDS)  # message order, names unchanged
    assert out.dtype["normal"].shape == (3,)  # count=3 stays one field, not normal_0..2
    for i, (r, c) in enumerate((r, c) for r in range(h) for c in range(w)):  # row-major
        vals = _hand_values(r, c)
        for name, *_ in HAND_FIELDS:
            got = np.atleast_1d(out[name][i]).tolist()
            assert got == pytest.approx(list(vals[name]), rel=1e-7), (name, r, c)


@pytest.mark.parametrize("big", [False, True], ids=["little", "big"])
def test_every_pointfield_datatype_at_its_limits(big):
    bo = ">" if big else "<"
    spec = [  # (datatype, struct code, values for 2 points)
        (clouds.INT8, "b", (-128, 127)), (clouds.UINT8, "B", (0, 255)),
        (clouds.INT16, "h", (-32768, 32767)), (clouds.UINT16, "H", (0, 65535)),
        (clouds.INT32, "i", (-2**31, 2**31 - 1)), (clouds.UINT32, "I", (0, 2**32 - 1)),
        (clouds.FLOAT32, "f", (-3.5, 1.0e38)), (clouds.FLOAT64, "d", (-1.0e300, 2.0 ** -1000)),
    ]
    fields, off = [], 0
    for i, (dt, code, _) in enumerate(spec):
        fields.append((f"f{i}", off, dt, code))
        off += struct.calcsize(code) + 1  # one byte of gap after every field: unaligned offsets
    step = off
    buf = bytearray(2 * step)
    for p in range(2):
        for (_name, o, _, code), (_, _, vals) in zip(fields, spec):
            struct.pack_into(bo + code, buf, p * step + o, vals[p])
    msg = PointCloud2(height=1, width=2, is_bigendian=big, point_step=step, row_step=2 * step, data=bytes(buf),
                      fields=[PointField(name=n, offset=o, datatype=d, count=1) for n, o, d, _ in fields])
    out = clouds.pointcloud2_to_array(msg)
    for (name, *_), (_, _, vals) in zip(fields, spec):
        assert out[name].tolist() == pytest.approx(list(vals), rel=1e-7), name


def test_count_zero_is_one_value_and_bad_fields_are_refused():
    msg = SimpleNamespace(height=1, width=1, is_bigendian=False, point_step=4, row_step=4,
                          data=struct.pack("<f", 7.5), fields=[PointField(name="x", offset=0, datatype=7, count=0)])
    assert clouds.pointcloud2_to_array(msg)["x"].tolist() == [7.5]
    for bad, match in ((PointField(name="", offset=0, datatype=7, count=1), "empty name"),
                       (PointField(name="x", offset=2, datatype=7, count=1), "exceeds point_step")):
        msg.fields = [bad]
        with pytest.raises(ValueError, match=match):
            clouds.pointcloud2_to_array(msg)


def test_rosbags_messages_read_like_rclpy_ones():
    """Offline replay hands rosbags messages (ndarray data, its own classes) to the same reader."""

    store = make_typestore()
    msg = _hand_cloud(3, 2, big=False)
    bag_msg = store.deserialize_cdr(serialize_message(msg), "sensor_msgs/msg/PointCloud2")
    a, b = clouds.pointcloud2_to_array(msg), clouds.pointcloud2_to_array(bag_msg)
    _assert_struct_equal(a, b)
    pts = _radar_points(9, seed=4)
    radar = store.deserialize_cdr(serialize_message(clouds.radar_to_pointcloud2(pts)), "sensor_msgs/msg/PointCloud2")
    np.testing.assert_array_equal(clouds.pointcloud2_to_radar(radar).points, pts)


def test_radar_vector_field_is_refused():
    dt = np.dtype([(n, "<f4", (2,)) if n == "rcs" else (n, "<f4") for n in RADAR_PCD_FIELDS])
    with pytest.raises(ValueError, match="count > 1"):
        clouds.pointcloud2_to_radar(clouds.array_to_pointcloud2(np.zeros(3, dt)))


# ---------------------------------------------------------------------------- with the vehicle library
# On a vehicle sensor_msgs_py (and cv_bridge) are importable. The converters must not change with
# that: the whole converter suite runs again with ../shared/vendor/python on the path and
# sensor_msgs_py imported first, and the node/replay modules must never import it.
CONVERTER_TESTS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "ros").glob("test_convert_*.py"))
_VENDOR_RUN = "IMKD_CONVERT_VENDOR_RUN"


def _vendor_env() -> dict[str, str]:
    vendor = require_vendor("python", "sensor_msgs_py")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(vendor.parent), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env[_VENDOR_RUN] = "1"
    return env


@pytest.mark.skipif(os.environ.get(_VENDOR_RUN) == "1", reason="already the run with the vendor path")
def test_converter_suite_passes_with_sensor_msgs_py_on_the_path():
    code = ("import sys, pytest\n"
            "import sensor_msgs_py.point_cloud2  # as on a vehicle: present and loaded\n"
            "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', *sys.argv[1:]]))\n")
    out = subprocess.run([sys.executable, "-c", code, *CONVERTER_TESTS], cwd=ROOT, env=_vendor_env(),
                         capture_output=True, text=True, timeout=900)
    tail = (out.stdout + out.stderr)[-4000:]
    assert out.returncode == 0, tail
    assert " passed" in out.stdout and " failed" not in out.stdout, tail


def test_vendor_run_really_has_sensor_msgs_py():
    """In the vendor run the library is importable (so the run above tests what it claims)."""
    if os.environ.get(_VENDOR_RUN) != "1":
        pytest.skip("only meaningful in the run with ../shared/vendor/python on the path")
    import sensor_msgs_py.point_cloud2  # noqa: F401, PLC0415  (optional: vendor library, for comparison only)


def test_node_and_replay_never_import_the_vehicle_libraries():
    code = ("import importlib.util, sys\n"
            "assert importlib.util.find_spec('sensor_msgs_py') is not None\n"
            "import imkd_ros.ros.detector_node, imkd_ros.ros.frontend, imkd_ros.replay.replay\n"
            "from imkd_ros.ros import calibration, clouds, detections, images, markers\n"
            "bad = [m for m in ('sensor_msgs_py', 'cv_bridge') if m in sys.modules]\n"
            "assert not bad, bad\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_vendor_env(), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]
