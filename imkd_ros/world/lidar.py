"""Spinning 32-beam LiDAR: ray casting against object parts, props and the ground plane.

Rays form a (beam, azimuth) grid in the sensor frame. For each object only the rays inside its
azimuth/elevation window are slab-tested, in a compiled kernel (world/raycast.py); the ground,
the windows and the sensor model stay in numpy. A full sweep takes ~3 ms on one core. The
returned points are in the LiDAR sensor frame as nuScenes stores them: x, y, z, intensity, ring.
"""

from __future__ import annotations

import numpy as np

from imkd_ros.rig.rig import LidarSpec
from imkd_ros.world.raycast import assemble_points, cast_objects, ground_materials
from imkd_ros.world.sim import MAP_RES, MAT_GRASS, MATERIAL_REFLECT, SceneSim, Snapshot


class LidarSim:
    def __init__(self, sim: SceneSim, spec: LidarSpec):
        self.sim = sim
        self.spec = spec
        self.elev = spec.elevations()  # (B,)
        self.az = np.linspace(-np.pi, np.pi, spec.azimuth_steps, endpoint=False) + np.pi / spec.azimuth_steps
        ce = np.cos(self.elev)
        self.dirs = np.stack(
            [ce[:, None] * np.cos(self.az)[None, :], ce[:, None] * np.sin(self.az)[None, :],
             np.broadcast_to(np.sin(self.elev)[:, None], (len(self.elev), len(self.az)))], axis=-1
        )  # (B, A, 3) sensor frame
        self.dirs_flat = self.dirs.reshape(-1, 3)  # (B * A, 3), ray index = beam * A + azimuth
        self.map_origin = np.asarray(sim.map_origin, np.float64)  # the ground map is fixed per scene
        # Buildings: only the facade box (window strips protrude by millimetres; same return).
        self.part_end = sim.obj_part_end.copy()
        n_agents = len(sim.scene.agents)
        for j, p in enumerate(sim.scene.props):
            if p.kind == "building":
                self.part_end[n_agents + j] = sim.obj_part_start[n_agents + j] + 1
        # Bounds of what the LiDAR sees of each object; single-box objects skip the part stage.
        self.lo = np.array([sim.part_local[a:b][:, [0, 2, 4]].min(0) if b > a else np.zeros(3)
                            for a, b in zip(sim.obj_part_start, self.part_end, strict=True)]).reshape(-1, 3)
        self.hi = np.array([sim.part_local[a:b][:, [1, 3, 5]].max(0) if b > a else np.zeros(3)
                            for a, b in zip(sim.obj_part_start, self.part_end, strict=True)]).reshape(-1, 3)
        self.single = (self.part_end - sim.obj_part_start) == 1
        self.part_start = sim.obj_part_start.astype(np.int64)
        self.part_end = self.part_end.astype(np.int64)
        self.part_lo = np.ascontiguousarray(sim.part_local[:, [0, 2, 4]])  # (P, 3) x0 y0 z0, object frame
        self.part_hi = np.ascontiguousarray(sim.part_local[:, [1, 3, 5]])
        cond = sim.scene.condition
        self.drop = {"day": 0.03, "night": 0.03, "rain": 0.1, "fog": 0.15}[cond]
        self.atten = {"day": 0.0, "night": 0.0, "rain": 0.012, "fog": 0.03}[cond]  # 1/m extinction

    def owner_code(self, n_agents: int) -> np.ndarray:
        """Per object: its agent index (annotated objects come first), -1 for props."""
        idx = np.arange(len(self.lo), dtype=np.int64)
        return np.where(idx < n_agents, idx, -1)

    def sweep(self, snap: Snapshot, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Returns points (N, 5) float32 in the sensor frame and owner (N,) (agent index or -1)."""
        spec = self.spec
        s2w = snap.ego @ spec.to_ego
        o = s2w.translation
        rot = s2w.rotation
        nb, na = self.dirs.shape[:2]
        dirs_w = self.dirs.reshape(-1, 3) @ rot.T  # world directions
        t_best = np.full(nb * na, np.inf)
        refl = np.zeros(nb * na)
        cosi = np.ones(nb * na)
        owner = np.full(nb * na, -1, np.int64)
        # Ground plane z = 0.
        dz = dirs_w[:, 2]
        g = dz < -1e-6
        tg = np.where(g, -o[2] / np.where(g, dz, -1.0), np.inf)
        t_best = np.minimum(t_best, tg)
        gi = np.flatnonzero(np.isfinite(tg) & (tg < spec.max_range))
        mat = np.empty(len(gi), np.uint8)
        ground_materials(dirs_w, gi, tg, o, self.map_origin, MAP_RES,
                         self.sim.map_mat, MAT_GRASS, mat)
        refl[gi] = MATERIAL_REFLECT[mat]
        cosi[gi] = np.abs(dz[gi])
        # Objects near enough: bounding box first, then its parts (all axis-aligned in the object frame).
        base, oyaw = snap.obj_base, snap.obj_yaw
        lo, hi = self.lo, self.hi
        ctr_local = (lo + hi) / 2
        c, s = np.cos(oyaw), np.sin(oyaw)
        ctr = base + np.column_stack([c * ctr_local[:, 0] - s * ctr_local[:, 1],
                                      s * ctr_local[:, 0] + c * ctr_local[:, 1], ctr_local[:, 2]])
        rad = np.linalg.norm(hi - lo, axis=1) / 2
        dist = np.linalg.norm(ctr - o, axis=1)
        cand = np.flatnonzero(dist - rad < spec.max_range)
        cand = cand[np.argsort(dist[cand] - rad[cand], kind="stable")]  # near first: occluded rays prune early
        if len(cand):
            # Object bounding-box corners in the sensor frame -> azimuth / elevation windows.
            bits = np.array([[k & 1, (k >> 1) & 1, (k >> 2) & 1] for k in range(8)], bool)
            loc = np.where(bits[None], hi[cand][:, None, :], lo[cand][:, None, :])  # (M, 8, 3)
            cc, ss = c[cand][:, None], s[cand][:, None]
            wx = base[cand][:, None, 0] + cc * loc[..., 0] - ss * loc[..., 1]
            wy = base[cand][:, None, 1] + ss * loc[..., 0] + cc * loc[..., 1]
            wz = base[cand][:, None, 2] + loc[..., 2]
            corners_s = (np.stack([wx, wy, wz], -1) - o) @ rot
            cen_s = (ctr[cand] - o) @ rot
            az_c = np.arctan2(cen_s[:, 1], cen_s[:, 0])
            caz = np.arctan2(corners_s[..., 1], corners_s[..., 0])
            daz = (caz - az_c[:, None] + np.pi) % (2 * np.pi) - np.pi
            horiz = np.hypot(corners_s[..., 0], corners_s[..., 1])
            cel = np.arctan2(corners_s[..., 2], horiz)
            inside = dist[cand] <= rad[cand]
            near = dist[cand] - rad[cand] - 1e-6  # 1 um margin: a ray stopped before cannot hit it
            step = 2 * np.pi / na
            b_lo = np.searchsorted(self.elev, cel.min(1) - 1e-9).astype(np.int64)
            b_hi = np.searchsorted(self.elev, cel.max(1) + 1e-9).astype(np.int64)
            i_lo = np.floor((az_c + daz.min(1) + np.pi) / step - 0.5).astype(np.int64)
            i_hi = np.ceil((az_c + daz.max(1) + np.pi) / step - 0.5).astype(np.int64)
            # Per ray: the nearest object part inside each candidate's (beam, azimuth) window.
            cast_objects(dirs_w, o, na, cand, inside, near, b_lo, b_hi, i_lo, i_hi,
                         np.ascontiguousarray(base, np.float64), c, s, lo, hi, self.single,
                         self.part_start, self.part_end, self.part_lo, self.part_hi,
                         np.ascontiguousarray(snap.part_reflect, np.float64), self.owner_code(len(snap.centers)),
                         t_best, refl, cosi, owner)
        idx = np.flatnonzero((t_best < spec.max_range) & (t_best > 0.5))
        n_all = nb * na
        # Detection probability falls with range for dark surfaces; random dropouts; weather.
        tb = t_best[idx]
        strength = refl[idx] * (0.3 + 0.7 * cosi[idx]) * np.exp(-2 * self.atten * tb) / (1 + (tb / 45.0) ** 2)
        u = rng.random((2, len(idx)))
        keep = (u[0] > self.drop) & (strength > 0.6 * u[1] + 0.15)
        idx, tb, strength = idx[keep], tb[keep], strength[keep]
        noise = rng.standard_normal((2, len(idx)))  # = normal(0, 1): the same draws, less overhead
        t = tb + noise[0] * spec.range_sigma
        inten = np.clip(strength * (1 + 0.1 * noise[1]), 0, 255)
        out = np.empty((len(idx), 5), np.float32)
        assemble_points(self.dirs_flat, idx, t, inten, na, out)
        own = owner[idx]
        # Fog / rain: a few spurious near returns from droplets.
        if self.atten > 0:
            k = int(rng.poisson(self.atten * 8000))
            if k:
                ridx = rng.integers(0, n_all, k)
                tr = rng.uniform(1.0, 6.0, k)
                sp = self.dirs.reshape(-1, 3)[ridx] * tr[:, None]
                extra = np.concatenate([sp, rng.uniform(0, 5, (k, 1)), (ridx // na)[:, None]], axis=1)
                out = np.concatenate([out, extra.astype(np.float32)])
                own = np.concatenate([own, np.full(k, -1)])
        return out, own
