"""Continental ARS408-like radar: sparse clusters with range/azimuth noise, RCS, Doppler.

Per object in the field of view a detection probability follows the radar equation (RCS by class
and aspect, 40 log10 range falloff, occlusion by nearer objects); detected objects give one to a
few clusters on their visible outline. Each cluster carries the radial velocity relative to the
sensor (``vx``, ``vy``: radial speed times the line-of-sight unit vector, sensor frame) and its
ego-motion-compensated version (``vx_comp``, ``vy_comp``: the object's own world velocity
projected on the line of sight). Like the real sensor there is no usable elevation (z = 0 in the
sensor frame). Static structures give stationary returns, plus clutter, multipath ghosts and a
few invalid or ambiguous clusters that the devkit's default filters remove.
"""

from __future__ import annotations

import numpy as np

from imkd_ros.constants import RADAR_PCD_FIELDS
from imkd_ros.rig.rig import RadarSpec
from imkd_ros.world.sim import SceneSim, Snapshot

F = {name: i for i, name in enumerate(RADAR_PCD_FIELDS)}
RCS_DBSM = {
    "car": 8.0, "truck": 17.0, "construction_vehicle": 15.0, "bus": 19.0, "trailer": 17.0, "barrier": 2.0,
    "motorcycle": 3.0, "bicycle": -2.0, "pedestrian": -6.0, "traffic_cone": -8.0,
}
MAX_POINTS = 125


