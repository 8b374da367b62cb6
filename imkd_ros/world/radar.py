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
        self.vehicle = np.array([a.cls in ("car", "truck", "bus", "trailer", "construction_vehicle")
                                 for a in sc.agents], bool)
        self.lengths = sc.sizes[:, 1] if len(sc.agents) else np.zeros(0)
        self.stopped = np.array([k == "stopped" for k in self.kinds], bool)

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

        # Pending clusters: position (world xy), object velocity, RCS, flags; turned into rows at once.
        P: list[np.ndarray] = []
        V: list[np.ndarray] = []
        RCS: list[np.ndarray] = []
        STOP: list[np.ndarray] = []
        EXTRA: list[np.ndarray] = []
        OWN: list[np.ndarray] = []
        GHOST: list[np.ndarray] = []
        n_agents = len(fa)
        # Candidates: footprints within range whose azimuth span meets the field of view.
        near_fov = np.deg2rad(spec.near_half_fov_deg)
        far_fov = np.deg2rad(spec.far_half_fov_deg)
        mid = _wrap((a_lo + a_hi) / 2) if len(a_lo) else a_lo
        half = (a_hi - a_lo) / 2
        gap = np.maximum(np.abs(mid) - half, 0.0)
        cand = ((rmin >= 0.5) & (((rmin < spec.near_range) & (gap < near_fov)) | (
            (rmin < spec.far_range) & (gap < far_fov))))
        # Objects: up to 6 candidate points on each visible outline, batched over all objects.
        ag = np.flatnonzero(cand[:n_agents])
        if len(ag):
            pts, pid = _outline_points(fa[ag], o, rng, np.full(len(ag), 6))
            k_of = ag[pid]
            d = pts - o
            rng_p = np.hypot(d[:, 0], d[:, 1])
            az = _wrap(np.arctan2(d[:, 1], d[:, 0]) - yaw_s)
            vis = ((rng_p < spec.near_range) & (np.abs(az) < near_fov)) | (
                (rng_p < spec.far_range) & (np.abs(az) < far_fov))
            vis &= ~_occluded(az, rng_p, a_lo, a_hi, rmin, tall, exclude=k_of)
            na_ = len(ag)
            nvis = np.bincount(pid, weights=vis, minlength=na_)
            ntot = np.bincount(pid, minlength=na_)
            seen = nvis > 0
            safe = np.maximum(nvis, 1)
            mdx = np.bincount(pid, weights=d[:, 0] * vis, minlength=na_) / safe
            mdy = np.bincount(pid, weights=d[:, 1] * vis, minlength=na_) / safe
            r_m = np.bincount(pid, weights=rng_p * vis, minlength=na_) / safe
            aspect = np.arctan2(mdy, mdx) - snap.yaws[ag]
            rcs = self.rcs_base[ag] + np.where(self.vehicle[ag], 5.0 * np.abs(np.sin(aspect)), 0.0)
            snr = rcs - 40.0 * np.log10(np.maximum(r_m, 1.0)) + 62.0
            p_det = 1.0 / (1.0 + np.exp(-snr / 3.0)) * (0.35 + 0.65 * nvis / np.maximum(ntot, 1)) * 0.95
            det = seen & (rng.random(na_) < p_det)
            n_pts = 1 + rng.poisson(np.maximum(0.0, 0.4 * self.lengths[ag] * (1.0 - r_m / 80.0)))
            # Keep n_pts random visible points per detected object (rank by a random key).
            key = rng.random(len(pts)) + np.where(vis & det[pid], 0.0, 10.0)
            order = np.lexsort((key, pid))
            rank = np.empty(len(pts), np.int64)
            starts = np.concatenate([[0], np.cumsum(ntot)[:-1]])
            rank[order] = np.arange(len(pts)) - starts[pid[order]]
            take = (key < 10.0) & (rank < n_pts[pid])
            n = int(take.sum())
            if n:
                kk = k_of[take]
                v_obj = snap.velocities[kk]
                P.append(pts[take])
                V.append(v_obj)
                RCS.append(rcs[pid[take]] + rng.normal(0, 2.0, n))
                STOP.append(self.stopped[kk])
                EXTRA.append(np.zeros(n))
                OWN.append(kk)
                GHOST.append(np.zeros(n, bool))
                # Multipath ghosts of moving targets: same Doppler, longer range, low RCS.
                g = (np.hypot(v_obj[:, 0], v_obj[:, 1]) > 1.0) & (rng.random(n) < 0.06)
                ng = int(g.sum())
                if ng:
                    P.append(pts[take][g])
                    V.append(v_obj[g])
                    RCS.append(rcs[pid[take]][g] - 8 + rng.normal(0, 2.0, ng))
                    STOP.append(np.zeros(ng, bool))
                    EXTRA.append(rng.uniform(3, 10, ng))
                    OWN.append(np.full(ng, -1))
                    GHOST.append(np.ones(ng, bool))

        # Static structures: poles, trees, building facades.
        pr = np.flatnonzero(cand[n_agents:] & (rmin[n_agents:] < spec.near_range))
        if len(pr):
            lam = np.array([2.0 if self.prop_kind[j] in ("pole", "tree") else 6.0 for j in pr])
            pts, pid = _outline_points(fp[pr], o, rng, rng.poisson(lam))
            d = pts - o
            rng_p = np.hypot(d[:, 0], d[:, 1])
            az = _wrap(np.arctan2(d[:, 1], d[:, 0]) - yaw_s)
            ok = (rng_p < spec.near_range) & (np.abs(az) < near_fov)
            ok &= ~_occluded(az, rng_p, a_lo, a_hi, rmin, tall, exclude=pr[pid] + n_agents)
            p_det = 1.0 / (1.0 + np.exp(-(10.0 - 40 * np.log10(np.maximum(rng_p, 1)) + 62) / 3))
            ok &= rng.random(len(pts)) < p_det
            n = int(ok.sum())
            if n:
                P.append(pts[ok])
                V.append(np.zeros((n, 2)))
                RCS.append(rng.uniform(0, 15, n))
                STOP.append(np.zeros(n, bool))
                EXTRA.append(np.zeros(n))
                OWN.append(np.full(n, -1))
                GHOST.append(np.zeros(n, bool))

        # Clutter: weak stationary returns in the near and far beams; some invalid / ambiguous.
        n_near, n_far = int(rng.poisson(14.0)), int(rng.poisson(5.0))
        nc = n_near + n_far
        far = np.arange(nc) >= n_near
        r = np.where(far, rng.uniform(spec.near_range, min(spec.far_range, 150.0), nc),
                     rng.uniform(3.0, spec.near_range, nc))
        a = rng.uniform(-1, 1, nc) * np.where(far, far_fov, near_fov) + yaw_s
        P.append(o + r[:, None] * np.column_stack([np.cos(a), np.sin(a)]))
        V.append(np.zeros((nc, 2)))
        RCS.append(rng.uniform(-12, 3, nc))
        STOP.append(np.zeros(nc, bool))
        EXTRA.append(np.zeros(nc))
        OWN.append(np.full(nc, -1))
        GHOST.append(np.zeros(nc, bool))

        out = self._clusters(np.concatenate(P), np.concatenate(V), np.concatenate(RCS), np.concatenate(STOP),
                             np.concatenate(EXTRA), o, yaw_s, v_s, rng)
        own = np.concatenate(OWN).astype(np.int64)
        ghost = np.concatenate(GHOST)
        out[ghost, F["pdh0"]] = rng.integers(3, 6, int(ghost.sum()))
        clut = slice(len(out) - nc, len(out))
        out[clut, F["dyn_prop"]] = rng.choice([1, 3, 4], nc)
        out[clut, F["pdh0"]] = rng.integers(2, 8, nc)
        u = rng.random(nc)
        inval = np.where(u < 0.25, rng.choice([1, 2, 4, 8, 9, 13, 16], nc), 0)
        ambig = np.where((u >= 0.25) & (u < 0.4), rng.choice([1, 2, 4], nc), 3)
        out[clut, F["invalid_state"]] = inval
        out[clut, F["ambig_state"]] = ambig
        if len(out) == 0:
            return np.zeros((0, len(RADAR_PCD_FIELDS))), np.zeros(0, np.int64)
        # The sensor reports at most MAX_POINTS clusters, nearest first.
        order = np.argsort(np.hypot(out[:, 0], out[:, 1]), kind="stable")[:MAX_POINTS]
        out, own = out[order], own[order]
        out[:, F["id"]] = np.arange(len(out))
        return out, own

    def _clusters(self, p: np.ndarray, v_obj: np.ndarray, rcs: np.ndarray, stopped: np.ndarray,
                  extra_range: np.ndarray, o: np.ndarray, yaw_s: float, v_s: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
        """(K,) clusters at world points ``p`` -> (K, 18) rows with noise, Doppler and states."""
        spec = self.spec
        k = len(p)
        d = p - o
        r = np.hypot(d[:, 0], d[:, 1])
        u_w = d / np.maximum(r, 1e-6)[:, None]
        az = _wrap(np.arctan2(d[:, 1], d[:, 0]) - yaw_s)
        noise = rng.normal(0, 1, (3, k))
        r_meas = r + extra_range + noise[0] * spec.range_sigma * (1 + r / 100.0)
        az_meas = az + np.deg2rad(spec.azimuth_sigma_deg) * noise[1]
        u_s = np.column_stack([np.cos(az_meas), np.sin(az_meas)])
        v_r_comp = (v_obj * u_w).sum(1) + noise[2] * spec.velocity_sigma
        v_r = v_r_comp - u_w @ v_s
        rows = np.zeros((k, len(RADAR_PCD_FIELDS)))
        rows[:, F["x"]] = r_meas * u_s[:, 0]
        rows[:, F["y"]] = r_meas * u_s[:, 1]
        speed = np.hypot(v_obj[:, 0], v_obj[:, 1])
        dyn = np.where(v_r_comp < 0, 2, 0)
        dyn = np.where(np.abs(v_r_comp) < 0.35 * speed, 6, dyn)
        static = np.where(stopped, 7, np.where(rng.random(k) < 0.85, 1, 3))
        rows[:, F["dyn_prop"]] = np.where(speed < 0.3, static, dyn)
        rows[:, F["rcs"]] = np.round(rcs * 2) / 2  # 0.5 dBsm resolution like the ARS408
        rows[:, F["vx"]] = v_r * u_s[:, 0]
        rows[:, F["vy"]] = v_r * u_s[:, 1]
        rows[:, F["vx_comp"]] = v_r_comp * u_s[:, 0]
        rows[:, F["vy_comp"]] = v_r_comp * u_s[:, 1]
        rows[:, F["is_quality_valid"]] = 1
        rows[:, F["ambig_state"]] = 3
        rows[:, F["x_rms"]] = np.minimum((3 + r / 12).astype(int), 31)
        rows[:, F["y_rms"]] = np.minimum((3 + r / 6).astype(int), 31)
        rows[:, F["pdh0"]] = 1
        rows[:, F["vx_rms"]] = 3
        rows[:, F["vy_rms"]] = 3
        return rows


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


def _outline_points(polys: np.ndarray, o: np.ndarray, rng: np.random.Generator,
                    n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``n[m]`` random points on the edges of footprint ``m`` that face the sensor at ``o``.

    Returns the points (K, 2) and the footprint index of each; footprints seen edge-on give none.
    """
    a = polys
    b = np.roll(polys, -1, axis=1)
    mid = (a + b) / 2
    e = b - a
    centroid = polys.mean(1, keepdims=True)
    normal = np.stack([e[..., 1], -e[..., 0]], axis=-1)
    normal *= np.sign(((mid - centroid) * normal).sum(-1, keepdims=True) + 1e-12)
    to_s = o - mid
    facing = (normal * to_s).sum(-1) / (np.linalg.norm(normal, axis=-1) * np.linalg.norm(to_s, axis=-1) + 1e-9)
    w = np.clip(facing, 0, None) * np.linalg.norm(e, axis=-1)  # (M, 4)
    tot = w.sum(1)
    n = np.where(tot > 0, n, 0)
    pid = np.repeat(np.arange(len(polys)), n)
    if len(pid) == 0:
        return np.zeros((0, 2)), pid
    cdf = np.cumsum(w, axis=1) / np.maximum(tot, 1e-12)[:, None]
    u = rng.random(len(pid))
    edge = np.minimum((u[:, None] > cdf[pid]).sum(1), 3)
    t = rng.uniform(0.05, 0.95, len(pid))
    return a[pid, edge] + t[:, None] * e[pid, edge], pid


def _occluded(az: np.ndarray, rng_p: np.ndarray, a_lo: np.ndarray, a_hi: np.ndarray, rmin: np.ndarray,
              tall: np.ndarray, exclude: np.ndarray) -> np.ndarray:
    """(K,) bool: point at (azimuth, range) hidden behind another (tall) footprint than its own."""
    if len(a_lo) == 0:
        return np.zeros(len(az), bool)
    mid = (a_lo + a_hi) / 2
    half = (a_hi - a_lo) / 2
    inside = np.abs(_wrap(az[:, None] - mid[None, :])) < half[None, :] * 0.9
    nearer = rmin[None, :] < rng_p[:, None] - 1.0
    m = inside & nearer & tall[None, :]
    m[np.arange(len(az)), exclude] = False
    return m.any(1)
