"""Conversion cost per keyframe (six 1600x900 cameras): raw Image and JPEG CompressedImage.

Targets (issue 6): <= 3 ms per keyframe with six raw images, <= 15 ms with six JPEGs.
Run: .venv/bin/python benchmarks/bench_convert.py [--repeat 30]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from imkd_ros.ros import clouds, detections, images, markers
from imkd_ros.types import Boxes

W, H = 1600, 900


def synthetic_camera_image(seed: int = 0) -> np.ndarray:
    """Road-scene-like content (gradients, edges, mild noise) so JPEG sizes resemble nuScenes."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    sky = (y < H * 0.45)[..., None] * np.array([150, 180, 220], np.float32)
    road = (y >= H * 0.45)[..., None] * (np.array([90, 90, 95], np.float32) + 40 * (y / H)[..., None])
    img = sky + road
    for _ in range(40):  # boxes = cars, buildings
        x0, y0 = rng.integers(0, W - 200), rng.integers(int(H * 0.2), H - 150)
        img[y0 : y0 + rng.integers(40, 150), x0 : x0 + rng.integers(40, 200)] = rng.integers(0, 255, 3)
    img += 10 * np.sin(x / 7.0)[..., None] * (y > H * 0.6)[..., None]
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def timeit(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    fn()  # warm up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    r = args.repeat
    imgs = [synthetic_camera_image(i) for i in range(6)]
    print(f"backends: {images.backends()}  image {W}x{H}, median / min of {r} runs")

    def row(name: str, fn: Callable[[], object], per: int = 1) -> None:
        med, best = timeit(fn, r)
        print(f"  {name:<48s} {med:8.3f} ms  (min {best:.3f})" + (f"  = {med / per:.3f} ms each" if per > 1 else ""))

    print("raw sensor_msgs/Image -> RGB ndarray")
    for enc in ("rgb8", "bgr8", "rgba8"):
        msgs = [images.rgb_to_image(im, "cam", 0, encoding=enc) for im in imgs]
        row(f"{enc}: one image", lambda m=msgs[0]: images.image_to_rgb(m))
        row(f"{enc}: six images (one keyframe)", lambda ms=msgs: [images.image_to_rgb(m) for m in ms], 6)
        if enc == "rgb8":
            row("rgb8: six images, copy=True", lambda ms=msgs: [images.image_to_rgb(m, copy=True) for m in ms], 6)

    jpegs = [images.rgb_to_compressed(im, "cam", 0, "jpeg", quality=90) for im in imgs]
    pool = ThreadPoolExecutor(max_workers=2)
    cv2_mod = images._cv2_mod
    for decoder in ("opencv", "pillow"):
        if decoder == "opencv" and cv2_mod is None:
            continue
        images._cv2_mod = cv2_mod if decoder == "opencv" else None
        print(f"sensor_msgs/CompressedImage (JPEG q90, {decoder}) -> RGB ndarray")
        print(f"  JPEG sizes: {[len(j.data) // 1024 for j in jpegs]} KiB")
        for red in (1, 2, 4):
            size = f"{-(-W // red)}x{-(-H // red)}"
            row(f"reduce={red} ({size}): one image", lambda red=red: images.compressed_to_rgb(jpegs[0], reduce=red))
            row(f"reduce={red}: six images, serial",
                lambda red=red: images.compressed_to_rgb_many(jpegs, reduce=red), 6)
            row(
                f"reduce={red}: six images, 2 threads",
                lambda red=red: images.compressed_to_rgb_many(jpegs, reduce=red, executor=pool),
                6,
            )
    images._cv2_mod = cv2_mod
    pool.shutdown()

    print("radar PointCloud2 -> (N, 18): one keyframe = 5 radars x 6 sweeps x 125 points")
    rng = np.random.default_rng(0)
    sweeps = [clouds.radar_to_pointcloud2(rng.normal(size=(125, 18)).astype(np.float32)) for _ in range(30)]
    row("30 sweeps", lambda: [clouds.pointcloud2_to_radar(c) for c in sweeps], 30)
    try:  # the vehicle library, for comparison only (PYTHONPATH=../shared/vendor/python)
        from sensor_msgs_py import point_cloud2 as pc2  # noqa: PLC0415  (optional: vendor library, for comparison only)
    except ImportError:
        print("  (sensor_msgs_py not importable: no comparison row)")
    else:
        row("30 sweeps, sensor_msgs_py.read_points (reference)",
            lambda: [pc2.read_points(c, skip_nans=True) for c in sweeps], 30)

    print("outputs from Boxes (100 detections)")
    n = 100
    boxes = Boxes(
        center=rng.normal(size=(n, 3)).astype(np.float32) * 20,
        size=np.abs(rng.normal(size=(n, 3))).astype(np.float32) + 1,
        yaw=rng.uniform(-3, 3, n).astype(np.float32), velocity=rng.normal(size=(n, 2)).astype(np.float32),
        labels=rng.integers(0, 10, n), scores=rng.random(n).astype(np.float32), attributes=np.full(n, -1),
    )
    row("Detection3DArray", lambda: detections.boxes_to_detection3d_array(boxes, "base_link", 0))
    row("Object3DArray", lambda: detections.boxes_to_object3d_array(boxes, "base_link", 0))
    row("MarkerArray", lambda: markers.boxes_to_marker_array(boxes, "base_link", 0))


if __name__ == "__main__":
    main()
