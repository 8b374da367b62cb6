"""LiDAR ray casting, and both point-cloud formats read back by the nuScenes devkit."""

from __future__ import annotations

import numpy as np
from nuscenes.utils.data_classes import LidarPointCloud, RadarPointCloud

from imkd_ros.constants import RADAR_PCD_FIELDS
from imkd_ros.rig.geometry import points_in_boxes
from imkd_ros.rig.rig import Rig
from imkd_ros.world import lidar as lidar_module
from imkd_ros.world.lidar import LidarSim
from imkd_ros.world.pcd import read_lidar, read_radar, write_lidar, write_radar
from imkd_ros.world.raycast import assemble_points, ground_materials
from imkd_ros.world.sim import SceneSim


def test_lidar_hits_boxes_and_ground(scene_factory):
    sc = scene_factory([
        {"cls": "truck", "size": (2.5, 7.0, 3.0), "xy": (12.0, 0.0), "yaw": 0.0},
        {"cls": "pedestrian", "size": (0.7, 0.7, 1.8), "xy": (-8.0, 5.0), "yaw": 0.0},
    ])
    rig = Rig.default()
    sim = SceneSim(sc)
    snap = sim.snapshot(0.5)
    pts, own = LidarSim(sim, rig.lidar).sweep(snap, np.random.default_rng(0))
    assert pts.dtype == np.float32 and pts.shape[1] == 5
    assert 20000 < len(pts) < 36000
    assert set(np.unique(pts[:, 4])) <= set(range(32))
    assert pts[:, 3].min() >= 0 and pts[:, 3].max() <= 255
    world = (snap.ego @ rig.lidar.to_ego).apply(pts[:, :3].astype(np.float64))
    inside = points_in_boxes(world, snap.centers, sc.sizes, snap.yaws)
    for k, n_min in ((0, 300), (1, 20)):
        hit = own == k
        assert hit.sum() >= n_min
        assert inside[hit, k].mean() > 0.9  # returns of an object lie in its box
    ground = own == -1
    near_ground = ground & (np.linalg.norm(world[:, :2] - snap.ego.translation[:2], axis=1) < 30)
    assert np.abs(world[near_ground, 2]).max() < 0.15 or np.median(np.abs(world[near_ground, 2])) < 0.05
    # The truck's rear face is 8.5 m ahead of the ego origin: nearest truck return there.
    rear = world[own == 0, 0].min()
    assert 8.4 < rear < 8.8
    # Nothing is seen behind the truck at its height (occlusion).
    behind = (world[:, 0] > 16) & (np.abs(world[:, 1]) < 0.8) & (world[:, 2] > 1.0) & (world[:, 0] < 40)
    assert not behind.any()


def test_lidar_file_read_by_devkit(tmp_path):
    pts = np.random.default_rng(0).normal(size=(100, 5)).astype(np.float32)
    path = tmp_path / "x.pcd.bin"
    write_lidar(str(path), pts)
    pc = LidarPointCloud.from_file(str(path))
    np.testing.assert_array_equal(pc.points, pts[:, :4].T)
    np.testing.assert_array_equal(read_lidar(str(path)), pts)


def _radar_rows(n: int, rng: np.random.Generator) -> np.ndarray:
    rows = np.zeros((n, 18))
    rows[:, :3] = rng.normal(size=(n, 3)) * 20
    rows[:, 2] = 0.0
    rows[:, 3] = rng.integers(0, 7, n)
    rows[:, 4] = np.arange(n)
    rows[:, 5:10] = rng.normal(size=(n, 5)) * 5
    rows[:, 10] = 1
    rows[:, 11] = 3
    rows[:, 12:14] = rng.integers(0, 20, (n, 2))
    rows[:, 14] = 0
    rows[:, 15] = 1
    rows[:, 16:18] = 3
    return rows


