"""Spinning 32-beam LiDAR: ray casting against object parts, props and the ground plane.

Rays form a (beam, azimuth) grid in the sensor frame. For each part only the rays inside its
azimuth/elevation window are slab-tested, which keeps a full sweep at ~10 ms on one core. The
returned points are in the LiDAR sensor frame as nuScenes stores them: x, y, z, intensity, ring.
"""

from __future__ import annotations

import numpy as np

from imkd_ros.rig.rig import LidarSpec
from imkd_ros.world.sim import MATERIAL_REFLECT, SceneSim, Snapshot


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
        cond = sim.scene.condition
        self.drop = {"day": 0.03, "night": 0.03, "rain": 0.1, "fog": 0.15}[cond]
        self.atten = {"day": 0.0, "night": 0.0, "rain": 0.012, "fog": 0.03}[cond]  # 1/m extinction

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
        gxy = o[None, :2] + dirs_w[gi, :2] * tg[gi, None]
        _, mat = self.sim.ground_lookup(gxy)
        refl[gi] = MATERIAL_REFLECT[mat]
        cosi[gi] = np.abs(dz[gi])
        # Parts near enough.
        pc = snap.part_center
        rel = pc - o
        rad = np.linalg.norm(snap.part_half, axis=1)
        dist = np.linalg.norm(rel, axis=1)
        cand = np.flatnonzero(dist - rad < spec.max_range)
        if len(cand):
            corners_s = (snap.part_corners[cand] - o) @ rot  # sensor frame (P, 8, 3)
            cen_s = rel[cand] @ rot
            az_c = np.arctan2(cen_s[:, 1], cen_s[:, 0])
            caz = np.arctan2(corners_s[..., 1], corners_s[..., 0])
            daz = (caz - az_c[:, None] + np.pi) % (2 * np.pi) - np.pi
            az_lo = az_c + daz.min(1)
            az_hi = az_c + daz.max(1)
            horiz = np.hypot(corners_s[..., 0], corners_s[..., 1])
            cel = np.arctan2(corners_s[..., 2], horiz)
            el_lo, el_hi = cel.min(1), cel.max(1)
            inside = dist[cand] <= rad[cand]  # sensor within the part's sphere: test everything
            step = 2 * np.pi / na
            b_lo = np.searchsorted(self.elev, el_lo - 1e-9)
            b_hi = np.searchsorted(self.elev, el_hi + 1e-9)
            i_lo = np.floor((az_lo + np.pi) / step - 0.5).astype(np.int64)
            i_hi = np.ceil((az_hi + np.pi) / step - 0.5).astype(np.int64)
            axes = snap.part_axes[cand]
            half = snap.part_half[cand]
            for j in range(len(cand)):
                if inside[j]:
                    bsel = np.arange(nb)
                    asel = np.arange(na)
                else:
                    if b_hi[j] <= b_lo[j]:
                        continue
                    bsel = np.arange(b_lo[j], b_hi[j])
                    asel = np.arange(i_lo[j], i_hi[j] + 1) % na
                idx = (bsel[:, None] * na + asel[None, :]).ravel()
                r = axes[j]
                ol = (o - pc[cand[j]]) @ r  # origin in the part frame
                dl = dirs_w[idx] @ r
                with np.errstate(divide="ignore", invalid="ignore"):
                    inv = 1.0 / dl
                    t1 = (-half[j] - ol) * inv
                    t2 = (half[j] - ol) * inv
                tmin = np.nanmax(np.minimum(t1, t2), axis=1)
                tmax = np.nanmin(np.maximum(t1, t2), axis=1)
                hit = (tmax >= tmin) & (tmin > 0.05) & (tmin < t_best[idx])
                if not hit.any():
                    continue
                hi_idx = idx[hit]
                t_best[hi_idx] = tmin[hit]
                p = cand[j]
                refl[hi_idx] = snap.part_reflect[p]
                # Incidence: the face hit is the axis where tmin came from.
                tt = np.minimum(t1, t2)[hit]
                ax = np.argmax(tt, axis=1)
                cosi[hi_idx] = np.abs(dl[hit][np.arange(len(ax)), ax])
                owner[hi_idx] = snap.part_owner[p]
        valid = np.isfinite(t_best) & (t_best < spec.max_range) & (t_best > 0.5)
        n_all = nb * na
        # Detection probability falls with range for dark surfaces; random dropouts; weather.
        tb = np.where(np.isfinite(t_best), t_best, 1e3)
        strength = refl * (0.3 + 0.7 * cosi) * np.exp(-2 * self.atten * tb) / (1 + (tb / 45.0) ** 2)
        u = rng.random(n_all)
        valid &= u > self.drop
        valid &= strength > 0.6 * rng.random(n_all) + 0.15
        idx = np.flatnonzero(valid)
        t = t_best[idx] + rng.normal(0, spec.range_sigma, len(idx))
        pts = self.dirs.reshape(-1, 3)[idx] * t[:, None]
        inten = np.clip(strength[idx] * (1 + rng.normal(0, 0.1, len(idx))), 0, 255)
        ring = (idx // na).astype(np.float64)
        out = np.concatenate([pts, inten[:, None], ring[:, None]], axis=1).astype(np.float32)
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
