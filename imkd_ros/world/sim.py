"""A scene made renderable: ground-texture map, per-object part meshes, and world snapshots.

``SceneSim.snapshot(t)`` gives every cuboid part of every object (annotated agents and props) in
the world frame at time ``t``, plus the ego pose; the camera, LiDAR and radar simulators all
consume the same snapshot so the three sensors agree on the geometry.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from imkd_ros.rig.geometry import Transform
from imkd_ros.world.meshes import Mesh, build_mesh, prop_mesh
from imkd_ros.world.raster import gather_ground
from imkd_ros.world.scene import Road, Scene

MAP_RES = 0.1  # m per ground-map pixel
# Ground materials (LiDAR reflectivity classes), stored in the material raster.
MAT_GRASS, MAT_SIDEWALK, MAT_ROAD, MAT_MARKING = 0, 1, 2, 3
MATERIAL_REFLECT = np.array([28.0, 35.0, 12.0, 95.0])

# (ix, iy, iz) bit order of the 8 corners of a part: corner c uses x1 if c & 1, y1 if c & 2, z1 if c & 4.
CORNER_BITS = np.array([[c & 1, (c >> 1) & 1, (c >> 2) & 1] for c in range(8)])
# Faces as cyclic corner lists with their outward local normals.
FACES = np.array([[0, 2, 6, 4], [1, 3, 7, 5], [0, 1, 5, 4], [2, 3, 7, 6], [0, 1, 3, 2], [4, 5, 7, 6]])
FACE_NORMALS = np.array([[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]], dtype=np.float64)


@dataclass
class Snapshot:
    """Everything at one instant, world frame."""

    t: float
    ego: Transform  # ego -> global
    ego_vel: np.ndarray  # (2,) world
    ego_yaw_rate: float
    centers: np.ndarray  # (N, 3) annotated boxes
    yaws: np.ndarray  # (N,)
    velocities: np.ndarray  # (N, 2)
    part_corners: np.ndarray | None  # (P, 8, 3) all parts (agents then props); None if not built
    part_axes: np.ndarray | None  # (P, 3, 3) columns = local x, y, z axes in world
    part_center: np.ndarray | None  # (P, 3)
    part_half: np.ndarray | None  # (P, 3)
    part_owner: np.ndarray  # (P,) agent index, or -1 - prop index for props
    part_color: np.ndarray  # (P, 3)
    part_emissive: np.ndarray  # (P,)
    part_reflect: np.ndarray  # (P,)
    obj_base: np.ndarray  # (M,) bottom-centre of every object (agents then props), world
    obj_yaw: np.ndarray  # (M,)


class SceneSim:
    map_rgb: np.ndarray  # (H, W, 3) uint8 ground texture, set by _build_map
    map_mat: np.ndarray  # (H, W) uint8 material classes

    def __init__(self, scene: Scene):
        self.scene = scene
        self.meshes: list[Mesh] = [
            build_mesh(a.cls, a.size, a.appearance, a.rider, a.kind) for a in scene.agents
        ]
        self._build_parts()
        self._build_map()
        rng = np.random.default_rng(np.random.SeedSequence([scene.seed, zlib.crc32(scene.name.encode()), 11]))
        az = rng.uniform(-np.pi, np.pi)
        el = rng.uniform(0.45, 1.1)
        self.sun = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
        # Per-scene camera exposure and white balance (one global colour transform per scene,
        # applied to the ground texture, sky and object shading: no per-pixel cost).
        gain = rng.uniform(0.85, 1.15) * np.clip(1.0 + rng.normal(0.0, 0.04, 3), 0.9, 1.1)
        self.camera_gain = gain.astype(np.float32)
        self.map_rgb = _apply_gain_u8(self.map_rgb, self.camera_gain)
        self._rgb_flat = self.map_rgb.reshape(-1, 3)
        # Street lamps (the pole props' lamp heads): at night they light pools on the ground and
        # the objects near them; the lit ground is baked into a second map.
        lamps = [p.center[:2] + np.array([np.sin(p.yaw), -np.cos(p.yaw)]) * 1.25 for p in scene.props
                 if p.kind == "pole"]
        self.lamps = np.array(lamps).reshape(-1, 2)
        self._night_flat = None
        if scene.condition == "night":
            self._night_flat = self._bake_night_map().reshape(-1, 3)

    # --- geometry ----------------------------------------------------------------------------------
    def _build_parts(self) -> None:
        boxes, colors, emis, refl, owner = [], [], [], [], []
        for k, m in enumerate(self.meshes):
            boxes.append(m.boxes)
            colors.append(m.colors)
            emis.append(m.emissive)
            refl.append(m.reflect)
            owner.append(np.full(len(m.boxes), k))
        n_agent_parts = sum(len(b) for b in boxes)
        # Props are static: their world geometry is fixed.
        pb, pc, pe, pr, po, pyaw, pcen = [], [], [], [], [], [], []
        for j, p in enumerate(self.scene.props):
            m = prop_mesh(p.kind, p.size, p.color)
            pb.append(m.boxes)
            pc.append(m.colors)
            pe.append(m.emissive)
            pr.append(m.reflect)
            po.append(np.full(len(m.boxes), -1 - j))
            pyaw.append(np.full(len(m.boxes), p.yaw))
            pcen.append(np.repeat(p.center[None], len(m.boxes), axis=0))
        self.agent_boxes = np.concatenate(boxes) if boxes else np.zeros((0, 6))
        self.agent_part_owner = np.concatenate(owner).astype(np.int64) if owner else np.zeros(0, np.int64)
        self.n_agent_parts = n_agent_parts
        self.part_color = np.concatenate(colors + pc) if (colors or pc) else np.zeros((0, 3))
        self.part_emissive = np.concatenate(emis + pe) if (emis or pe) else np.zeros(0, np.int8)
        self.part_reflect = np.concatenate(refl + pr) if (refl or pr) else np.zeros(0)
        prop_owner = np.concatenate(po).astype(np.int64) if po else np.zeros(0, np.int64)
        self.part_owner = np.concatenate([self.agent_part_owner, prop_owner])
        # Objects (agents then props): their parts are contiguous; local part boxes and bounds.
        local = [*boxes, *pb]
        self.obj_part_start = np.cumsum([0] + [len(b) for b in local])[:-1].astype(np.int64)
        self.obj_part_end = np.cumsum([len(b) for b in local]).astype(np.int64)
        self.part_local = np.concatenate(local) if local else np.zeros((0, 6))
        self.obj_lo = np.array([b[:, [0, 2, 4]].min(0) for b in local]).reshape(-1, 3)
        self.obj_hi = np.array([b[:, [1, 3, 5]].max(0) for b in local]).reshape(-1, 3)
        self.prop_base = np.array([p.center for p in self.scene.props]).reshape(-1, 3)
        self.prop_yaw = np.array([p.yaw for p in self.scene.props])
        if pb:
            pbox = np.concatenate(pb)
            yaw = np.concatenate(pyaw)
            cen = np.concatenate(pcen)
            self.prop_geom = _place_parts(pbox, yaw, cen)
        else:
            self.prop_geom = tuple(np.zeros((0,) + s) for s in ((8, 3), (3, 3), (3,), (3,)))

    def snapshot(self, t: float, parts: bool = True) -> Snapshot:
        """World state at ``t``; ``parts=False`` skips the per-part geometry (radar, LiDAR, labels)."""
        sc = self.scene
        centers, yaws, vel = sc.agent_states(t)
        exy, eyaw, evel, eyr = sc.ego_state(t)
        ego = Transform.from_yaw(eyaw, [exy[0], exy[1], 0.0])
        obj_base = np.concatenate([np.column_stack([centers[:, :2], np.zeros(len(centers))]), self.prop_base])
        obj_yaw = np.concatenate([yaws, self.prop_yaw])
        if not parts:
            return Snapshot(t=t, ego=ego, ego_vel=evel, ego_yaw_rate=eyr, centers=centers, yaws=yaws,
                            velocities=vel, part_corners=None, part_axes=None, part_center=None, part_half=None,
                            part_owner=self.part_owner, part_color=self.part_color,
                            part_emissive=self.part_emissive, part_reflect=self.part_reflect, obj_base=obj_base,
                            obj_yaw=obj_yaw)
        own = self.agent_part_owner
        base = centers[own].copy()
        base[:, 2] = 0.0
        corners, axes, pcen, half = _place_parts(self.agent_boxes, yaws[own], base)
        pc, pa, pcc, ph = self.prop_geom
        return Snapshot(
            t=t, ego=ego, ego_vel=evel, ego_yaw_rate=eyr, centers=centers, yaws=yaws, velocities=vel,
            part_corners=np.concatenate([corners, pc]), part_axes=np.concatenate([axes, pa]),
            part_center=np.concatenate([pcen, pcc]), part_half=np.concatenate([half, ph]),
            part_owner=self.part_owner, part_color=self.part_color, part_emissive=self.part_emissive,
            part_reflect=self.part_reflect, obj_base=obj_base, obj_yaw=obj_yaw,
        )

    # --- ground map -----------------------------------------------------------------------------
    def _build_map(self) -> None:
        sc = self.scene
        ego_xy = sc.ego_xy
        # Map covers the ego path +- 110 m (sensors see ~70-100 m).
        lo = ego_xy.min(0) - 110.0
        hi = ego_xy.max(0) + 110.0
        self.map_origin = lo
        w = int(np.ceil((hi[0] - lo[0]) / MAP_RES))
        h = int(np.ceil((hi[1] - lo[1]) / MAP_RES))
        rng = np.random.default_rng(np.random.SeedSequence([sc.seed, 3, len(sc.agents), int(sc.duration)]))
        mat = np.zeros((h, w), np.uint8)
        # Rows are +y, columns +x.
        to_px = lambda xy: np.round((np.asarray(xy) - lo) / MAP_RES * 8).astype(np.int32)  # noqa: E731  (shift 3)
        th = lambda m: max(int(round(m / MAP_RES)), 1)  # noqa: E731
        for r in sc.roads:
            for side in (-1, 1):
                edge = abs(r.edge_offset(side))
                sw = edge + r.sidewalk_width
                path = r.lane_path(side * sw / 2, False, step=2.0)
                cv2.polylines(mat, [to_px(path)], False, MAT_SIDEWALK, th(sw), cv2.LINE_8, 3)
        for r in sc.roads:
            for side in (-1, 1):
                edge = abs(r.edge_offset(side))
                path = r.lane_path(side * edge / 2, False, step=2.0)
                cv2.polylines(mat, [to_px(path)], False, MAT_ROAD, th(edge), cv2.LINE_8, 3)
        marks = np.zeros((h, w), np.uint8)  # 1 white, 2 yellow
        for ri, r in enumerate(sc.roads):
            lw = 0.15
            yellow = ri == 0 and rng.random() < 0.5
            for side in (-1, 1):
                for lane in range(1, r.lanes_per_dir):
                    _dashed(marks, r, side * lane * r.lane_width, 3.0, 6.0, 1, th(lw), to_px)
                _solid(marks, r, side * r.half_width, 1, th(lw), to_px)  # edge of traffic lanes
                park = r.parking[0 if side < 0 else 1]
                if park:
                    _dashed(marks, r, side * (r.half_width + r.bike_width), 1.0, 4.0, 1, th(lw), to_px)
            if yellow:
                _solid(marks, r, 0.12, 2, th(0.12), to_px)
                _solid(marks, r, -0.12, 2, th(0.12), to_px)
            else:
                _dashed(marks, r, 0.0, 3.0, 6.0, 1, th(lw), to_px)
        # Intersection: clear markings inside the crossing, add stop lines and zebra crossings.
        if len(sc.roads) > 1:
            main, cross = sc.roads[0], sc.roads[1]
            cxy = cross.xy[len(cross.xy) // 2]
            s_c = float(np.argmin(np.hypot(*(main.xy - cxy).T)))
            s_c = float(main.s[int(s_c)])
            box_half = cross.half_width + cross.bike_width
            poly_in = main.pose(np.array([s_c - box_half, s_c + box_half, s_c + box_half, s_c - box_half]),
                                np.array([-1, -1, 1, 1]) * (main.half_width + main.bike_width))[0]
            cv2.fillConvexPoly(mat, to_px(poly_in), MAT_ROAD, cv2.LINE_8, 3)
            cv2.fillConvexPoly(marks, to_px(poly_in), 0, cv2.LINE_8, 3)
            for rd, other, s0 in ((main, cross, s_c), (cross, main, cross.length / 2)):
                ohalf = other.half_width + other.bike_width
                for sgn in (-1, 1):
                    s_line = s0 + sgn * (ohalf + 0.5)
                    a, _ = rd.pose(np.array([s_line, s_line]), np.array([0.0, -sgn * rd.half_width]))
                    cv2.polylines(marks, [to_px(a)], False, 1, th(0.4), cv2.LINE_8, 3)
                    for k in range(int(2 * rd.half_width / 1.0)):
                        lat = -rd.half_width + 0.25 + k * 1.0
                        zs = s0 + sgn * (ohalf + 1.5)
                        z, _ = rd.pose(np.array([zs, zs + sgn * 3.0]), np.array([lat, lat]))
                        cv2.polylines(marks, [to_px(z)], False, 1, th(0.5), cv2.LINE_8, 3)
        marks[mat != MAT_ROAD] = 0
        mat[marks > 0] = MAT_MARKING
        self.map_mat = mat
        # Colour texture with low-frequency patches and fine grain.
        noise_lo = cv2.resize(rng.normal(0, 1, (h // 16 + 2, w // 16 + 2)).astype(np.float32), (w, h),
                              interpolation=cv2.INTER_CUBIC)
        grain = rng.normal(0, 1, (h, w)).astype(np.float32)
        base = np.array([[78, 110, 52], [150, 148, 142], [82, 82, 86], [225, 225, 220]], np.float32)
        tex = base[mat]
        var = _lut(mat, [14.0, 6.0, 6.0, 4.0]) * noise_lo + _lut(mat, [6.0, 3.0, 3.5, 3.0]) * grain
        tex += var[..., None]
        tex[marks == 2] = np.array([225, 180, 40], np.float32) + grain[marks == 2, None] * 5
        # Sidewalk tiles.
        yy, xx = np.nonzero(mat == MAT_SIDEWALK)
        tile = ((xx // 8) + (yy // 8)) % 2 == 0
        tex[yy[tile], xx[tile]] *= 0.93
        np.clip(tex, 0, 255, out=tex)
        self.map_rgb = tex.astype(np.uint8)
        self._rgb_flat = self.map_rgb.reshape(-1, 3)

    def ground_rgb(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) world xy -> (N, 3) uint8 ground colour (edge colour outside the map)."""
        h, w = self.map_mat.shape
        ix = np.clip(((xy[:, 0] - self.map_origin[0]) * (1 / MAP_RES)).astype(np.int32), 0, w - 1)
        iy = np.clip(((xy[:, 1] - self.map_origin[1]) * (1 / MAP_RES)).astype(np.int32), 0, h - 1)
        return self._rgb_flat[iy * w + ix]

    def ground_rgb_from_ego(self, ego_xy32: np.ndarray, ego: Transform,
                            night: bool = False) -> Any:  # (N, 3), or ((N, 3), (N, 3)) lit at night
        """Colours of ego-frame ground points (float32 (N, 2)) with the ego at pose ``ego``.

        ``night``: also the lamp-lit night ground, as a second (N, 3) array."""
        r = ego.rotation[:2, :2] / MAP_RES
        t = (ego.translation[:2] - self.map_origin) / MAP_RES
        m = np.vstack([r.T, t[None]]).astype(np.float32)  # (3, 2): [x y 1] @ m -> map pixels
        rgb = np.empty((len(ego_xy32), 3), np.uint8)
        gather_ground(ego_xy32, m, self.map_rgb, rgb)
        if night and self._night_flat is not None:
            lit = np.empty_like(rgb)
            gather_ground(ego_xy32, m, self._night_flat.reshape(self.map_rgb.shape), lit)
            return rgb, lit
        return rgb

    def _bake_night_map(self) -> np.ndarray:
        """Ground under moonlight plus lamp pools (computed on a 1 m grid, upsampled)."""
        h, w = self.map_mat.shape
        step = int(round(1.0 / MAP_RES))
        gh, gw = h // step + 1, w // step + 1
        gy, gx = np.mgrid[0:gh, 0:gw].astype(np.float32)
        gx = self.map_origin[0] + gx * step * MAP_RES
        gy = self.map_origin[1] + gy * step * MAP_RES
        gain = np.full((gh, gw), 0.1, np.float32)
        for lx, ly in self.lamps:
            gain += 1.1 * np.exp(-((gx - lx) ** 2 + (gy - ly) ** 2) / (2 * 6.0**2))
        gain = cv2.resize(gain, (w, h), interpolation=cv2.INTER_LINEAR)
        return np.clip(self.map_rgb * np.minimum(gain, 1.2)[..., None], 0, 255).astype(np.uint8)

    def lamp_light(self, xy: np.ndarray) -> np.ndarray:
        """(N,) night illumination of points at world ``xy`` from the street lamps."""
        if len(self.lamps) == 0:
            return np.zeros(len(xy))
        d2 = ((xy[:, None, :] - self.lamps[None]) ** 2).sum(-1)
        return 1.1 * np.exp(-d2 / (2 * 7.0**2)).sum(1)

    def map_png(self, max_side: int = 1024) -> np.ndarray:
        """A small semantic map image (the nuScenes map stub): material classes as grey levels."""
        m = self.map_mat
        f = max(m.shape) / max_side
        if f > 1:
            m = cv2.resize(m, (int(m.shape[1] / f), int(m.shape[0] / f)), interpolation=cv2.INTER_NEAREST)
        return (np.flipud(m).astype(np.uint8) * 80).clip(0, 255).astype(np.uint8)


