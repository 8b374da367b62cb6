"""Radar: Doppler sign, ego-motion compensation against ground-truth velocity, frames, fields."""

from __future__ import annotations

import numpy as np

from imkd_ros.constants import RADAR_PCD_FIELDS
from imkd_ros.rig.rig import Rig
from imkd_ros.world.radar import RadarSim
from imkd_ros.world.sim import SceneSim

F = {n: i for i, n in enumerate(RADAR_PCD_FIELDS)}


def _collect(scene, radar_name, n_sweeps=40, t=0.5):
    rig = Rig.default()
    sim = SceneSim(scene)
    spec = rig.radar(radar_name)
    rs = RadarSim(sim, spec)
    snap = sim.snapshot(t)
    rows, owners = [], []
    for i in range(n_sweeps):
        pts, own = rs.sweep(snap, np.random.default_rng(i))
        rows.append(pts)
        owners.append(own)
    return np.concatenate(rows), np.concatenate(owners), snap, spec


def _check_doppler(pts, own, snap, spec, k):
    """Compensated radial speed == GT velocity on the line of sight; raw == comp - sensor motion."""
    sel = own == k
    assert sel.sum() >= 5, "target never detected"
    p = pts[sel]
    s2w = snap.ego @ spec.to_ego
    xy_s = p[:, [F["x"], F["y"]]]
    r = np.linalg.norm(xy_s, axis=1)
    u_s = xy_s / r[:, None]
    u_w = np.column_stack([u_s, np.zeros(len(u_s))]) @ s2w.rotation.T
    vr_comp = (p[:, [F["vx_comp"], F["vy_comp"]]] * u_s).sum(1)
    vr_raw = (p[:, [F["vx"], F["vy"]]] * u_s).sum(1)
    v_gt = np.append(snap.velocities[k], 0.0)
    expect_comp = u_w @ v_gt
    np.testing.assert_allclose(vr_comp, expect_comp, atol=0.6)
    # (vx, vy) are radial: parallel to the line of sight.
    cross = p[:, F["vx_comp"]] * u_s[:, 1] - p[:, F["vy_comp"]] * u_s[:, 0]
    np.testing.assert_allclose(cross, 0.0, atol=1e-6)
    v_sensor = np.append(snap.ego_vel, 0.0)
    # (the LOS used here is the measured, noisy one: 0.6 deg azimuth noise at 10 m/s ego speed)
    np.testing.assert_allclose(vr_raw, vr_comp - u_w @ v_sensor, atol=0.3)
    return vr_comp, vr_raw


def test_front_radar_doppler_and_compensation(scene_factory):
    sc = scene_factory([
        {"cls": "car", "size": (1.9, 4.5, 1.5), "xy": (30.0, 0.0), "yaw": 0.0, "speed": 5.0},  # ahead, slower
        {"cls": "car", "size": (1.9, 4.5, 1.5), "xy": (45.0, 4.0), "yaw": np.pi, "speed": 8.0},  # oncoming
        {"cls": "truck", "size": (2.5, 7.0, 3.0), "xy": (25.0, -6.0), "yaw": 0.0},  # parked
    ], ego_speed=10.0)
    pts, own, snap, spec = _collect(sc, "RADAR_FRONT")
    assert np.allclose(pts[:, F["z"]], 0.0)  # no elevation
    comp, raw = _check_doppler(pts, own, snap, spec, 0)
    assert (comp > 3.5).all() and (raw < -3.5).all()  # moving away from the world, closing on us
    comp, raw = _check_doppler(pts, own, snap, spec, 1)
    assert (comp < -6.0).all() and (raw < -14.0).all()
    assert set(pts[own == 1, F["dyn_prop"]].astype(int)) <= {2}  # oncoming
    comp, raw = _check_doppler(pts, own, snap, spec, 2)
    assert (np.abs(comp) < 0.6).all() and (raw < -7.0).all()  # parked: static once compensated
    assert set(pts[own == 2, F["dyn_prop"]].astype(int)) <= {1, 3}
    # Positions: noisy, but on the target.
    sel = own == 0
    assert np.all(np.abs(pts[sel, F["y"]]) < 1.5)
    rear = snap.centers[0, 0] - snap.ego.translation[0] - spec.translation[0] - 4.5 / 2
    assert np.all((pts[sel, F["x"]] > rear - 1.0) & (pts[sel, F["x"]] < rear + 4.5 + 1.0))
    assert np.median(pts[sel, F["x"]]) < rear + 1.0  # the rear face is the visible outline


def test_side_radar_frame_and_compensation_while_turning(scene_factory):
    # A pedestrian-speed crossing target to the left; the side radar looks along +y of the ego.
    sc = scene_factory([
        {"cls": "bus", "size": (2.9, 11.0, 3.5), "xy": (3.0, 15.0), "yaw": np.pi / 2, "speed": 3.0},
    ], ego_speed=8.0)
    pts, own, snap, spec = _collect(sc, "RADAR_FRONT_LEFT")
    comp, raw = _check_doppler(pts, own, snap, spec, 0)
    assert (comp > 1.5).all()  # moving away from the sensor (along +y)
    # In the sensor frame (x along the radar boresight = ego +y) the bus is straight ahead.
    sel = own == 0
    assert np.median(pts[sel, F["x"]]) > 5 and np.abs(np.median(pts[sel, F["y"]])) < 6


def test_fields_clutter_and_limits(scene_factory):
    sc = scene_factory([{"cls": "car", "size": (1.9, 4.5, 1.5), "xy": (20.0, 0.0), "yaw": 0.0}])
    pts, own, _, _ = _collect(sc, "RADAR_FRONT", n_sweeps=30)
    assert pts.shape[1] == 18
    ints = [F[n] for n in ("dyn_prop", "id", "is_quality_valid", "ambig_state", "x_rms", "y_rms",
                           "invalid_state", "pdh0", "vx_rms", "vy_rms")]
    assert np.array_equal(pts[:, ints], np.round(pts[:, ints]))
    clutter = own == -1
    assert clutter.any()
    # Some clutter is flagged invalid / ambiguous (the devkit's default filters drop it); targets never.
    assert ((pts[clutter, F["invalid_state"]] != 0) | (pts[clutter, F["ambig_state"]] != 3)).any()
    assert (pts[~clutter, F["invalid_state"]] == 0).all() and (pts[~clutter, F["ambig_state"]] == 3).all()
    # Pedestrians are weak: a far pedestrian is detected much less often than a car at the same range.
    far_ped = scene_factory([{"cls": "pedestrian", "size": (0.7, 0.7, 1.8), "xy": (50.0, 0.0), "yaw": 0.0}])
    far_car = scene_factory([{"cls": "car", "size": (1.9, 4.5, 1.5), "xy": (50.0, 0.0), "yaw": 0.0}])
    _, own_p, _, _ = _collect(far_ped, "RADAR_FRONT", n_sweeps=40)
    _, own_c, _, _ = _collect(far_car, "RADAR_FRONT", n_sweeps=40)
    assert (own_p == 0).sum() < (own_c == 0).sum()
