"""Cross-sensor consistency (what depth supervision and fusion rely on) and the reader contract."""

from __future__ import annotations

import numpy as np
import pytest

from imkd_ros.constants import CAMERA_NAMES
from imkd_ros.rig.rig import Rig
from imkd_ros.world.camera import CameraSim
from imkd_ros.world.lidar import LidarSim
from imkd_ros.world.scene import generate_scene
from imkd_ros.world.sim import SceneSim
from imkd_ros.world.synth import SynthConfig, synthesize


def test_lidar_depth_agrees_with_rendered_depth():
    """LiDAR returns projected into a camera land where the renderer saw the same surface."""
    sc = generate_scene(seed=4, index=2, duration=3.0, condition="day")
    rig = Rig.default().scaled(0.25)
    sim = SceneSim(sc)
    snap = sim.snapshot(1.0)
    cams = CameraSim(sim, rig.cameras, 0)
    pts, own = LidarSim(sim, rig.lidar).sweep(snap, np.random.default_rng(0))
    world = (snap.ego @ rig.lidar.to_ego).apply(pts[:, :3].astype(np.float64))
    checked = 0
    for cam in rig.cameras:
        res = cams.render(cam, snap, 1.0, np.random.default_rng(1), keep_buffers=True)
        pc = (snap.ego @ cam.to_ego).inverse().apply(world)
        z = pc[:, 2]
        front = z > 1.0
        u = cam.intrinsics[0, 0] * pc[front, 0] / z[front] + cam.intrinsics[0, 2]
        v = cam.intrinsics[1, 1] * pc[front, 1] / z[front] + cam.intrinsics[1, 2]
        inside = (u >= 1) & (u < cam.width - 1) & (v >= 1) & (v < cam.height - 1)
        ui, vi = u[inside].astype(int), v[inside].astype(int)
        zz = z[front][inside]
        d = res.depth[vi, ui]
        # Compare where the camera pixel and its neighbours agree (not on silhouette edges) and the
        # point is not hidden from the camera by something nearer (parallax between the sensors).
        o = res.owner
        stable = (o[vi, ui] == o[vi - 1, ui]) & (o[vi, ui] == o[vi + 1, ui]) & (o[vi, ui] == o[vi, ui - 1]) & (
            o[vi, ui] == o[vi, ui + 1]) & np.isfinite(d) & (zz < 40)
        vis = stable & (zz < d + 0.5)
        if vis.sum() < 50:
            continue
        err = np.abs(d[vis] - zz[vis]) / zz[vis]
        assert np.median(err) < 0.02
        assert np.mean(err < 0.05) > 0.9
        checked += 1
    assert checked >= 3


def test_reader_reads_synth_frames(tmp_path):
    reader_mod = pytest.importorskip("imkd_ros.data.nuscenes_reader")

    out = tmp_path / "ds"
    synthesize(SynthConfig(out=str(out), scenes=1, seed=9, scene_seconds=1.5, image_scale=0.1, progress=False))
    reader = reader_mod.NuScenesReader(out, "v1.0-synth")
    tokens = reader.sample_tokens()
    assert len(tokens) == 3
    frame = reader.frame(tokens[-1])
    assert len(frame.images) == len(CAMERA_NAMES)
    assert all(im.shape == (90, 160, 3) for im in frame.images)
    assert frame.radar.shape[0] > 20
    assert frame.gt is not None and len(frame.gt) > 0
    assert frame.meta.get("condition") in ("day", "night", "rain", "fog")
    # GT boxes in the keyframe ego frame lie within the annotation range.
    assert np.all(np.hypot(frame.gt.center[:, 0], frame.gt.center[:, 1]) < 80)