def _lut(index: np.ndarray, values: list[float]) -> np.ndarray:
    """np.float32(values)[index] for a uint8 index image, through OpenCV's table lookup (faster)."""
    table = np.zeros(256, np.float32)
    table[: len(values)] = values
    return cv2.LUT(index, table)


def _apply_gain_u8(rgb: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """uint8(clip(rgb * gain, 0, 255)) for a uint8 (H, W, 3) image and a float32 (3,) gain, as a
    per-channel table lookup: the same float32 products for each of the 256 levels, ~20x faster."""
    table = np.clip(np.arange(256, dtype=np.float32)[:, None] * gain.astype(np.float32)[None, :], 0, 255)
    return cv2.LUT(np.ascontiguousarray(rgb), table.astype(np.uint8).reshape(256, 1, 3))


def _solid(img, road: Road, lat: float, val: int, thick: int, to_px) -> None:
    cv2.polylines(img, [to_px(road.lane_path(lat, False, step=2.0))], False, val, thick, cv2.LINE_8, 3)


def _dashed(img, road: Road, lat: float, dash: float, gap: float, val: int, thick: int, to_px) -> None:
    s = 0.0
    while s < road.length:
        seg = np.array([s, min(s + dash, road.length)])
        xy, _ = road.pose(seg, lat)
        cv2.polylines(img, [to_px(xy)], False, val, thick, cv2.LINE_8, 3)
        s += dash + gap


def _place_parts(boxes: np.ndarray, yaw: np.ndarray, base: np.ndarray):
    """Local axis-aligned parts -> world corners (P, 8, 3), axes (P, 3, 3), centres, half sizes."""
    lo = boxes[:, [0, 2, 4]]
    hi = boxes[:, [1, 3, 5]]
    local = np.where(CORNER_BITS[None].astype(bool), hi[:, None, :], lo[:, None, :])  # (P, 8, 3)
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.zeros((len(yaw), 3, 3))
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1], rot[:, 2, 2] = c, -s, s, c, 1.0
    # rot @ p + base written out for a yaw-only rotation (an einsum over the 3x3 costs ~3x more);
    # the same products and sums, so the corners are bit for bit what the einsum gave
    cc, ss = c[:, None], s[:, None]
    corners = np.empty_like(local)
    corners[..., 0] = cc * local[..., 0] - ss * local[..., 1] + base[:, None, 0]
    corners[..., 1] = ss * local[..., 0] + cc * local[..., 1] + base[:, None, 1]
    corners[..., 2] = local[..., 2] + base[:, None, 2]
    center_local = (lo + hi) / 2
    center = np.empty_like(center_local)
    center[:, 0] = c * center_local[:, 0] - s * center_local[:, 1] + base[:, 0]
    center[:, 1] = s * center_local[:, 0] + c * center_local[:, 1] + base[:, 1]
    center[:, 2] = center_local[:, 2] + base[:, 2]
    return corners, rot, center, (hi - lo) / 2