class RadarSim:
    def __init__(self, sim: SceneSim, spec: RadarSpec):
        self.sim = sim
        self.spec = spec
        sc = sim.scene
        self.rcs_base = np.array([RCS_DBSM[a.cls] for a in sc.agents])
        self.kinds = [a.kind for a in sc.agents]
        self.heights = sc.sizes[:, 2] if len(sc.agents) else np.zeros(0)
        # Prop footprints (static): centre, size, yaw.
        self.prop_c = np.array([p.center[:2] for p in sc.props]).reshape(-1, 2)
        self.prop_s = np.array([p.size for p in sc.props]).reshape(-1, 3)
        self.prop_yaw = np.array([p.yaw for p in sc.props])
        self.prop_kind = [p.kind for p in sc.props]

    def sweep(self, snap: Snapshot, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Returns (N, 18) float64 in RADAR_PCD_FIELDS order (sensor frame) and owner (N,) (-1 none)."""
        spec = self.spec
        s2w = snap.ego @ spec.to_ego
        o = s2w.translation[:2]
        yaw_s = s2w.yaw
        # Sensor velocity in the world: ego velocity + yaw rate x lever arm.
        lever = s2w.translation[:2] - snap.ego.translation[:2]
        v_s = snap.ego_vel + snap.ego_yaw_rate * np.array([-lever[1], lever[0]])

        # Footprints of all occluders: agents then props, as (M, 4, 2) corners.
        fa = _footprints(snap.centers[:, :2], self.sim.scene.sizes, snap.yaws)
        fp = _footprints(self.prop_c, self.prop_s, self.prop_yaw) if len(self.prop_c) else np.zeros((0, 4, 2))
        allf = np.concatenate([fa, fp])
        tall = np.concatenate([self.heights > 0.8, np.array([k != "pole" for k in self.prop_kind], bool)])
        rel = allf - o
        ang = np.arctan2(rel[..., 1], rel[..., 0]) - yaw_s
        ang_c = _wrap(ang.mean(1) if len(ang) else ang.sum(1))
        dang = _wrap(ang - ang_c[:, None]) if len(ang) else ang
        a_lo = ang_c + dang.min(1) if len(ang) else np.zeros(0)
        a_hi = ang_c + dang.max(1) if len(ang) else np.zeros(0)
        rmin = _min_range_to_polygon(rel) if len(rel) else np.zeros(0)

        rows: list[np.ndarray] = []
        owners: list[np.ndarray] = []
        n_agents = len(fa)
        # Candidates: footprints within range whose azimuth span meets the field of view.
        near_fov = np.deg2rad(spec.near_half_fov_deg)
        far_fov = np.deg2rad(spec.far_half_fov_deg)
        mid = _wrap((a_lo + a_hi) / 2) if len(a_lo) else a_lo
        half = (a_hi - a_lo) / 2
        gap = np.maximum(np.abs(mid) - half, 0.0)
        cand = ((rmin >= 0.5) & (((rmin < spec.near_range) & (gap < near_fov)) | (
            (rmin < spec.far_range) & (gap < far_fov))))
        for k in np.flatnonzero(cand[:n_agents]):
            # Candidate points on the visible outline.
            pts = _outline_points(fa[k], o, rng, 6)
            if len(pts) == 0:
                continue
            d = pts - o
            rng_p = np.hypot(d[:, 0], d[:, 1])
            az = _wrap(np.arctan2(d[:, 1], d[:, 0]) - yaw_s)
            in_fov = ((rng_p < spec.near_range) & (np.abs(az) < np.deg2rad(spec.near_half_fov_deg))) | (
                (rng_p < spec.far_range) & (np.abs(az) < np.deg2rad(spec.far_half_fov_deg)))
            occ = _occluded(az, rng_p, a_lo, a_hi, rmin, tall, exclude=k)
            vis = in_fov & ~occ
            if not vis.any():
                continue
            aspect = np.arctan2(d[vis, 1].mean(), d[vis, 0].mean()) - snap.yaws[k]
            rcs = self.rcs_base[k] + (5.0 * abs(np.sin(aspect)) if self.sim.scene.agents[k].cls in (
                "car", "truck", "bus", "trailer", "construction_vehicle") else 0.0)
            r_m = float(rng_p[vis].mean())
            snr = rcs - 40.0 * np.log10(max(r_m, 1.0)) + 62.0
            p_det = 1.0 / (1.0 + np.exp(-snr / 3.0)) * (0.35 + 0.65 * vis.mean()) * 0.95
            if rng.random() > p_det:
                continue
            size_l = self.sim.scene.sizes[k, 1]
            n_pts = 1 + rng.poisson(max(0.0, 0.25 * size_l * (1.0 - r_m / 80.0)))
            vis_idx = np.flatnonzero(vis)
            pick = rng.choice(vis_idx, size=min(n_pts, len(vis_idx)), replace=False)
            v_obj = snap.velocities[k]
            for j in pick:
                row = self._cluster(pts[j], o, yaw_s, v_obj, v_s, rcs + rng.normal(0, 2.0), rng,
                                    stopped=self.kinds[k] == "stopped")
                rows.append(row)
                owners.append(k)
                # Multipath ghost of moving targets: same Doppler, longer range.
                if np.hypot(*v_obj) > 1.0 and rng.random() < 0.06:
                    g = self._cluster(pts[j], o, yaw_s, v_obj, v_s, rcs - 8 + rng.normal(0, 2), rng,
                                      extra_range=float(rng.uniform(3, 10)))
                    g[F["pdh0"]] = int(rng.integers(3, 6))
                    rows.append(g)
                    owners.append(-1)

        # Static structures: poles, trees, building facades.
        for m in np.flatnonzero(cand[n_agents:] & (rmin[n_agents:] < spec.near_range)) + n_agents:
            j = m - n_agents
            kind = self.prop_kind[j]
            n = rng.poisson(1.2 if kind in ("pole", "tree") else 3.0)
            if n == 0:
                continue
            pts = _outline_points(fp[j], o, rng, n)
            if len(pts) == 0:
                continue
            d = pts - o
            rng_p = np.hypot(d[:, 0], d[:, 1])
            az = _wrap(np.arctan2(d[:, 1], d[:, 0]) - yaw_s)
            ok = (rng_p < spec.near_range) & (np.abs(az) < np.deg2rad(spec.near_half_fov_deg))
            ok &= ~_occluded(az, rng_p, a_lo, a_hi, rmin, tall, exclude=m)
            for p in pts[ok]:
                r = float(np.hypot(*(p - o)))
                if rng.random() > 1.0 / (1.0 + np.exp(-(10.0 - 40 * np.log10(max(r, 1)) + 62) / 3)):
                    continue
                rows.append(self._cluster(p, o, yaw_s, np.zeros(2), v_s, float(rng.uniform(0, 15)), rng))
                owners.append(-1)

        # Clutter: weak stationary returns anywhere in the near beam; some invalid / ambiguous.
        n_near = int(rng.poisson(8.0))
        for c_i in range(n_near + int(rng.poisson(3.0))):
            far = c_i >= n_near
            r_lo, r_hi = (spec.near_range, min(spec.far_range, 150.0)) if far else (3.0, spec.near_range)
            r = float(rng.uniform(r_lo, r_hi))
            half_fov = spec.far_half_fov_deg if far else spec.near_half_fov_deg
            a = float(rng.uniform(-1, 1) * np.deg2rad(half_fov))
            p = o + r * np.array([np.cos(a + yaw_s), np.sin(a + yaw_s)])
            row = self._cluster(p, o, yaw_s, np.zeros(2), v_s, float(rng.uniform(-12, 3)), rng)
            row[F["dyn_prop"]] = int(rng.choice([1, 3, 4]))
            row[F["pdh0"]] = int(rng.integers(2, 8))
            u = rng.random()
            if u < 0.25:
                row[F["invalid_state"]] = int(rng.choice([1, 2, 4, 8, 9, 13, 16]))
            elif u < 0.4:
                row[F["ambig_state"]] = int(rng.choice([1, 2, 4]))
            rows.append(row)
            owners.append(-1)

        if not rows:
            return np.zeros((0, len(RADAR_PCD_FIELDS))), np.zeros(0, np.int64)
        out = np.stack(rows)
        own = np.asarray(owners, np.int64)
        # The sensor reports at most MAX_POINTS clusters, nearest first.
        order = np.argsort(np.hypot(out[:, 0], out[:, 1]), kind="stable")[:MAX_POINTS]
        out, own = out[order], own[order]
        out[:, F["id"]] = np.arange(len(out))
        return out, own

    def _cluster(self, p: np.ndarray, o: np.ndarray, yaw_s: float, v_obj: np.ndarray, v_s: np.ndarray,
                 rcs: float, rng: np.random.Generator, stopped: bool = False, extra_range: float = 0.0) -> np.ndarray:
        spec = self.spec
        d = p - o
        r = float(np.hypot(*d))
        u_w = d / max(r, 1e-6)
        az = float(_wrap(np.arctan2(d[1], d[0]) - yaw_s))
        r_meas = r + extra_range + rng.normal(0, spec.range_sigma * (1 + r / 100.0))
        az_meas = az + np.deg2rad(rng.normal(0, spec.azimuth_sigma_deg))
        u_s = np.array([np.cos(az_meas), np.sin(az_meas)])
        v_r_comp = float(v_obj @ u_w) + rng.normal(0, spec.velocity_sigma)
        v_r = v_r_comp - float(v_s @ u_w)
        row = np.zeros(len(RADAR_PCD_FIELDS))
        row[F["x"]], row[F["y"]], row[F["z"]] = r_meas * u_s[0], r_meas * u_s[1], 0.0
        speed = float(np.hypot(*v_obj))
        if speed < 0.3:
            dyn = 7 if stopped else (1 if rng.random() < 0.85 else 3)
        elif abs(v_r_comp) < 0.35 * speed:
            dyn = 6
        elif v_r_comp < 0:
            dyn = 2
        else:
            dyn = 0
        row[F["dyn_prop"]] = dyn
        row[F["rcs"]] = round(rcs * 2) / 2  # 0.5 dBsm resolution like the ARS408
        row[F["vx"]], row[F["vy"]] = v_r * u_s
        row[F["vx_comp"]], row[F["vy_comp"]] = v_r_comp * u_s
        row[F["is_quality_valid"]] = 1
        row[F["ambig_state"]] = 3
        row[F["x_rms"]] = min(int(3 + r / 12), 31)
        row[F["y_rms"]] = min(int(3 + r / 6), 31)
        row[F["invalid_state"]] = 0
        row[F["pdh0"]] = 1
        row[F["vx_rms"]] = 3
        row[F["vy_rms"]] = 3
        return row


def _wrap(a):
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


def _footprints(c: np.ndarray, size: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    if len(c) == 0:
        return np.zeros((0, 4, 2))
    cy, sy = np.cos(yaw), np.sin(yaw)
    hl, hw = size[:, 1] / 2, size[:, 0] / 2
    lx = np.array([1, 1, -1, -1])[None] * hl[:, None]
    ly = np.array([1, -1, -1, 1])[None] * hw[:, None]
    x = c[:, 0:1] + cy[:, None] * lx - sy[:, None] * ly
    y = c[:, 1:2] + sy[:, None] * lx + cy[:, None] * ly
    return np.stack([x, y], axis=-1)


def _min_range_to_polygon(rel: np.ndarray) -> np.ndarray:
    """Distance from the origin to each (M, 4, 2) polygon (0 if inside)."""
    a = rel
    b = np.roll(rel, -1, axis=1)
    ab = b - a
    t = np.clip(-(a * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-9), 0, 1)
    closest = a + t[..., None] * ab
    d = np.hypot(closest[..., 0], closest[..., 1]).min(1)
    cross = ab[..., 0] * (-a[..., 1]) - ab[..., 1] * (-a[..., 0])
    inside = (cross > 0).all(1) | (cross < 0).all(1)
    return np.where(inside, 0.0, d)


def _outline_points(poly: np.ndarray, o: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random points on the edges of a footprint that face the sensor at ``o``."""
    a = poly
    b = np.roll(poly, -1, axis=0)
    mid = (a + b) / 2
    e = b - a
    centroid = poly.mean(0)
    normal = np.stack([e[:, 1], -e[:, 0]], axis=1)
    normal *= np.sign(((mid - centroid) * normal).sum(1, keepdims=True) + 1e-12)
    to_s = o - mid
    facing = (normal * to_s).sum(1) / (np.linalg.norm(normal, axis=1) * np.linalg.norm(to_s, axis=1) + 1e-9)
    w = np.clip(facing, 0, None) * np.linalg.norm(e, axis=1)
    if w.sum() <= 0:
        return np.zeros((0, 2))
    edge = rng.choice(4, size=n, p=w / w.sum())
    t = rng.uniform(0.05, 0.95, n)
    return a[edge] + t[:, None] * e[edge]


def _occluded(az: np.ndarray, rng_p: np.ndarray, a_lo: np.ndarray, a_hi: np.ndarray, rmin: np.ndarray,
              tall: np.ndarray, exclude: int) -> np.ndarray:
    """(K,) bool: point at (azimuth, range) hidden behind another (tall) footprint."""
    if len(a_lo) == 0:
        return np.zeros(len(az), bool)
    mid = (a_lo + a_hi) / 2
    half = (a_hi - a_lo) / 2
    inside = np.abs(_wrap(az[:, None] - mid[None, :])) < half[None, :] * 0.9
    nearer = rmin[None, :] < rng_p[:, None] - 1.0
    m = inside & nearer & tall[None, :]
    m[:, exclude] = False
    return m.any(1)
