"""Where training frames come from, and a small in-memory frame cache.

Sources:
- a nuScenes-format dataroot (real or ``imkd data synth`` output) read through
  imkd_ros.data.nuscenes_reader, optionally one split / a list of scenes;
- ``simple:N:SEED``: N frames of imkd_ros.model.synthetic (flat painted boxes; unit tests).

On a CPU, decoding JPEGs and LiDAR sweeps each epoch costs as much as the model, so frames are
read once (JPEGs at 1/``image_downscale`` size, LiDAR subsampled to the model's budget) and
pickled under the cache directory; later epochs and later runs reuse them.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from imkd_ros.data.nuscenes_reader import NuScenesReader, ReaderConfig
from imkd_ros.model.synthetic import random_frame
from imkd_ros.types import Frame


@dataclass
class DataSpec:
    source: str  # dataroot or simple:N:SEED
    version: str = "v1.0-trainval"
    split: str | None = None
    scenes: list[str] | None = None
    image_downscale: int = 4
    radar_sweeps: int = 6
    lidar_sweeps: int = 3
    max_lidar_points: int = 8000
    limit: int | None = None  # first N samples only

    def key(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


def _simple_frames(spec: str) -> list[Frame]:
    _, n, seed = spec.split(":")
    return [random_frame(int(seed) * 100_003 + i, raw_hw=(225, 400), num_boxes=6) for i in range(int(n))]


def _subsample(points: np.ndarray | None, n: int, rng: np.random.Generator) -> np.ndarray | None:
    if points is None or len(points) <= n:
        return points
    idx = np.sort(rng.choice(len(points), n, replace=False))
    return np.ascontiguousarray(points[idx])


def read_frames(spec: DataSpec, progress: bool = True) -> list[Frame]:
    if spec.source.startswith("simple:"):
        frames = _simple_frames(spec.source)
        return frames[: spec.limit] if spec.limit else frames

    rc = ReaderConfig(image_downscale=spec.image_downscale, radar_sweeps=spec.radar_sweeps,
                      lidar_sweeps=spec.lidar_sweeps)
    reader = NuScenesReader(spec.source, spec.version, rc)
    tokens = reader.sample_tokens(split=spec.split, scenes=spec.scenes)
    if spec.limit:
        tokens = tokens[: spec.limit]
    rng = np.random.default_rng(0)
    it = tokens
    if progress:
        it = tqdm(tokens, desc=f"read {Path(spec.source).name}/{spec.split or 'all'}", leave=False)
    frames = []
    for tok in it:
        f = reader.frame(tok)
        f.lidar = _subsample(f.lidar, spec.max_lidar_points, rng)
        frames.append(f)
    return frames


def load_frames(spec: DataSpec, cache_dir: str | Path | None = None, progress: bool = True) -> list[Frame]:
    """Frames of a spec, through a pickle cache (our own files only) when cache_dir is given."""
    if cache_dir is None or spec.source.startswith("simple:"):
        return read_frames(spec, progress)
    path = Path(cache_dir) / f"frames-{spec.key()}.pkl"
    if path.exists():
        with open(path, "rb") as f:
            return pickle.load(f)
    frames = read_frames(spec, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        pickle.dump(frames, f, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
    return frames


def drop_radar(frame: Frame) -> Frame:
    """The camera-only ablation: the same frame without radar returns."""
    return replace(frame, radar=np.zeros((0, frame.radar.shape[1] if frame.radar.ndim == 2 else 8), np.float32))
