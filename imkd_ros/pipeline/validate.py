"""Input validation with physical limits, applied before anything reaches the model.

Why: a sensor reporting an "invalid" marker (FLT_MAX in RCS or velocity, a byte-swapped cloud) or an
image whose header claims 20000x20000 must cost that sensor its data, not the detector its output.
Everything here is cheap and runs before the expensive step it protects: image sizes are read from
the PNG/JPEG header before decoding, point counts from the PointCloud2 header before parsing.
Every violation is counted per field so diagnostics can say what was wrong with which sensor.

Pure numpy (no ROS): the node, the replay and the tests use the same limits.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass

import numpy as np

from imkd_ros.constants import RADAR_PCD_FIELDS

_F = {name: i for i, name in enumerate(RADAR_PCD_FIELDS)}


@dataclass(frozen=True)
class RadarLimits:
    """Physical limits of an automotive long-range radar (Continental ARS408-class, as nuScenes).

    A point outside them is a sensor/driver fault (e.g. FLT_MAX "invalid" markers) and dropped."""

    min_range_m: float = 0.2  # ARS408 near range 0.20 m (byte-swapped floats land here as denormals)
    max_range_m: float = 300.0  # ARS408 far range 250 m, some margin
    min_z_m: float = -20.0
    max_z_m: float = 20.0
    min_rcs_dbsm: float = -64.0  # ARS408 RCS field range
    max_rcs_dbsm: float = 64.0
    max_speed_mps: float = 130.0  # |vx|, |vy|, |vx_comp|, |vy_comp| (ARS408: +-128 m/s)
    # Sweep size: a real sweep has <= ~125 clusters; more are kept by usefulness (nearest/strongest).
    max_points_per_sweep: int = 512
    # Clouds larger than this are refused from the header before parsing (bounded cost and memory).
    max_cloud_points: int = 65_536


@dataclass(frozen=True)
class ImageLimits:
    """Image sizes accepted before decoding (a 12000x12000 PNG would cost seconds and ~0.5 GB)."""

    max_pixels: int = 4096 * 3072  # 12.6 MP: 4K (3840x2160) fits, a decompression bomb does not
    max_side: int = 8192


def radar_violations(points: np.ndarray, limits: RadarLimits) -> tuple[np.ndarray, Counter]:
    """Mask of physically valid points of an (N, 18) nuScenes-field array, and violations per field.

    One point may violate several limits; each is counted (the diagnostics name the field)."""
    counts: Counter[str] = Counter()
    if points.shape[0] == 0:
        return np.ones(0, bool), counts
    with np.errstate(invalid="ignore", over="ignore"):
        p = points.astype(np.float64, copy=False)
        checks: dict[str, np.ndarray] = {
            "nonfinite": ~np.isfinite(p[:, [_F[n] for n in ("x", "y", "z", "rcs", "vx", "vy", "vx_comp",
                                                            "vy_comp")]]).all(1),
        }
        rng = np.hypot(p[:, _F["x"]], p[:, _F["y"]])
        checks["range"] = ~((rng >= limits.min_range_m) & (rng <= limits.max_range_m))
        checks["z"] = ~((p[:, _F["z"]] >= limits.min_z_m) & (p[:, _F["z"]] <= limits.max_z_m))
        checks["rcs"] = ~((p[:, _F["rcs"]] >= limits.min_rcs_dbsm) & (p[:, _F["rcs"]] <= limits.max_rcs_dbsm))
        for name in ("vx", "vy", "vx_comp", "vy_comp"):
            checks[name] = ~(np.abs(p[:, _F[name]]) <= limits.max_speed_mps)
    bad = np.zeros(points.shape[0], bool)
    for name, m in checks.items():
        n = int(m.sum())
        if n:
            counts[name] += n
            bad |= m
    return ~bad, counts


def cap_radar_points(xyz: np.ndarray, rcs: np.ndarray, cap: int) -> np.ndarray:
    """Indices (sorted) of at most ``cap`` points, keeping the most useful ones, not random ones.

    Half the budget goes to the nearest points (what the car may hit), the rest to the strongest
    of the remaining ones (large / reflective objects further out). Deterministic."""
    n = xyz.shape[0]
    if n <= cap:
        return np.arange(n)
    rng = np.hypot(xyz[:, 0], xyz[:, 1])
    near = np.argsort(rng, kind="stable")[: cap // 2]
    rest = np.ones(n, bool)
    rest[near] = False
    rest_idx = np.flatnonzero(rest)
    strong = rest_idx[np.argsort(-rcs[rest_idx], kind="stable")[: cap - len(near)]]
    return np.sort(np.concatenate([near, strong]))


def cloud_point_count(width: int, height: int, data_len: int, point_step: int) -> int:
    """Points a PointCloud2 header claims (the larger of width*height and what data holds)."""
    claimed = int(width) * int(height)
    held = int(data_len) // int(point_step) if point_step else 0
    return max(claimed, held)


class ImageHeaderError(ValueError):
    """An image header that is unreadable or claims a size beyond the limits."""


def image_header_size(data: bytes | bytearray | memoryview | np.ndarray) -> tuple[str, int, int] | None:
    """(kind, width, height) from a PNG IHDR or a JPEG SOFn marker, without decoding; None if the
    format is not recognised (the decoder then decides)."""
    buf = bytes(memoryview(data)[:65536]) if not isinstance(data, np.ndarray) else data[:65536].tobytes()
    if buf[:8] == b"\x89PNG\r\n\x1a\n":
        if len(buf) < 24 or buf[12:16] != b"IHDR":
            raise ImageHeaderError("PNG without IHDR header")
        w, h = struct.unpack(">II", buf[16:24])
        return "png", w, h
    if buf[:2] == b"\xff\xd8":
        i = 2
        while i + 4 <= len(buf):
            if buf[i] != 0xFF:
                i += 1  # tolerate fill bytes / junk between markers
                continue
            marker = buf[i + 1]
            if marker == 0xFF:
                i += 1
                continue
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            seg = struct.unpack(">H", buf[i + 2:i + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                if i + 9 > len(buf):
                    break
                h, w = struct.unpack(">HH", buf[i + 5:i + 9])
                return "jpeg", w, h
            if marker == 0xDA:  # start of scan before any frame header
                break
            i += 2 + seg
        return None
    return None


def check_image_header(data: bytes | bytearray | memoryview | np.ndarray, limits: ImageLimits) -> None:
    """Raise ImageHeaderError when the header claims a size beyond ``limits`` (or zero)."""
    found = image_header_size(data)
    if found is None:
        return
    kind, w, h = found
    if w == 0 or h == 0:
        raise ImageHeaderError(f"{kind} header claims {w}x{h}")
    if w > limits.max_side or h > limits.max_side or w * h > limits.max_pixels:
        raise ImageHeaderError(f"{kind} header claims {w}x{h} ({w * h / 1e6:.0f} MP), over the limit of "
                               f"{limits.max_pixels / 1e6:.1f} MP / {limits.max_side} px per side")


def check_raw_image_size(width: int, height: int, limits: ImageLimits) -> None:
    if width == 0 or height == 0:
        raise ImageHeaderError(f"raw image {width}x{height}")
    if width > limits.max_side or height > limits.max_side or width * height > limits.max_pixels:
        raise ImageHeaderError(f"raw image {width}x{height} over the limit of {limits.max_pixels / 1e6:.1f} MP")
