"""``imkd data synth``: generate a synthetic nuScenes-format dataset.

Timing follows nuScenes: LiDAR sweeps at 20 Hz and key frames (samples) at 2 Hz on LiDAR sweeps;
cameras at 12 Hz, each camera triggered when the LiDAR beam crosses its optical axis (staggered
by up to 50 ms), so every sixth camera frame is the key frame; radars at ~13 Hz, free-running
with their own phase, the sweep nearest each sample being its key frame. Every sensor firing
gets its own ego pose. Key-frame images use an exact z-buffer at ``render_scale``; camera sweeps
use a cheaper painter's-algorithm render at ``sweep_render_scale`` (``exact_sweeps`` for the
z-buffer there too), or are skipped (``camera_sweeps="none"``, likewise ``lidar_sweeps``).

Output is a pure function of (seed, scene index, knobs): every random draw comes from a generator
seeded by the sensor and frame it belongs to, tokens are hashes, so reruns and ``jobs > 1`` write
identical bytes. Throughput on one core (bench_synth.py, 20 s scenes): ~2 key frames/s at
1600x900 with every sensor and sweep (1.8-2.6 on this VM; ~10 MB per key frame, mostly LiDAR),
~4 at 400x225 with key-frame images only (the training setup). docs/data.md has the history.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
import zlib
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from imkd_ros.constants import ATTRIBUTES, CLASS_TO_CATEGORY, LIDAR_NAME
from imkd_ros.rig.geometry import points_in_boxes, yaw_to_quat
from imkd_ros.rig.rig import DEFAULT_RIG_YAML, Rig
from imkd_ros.world.camera import CameraSim, RenderResult
from imkd_ros.world.jpeg import encode_jpeg
from imkd_ros.world.lidar import LidarSim
from imkd_ros.world.pcd import lidar_bytes, radar_bytes
from imkd_ros.world.radar import RadarSim
from imkd_ros.world.scene import Scene, generate_scene
from imkd_ros.world.sim import SceneSim, Snapshot
from imkd_ros.world.writer import NuScenesWriter, visibility_token

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # optional: only caps BLAS threads
    threadpool_limits = None

BASE_TIME_US = 1_533_000_000_000_000  # 2018-07-31, like nuScenes' capture period
LIDAR_HZ, CAMERA_HZ, RADAR_HZ, SAMPLE_HZ = 20.0, 12.0, 13.0, 2.0
ANNOTATION_RANGE = 75.0  # m (BEV distance from the ego) within which objects are annotated


@dataclass
class SynthConfig:
    out: str
    scenes: int = 10
    seed: int = 0
    version: str = "v1.0-synth"
    scene_seconds: float = 20.0
    image_scale: float = 1.0
    render_scale: float = 0.5  # internal render width / 1600 px (capped at the image size)
    sweep_render_scale: float = 0.25
    camera_sweeps: str = "full"  # full | none (key-frame images only)
    lidar_sweeps: str = "full"  # full | none (key-frame LiDAR only)
    exact_sweeps: bool = False  # camera sweeps with the exact z-buffer too (slower)
    jpeg_quality: int = 90
    sweep_jpeg_quality: int = 80
    val_fraction: float = 0.2
    first_scene: int = 0
    condition: str | None = None
    road: str | None = None
    rig: str = str(DEFAULT_RIG_YAML)
    progress: bool = True
    jobs: int = 1  # worker processes (one scene each); output is identical for any value


@dataclass
class _Event:
    t: float  # scene time, s
    channel: str
    frame: int  # running index per channel
    sample: int  # sample index this frame belongs to (key frame or the next key frame)
    key: bool


def _timeline(rig: Rig, n_samples: int, rng: np.random.Generator) -> list[_Event]:
    """All sensor firings of a scene, sorted by time."""
    t_key = [0.5 + i / SAMPLE_HZ for i in range(n_samples)]
    t_end = t_key[-1]
    ev: list[_Event] = []
    # LiDAR: 20 Hz, every 10th sweep a key frame; 9 sweeps before the first sample.
    per = int(round(LIDAR_HZ / SAMPLE_HZ))
    for j in range((n_samples - 1) * per + per):
        m = j - (per - 1)  # sweeps since the first key frame
        t = t_key[0] + m / LIDAR_HZ
        ev.append(_Event(t, LIDAR_NAME, j, max(int(np.ceil(m / per)), 0), m >= 0 and m % per == 0))
    # Cameras: 12 Hz, phase = when the spinning LiDAR (clockwise from the rear) crosses the camera axis.
    cper = int(round(CAMERA_HZ / SAMPLE_HZ))
    for cam in rig.cameras:
        phase = ((np.pi - cam.yaw) % (2 * np.pi)) / (2 * np.pi) / LIDAR_HZ
        for m in range(-(cper - 1), (n_samples - 1) * cper + 1):
            t = t_key[0] + phase + m / CAMERA_HZ
            k = int(np.ceil(m / cper)) if m > 0 else 0
            ev.append(_Event(t, cam.name, m + cper - 1, k, m >= 0 and m % cper == 0))
    # Radars: ~13 Hz free-running; the sweep closest to each sample time is its key frame.
    for r in rig.radars:
        phase = float(rng.uniform(0, 1 / RADAR_HZ))
        times = np.arange(t_key[0] - 0.5 + phase, t_end + 0.5 / RADAR_HZ, 1 / RADAR_HZ)
        times = times[(times >= 0.0) & (times <= t_end + 0.5 / RADAR_HZ)]
        key_idx = {int(np.argmin(np.abs(times - tk))): i for i, tk in enumerate(t_key)}
        last_key = max(key_idx)
        for m, t in enumerate(times[: last_key + 1]):
            if m in key_idx:
                ev.append(_Event(float(t), r.name, m, key_idx[m], True))
            else:
                nxt = min((i for mm, i in key_idx.items() if mm > m), default=n_samples - 1)
                ev.append(_Event(float(t), r.name, m, nxt, False))
    ev.sort(key=lambda e: (round(e.t, 9), e.channel))
    return ev


class SceneSynthesizer:
    """Runs all sensors over one scene and records it into a NuScenesWriter."""

    def __init__(self, cfg: SynthConfig, rig: Rig, writer: NuScenesWriter, index: int):
        self.cfg = cfg
        self.rig = rig
        self.w = writer
        self.index = index
        t0 = time.perf_counter()
        self.scene: Scene = generate_scene(cfg.seed, index, cfg.scene_seconds, condition=cfg.condition,
                                           road_type=cfg.road)
        self.sim = SceneSim(self.scene)
        self.cams = CameraSim(self.sim, rig.cameras, _seed(cfg.seed, index, "cam"))
        self.lidar = LidarSim(self.sim, rig.lidar)
        self.radars = {r.name: RadarSim(self.sim, r) for r in rig.radars}
        self.n_samples = max(int(round(cfg.scene_seconds * SAMPLE_HZ)), 1)
        self.t0_us = BASE_TIME_US + (cfg.seed % 1000) * 10_000_000_000 + index * 100_000_000 + 123_456
        self._ann_index: dict[str, dict] = {}
        self.stats = {"images": 0, "lidar": 0, "radar": 0, "render_s": 0.0, "lidar_s": 0.0, "radar_s": 0.0,
                      "write_s": 0.0, "snapshot_s": 0.0, "annotate_s": 0.0, "setup_s": time.perf_counter() - t0}

    # --- helpers ---------------------------------------------------------------------------------
    def _rng(self, *key) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.cfg.seed, self.index, *(_h(k) for k in key)]))

    def _ts(self, t: float) -> int:
        return self.t0_us + int(round(t * 1e6))

    def run(self, progress=None) -> None:
        cfg, w, sc = self.cfg, self.w, self.scene
        name = sc.name
        log_token = w.token("log", name)
        logfile = f"synth-{cfg.seed}-{name}"
        w.add("log", {"token": log_token, "logfile": logfile, "vehicle": "synth-zoe",
                      "date_captured": "2018-07-31", "location": f"synth-{sc.road_type}"})
        map_token = w.token("map", name)
        ok, png = cv2.imencode(".png", self.sim.map_png())
        w.write_bytes(f"maps/{map_token}.png", png.tobytes())
        w.add("map", {"token": map_token, "log_tokens": [log_token], "category": "semantic_prior",
                      "filename": f"maps/{map_token}.png"})
        calib = {}
        for ch, rec in self.rig.calibrated_sensor_records().items():
            tok = w.token("calibrated_sensor", name, ch)
            calib[ch] = tok
            w.add("calibrated_sensor", {"token": tok, "sensor_token": w.sensor_token(ch), **rec})
        self.calib = calib
        self.logfile = logfile

        events = _timeline(self.rig, self.n_samples, self._rng("timeline"))
        if cfg.camera_sweeps == "none":
            events = [e for e in events if e.key or not e.channel.startswith("CAM")]
        if cfg.lidar_sweeps == "none":
            events = [e for e in events if e.key or e.channel != LIDAR_NAME]
        sample_tokens = [w.token("sample", name, i) for i in range(self.n_samples)]
        t_key = [0.5 + i / SAMPLE_HZ for i in range(self.n_samples)]
        scene_token = w.token("scene", name)
        for i in range(self.n_samples):
            w.add("sample", {"token": sample_tokens[i], "timestamp": self._ts(t_key[i]),
                             "prev": sample_tokens[i - 1] if i > 0 else "",
                             "next": sample_tokens[i + 1] if i + 1 < self.n_samples else "",
                             "scene_token": scene_token})
        # sample_data chains per channel.
        sd_tokens = {(e.channel, e.frame): w.token("sample_data", name, e.channel, e.frame) for e in events}
        per_channel: dict[str, list[_Event]] = {}
        for e in events:
            per_channel.setdefault(e.channel, []).append(e)
        prev_next = {}
        for ch, evs in per_channel.items():
            for a, e in enumerate(evs):
                prev_next[(ch, e.frame)] = (
                    sd_tokens[(ch, evs[a - 1].frame)] if a > 0 else "",
                    sd_tokens[(ch, evs[a + 1].frame)] if a + 1 < len(evs) else "",
                )
        # Process sample by sample (sweeps leading up to it, then its key frames, then annotations).
        by_sample: dict[int, list[_Event]] = {}
        for e in events:
            by_sample.setdefault(e.sample, []).append(e)
        snaps: dict[tuple[float, bool], Snapshot] = {}
        tracks: dict[int, list[str]] = {}
        for i in range(self.n_samples):
            key_data: dict[str, tuple] = {}
            for e in by_sample.get(i, []):
                need_parts = e.channel.startswith("CAM")  # only the renderer needs part geometry
                snap = snaps.get((e.t, need_parts))
                if snap is None:
                    t0 = time.perf_counter()
                    snap = self.sim.snapshot(e.t, parts=need_parts)
                    self.stats["snapshot_s"] += time.perf_counter() - t0
                    snaps = {(e.t, need_parts): snap}  # keep only the latest (sensors sharing a time)
                result = self._fire(e, snap, sample_tokens[e.sample], prev_next[(e.channel, e.frame)],
                                    sd_tokens[(e.channel, e.frame)])
                if e.key:
                    key_data[e.channel] = (e, snap, result)
            t0 = time.perf_counter()
            self._annotate(i, t_key[i], sample_tokens[i], key_data, tracks)
            self.stats["annotate_s"] += time.perf_counter() - t0
            if progress is not None:
                progress.update(1)
        # Instances.
        for k, anns in tracks.items():
            agent = sc.agents[k]
            inst = w.token("instance", name, k)
            cat = agent.category or CLASS_TO_CATEGORY[agent.cls]
            w.add("instance", {"token": inst, "category_token": w.category_token(cat), "nbr_annotations": len(anns),
                               "first_annotation_token": anns[0], "last_annotation_token": anns[-1]})
        w.add("scene", {"token": scene_token, "log_token": log_token, "nbr_samples": self.n_samples,
                        "first_sample_token": sample_tokens[0], "last_sample_token": sample_tokens[-1],
                        "name": name, "description": sc.description})

    def _fire(self, e: _Event, snap: Snapshot, sample_token: str, prev_next: tuple[str, str], token: str):
        cfg, w = self.cfg, self.w
        ts = self._ts(e.t)
        ego_tok = w.token("ego_pose", self.scene.name, e.channel, e.frame)
        w.add("ego_pose", {"token": ego_tok, "timestamp": ts, **snap.ego.to_record()})
        folder = "samples" if e.key else "sweeps"
        base = f"{folder}/{e.channel}/{self.logfile}__{e.channel}__{ts}"
        rng = self._rng(e.channel, e.frame)
        result: Any = None  # RenderResult (cameras) or (points, owner) (LiDAR, radar)
        t0 = time.perf_counter()
        if e.channel.startswith("CAM"):
            cam = self.rig.camera(e.channel)
            # Render scales are relative to the full 1600x900 sensor: small images (--image-scale)
            # are rendered at their own resolution rather than upsampled from a tinier render.
            rel = cfg.render_scale if e.key else cfg.sweep_render_scale
            scale = min(1.0, rel / cfg.image_scale)
            result = self.cams.render(cam, snap, scale, rng, keep_buffers=e.key, exact=e.key or cfg.exact_sweeps,
                                      bgr=True, upsample=False)
            self.stats["render_s"] += time.perf_counter() - t0
            t1 = time.perf_counter()
            q = cfg.jpeg_quality if e.key else cfg.sweep_jpeg_quality
            filename, fmt, hw = base + ".jpg", "jpg", (cam.height, cam.width)
            w.write_bytes(filename, encode_jpeg(result.image, (cam.width, cam.height), q, bgr=True))
            self.stats["write_s"] += time.perf_counter() - t1
            self.stats["images"] += 1
        elif e.channel == LIDAR_NAME:
            pts, own = self.lidar.sweep(snap, rng)
            result = (pts, own)
            t1 = time.perf_counter()
            self.stats["lidar_s"] += t1 - t0
            filename, fmt, hw = base + ".pcd.bin", "pcd", (0, 0)
            w.write_bytes(filename, lidar_bytes(pts))
            self.stats["write_s"] += time.perf_counter() - t1
            self.stats["lidar"] += 1
        else:
            pts, own = self.radars[e.channel].sweep(snap, rng)
            result = (pts, own)
            t1 = time.perf_counter()
            self.stats["radar_s"] += t1 - t0
            filename, fmt, hw = base + ".pcd", "pcd", (0, 0)
            w.write_bytes(filename, radar_bytes(pts))
            self.stats["write_s"] += time.perf_counter() - t1
            self.stats["radar"] += 1
        w.add("sample_data", {
            "token": token, "sample_token": sample_token, "ego_pose_token": ego_tok,
            "calibrated_sensor_token": self.calib[e.channel], "timestamp": ts, "fileformat": fmt,
            "is_key_frame": bool(e.key), "height": int(hw[0]), "width": int(hw[1]), "filename": filename,
            "prev": prev_next[0], "next": prev_next[1],
        })
        return result

    def _annotate(self, i: int, t: float, sample_token: str, key_data: dict, tracks: dict[int, list[str]]) -> None:
        sc, w = self.scene, self.w
        n = len(sc.agents)
        if n == 0:
            return
        snap = self.sim.snapshot(t, parts=False)
        centers, yaws, sizes = snap.centers, snap.yaws, sc.sizes
        # LiDAR points per box (key-frame sweep, world frame).
        n_lidar = np.zeros(n, np.int64)
        if LIDAR_NAME in key_data:
            _, lsnap, (pts, _own) = key_data[LIDAR_NAME]
            pw = (lsnap.ego @ self.rig.lidar.to_ego).apply(pts[:, :3].astype(np.float64))
            pw = pw[pw[:, 2] > 0.05]  # ground returns never count (boxes stand on the ground)
            near = np.hypot(centers[:, 0] - lsnap.ego.translation[0], centers[:, 1] - lsnap.ego.translation[1])
            cand = np.flatnonzero(near < ANNOTATION_RANGE + 10)
            if len(cand) and len(pw):
                n_lidar[cand] = points_in_boxes(pw, centers[cand], sizes[cand], yaws[cand]).sum(0)
        # Radar points per box (five key-frame sweeps; BEV test, radar has no elevation).
        n_radar = np.zeros(n, np.int64)
        for ch, (_e, rsnap, res) in key_data.items():
            if not ch.startswith("RADAR") or len(res[0]) == 0:
                continue
            pts = res[0]
            pw = (rsnap.ego @ self.rig.radar(ch).to_ego).apply(pts[:, :3])
            flat = pw.copy()
            flat[:, 2] = 0.0
            c0 = centers.copy()
            c0[:, 2] = 0.0
            big = sizes.copy()
            big[:, 2] = 1e3
            n_radar += points_in_boxes(flat, c0, big, yaws).sum(0)
        vis = self._visibility(key_data, n)
        attrs = sc.attributes(t)
        ego_xy = snap.ego.translation[:2]
        dist = np.hypot(centers[:, 0] - ego_xy[0], centers[:, 1] - ego_xy[1])
        keep = (dist < ANNOTATION_RANGE) & ((n_lidar + n_radar > 0) | ((vis > 0.2) & (dist < 60.0)))
        for k in np.flatnonzero(keep):
            tok = w.token("sample_annotation", sc.name, i, k)
            track = tracks.setdefault(int(k), [])
            rec = {
                "token": tok, "sample_token": sample_token, "instance_token": w.token("instance", sc.name, k),
                "visibility_token": visibility_token(float(vis[k])),
                "attribute_tokens": [w.attribute_token(ATTRIBUTES[attrs[k]])] if attrs[k] >= 0 else [],
                "translation": [float(v) for v in centers[k]],
                "size": [float(v) for v in sizes[k]],
                "rotation": [float(v) for v in yaw_to_quat(float(yaws[k]))],
                "prev": track[-1] if track else "", "next": "",
                "num_lidar_pts": int(n_lidar[k]), "num_radar_pts": int(n_radar[k]),
            }
            if track:
                self._ann_index[track[-1]]["next"] = tok
            track.append(tok)
            self._ann_index[tok] = w.add("sample_annotation", rec)

    def _visibility(self, key_data: dict, n: int) -> np.ndarray:
        """Fraction of 27 points inside each box that some key-frame camera sees unoccluded."""
        grid = np.stack(np.meshgrid(*[np.array([-0.4, 0.0, 0.4])] * 3, indexing="ij"), -1).reshape(-1, 3)
        seen = np.zeros((n, len(grid)), bool)
        for ch, (_e, snap, res) in key_data.items():
            if not ch.startswith("CAM") or not isinstance(res, RenderResult) or res.owner is None \
                    or res.depth is None:
                continue
            cam = self.rig.camera(ch)
            tb = self.cams.tables(cam, res.scale)
            local = grid[None] * self.scene.sizes[:, [1, 0, 2]][:, None, :]  # x along l, y along w
            c, s = np.cos(snap.yaws), np.sin(snap.yaws)
            wx = snap.centers[:, None, 0] + c[:, None] * local[..., 0] - s[:, None] * local[..., 1]
            wy = snap.centers[:, None, 1] + s[:, None] * local[..., 0] + c[:, None] * local[..., 1]
            wz = snap.centers[:, None, 2] + local[..., 2]
            pw = np.stack([wx, wy, wz], -1).reshape(-1, 3)
            pc = (snap.ego @ cam.to_ego).inverse().apply(pw)
            z = pc[:, 2]
            with np.errstate(divide="ignore", invalid="ignore"):
                u = tb.k[0, 0] * pc[:, 0] / z + tb.k[0, 2]
                v = tb.k[1, 1] * pc[:, 1] / z + tb.k[1, 2]
            ok = (z > 0.5) & (u >= 0) & (u < tb.w) & (v >= 0) & (v < tb.h)
            ui = np.clip(u, 0, tb.w - 1).astype(np.int64)
            vi = np.clip(v, 0, tb.h - 1).astype(np.int64)
            own = res.owner[vi, ui]
            dep = res.depth[vi, ui]
            agent = np.repeat(np.arange(n), len(grid))
            visible = ok & ((own == agent) | (dep > z - 0.3))
            seen |= visible.reshape(n, len(grid))
        return seen.mean(1)


def _h(k) -> int:
    return k if isinstance(k, int) else zlib.crc32(str(k).encode())


def _seed(seed: int, index: int, name: str) -> int:
    return int(zlib.crc32(f"{seed}/{index}/{name}".encode()))


def synthesize(cfg: SynthConfig) -> dict:
    """Generate ``cfg.scenes`` scenes into ``cfg.out``; returns timing statistics.

    Runs single-threaded (OpenCV and BLAS pools limited to one thread): the arrays are small, so
    extra threads only spin, and the machine is shared. Shard with ``first_scene`` to use cores.
    """
    if threadpool_limits is None:
        return _synthesize(cfg)
    with threadpool_limits(limits=1):
        return _synthesize(cfg)


def _synthesize(cfg: SynthConfig) -> dict:
    cv2.setNumThreads(1)
    rig = Rig.from_yaml(cfg.rig).scaled(cfg.image_scale)
    writer = NuScenesWriter(cfg.out, cfg.version, cfg.seed)
    n_val = int(round(cfg.scenes * cfg.val_fraction)) if cfg.scenes > 1 else 0
    if cfg.scenes > 1 and cfg.val_fraction > 0:
        n_val = max(n_val, 1)
    n_samples = max(int(round(cfg.scene_seconds * SAMPLE_HZ)), 1)
    stats = {"keyframes": 0, "seconds": 0.0}
    bar = None
    if cfg.progress:
        bar = tqdm(total=cfg.scenes * n_samples, unit="kf", desc="synth")
    t0 = time.perf_counter()
    names: list[str] = []
    if cfg.jobs > 1 and cfg.scenes > 1:
        # Scenes in worker processes; records merged in scene order, so output == jobs=1 output.

        ctx = mp.get_context("fork")
        with ctx.Pool(min(cfg.jobs, cfg.scenes)) as pool:
            for name, tables, sstats in pool.imap(_scene_worker, [(cfg, cfg.first_scene + j)
                                                                  for j in range(cfg.scenes)]):
                writer.merge(tables)
                names.append(name)
                for k, v in sstats.items():
                    stats[k] = stats.get(k, 0) + v
                stats["keyframes"] += n_samples
                if bar is not None:
                    bar.update(n_samples)
    else:
        for j in range(cfg.scenes):
            syn = SceneSynthesizer(cfg, rig, writer, cfg.first_scene + j)
            syn.run(bar)
            names.append(syn.scene.name)
            for k, v in syn.stats.items():
                stats[k] = stats.get(k, 0) + v
            stats["keyframes"] += syn.n_samples
    for j, name in enumerate(names):
        writer.splits["val" if j >= cfg.scenes - n_val else "train"].append(name)
    stats["annotations"] = len(writer.tables["sample_annotation"])
    t_finish = time.perf_counter()
    writer.finish()
    stats["finish_s"] = time.perf_counter() - t_finish
    if bar is not None:
        bar.close()
    stats["seconds"] = time.perf_counter() - t0
    stats["keyframes_per_s"] = stats["keyframes"] / max(stats["seconds"], 1e-9)
    return stats


def _scene_worker(job: tuple[SynthConfig, int]) -> tuple[str, dict[str, list[dict]], dict]:
    cfg, index = job
    cv2.setNumThreads(1)
    rig = Rig.from_yaml(cfg.rig).scaled(cfg.image_scale)
    writer = NuScenesWriter(cfg.out, cfg.version, cfg.seed, static_tables=False)
    if threadpool_limits is None:
        syn = SceneSynthesizer(cfg, rig, writer, index)
        syn.run(None)
    else:
        with threadpool_limits(limits=1):
            syn = SceneSynthesizer(cfg, rig, writer, index)
            syn.run(None)
    return syn.scene.name, writer.tables, syn.stats


def run_synth(args: argparse.Namespace) -> int:
    cfg = SynthConfig(
        out=args.out, scenes=args.scenes, seed=args.seed, version=args.version, scene_seconds=args.scene_seconds,
        image_scale=args.image_scale, render_scale=args.render_scale, sweep_render_scale=args.sweep_render_scale,
        camera_sweeps=args.camera_sweeps, lidar_sweeps=args.lidar_sweeps, jpeg_quality=args.jpeg_quality,
        val_fraction=args.val_fraction,
        first_scene=args.first_scene, condition=args.condition, road=args.road,
        rig=args.rig or str(DEFAULT_RIG_YAML), jobs=args.jobs, exact_sweeps=args.exact_sweeps,
        progress=not args.no_progress,
    )
    os.makedirs(cfg.out, exist_ok=True)
    stats = synthesize(cfg)
    print(f"wrote {cfg.scenes} scenes, {stats['keyframes']} key frames, {stats['annotations']} annotations "
          f"to {cfg.out} ({stats['keyframes_per_s']:.2f} key frames/s)")
    return 0


__all__ = ["SynthConfig", "synthesize", "run_synth"]
