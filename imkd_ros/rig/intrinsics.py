"""Camera intrinsics under image scaling: the one place K is rescaled, by one convention.

Convention (as the model's preprocess, ``imkd_ros.model.preprocess.image_aug_matrix``): pixel
centres sit at integer coordinates, and an image scaled by s maps u -> u' = (u + 0.5) * s - 0.5.
A reduced decode (libjpeg DCT scaling, a box average over r x r blocks) is exactly such a
scaling with s = 1 / r, its output size ceil(W / r) x ceil(H / r). Naive ``K[:2] *= s`` instead
puts the principal point (1 - s) / 2 px off (0.375 px for r = 4).
"""

from __future__ import annotations

import numpy as np

REDUCE_FACTORS: tuple[int, ...] = (1, 2, 4, 8)


def scale_intrinsics(K: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """K of an image resized by (sx, sy), pixel-centre convention: u' = (u + 0.5) * s - 0.5."""
    K2 = np.array(K, dtype=np.float64, copy=True)
    K2[0, 0] *= sx
    K2[0, 1] *= sx
    K2[0, 2] = (K2[0, 2] + 0.5) * sx - 0.5
    K2[1, 1] *= sy
    K2[1, 2] = (K2[1, 2] + 0.5) * sy - 0.5
    return K2


def reduced_size(width: int, height: int, reduce: int) -> tuple[int, int]:
    """(w, h) of a ``reduce``-times reduced decode: ceil, as libjpeg's DCT scaling."""
    return -(-int(width) // reduce), -(-int(height) // reduce)


def decode_scale(info_size: tuple[int, int], image_size: tuple[int, int]) -> tuple[float, float]:
    """(sx, sy) taking the CameraInfo image (w, h) to the decoded image (w, h).

    An integer reduction (ceil-sized, as ``reduced_size``) is exactly 1 / r; any other size is the
    plain size ratio. ValueError when the aspect ratios disagree (the image is not this camera's).
    """
    (iw, ih), (w, h) = info_size, image_size
    for r in REDUCE_FACTORS:
        if reduced_size(iw, ih, r) == (w, h):
            return 1.0 / r, 1.0 / r
    sx, sy = w / iw, h / ih
    if abs(sx - sy) > 0.02:
        raise ValueError(f"image {w}x{h} does not match CameraInfo {iw}x{ih}")
    return sx, sy


def pick_decode_reduce(camera_width: int, network_width: int) -> int:
    """Largest reduction (1, 2, 4, 8) that still leaves at least ``network_width`` pixels across.

    Chosen from the camera's actual CameraInfo width, so a 1920 px camera and a 1600 px one each
    get the cheapest decode that does not upsample into the network input.
    """
    if camera_width <= 0 or network_width <= 0:
        raise ValueError(f"widths must be > 0, got camera {camera_width}, network {network_width}")
    reduce = 1
    while reduce < REDUCE_FACTORS[-1] and -(-camera_width // (reduce * 2)) >= network_width:
        reduce *= 2
    return reduce
