"""The cameras' pixel loops, compiled with numba: face fills (painter's algorithm for sweeps, z-buffer
for key frames), shadow masks and the ground-texture lookup.

Why a compiled loop: a camera image draws ~400-1000 small faces into a face-index buffer; drawn
one ``cv2.fillPoly`` call at a time, the Python loop around the calls cost more than the filling
(a key frame's exact z-buffer loop was ~15 ms of Python per 800x450 image). ``paint_faces``
fills each convex face in order (far to near: nearer faces overwrite); ``zbuffer_faces`` keeps,
per pixel, the face with the largest inverse depth (exact occlusion for interpenetrating faces).

Coverage rule: a pixel is filled when its centre lies within half a pixel of the face (the face's
scanline span at the pixel row, widened by 0.5 px each side, rows within 0.5 px of its vertical
extent). That is the generosity of OpenCV's fill with its 8-connected outline, so a sweep looks
like it did with ``cv2.fillConvexPoly``; edge pixels can differ. Both kernels share the rule,
so key frames and sweeps cover the same pixels for the same face. Shadow polygons are filled by
pixel centre (no widening), which is what OpenCV's anti-aliased fill, thresholded, gave them.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(inline="always")
def _span(uv: np.ndarray, n: int, y: float) -> tuple[float, float]:
    """x-extent of the convex polygon ``uv[:n]`` on the horizontal line at ``y`` (inf, -inf if none)."""
    xl, xr = math.inf, -math.inf
    for i in range(n):
        ax, ay = uv[i, 0], uv[i, 1]
        bx, by = uv[(i + 1) % n, 0], uv[(i + 1) % n, 1]
        if (ay <= y <= by) or (by <= y <= ay):
            if ay == by:
                lo, hi = min(ax, bx), max(ax, bx)
            else:
                x = ax + (y - ay) * (bx - ax) / (by - ay)
                lo, hi = x, x
            xl, xr = min(xl, lo), max(xr, hi)
    return xl, xr


@njit(inline="always")
def _rows(uv: np.ndarray, n: int, h: int, grow: float = 0.5) -> tuple[int, int, float, float]:
    """Pixel rows a face covers: those whose centre y + 0.5 is within ``grow`` px of its extent
    (clamped before the int: clipped faces can reach far outside the image); (1, 0) if none."""
    ymin, ymax = math.inf, -math.inf
    for i in range(n):
        ymin, ymax = min(ymin, uv[i, 1]), max(ymax, uv[i, 1])
    if not (ymin <= ymax):  # NaN vertex
        return 1, 0, ymin, ymax
    y0 = int(math.ceil(max(ymin - (0.5 + grow), 0.0)))
    return y0, int(math.floor(min(ymax + (grow - 0.5), h - 1.0))), ymin, ymax


@njit(inline="always")
def _cols(uv: np.ndarray, n: int, y: int, ymin: float, ymax: float, w: int) -> tuple[int, int]:
    """Pixel columns the face covers in row ``y`` (centre within 0.5 px; rows as in ``_rows``),
    (1, 0) if none."""
    xl, xr = _span(uv, n, min(max(y + 0.5, ymin), ymax))
    if not (xl <= xr):
        return 1, 0
    return int(math.ceil(max(xl - 1.0, 0.0))), int(math.floor(min(xr, w - 1.0)))


@njit(cache=True, nogil=True)
def paint_faces(face_buf: np.ndarray, uv: np.ndarray, nv: np.ndarray, order: np.ndarray) -> None:
    """Writes face index ``f`` into ``face_buf`` (H, W) over each face's pixels, faces in ``order``.
    ``uv`` (F, K, 2): polygon vertices in pixel units (pixel (x, y) spans [x, x+1) x [y, y+1));
    ``nv`` (F,): how many of the K vertices each face uses (3..K; near-plane clipping adds some)."""
    h, w = face_buf.shape
    for f in order:
        n = nv[f]
        if n < 3:
            continue
        y0, y1, ymin, ymax = _rows(uv[f], n, h)
        for y in range(y0, y1 + 1):
            x0, x1 = _cols(uv[f], n, y, ymin, ymax, w)
            for x in range(x0, x1 + 1):
                face_buf[y, x] = f


@njit(cache=True, nogil=True)
def zbuffer_faces(face_buf: np.ndarray, invz: np.ndarray, uv: np.ndarray, nv: np.ndarray, order: np.ndarray,
                  a: np.ndarray, b: np.ndarray, c: np.ndarray, us: np.ndarray, vs: np.ndarray) -> None:
    """Per-pixel z-buffer over the faces in ``order`` (front to back saves writes): a covered pixel
    takes face ``f`` when its inverse depth ``a[f] u + b[f] v + c[f]`` (exact on a planar face,
    ``u = us[x]``, ``v = vs[y]`` the pixel centres) beats ``invz`` (0 = nothing yet; strictly
    greater, so the first of equal depths stays). Coverage as in ``paint_faces``."""
    h, w = face_buf.shape
    for f in order:
        n = nv[f]
        if n < 3:
            continue
        y0, y1, ymin, ymax = _rows(uv[f], n, h)
        af, bf, cf = a[f], b[f], c[f]
        for y in range(y0, y1 + 1):
            x0, x1 = _cols(uv[f], n, y, ymin, ymax, w)
            row = vs[y] * bf + cf
            for x in range(x0, x1 + 1):
                iz = us[x] * af + row
                if iz > invz[y, x]:
                    invz[y, x] = iz
                    face_buf[y, x] = f


@njit(cache=True, nogil=True)
def scatter_faces(face_buf: np.ndarray, color: np.ndarray, img: np.ndarray) -> None:
    """``img[y, x] = color[face_buf[y, x]]`` wherever a face was drawn (``face_buf >= 0``): one pass
    over the buffer instead of a nonzero scan plus two fancy-indexed copies. ``color`` (F, 3) and
    ``img`` (H, W, 3) share a dtype (uint8 by day, float32 with per-pixel lighting)."""
    h, w = face_buf.shape
    for y in range(h):
        for x in range(w):
            f = face_buf[y, x]
            if f >= 0:
                img[y, x, 0] = color[f, 0]
                img[y, x, 1] = color[f, 1]
                img[y, x, 2] = color[f, 2]


@njit(cache=True, nogil=True)
def fill_mask(mask: np.ndarray, uv: np.ndarray, nv: np.ndarray) -> None:
    """Sets ``mask`` (H, W) uint8 to 1 on every pixel whose centre lies inside one of the convex
    polygons ``uv[f, :nv[f]]`` (pixel units, as in ``paint_faces``)."""
    h, w = mask.shape
    for f in range(len(nv)):
        n = nv[f]
        if n < 3:
            continue
        y0, y1, ymin, ymax = _rows(uv[f], n, h, 0.0)
        for y in range(y0, y1 + 1):
            xl, xr = _span(uv[f], n, y + 0.5)
            if not (xl <= xr):
                continue
            x0 = int(math.ceil(max(xl - 0.5, 0.0)))
            x1 = int(math.floor(min(xr - 0.5, w - 1.0)))
            for x in range(x0, x1 + 1):
                mask[y, x] = 1


@njit(cache=True, nogil=True)
def gather_ground(xy: np.ndarray, m: np.ndarray, table: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = table[iy, ix]`` with ``(ix, iy) = int([x y 1] @ m)`` clamped to the table: the
    ground texture under each ground pixel. ``xy`` (G, 2) float32 ego-frame ground points, ``m``
    (3, 2) float32 ego -> map-pixel affine, ``table`` (H, W, 3) uint8, ``out`` (G, 3) uint8."""
    h, w = table.shape[0], table.shape[1]
    m00, m01, m10, m11, t0, t1 = m[0, 0], m[0, 1], m[1, 0], m[1, 1], m[2, 0], m[2, 1]
    for i in range(xy.shape[0]):
        x, y = xy[i, 0], xy[i, 1]
        ix = min(max(int(x * m00 + y * m10 + t0), 0), w - 1)
        iy = min(max(int(x * m01 + y * m11 + t1), 0), h - 1)
        out[i, 0] = table[iy, ix, 0]
        out[i, 1] = table[iy, ix, 1]
        out[i, 2] = table[iy, ix, 2]
