"""The camera sweeps' painter's-algorithm fill, compiled with numba.

Why a compiled loop: a camera sweep draws ~400-1000 small faces into a 400x225 face-index buffer;
drawn one ``cv2.fillConvexPoly`` call at a time, the Python loop around the calls cost as much as
the filling. The kernel fills each convex face in order (far to near: nearer faces overwrite).

Coverage rule: a pixel is filled when its centre lies within half a pixel of the face (the face's
scanline span at the pixel row, widened by 0.5 px each side, rows within 0.5 px of its vertical
extent). That is the generosity of OpenCV's fill with its 8-connected outline, so a sweep looks
like it did with ``cv2.fillConvexPoly``; edge pixels can differ. Key frames keep the exact
z-buffer in camera.py, unchanged.
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
        ymin, ymax = math.inf, -math.inf
        for i in range(n):
            ymin, ymax = min(ymin, uv[f, i, 1]), max(ymax, uv[f, i, 1])
        if not (ymin <= ymax):  # NaN vertex
            continue
        # Rows whose centre y + 0.5 is within 0.5 px (clamped before the int: clipped faces can
        # reach far outside the image).
        y0 = int(math.ceil(max(ymin - 1.0, 0.0)))
        y1 = int(math.floor(min(ymax, h - 1.0)))
        for y in range(y0, y1 + 1):
            yc = min(max(y + 0.5, ymin), ymax)
            xl, xr = _span(uv[f], n, yc)
            if not (xl <= xr):
                continue
            x0 = int(math.ceil(max(xl - 1.0, 0.0)))
            x1 = int(math.floor(min(xr, w - 1.0)))
            for x in range(x0, x1 + 1):
                face_buf[y, x] = f