def test_radar_pcd_read_by_devkit(tmp_path):
    rng = np.random.default_rng(0)
    rows = _radar_rows(40, rng)
    rows[5, 14] = 4  # invalid: filtered by the devkit's defaults
    rows[7, 11] = 1  # ambiguous: filtered
    path = tmp_path / "r.pcd"
    write_radar(str(path), rows)
    assert len(RADAR_PCD_FIELDS) == 18
    RadarPointCloud.disable_filters()
    try:
        pc = RadarPointCloud.from_file(str(path))
    finally:
        RadarPointCloud.default_filters()
    assert pc.points.shape == (18, 40)
    np.testing.assert_allclose(pc.points.T, rows.astype(np.float32), rtol=1e-6, atol=1e-5)
    filtered = RadarPointCloud.from_file(str(path))
    assert filtered.points.shape == (18, 38)
    np.testing.assert_allclose(read_radar(str(path)), rows.astype(np.float32), rtol=1e-6, atol=1e-5)
    # An empty sweep reads as zero points.
    write_radar(str(path), np.zeros((0, 18)))
    assert RadarPointCloud.from_file(str(path)).points.shape == (18, 0)
    assert read_radar(str(path)).shape == (0, 18)


def test_lidar_ranges_match_brute_force_ray_casting(scene_factory):
    objs = [{"cls": c, "size": s, "xy": xy, "yaw": y} for c, s, xy, y in (
        ("car", (1.9, 4.5, 1.5), (8.0, 3.0), 0.4),
        ("bus", (2.9, 11.0, 3.4), (14.0, -4.0), -0.2),
        ("pedestrian", (0.7, 0.7, 1.8), (-6.0, 2.0), 0.0),
        ("trailer", (2.9, 12.0, 3.8), (-15.0, -3.0), 1.2),
        ("traffic_cone", (0.4, 0.4, 1.0), (4.0, -2.0), 0.0),
    )]
    sc = scene_factory(objs)
    rig = Rig.default()
    sim = SceneSim(sc)
    snap = sim.snapshot(0.5)
    pts, own = LidarSim(sim, rig.lidar).sweep(snap, np.random.default_rng(3))
    s2w = snap.ego @ rig.lidar.to_ego
    o = s2w.translation
    world = s2w.apply(pts[:, :3].astype(np.float64))
    rng = np.random.default_rng(0)
    sel = np.concatenate([rng.choice(np.flatnonzero(own >= 0), 150, replace=False),
                          rng.choice(np.flatnonzero(own < 0), 50, replace=False)])
    for i in sel:
        d = world[i] - o
        t_meas = np.linalg.norm(d)
        d /= t_meas
        best = -o[2] / d[2] if d[2] < 0 else np.inf
        for p in range(len(snap.part_center)):
            r = snap.part_axes[p]
            ol = (o - snap.part_center[p]) @ r
            dl = d @ r
            with np.errstate(divide="ignore", invalid="ignore"):
                t1 = (-snap.part_half[p] - ol) / dl
                t2 = (snap.part_half[p] - ol) / dl
            tmin, tmax = np.nanmax(np.minimum(t1, t2)), np.nanmin(np.maximum(t1, t2))
            if tmax >= tmin > 0.05:
                best = min(best, tmin)
        assert abs(best - t_meas) < 0.12, (i, best, t_meas)



