"""Pinhole camera simulation: z-buffered rasterisation of box parts, textured ground, sky, weather.

Per camera and render resolution, the pixel rays are fixed (the world is flat and the rig rigid),
so the ground intersection of every pixel in the ego frame is precomputed once; a frame then only
moves those points into the world and samples the ground map. Object parts are drawn face by face
with an exact per-pixel inverse-depth test (1/z is affine in (u, v) on a planar face), so
occlusion is correct even for long interpenetrating silhouettes. Images are rendered at
``render_scale`` x the sensor resolution and upsampled: the network sees them downscaled anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from imkd_ros.rig.geometry import Transform
from imkd_ros.rig.rig import CameraSpec
from imkd_ros.world.raster import fill_mask, paint_faces, scatter_faces, zbuffer_faces
from imkd_ros.world.sim import FACE_NORMALS, FACES, SceneSim, Snapshot

NEAR = 0.15
SKY_TOP = {"day": (95, 140, 205), "night": (6, 8, 16), "rain": (120, 125, 132), "fog": (185, 188, 192)}
SKY_HORIZON = {"day": (190, 210, 230), "night": (20, 22, 30), "rain": (165, 168, 172), "fog": (200, 202, 205)}


@dataclass
class RenderResult:
    image: np.ndarray  # (H, W, 3) uint8 RGB (BGR if rendered with bgr=True) at sensor resolution
    #                    (at render resolution if rendered with upsample=False)
    owner: np.ndarray | None  # (h, w) int32 at render resolution: agent index, -1 background, <= -2 prop
    depth: np.ndarray | None  # (h, w) float32 optical-axis depth at render resolution (inf = sky)
    scale: float  # render resolution / sensor resolution


_TABLE_CACHE: dict[tuple, _CamTables] = {}


class _CamTables:
    """Per (camera, render size) precomputation: pixel rays and their ground hits in the ego frame."""

    def __init__(self, cam: CameraSpec, scale: float):
        w = max(int(round(cam.width * scale)), 8)
        h = max(int(round(cam.height * scale)), 8)
        self.w, self.h = w, h
        sx, sy = w / cam.width, h / cam.height
        k = cam.intrinsics.copy()
        k[0] *= sx
        k[1] *= sy
        self.k = k
        self.us = np.arange(w, dtype=np.float64) + 0.5
        self.vs = np.arange(h, dtype=np.float64) + 0.5
        self.xn = (self.us - k[0, 2]) / k[0, 0]
        self.yn = (self.vs - k[1, 2]) / k[1, 1]
        rays_cam = np.stack(np.broadcast_arrays(self.xn[None, :], self.yn[:, None], 1.0), axis=-1)  # (h, w, 3)
        to_ego = cam.to_ego
        rays_ego = rays_cam @ to_ego.rotation.T
        origin = to_ego.translation
        dz = rays_ego[..., 2]
        ground = dz < -1e-4
        tz = np.where(ground, -origin[2] / np.where(ground, dz, -1.0), np.inf)
        ground &= tz < 400.0  # ignore hits beyond the map / horizon band
        self.ground_idx = np.flatnonzero(ground.ravel())
        # Level cameras: the ground is every pixel below the horizon row, one contiguous block;
        # a slice assignment is much cheaper than fancy indexing.
        g = self.ground_idx
        contiguous = len(g) > 0 and g[-1] - g[0] + 1 == len(g)
        self.ground_sel = slice(int(g[0]), int(g[-1]) + 1) if contiguous else g
        gp = origin[None, :2] + rays_ego.reshape(-1, 3)[self.ground_idx, :2] * tz.ravel()[self.ground_idx, None]
        self.ground_ego = gp  # (G, 2) ego-frame ground points
        self.ground_ego32 = gp.astype(np.float32)
        self.ground_depth = tz.ravel()[self.ground_idx].astype(np.float32)  # optical depth = t (ray z = 1)
        # Elevation of each ray (for the sky gradient).
        norm = np.linalg.norm(rays_ego, axis=-1)
        self.elev = np.arcsin(np.clip(rays_ego[..., 2] / norm, -1, 1)).astype(np.float32)
        # Horizontal bearing of each pixel column (for ego headlights at night).
        self.ray_ego = rays_ego.astype(np.float32)
        self.sky: dict[tuple, np.ndarray] = {}  # sky gradient per (condition, camera gain)
        self.noise: np.ndarray | None = None
        self.sky8: dict[tuple, np.ndarray] = {}
        self.noise8: tuple[np.ndarray, np.ndarray] | None = None
        self.rain: np.ndarray | None = None
        self.night_gain: np.ndarray | None = None


class CameraSim:
    """Renders one scene for a rig; holds per-camera tables and noise textures."""

    def __init__(self, sim: SceneSim, cameras: list[CameraSpec], seed: int):
        self.sim = sim
        self.cameras = cameras
        self.condition = sim.scene.condition
        self._tables: dict[tuple[str, float], _CamTables] = {}
        rng = np.random.default_rng(np.random.SeedSequence([seed, 5]))
        self.rain_tile = self._make_rain(rng) if self.condition == "rain" else None
        self.fog_visibility = float(rng.uniform(35.0, 90.0))

    def tables(self, cam: CameraSpec, scale: float) -> _CamTables:
        key = (cam.name, scale)
        if key not in self._tables:
            # Shared across scenes of the same rig (the pixel rays only depend on the camera).
            gkey = (cam.name, cam.width, cam.height, scale, cam.intrinsics.tobytes(), cam.translation.tobytes(),
                    np.asarray(cam.rotation, np.float64).tobytes())
            tb = _TABLE_CACHE.get(gkey)
            if tb is None:
                if len(_TABLE_CACHE) > 64:
                    _TABLE_CACHE.clear()
                tb = _TABLE_CACHE[gkey] = _CamTables(cam, scale)
            self._tables[key] = tb
        return self._tables[key]

    @staticmethod
    def _make_rain(rng: np.random.Generator) -> np.ndarray:
        tile = np.zeros((512, 512), np.float32)
        for _ in range(700):
            x, y = rng.integers(0, 512, 2)
            ln = int(rng.integers(8, 30))
            dx = int(ln * 0.15)
            cv2.line(tile, (int(x), int(y)), (int(x + dx), int(y + ln)), float(rng.uniform(0.3, 1.0)), 1)
        return cv2.GaussianBlur(tile, (3, 3), 0.8)

    # ------------------------------------------------------------------------------------------
    def render(self, cam: CameraSpec, snap: Snapshot, scale: float, rng: np.random.Generator,
               keep_buffers: bool = False, exact: bool = True, bgr: bool = False,
               upsample: bool = True) -> RenderResult:
        """``exact`` = per-pixel z-buffer; False = painter's algorithm by face (cheap sweep frames).
        ``bgr``: channels in OpenCV order (for cv2.imencode), swapped before the upsampling, where it
        costs a fraction (the resize treats channels alike, so the bytes are the same).
        ``upsample=False`` keeps the render resolution (world/jpeg.py upsamples while encoding)."""
        tb = self.tables(cam, scale)
        h, w = tb.h, tb.w
        cam_to_world = snap.ego @ cam.to_ego
        world_to_cam = cam_to_world.inverse()
        cond = self.condition
        night = cond == "night"

        # --- background: sky gradient + ground texture --------------------------------------
        gain = self.sim.camera_gain
        skey = (cond, gain.tobytes())
        if skey not in tb.sky:
            top = np.asarray(SKY_TOP[cond], np.float32)
            hor = np.asarray(SKY_HORIZON[cond], np.float32)
            f = np.clip(tb.elev / 0.6, 0, 1)[..., None]
            if len(tb.sky) > 32:
                tb.sky.clear()
                tb.sky8.clear()
            tb.sky[skey] = ((hor * (1 - f) + top * f) * gain).reshape(-1, 3)
            tb.sky8[skey] = np.clip(tb.sky[skey], 0, 255).astype(np.uint8)
        if tb.noise is None:
            nrng = np.random.default_rng(np.random.SeedSequence([tb.w, tb.h, 17]))
            tb.noise = nrng.normal(0, 1, (h + 32, w + 32, 3)).astype(np.float32)
        fast = cond == "day"  # no per-pixel lighting: stay in uint8 (saturating OpenCV adds)
        img = tb.sky8[skey].copy() if fast else tb.sky[skey].copy()
        need_depth = keep_buffers or cond in ("fog", "rain")
        # Ground pixels -> world xy, directly in map-pixel units (float32: 0.1 m cells, |xy| < 1 km).
        if night:
            grgb, glit = self.sim.ground_rgb_from_ego(tb.ground_ego32, snap.ego, night=True)
        else:
            grgb = self.sim.ground_rgb_from_ego(tb.ground_ego32, snap.ego)
        if fast:
            img[tb.ground_sel] = grgb
        else:
            gcol = grgb.astype(np.float32)
            if cond == "rain":
                gcol *= 0.72  # wet asphalt is darker
            if night:
                # Lamp-lit ground (baked) plus the ego's headlights on the plain ground texture.
                gcol *= self._night_ground_light(tb, snap) - np.float32(0.1)
                gcol += glit
            img[tb.ground_sel] = gcol
        img = img.reshape(h, w, 3)
        if cond != "night":
            self._shadows(img, tb, snap, world_to_cam, fast)
        depth = None
        if need_depth:
            depth = np.full(h * w, np.inf, np.float32)
            depth[tb.ground_sel] = tb.ground_depth
            depth = depth.reshape(h, w)

        # --- objects ------------------------------------------------------------------------
        face_buf, invz, faces = self._rasterize(tb, snap, world_to_cam, cam_to_world, exact, need_depth)
        owner = np.full((h, w), -1, np.int32) if keep_buffers else None
        if faces is not None:
            col = faces["color"]
            if fast:
                col = np.clip(col, 0, 255).astype(np.uint8)
            scatter_faces(face_buf, np.ascontiguousarray(col, img.dtype), img)
            if depth is not None or owner is not None:
                flat_buf = face_buf.reshape(-1)
                hit = np.flatnonzero(flat_buf >= 0)  # flat pixel indices: cheaper than boolean masks
                if depth is not None:
                    depth.reshape(-1)[hit] = 1.0 / invz.reshape(-1)[hit]
                if owner is not None:
                    owner.reshape(-1)[hit] = faces["owner_code"][flat_buf[hit]]

        # --- conditions + sensor noise (shifted precomputed noise: cheap and deterministic) -------
        oy, ox = (int(v) for v in rng.integers(0, 32, 2))
        sigma = {"day": 3.0, "night": 6.0, "rain": 4.0, "fog": 3.0}[cond]
        if fast:
            if tb.noise8 is None:
                n = tb.noise[..., :] * 3.0
                tb.noise8 = (np.clip(n, 0, 255).astype(np.uint8), np.clip(-n, 0, 255).astype(np.uint8))
            pos, neg = tb.noise8
            img8 = cv2.subtract(cv2.add(img, pos[oy:oy + h, ox:ox + w]), neg[oy:oy + h, ox:ox + w])
        else:
            img = self._weather(img, depth, tb, rng, faces, face_buf)
            img += tb.noise[oy:oy + h, ox:ox + w] * np.float32(sigma)
            np.clip(img, 0, 255, out=img)
            img8 = img.astype(np.uint8)
        if bgr:
            img8 = cv2.cvtColor(img8, cv2.COLOR_RGB2BGR)
        if upsample and (w, h) != (cam.width, cam.height):
            img8 = cv2.resize(img8, (cam.width, cam.height), interpolation=cv2.INTER_LINEAR)
        return RenderResult(img8, owner, depth if keep_buffers else None, scale)

    def _shadows(self, img: np.ndarray, tb: _CamTables, snap: Snapshot, world_to_cam: Transform,
                 fast: bool) -> None:
        """Darken the ground under and behind every object: sun shadows by day, soft contact
        shadows under overcast skies (rain, fog). Drawn before the objects, which overwrite it."""
        sim = self.sim
        base, yaw = snap.obj_base, snap.obj_yaw
        lo, hi = sim.obj_lo, sim.obj_hi
        sun = sim.sun
        if self.condition == "day":
            reach = 1.0 / max(np.tan(np.arcsin(sun[2])), 0.3)  # shadow length per metre of height
            shift = -np.array([sun[0], sun[1]]) / max(np.hypot(sun[0], sun[1]), 1e-6) * reach
            grow, factor = 0.0, 0.55
        else:
            shift, grow, factor = np.zeros(2), 0.25, 0.75
        # Cull by a bounding circle of each shadow against the camera's view cone.
        ctr_l = (lo + hi) / 2
        c_all, s_all = np.cos(yaw), np.sin(yaw)
        cx = base[:, 0] + c_all * ctr_l[:, 0] - s_all * ctr_l[:, 1] + shift[0] * hi[:, 2] / 2
        cy = base[:, 1] + s_all * ctr_l[:, 0] + c_all * ctr_l[:, 1] + shift[1] * hi[:, 2] / 2
        rad = np.hypot(hi[:, 0] - lo[:, 0], hi[:, 1] - lo[:, 1]) / 2 + grow + np.hypot(*shift) * hi[:, 2] / 2
        pc = world_to_cam.apply(np.column_stack([cx, cy, np.zeros(len(cx))]))
        hx = np.maximum(tb.w - tb.k[0, 2], tb.k[0, 2]) / tb.k[0, 0]
        ok = (pc[:, 2] > -rad) & (pc[:, 2] < 80.0 + rad)
        ok &= np.abs(pc[:, 0]) < hx * np.maximum(pc[:, 2], 0) + rad * np.sqrt(1 + hx * hx)
        idx = np.flatnonzero(ok)
        if len(idx) == 0:
            return
        # Footprint corners (M, 4, 2) and their sun-shifted copies; the shadow is their convex hull,
        # drawn as the two quads plus the four swept edge parallelograms (all convex, no hull needed).
        fx = np.array([0, 1, 1, 0], bool)
        fy = np.array([0, 0, 1, 1], bool)
        lx = np.where(fx, hi[idx, 0:1] + grow, lo[idx, 0:1] - grow)
        ly = np.where(fy, hi[idx, 1:2] + grow, lo[idx, 1:2] - grow)
        c, s_ = np.cos(yaw[idx])[:, None], np.sin(yaw[idx])[:, None]
        foot = np.stack([base[idx, 0:1] + c * lx - s_ * ly, base[idx, 1:2] + s_ * lx + c * ly], -1)
        polys = [foot]
        if shift.any():
            moved = foot + shift * hi[idx, 2][:, None, None]
            polys.append(moved)
            for e in range(4):
                f = (e + 1) % 4
                polys.append(np.stack([foot[:, e], foot[:, f], moved[:, f], moved[:, e]], 1))
        quads = np.concatenate(polys, 0)  # (Q, 4, 2) on the ground
        pc = world_to_cam.apply(np.concatenate([quads.reshape(-1, 2), np.zeros((quads.size // 2, 1))], 1))
        pc = pc.reshape(-1, 4, 3)
        zmin = pc[..., 2].min(1)
        k = tb.k
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = pc[..., :2] / pc[..., 2:3] * (k[0, 0], k[1, 1]) + (k[0, 2], k[1, 2])
        vis = (pc[..., 2].max(1) > NEAR) & ~((uv[..., 0] < 0).all(1) & (zmin >= NEAR)) & ~(
            (uv[..., 0] >= tb.w).all(1) & (zmin >= NEAR)) & ~((uv[..., 1] >= tb.h).all(1) & (zmin >= NEAR))
        # Polygon table for the compiled fill: the projected quads, near-clipped ones re-projected.
        qs = np.flatnonzero(vis)
        if len(qs) == 0:
            return
        uv_tab = np.zeros((len(qs), 8, 2))
        uv_tab[:, :4] = np.clip(uv[qs], -4 * tb.w, 4 * tb.w)
        nv = np.full(len(qs), 4, np.int64)
        for j in np.flatnonzero(zmin[qs] < NEAR).tolist():
            poly = _clip_near(pc[qs[j]], NEAR)
            nv[j] = 0 if poly is None else len(poly)
            if poly is not None:
                p2 = poly[:, :2] / poly[:, 2:3] * (k[0, 0], k[1, 1]) + (k[0, 2], k[1, 2])
                uv_tab[j, :nv[j]] = np.clip(p2, -4 * tb.w, 4 * tb.w)
        mask = np.zeros((tb.h, tb.w), np.uint8)
        fill_mask(mask, uv_tab, nv)
        if fast:
            cv2.copyTo(cv2.convertScaleAbs(img, alpha=factor), mask, img)
        else:
            np.multiply(img, np.float32(factor), out=img, where=mask[..., None] > 0)

    def _night_ground_light(self, tb: _CamTables, snap: Snapshot) -> np.ndarray:
        """Ego headlights on the ground, as a per-ground-pixel gain (fixed in the ego frame: cached)."""
        if tb.night_gain is not None:
            return tb.night_gain
        ge = tb.ground_ego
        x, y = ge[:, 0], ge[:, 1]
        cone = np.clip(1.0 - np.abs(y) / (0.35 * np.maximum(x, 0.1) + 1.0), 0, 1) * (x > 2.0)
        head = cone * np.clip(1.0 - x / 45.0, 0, 1) ** 1.5 * 0.9
        gain = 0.1 + head
        tb.night_gain = gain.astype(np.float32)[:, None]
        return tb.night_gain

    def _rasterize(self, tb: _CamTables, snap: Snapshot, world_to_cam: Transform, cam_to_world: Transform,
                   exact: bool = True, need_depth: bool = True):
        """Face index per pixel, 1/z per pixel (only filled where a face is and, for the painter's
        algorithm, only when ``need_depth``) and the faces' colours / owners."""
        h, w = tb.h, tb.w
        face_buf = np.full((h, w), -1, np.int32)
        invz = np.zeros((h, w), np.float64)
        corners = snap.part_corners
        assert corners is not None and snap.part_half is not None and snap.part_center is not None \
            and snap.part_axes is not None, "the renderer needs a snapshot with parts"
        if len(corners) == 0:
            return face_buf, invz, None
        cam_pos = cam_to_world.translation
        # Cheap sphere cull on part centres (view cone + range), then exact corner tests.
        hx = np.maximum(w - tb.k[0, 2], tb.k[0, 2]) / tb.k[0, 0]
        hy = np.maximum(h - tb.k[1, 2], tb.k[1, 2]) / tb.k[1, 1]
        rad = np.sqrt((snap.part_half ** 2).sum(1))
        pcen = world_to_cam.apply(snap.part_center)
        zc = pcen[:, 2]
        pre = (zc > -rad) & (zc < 150.0 + rad)
        pre &= np.abs(pcen[:, 0]) < hx * np.maximum(zc, 0) + rad * np.sqrt(1 + hx * hx)
        pre &= np.abs(pcen[:, 1]) < hy * np.maximum(zc, 0) + rad * np.sqrt(1 + hy * hy)
        sel = np.flatnonzero(pre)
        if len(sel) == 0:
            return face_buf, invz, None
        cc_sel = world_to_cam.apply(corners[sel].reshape(-1, 3)).reshape(-1, 8, 3)
        zmax = cc_sel[..., 2].max(1)
        keep = np.zeros(len(corners), np.bool_)
        keep[sel] = zmax > NEAR
        cc = np.zeros((len(corners), 8, 3))
        cc[sel] = cc_sel
        pidx = np.flatnonzero(keep)
        if len(pidx) == 0:
            return face_buf, invz, None
        # Faces of kept parts: world normals, back-face culling.
        normals = np.einsum("pij,fj->pfi", snap.part_axes[pidx], FACE_NORMALS)  # (P, 6, 3)
        fcorn = corners[pidx][:, FACES]  # (P, 6, 4, 3)
        fcen = fcorn.mean(2)
        front = (normals * (fcen - cam_pos)).sum(-1) < 0
        pi, fi = np.nonzero(front)
        if len(pi) == 0:
            return face_buf, invz, None
        n_w = normals[pi, fi]
        verts_cam = cc[pidx][pi][np.arange(len(pi))[:, None], FACES[fi]]  # (F, 4, 3)
        n_c = n_w @ world_to_cam.rotation.T
        d = (n_c * verts_cam[:, 0]).sum(-1)  # plane: n.X = d (d < 0 for front faces)
        k = tb.k
        # inverse depth = A u + B v + C with u, v pixel coordinates.
        a_c = n_c[:, 0] / (k[0, 0] * d)
        b_c = n_c[:, 1] / (k[1, 1] * d)
        c_c = (n_c[:, 2] - n_c[:, 0] * k[0, 2] / k[0, 0] - n_c[:, 1] * k[1, 2] / k[1, 1]) / d
        # Shading: Lambert with sun + sky ambient; emissive parts glow.
        part = pidx[pi]
        col = self._shade(snap, part, n_w, fcen[pi, fi])
        owner_code = np.where(snap.part_owner[part] >= 0, snap.part_owner[part], -2).astype(np.int32)
        zc = verts_cam[..., 2]
        nearest = zc.min(1)
        uvz = verts_cam @ k.T
        with np.errstate(divide="ignore", invalid="ignore"):
            uv_all = uvz[..., :2] / uvz[..., 2:3]
        clipped = nearest < NEAR
        polys: list = [None] * len(pi)
        for f in np.flatnonzero(clipped):
            poly = _clip_near(verts_cam[f], NEAR)
            if poly is not None:
                p = poly @ k.T
                polys[f] = p[:, :2] / p[:, 2:3]
        safe = np.where(clipped[:, None, None], 0.0, uv_all)
        bx0 = np.clip(np.floor(safe[..., 0].min(1)), 0, w).astype(np.int64)
        bx1 = np.clip(np.ceil(safe[..., 0].max(1)) + 1, 0, w).astype(np.int64)
        by0 = np.clip(np.floor(safe[..., 1].min(1)), 0, h).astype(np.int64)
        by1 = np.clip(np.ceil(safe[..., 1].max(1)) + 1, 0, h).astype(np.int64)
        order = np.argsort(nearest)  # front to back: fewer overwrites
        if not exact:
            # Painter's algorithm, far to near by face-centre distance; sub-pixel faces of distant
            # details (lights, wheels) are skipped (their object's body still covers the pixel).
            order = np.argsort(-np.linalg.norm(verts_cam.mean(1), axis=1))
            span = (safe[..., 0].max(1) - safe[..., 0].min(1)) * (safe[..., 1].max(1) - safe[..., 1].min(1))
            order = order[(span[order] >= 0.5) | clipped[order]]
        # Unclipped faces whose box misses the image draw nothing: drop them before the Python loop.
        order = order[clipped[order] | ((bx1[order] > bx0[order]) & (by1[order] > by0[order]))]
        # Vertex table for the compiled fills: the 4 projected corners, or the near-clipped polygon.
        kmax = max([4] + [len(p) for p in polys if p is not None])
        uv_tab = np.zeros((len(pi), kmax, 2))
        uv_tab[:, :4] = safe
        nv = np.full(len(pi), 4, np.int64)
        for f in np.flatnonzero(clipped).tolist():
            nv[f] = 0 if polys[f] is None else len(polys[f])
            if nv[f]:
                uv_tab[f, :nv[f]] = polys[f]
        faces = {"color": col, "owner_code": owner_code}
        if exact:
            zbuffer_faces(face_buf, invz, uv_tab, nv, order.astype(np.int64), a_c, b_c, c_c, tb.us, tb.vs)
            return face_buf, invz, faces
        paint_faces(face_buf, uv_tab, nv, order.astype(np.int64))
        if need_depth:
            vv, uu = np.nonzero(face_buf >= 0)
            fb = face_buf[vv, uu]
            invz[vv, uu] = a_c[fb] * tb.us[uu] + b_c[fb] * tb.vs[vv] + c_c[fb]
        return face_buf, invz, faces

    def _shade(self, snap: Snapshot, part: np.ndarray, n_w: np.ndarray, centers: np.ndarray) -> np.ndarray:
        cond = self.condition
        base = snap.part_color[part].astype(np.float32)
        emis = snap.part_emissive[part]
        if cond == "night":
            # Ambient moonlight + ego headlights on objects ahead.
            rel = snap.ego.inverse().apply(centers)
            x, y = rel[:, 0], rel[:, 1]
            cone = np.clip(1.0 - np.abs(y) / (0.35 * np.maximum(x, 0.1) + 1.5), 0, 1) * (x > 1.0)
            lit = 0.1 + cone * np.clip(1.0 - x / 50.0, 0, 1) * 0.9
            lit = np.minimum(lit + self.sim.lamp_light(centers[:, :2]) * (0.6 + 0.4 * np.clip(n_w[:, 2], 0, 1)), 1.3)
            col = base * lit[:, None]
            col *= self.sim.camera_gain
            col[emis == 1] = (255, 250, 230)
            col[emis == 2] = (255, 40, 30)
            return col
        sun = self.sim.sun
        diff = np.clip(n_w @ sun, 0, 1)
        up = np.clip(n_w[:, 2], 0, 1)
        if cond == "day":
            lit = 0.45 + 0.55 * diff + 0.1 * up
        else:  # overcast: soft light, little directionality
            lit = 0.6 + 0.15 * diff + 0.2 * up
        col = base * lit[:, None].astype(np.float32)
        col[emis == 2] = np.maximum(col[emis == 2], (170, 25, 25))
        return np.clip(col * self.sim.camera_gain, 0, 255)

    def _weather(self, img: np.ndarray, depth: np.ndarray | None, tb: _CamTables, rng: np.random.Generator,
                 faces, face_buf) -> np.ndarray:
        cond = self.condition
        if cond == "fog":
            assert depth is not None, "fog needs the depth buffer"
            vis = self._fog_vis
            a = np.exp(-np.minimum(depth, 1e4) / vis)[..., None]
            fogc = np.asarray(SKY_HORIZON["fog"], np.float32)
            img = img * a + fogc * (1 - a)
        elif cond == "rain":
            assert depth is not None, "rain needs the depth buffer"
            a = np.exp(-np.minimum(depth, 1e4) / 180.0)[..., None]
            img = img * (0.85 * a + 0.15) + np.float32(150.0) * (1 - (0.85 * a + 0.15))
            if self.rain_tile is not None:
                if tb.rain is None:
                    reps = (tb.h // 512 + 2, tb.w // 512 + 2)
                    tb.rain = np.tile(self.rain_tile, reps)[..., None] * np.float32(55.0)
                oy, ox = (int(v) for v in rng.integers(0, 512, 2))
                img = img + tb.rain[oy:oy + tb.h, ox:ox + tb.w]
        elif cond == "night":
            # Glow around lamps / lights: blur the bright part and add.
            bright = np.clip(img - 200.0, 0, None)
            if bright.max() > 0:
                img = img + cv2.GaussianBlur(bright, (0, 0), 3.0) * 1.5
        return img

    @property
    def _fog_vis(self) -> float:
        return getattr(self, "fog_visibility", 55.0)


def _clip_near(poly: np.ndarray, near: float) -> np.ndarray | None:
    """Sutherland-Hodgman clip of a polygon (K, 3) against z >= near."""
    out = []
    n = len(poly)
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        ina, inb = a[2] >= near, b[2] >= near
        if ina:
            out.append(a)
        if ina != inb:
            t = (near - a[2]) / (b[2] - a[2])
            out.append(a + t * (b - a))
    return np.asarray(out) if len(out) >= 3 else None
