"""Point-cloud files in the exact nuScenes formats.

* LiDAR: ``.pcd.bin``, float32 (x, y, z, intensity, ring) rows (``LidarPointCloud.from_file``).
* Radar: binary PCD v0.7 with the 18 ARS408 fields, packed little-endian
  (``RadarPointCloud.from_file``). The devkit's decoder asserts there is data after the last
  field (``end_p < len(data)``), so like the nuScenes files we end with one newline byte; an empty
  sweep is written as one all-NaN point, which the devkit reads as an empty cloud.
"""

from __future__ import annotations

import numpy as np

from imkd_ros.constants import RADAR_PCD_FIELDS

RADAR_SIZES = (4, 4, 4, 1, 2, 4, 4, 4, 4, 4, 1, 1, 1, 1, 1, 1, 1, 1)
RADAR_TYPES = ("F", "F", "F", "I", "I", "F", "F", "F", "F", "F", "I", "I", "I", "I", "I", "I", "I", "I")
_NP = {("F", 4): "<f4", ("I", 1): "i1", ("I", 2): "<i2", ("I", 4): "<i4"}
RADAR_DTYPE = np.dtype([(n, _NP[(t, s)]) for n, t, s in zip(RADAR_PCD_FIELDS, RADAR_TYPES, RADAR_SIZES, strict=True)])


def lidar_bytes(points: np.ndarray) -> bytes:
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 5)
    return pts.tobytes()


def write_lidar(path: str, points: np.ndarray) -> None:
    with open(path, "wb") as f:
        f.write(lidar_bytes(points))


def radar_bytes(points: np.ndarray) -> bytes:
    """(N, 18) values in RADAR_PCD_FIELDS order -> binary PCD bytes."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, len(RADAR_PCD_FIELDS))
    empty = len(points) == 0
    rec = np.zeros(max(len(points), 1), dtype=RADAR_DTYPE)
    if empty:
        for name in ("x", "y", "z"):
            rec[name] = np.nan
    else:
        for i, name in enumerate(RADAR_PCD_FIELDS):
            kind = RADAR_DTYPE[name].kind
            rec[name] = np.round(points[:, i]) if kind == "i" else points[:, i]
    n = len(rec)
    header = (
        "# .PCD v0.7 - Point Cloud Data file format\n"
        "VERSION 0.7\n"
        f"FIELDS {' '.join(RADAR_PCD_FIELDS)}\n"
        f"SIZE {' '.join(str(s) for s in RADAR_SIZES)}\n"
        f"TYPE {' '.join(RADAR_TYPES)}\n"
        f"COUNT {' '.join('1' for _ in RADAR_SIZES)}\n"
        f"WIDTH {n}\n"
        "HEIGHT 1\n"
        "VIEWPOINT 0 0 0 1 0 0 0\n"
        f"POINTS {n}\n"
        "DATA binary\n"
    )
    return header.encode("ascii") + rec.tobytes() + b"\n"


def write_radar(path: str, points: np.ndarray) -> None:
    with open(path, "wb") as f:
        f.write(radar_bytes(points))


def read_radar(path: str) -> np.ndarray:
    """Fast reader (no filtering): (N, 18) float64 in RADAR_PCD_FIELDS order."""
    with open(path, "rb") as f:
        data = f.read()
    pos = data.index(b"DATA binary\n") + len(b"DATA binary\n")
    header = data[:pos].decode("ascii").splitlines()
    width = int(next(h for h in header if h.startswith("WIDTH")).split()[1])
    rec = np.frombuffer(data, dtype=RADAR_DTYPE, count=width, offset=pos)
    out = np.stack([rec[n].astype(np.float64) for n in RADAR_PCD_FIELDS], axis=1)
    return out[~np.isnan(out[:, 0])]


def read_lidar(path: str) -> np.ndarray:
    return np.fromfile(path, dtype=np.float32).reshape(-1, 5)