def test_raycast_kernel_equals_brute_force_on_every_ray(scene_factory, monkeypatch):
    """The kernel tests each object only on the rays of its (beam, azimuth) window and skips rays
    already stopped nearer: check every ray against all parts, no windows, no pruning. The scene
    has a yaw-0 car (axis-parallel rays: 1/0 = inf), a bus across the +-pi azimuth seam (negative
    window indices) and a trailer around the sensor (every ray tested). The compiled kernel must
    also equal its own Python source (numba keeps Python's modulo and IEEE division)."""
    sc = scene_factory([{"cls": c, "size": s, "xy": xy, "yaw": y} for c, s, xy, y in (
        ("car", (1.9, 4.5, 1.5), (8.0, 3.0), 0.0),
        ("bus", (2.9, 11.0, 3.4), (1.0, 14.0), np.pi / 2),  # the sensor's azimuth +-pi is ego +y
        ("trailer", (2.9, 12.0, 3.8), (1.0, 0.0), 0.05),
        ("pedestrian", (0.7, 0.7, 1.8), (-6.0, 2.0), 0.7),
    )])
    sim = SceneSim(sc)
    lidar = LidarSim(sim, Rig.default().lidar)
    calls: list[tuple] = []
    compiled = lidar_module.cast_objects

    def record(*args):
        calls.append(tuple(np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args))
        compiled(*args)
        calls.append(tuple(args[-4:]))

    monkeypatch.setattr(lidar_module, "cast_objects", record)
    snap = sim.snapshot(0.5)
    lidar.sweep(snap, np.random.default_rng(1))
    before, (t_best, refl, _, owner) = calls
    dirs_w, o = before[0], before[1]
    na = lidar.spec.azimuth_steps
    assert before[4].any(), "the scene should put the sensor inside an object's bounding sphere"
    assert before[8].min() < 0 or before[9].max() >= na, "an azimuth window should cross the seam"

    t_ref, owner_ref, refl_ref = before[-4].copy(), before[-1].copy(), before[-3].copy()
    for m in range(len(sim.obj_part_start)):
        c, s = np.cos(snap.obj_yaw[m]), np.sin(snap.obj_yaw[m])
        r2 = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        ol, dl = (o - snap.obj_base[m]) @ r2, dirs_w @ r2
        for p in range(lidar.part_start[m], lidar.part_end[m]):
            with np.errstate(divide="ignore", invalid="ignore"):
                t1, t2 = (lidar.part_lo[p] - ol) / dl, (lidar.part_hi[p] - ol) / dl
                tmin = np.nanmax(np.minimum(t1, t2), axis=1)
                tmax = np.nanmin(np.maximum(t1, t2), axis=1)
            hit = (tmax >= tmin) & (tmin > 0.05) & (tmin < t_ref)
            t_ref[hit], refl_ref[hit] = tmin[hit], snap.part_reflect[p]
            owner_ref[hit] = m if m < len(snap.centers) else -1
    assert (owner_ref >= 0).sum() > 2000
    np.testing.assert_allclose(t_best, t_ref, rtol=1e-9, atol=1e-9)
    assert (owner != owner_ref).sum() <= 2 and (refl != refl_ref).sum() <= 2  # exact ties only

    with np.errstate(divide="ignore", invalid="ignore"):
        compiled.py_func(*before)
    for ref, got in zip(before[-4:], (t_best, refl, _, owner), strict=True):
        np.testing.assert_array_equal(got, ref)


def test_ground_materials_kernel_equals_the_numpy_lookup():
    """The LiDAR's ground-material kernel against the numpy expressions it replaced (hit point,
    divide, truncate toward zero, grass off the map), bit for bit."""
    rng = np.random.default_rng(5)
    table = rng.integers(0, 4, (40, 60), dtype=np.uint8)
    map_origin = np.array([-2.35, 1.7])
    dirs = rng.normal(0, 1, (3000, 3))
    t = rng.uniform(0, 10, 3000)
    o = np.array([0.4, 2.1, 1.8])
    hit = np.flatnonzero(rng.random(3000) < 0.7)
    got = np.empty(len(hit), np.uint8)
    ground_materials(dirs, hit, t, o, map_origin, 0.1, table, 0, got)
    xy = o[None, :2] + dirs[hit, :2] * t[hit, None]
    ij = ((xy - map_origin) / 0.1).astype(np.int32)
    ok = (ij[:, 0] >= 0) & (ij[:, 0] < 60) & (ij[:, 1] >= 0) & (ij[:, 1] < 40)
    ref = table[np.clip(ij[:, 1], 0, 39), np.clip(ij[:, 0], 0, 59)]
    ref[~ok] = 0
    assert ok.any() and not ok.all()
    np.testing.assert_array_equal(got, ref)


def test_point_assembly_kernel_equals_concatenate_astype():
    rng = np.random.default_rng(6)
    dirs = rng.normal(0, 1, (32 * 100, 3))
    idx = np.sort(rng.choice(len(dirs), 2000, replace=False))
    t = rng.uniform(0.5, 80, 2000)
    inten = rng.uniform(0, 255, 2000)
    got = np.empty((2000, 5), np.float32)
    assemble_points(dirs, idx, t, inten, 100, got)
    ref = np.concatenate([dirs[idx] * t[:, None], inten[:, None], (idx // 100).astype(np.float64)[:, None]],
                         axis=1).astype(np.float32)
    assert got.tobytes() == ref.tobytes()
