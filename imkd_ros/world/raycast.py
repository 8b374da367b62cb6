"""The LiDAR's ray/box kernel: slab tests of each candidate object's rays, compiled with numba.

Why a compiled loop: a sweep tests ~30k rays against ~100 objects, each against a small window of
rays. In numpy every object costs ~40 array calls on a few hundred rays, so the interpreter, not
the arithmetic, set the synthesis rate (0.2-0.26 s of every key frame). The kernel walks the same
windows ray by ray with the same IEEE operations and tie rules as the array version it replaced
(``np.minimum`` propagates NaN, ``np.fmax`` / ``np.fmin`` skip it, ``np.argmax`` picks the first
NaN or else the first maximum), so it hits the same parts. The object-to-ray rotation is summed
in a fixed order here, where numpy's matmul could fuse it, so coordinates can differ in the last
bit: see tests/world/test_lidar_pcd.py for the brute-force and equivalence checks.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(inline="always")
def _minimum(a: float, b: float) -> float:
    """np.minimum: NaN if either is NaN."""
    if a != a or b != b:
        return math.nan
    return a if a < b else b


@njit(inline="always")
def _maximum(a: float, b: float) -> float:
    """np.maximum: NaN if either is NaN."""
    if a != a or b != b:
        return math.nan
    return a if a > b else b


@njit(inline="always")
def _fmax(a: float, b: float) -> float:
    """np.fmax: the other operand if one is NaN."""
    if a != a:
        return b
    if b != b:
        return a
    return a if a > b else b


@njit(inline="always")
def _fmin(a: float, b: float) -> float:
    """np.fmin: the other operand if one is NaN."""
    if a != a:
        return b
    if b != b:
        return a
    return a if a < b else b


@njit(inline="always")
def _argmax3(a: float, b: float, c: float) -> int:
    """np.argmax over (a, b, c): the first NaN, else the first maximum."""
    if a != a:
        return 0
    if b != b:
        return 1
    if c != c:
        return 2
    k, best = 0, a
    if b > best:
        k, best = 1, b
    if c > best:
        k = 2
    return k


@njit(cache=True, nogil=True, error_model="numpy")  # IEEE division: 1/0 = inf, no raise
def cast_objects(dirs_w: np.ndarray, origin: np.ndarray, na: int,
                 cand: np.ndarray, inside: np.ndarray, near: np.ndarray,
                 b_lo: np.ndarray, b_hi: np.ndarray, i_lo: np.ndarray, i_hi: np.ndarray,
                 base: np.ndarray, cos_yaw: np.ndarray, sin_yaw: np.ndarray,
                 lo: np.ndarray, hi: np.ndarray, single: np.ndarray,
                 part_start: np.ndarray, part_end: np.ndarray,
                 part_lo: np.ndarray, part_hi: np.ndarray, part_reflect: np.ndarray,
                 owner_code: np.ndarray,
                 t_best: np.ndarray, refl: np.ndarray, cosi: np.ndarray, owner: np.ndarray) -> None:
    """Updates ``t_best`` / ``refl`` / ``cosi`` / ``owner`` (per ray, in place) with the nearest
    object hit. Candidates come near first, each with its (beam, azimuth) window; ``inside``
    objects (the sensor within their bounding sphere) test every ray."""
    nb = dirs_w.shape[0] // na
    for j in range(cand.shape[0]):
        m = cand[j]
        if inside[j]:
            b0, b1, a0, a1 = 0, nb, 0, na - 1
        else:
            if b_hi[j] <= b_lo[j]:
                continue
            b0, b1, a0, a1 = b_lo[j], b_hi[j], i_lo[j], i_hi[j]
        cm, sm = cos_yaw[m], sin_yaw[m]
        rx, ry, rz = origin[0] - base[m, 0], origin[1] - base[m, 1], origin[2] - base[m, 2]
        olx, oly, olz = rx * cm + ry * sm, ry * cm - rx * sm, rz  # sensor in the object frame
        dlo0, dlo1, dlo2 = lo[m, 0] - olx, lo[m, 1] - oly, lo[m, 2] - olz
        dhi0, dhi1, dhi2 = hi[m, 0] - olx, hi[m, 1] - oly, hi[m, 2] - olz
        p0, p1 = part_start[m], part_end[m]
        for b in range(b0, b1):
            for a in range(a0, a1 + 1):
                r = b * na + (a % na)
                tb = t_best[r]
                if not tb > near[j]:  # stopped nearer than the bounding sphere: cannot hit it
                    continue
                dx, dy, dz = dirs_w[r, 0], dirs_w[r, 1], dirs_w[r, 2]
                lx, ly, lz = dx * cm + dy * sm, dy * cm - dx * sm, dz  # ray in the object frame
                ix, iy, iz = 1.0 / lx, 1.0 / ly, 1.0 / lz  # +-inf for an axis-parallel ray
                x1, x2, y1, y2, z1, z2 = dlo0 * ix, dhi0 * ix, dlo1 * iy, dhi1 * iy, dlo2 * iz, dhi2 * iz
                nx, ny, nz = _minimum(x1, x2), _minimum(y1, y2), _minimum(z1, z2)
                tmin = _fmax(_fmax(nx, ny), nz)
                tmax = _fmin(_fmin(_maximum(x1, x2), _maximum(y1, y2)), _maximum(z1, z2))
                if not (tmax >= tmin and tmax > 0.05 and tmin < tb):
                    continue
                if single[m]:  # the box is the part: take the box hit directly
                    t_best[r] = tmin
                    refl[r] = part_reflect[p0]
                    k = _argmax3(nx, ny, nz)
                    cosi[r] = abs(lx if k == 0 else (ly if k == 1 else lz))
                    owner[r] = owner_code[m]
                    continue
                best_t, best_p = math.inf, -1
                bx, by, bz = 0.0, 0.0, 0.0
                for p in range(p0, p1):
                    qx1, qx2 = (part_lo[p, 0] - olx) * ix, (part_hi[p, 0] - olx) * ix
                    qy1, qy2 = (part_lo[p, 1] - oly) * iy, (part_hi[p, 1] - oly) * iy
                    qz1, qz2 = (part_lo[p, 2] - olz) * iz, (part_hi[p, 2] - olz) * iz
                    px, py, pz = _minimum(qx1, qx2), _minimum(qy1, qy2), _minimum(qz1, qz2)
                    pmin = _fmax(_fmax(px, py), pz)
                    pmax = _fmin(_fmin(_maximum(qx1, qx2), _maximum(qy1, qy2)), _maximum(qz1, qz2))
                    if pmax >= pmin and pmin > 0.05 and pmin < best_t:  # first minimum wins ties
                        best_t, best_p = pmin, p
                        bx, by, bz = px, py, pz
                if best_p < 0 or not best_t < tb:
                    continue
                t_best[r] = best_t
                refl[r] = part_reflect[best_p]
                k = _argmax3(bx, by, bz)
                cosi[r] = abs(lx if k == 0 else (ly if k == 1 else lz))
                owner[r] = owner_code[m]


@njit(cache=True, nogil=True)
def ground_materials(dirs: np.ndarray, hit: np.ndarray, t: np.ndarray, origin: np.ndarray,
                     map_origin: np.ndarray, res: float, table: np.ndarray, outside: int,
                     out: np.ndarray) -> None:
    """Material class (the ground raster ``table`` (H, W) uint8, ``outside`` off the map) where
    each ground ray ``hit[i]`` lands: world xy = origin + dirs[hit[i]] * t[hit[i]], cell
    ``int((xy - map_origin) / res)``. The numpy expressions it replaced, operation for
    operation (no fused multiply-add), so the returns are bit for bit the same."""
    h, w = table.shape
    for i in range(hit.shape[0]):
        r = hit[i]
        x = origin[0] + dirs[r, 0] * t[r]
        y = origin[1] + dirs[r, 1] * t[r]
        ix = int((x - map_origin[0]) / res)
        iy = int((y - map_origin[1]) / res)
        if 0 <= ix < w and 0 <= iy < h:
            out[i] = table[iy, ix]
        else:
            out[i] = outside


@njit(cache=True, nogil=True)
def assemble_points(dirs: np.ndarray, idx: np.ndarray, t: np.ndarray, intensity: np.ndarray, n_azimuth: int,
                    out: np.ndarray) -> None:
    """The sweep's rows (x, y, z, intensity, ring) as float32: ray direction times range, computed
    in float64 and rounded once, as ``concatenate(...).astype(float32)`` did."""
    for i in range(idx.shape[0]):
        r = idx[i]
        out[i, 0] = dirs[r, 0] * t[i]
        out[i, 1] = dirs[r, 1] * t[i]
        out[i, 2] = dirs[r, 2] * t[i]
        out[i, 3] = intensity[i]
        out[i, 4] = r // n_azimuth
