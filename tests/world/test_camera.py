"""Camera simulation: pinhole projection of known points, z-buffer occlusion, conditions."""

from __future__ import annotations

import cv2
import numpy as np
from nuscenes.utils.geometry_utils import view_points

from imkd_ros.rig.rig import Rig
from imkd_ros.world.camera import CameraSim
from imkd_ros.world.raster import fill_mask, gather_ground, paint_faces, scatter_faces, zbuffer_faces
from imkd_ros.world.sim import CORNER_BITS, SceneSim, _place_parts


def _render(scene, cam_name="CAM_FRONT", scale=1.0, exact=True, image_scale=0.25, t=0.5):
    rig = Rig.default().scaled(image_scale)
    sim = SceneSim(scene)
    cs = CameraSim(sim, rig.cameras, 0)
    cam = rig.camera(cam_name)
    snap = sim.snapshot(t)
    res = cs.render(cam, snap, scale, np.random.default_rng(0), keep_buffers=True, exact=exact)
    return res, cam, snap


def _pixel(cam, snap, p_world):
    to_cam = (snap.ego @ cam.to_ego).inverse()
    pc = to_cam.apply(np.asarray(p_world, float)[None])
    uv = view_points(pc.T, cam.intrinsics, normalize=True)[:2, 0]
    return uv, pc[0, 2]


def test_projection_of_a_known_box(scene_factory):
    sc = scene_factory([{"cls": "truck", "size": (2.5, 7.0, 3.0), "xy": (20.0, 0.0), "yaw": 0.0}])
    res, cam, snap = _render(sc)
    assert res.image.shape == (cam.height, cam.width, 3) and res.image.dtype == np.uint8
    # The truck's rear face centre (x = 16.5 m, height 1.5 m) projects onto a truck pixel ...
    uv, z = _pixel(cam, snap, [20.0 - 3.3, 0.0, 1.5])
    u, v = int(uv[0]), int(uv[1])
    assert res.owner[v, u] == 0
    # ... whose depth is the rear face's optical depth (the box rear minus the mesh inset).
    assert abs(res.depth[v, u] - z) < 0.3
    # Its silhouette lies inside the projected box outline and fills most of it.
    corners = np.array([[x, y, zz] for x in (16.5, 23.5) for y in (-1.25, 1.25) for zz in (0.0, 3.0)])
    to_cam = (snap.ego @ cam.to_ego).inverse()
    uvc = view_points(to_cam.apply(corners).T, cam.intrinsics, normalize=True)[:2]
    vv, uu = np.nonzero(res.owner == 0)
    assert uu.min() >= np.floor(uvc[0].min()) - 1 and uu.max() <= np.ceil(uvc[0].max()) + 1
    assert vv.min() >= np.floor(uvc[1].min()) - 1 and vv.max() <= np.ceil(uvc[1].max()) + 1
    assert (uu.max() - uu.min()) > 0.8 * (uvc[0].max() - uvc[0].min())
    # Sky above, ground below the horizon; other cameras do not see the truck ahead.
    assert res.owner[0, u] == -1 and np.isinf(res.depth[0, u])
    assert np.isfinite(res.depth[-1, u])
    back, _, _ = _render(sc, "CAM_BACK")
    assert not (back.owner == 0).any()


def test_zbuffer_occlusion(scene_factory):
    sc = scene_factory([
        {"cls": "car", "size": (1.9, 4.5, 1.5), "xy": (12.0, 0.0), "yaw": 0.0},
        {"cls": "bus", "size": (2.9, 11.0, 3.5), "xy": (30.0, 0.0), "yaw": 0.0},
    ])
    for exact in (True, False):
        res, cam, snap = _render(sc, exact=exact)
        # The bus centre is hidden by the car in front of it ...
        uv, _ = _pixel(cam, snap, [30.0, 0.0, 1.0])
        assert res.owner[int(uv[1]), int(uv[0])] == 0
        # ... but its upper part shows above the car's roof.
        uv, _ = _pixel(cam, snap, [24.6, 0.0, 3.2])
        assert res.owner[int(uv[1]), int(uv[0])] == 1
    # Same pair rendered alone: the bus covers many more pixels without the car.
    alone = scene_factory([{"cls": "bus", "size": (2.9, 11.0, 3.5), "xy": (30.0, 0.0), "yaw": 0.0}])
    res_alone, _, _ = _render(alone)
    res, _, _ = _render(sc)
    assert (res_alone.owner == 0).sum() > 1.3 * (res.owner == 1).sum()


def test_interpenetrating_faces_use_per_pixel_depth(scene_factory):
    # A long trailer beside and partly in front of a car: painter's order by object fails here,
    # the exact z-buffer must give each pixel to the nearer surface.
    sc = scene_factory([
        {"cls": "trailer", "size": (2.9, 14.0, 3.8), "xy": (18.0, 3.0), "yaw": 0.3},
        {"cls": "car", "size": (1.9, 4.5, 1.5), "xy": (22.0, 0.0), "yaw": 0.0},
    ])
    res, cam, snap = _render(sc)
    to_cam = (snap.ego @ cam.to_ego).inverse()
    # Owned pixels' depth equals the depth of the nearest surface: check a sample of pixels
    # against a brute-force ray/box test.

    sim = SceneSim(sc)
    s = sim.snapshot(0.5)
    rng = np.random.default_rng(1)
    o_ = res.owner
    # Interior pixels (all 4 neighbours owned by the same object): edge pixels are partly covered.
    same = (o_[1:-1, 1:-1] >= 0) & (o_[1:-1, 1:-1] == o_[:-2, 1:-1]) & (o_[1:-1, 1:-1] == o_[2:, 1:-1])
    same &= (o_[1:-1, 1:-1] == o_[1:-1, :-2]) & (o_[1:-1, 1:-1] == o_[1:-1, 2:])
    vv, uu = np.nonzero(same)
    vv, uu = vv + 1, uu + 1
    assert len(np.unique(o_[vv, uu])) == 2
    pick = rng.choice(len(vv), size=min(200, len(vv)), replace=False)
    k = cam.intrinsics
    cam_to_world = to_cam.inverse()
    bad = 0
    for i in pick:
        u, v = uu[i] + 0.5, vv[i] + 0.5
        d_cam = np.array([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], 1.0])
        o = cam_to_world.translation
        d = cam_to_world.rotation @ d_cam
        best = np.inf
        for p in range(len(s.part_center)):
            r = s.part_axes[p]
            ol = (o - s.part_center[p]) @ r
            dl = d @ r
            with np.errstate(divide="ignore", invalid="ignore"):
                t1 = (-s.part_half[p] - ol) / dl
                t2 = (s.part_half[p] - ol) / dl
            tmin = np.nanmax(np.minimum(t1, t2))
            tmax = np.nanmin(np.maximum(t1, t2))
            if tmax >= tmin > 0:
                best = min(best, tmin)
        bad += not abs(res.depth[vv[i], uu[i]] - best) < 0.05 * best + 0.05
    # Face edges are rasterised half a pixel generously: allow a few pixels on part boundaries.
    assert bad <= 0.04 * len(pick)


def test_conditions_change_the_image(scene_factory):
    objs = [{"cls": "car", "size": (1.9, 4.5, 1.5), "xy": (15.0, 0.0), "yaw": 0.0}]
    day, _, _ = _render(scene_factory(objs, condition="day"))
    night, _, _ = _render(scene_factory(objs, condition="night"))
    fog, _, _ = _render(scene_factory(objs, condition="fog"))
    rain, _, _ = _render(scene_factory(objs, condition="rain"))
    assert night.image.mean() < 0.5 * day.image.mean()
    # Fog washes out contrast in the distance.
    assert fog.image[: fog.image.shape[0] // 2].std() < day.image[: day.image.shape[0] // 2].std()
    assert not np.array_equal(rain.image, day.image)


def test_painter_fill_covers_what_opencv_fills():
    """The sweeps' compiled fill against cv2.fillConvexPoly (what it replaced) on random convex
    faces: the same pixels but for a one-pixel rim; later faces overwrite earlier ones; faces far
    outside the image (near-plane clipping) and NaN vertices draw safely."""
    rng = np.random.default_rng(0)
    h, w = 90, 160
    n = 300
    centre = rng.uniform([-10, -10], [w + 10, h + 10], (n, 1, 2))
    ang = np.sort(rng.uniform(0, 2 * np.pi, (n, 5)), axis=1)
    rad = rng.uniform(0.3, 25.0, (n, 1))
    uv = centre + rad[..., None] * np.stack([np.cos(ang), np.sin(ang)], -1)  # convex pentagons
    nv = rng.integers(3, 6, n).astype(np.int64)
    for f in range(n):  # keep a convex polygon when fewer vertices are used: re-draw on the circle
        a = np.sort(rng.uniform(0, 2 * np.pi, nv[f]))
        uv[f, :nv[f]] = centre[f, 0] + rad[f] * np.stack([np.cos(a), np.sin(a)], -1)
    inter = union = 0
    for f in range(n):
        got = np.full((h, w), -1, np.int32)
        paint_faces(got, uv, nv, np.array([f], np.int64))
        ref = np.zeros((h, w), np.uint8)
        cv2.fillConvexPoly(ref, np.round((uv[f, :nv[f]] - 0.5) * 16).astype(np.int32), 1, cv2.LINE_8, 4)
        a, b = got >= 0, ref > 0
        inter, union = inter + (a & b).sum(), union + (a | b).sum()
        rim = cv2.dilate(b.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        assert not (a & ~rim).any(), f"face {f} fills pixels more than one pixel off OpenCV's"
        core = cv2.erode(b.astype(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT,
                         borderValue=0) > 0
        assert not (core & ~a).any(), f"face {f} misses pixels inside OpenCV's"
    assert inter / union > 0.9
    # Order: the last face wins where faces overlap.
    buf = np.full((h, w), -1, np.int32)
    sq = np.array([[[10.0, 10.0], [60.0, 10.0], [60.0, 60.0], [10.0, 60.0]]] * 2)
    sq[1] += 20.0
    paint_faces(buf, sq, np.array([4, 4]), np.array([0, 1]))
    assert buf[45, 45] == 1 and buf[15, 15] == 0 and buf[75, 75] == 1
    # Vertices far outside (a near-clipped face) or NaN: clamped or skipped, no crash.
    huge = np.array([[[-1e12, -1e12], [1e12, -1e12], [1e12, 1e12], [-1e12, 1e12]],
                     [[np.nan, 0.0], [5.0, 0.0], [5.0, 5.0], [0.0, 5.0]]])
    buf[:] = -1
    paint_faces(buf, huge, np.array([4, 4]), np.array([1, 0]))
    assert (buf == 0).all()


def test_zbuffer_kernel_keeps_the_nearest_face_per_pixel():
    """The key frames' compiled z-buffer against a brute-force one: per pixel, among the faces
    covering it (the painter fill's coverage), the largest inverse depth wins, the earlier face
    on a tie; behind-camera planes (inverse depth <= 0) never draw."""
    rng = np.random.default_rng(1)
    h, w, n = 60, 100, 120
    centre = rng.uniform([-5, -5], [w + 5, h + 5], (n, 1, 2))
    a = np.sort(rng.uniform(0, 2 * np.pi, (n, 4)), axis=1)
    rad = rng.uniform(0.5, 30.0, (n, 1))
    uv = centre + rad[..., None] * np.stack([np.cos(a), np.sin(a)], -1)
    nv = np.full(n, 4, np.int64)
    pa, pb = rng.normal(0, 1e-3, n), rng.normal(0, 1e-3, n)
    pc = rng.uniform(-0.02, 0.5, n)
    pc[:4] = pc[4]  # a few faces at exactly the same depth plane: the first one stays
    pa[:4], pb[:4] = pa[4], pb[4]
    us, vs = np.arange(w) + 0.5, np.arange(h) + 0.5
    order = rng.permutation(n).astype(np.int64)
    got, got_z = np.full((h, w), -1, np.int32), np.zeros((h, w))
    zbuffer_faces(got, got_z, uv, nv, order, pa, pb, pc, us, vs)
    ref, ref_z = np.full((h, w), -1, np.int32), np.zeros((h, w))
    for f in order:
        cover = np.full((h, w), -1, np.int32)
        paint_faces(cover, uv, nv, np.array([f], np.int64))
        iz = us[None, :] * pa[f] + (vs[:, None] * pb[f] + pc[f])
        win = (cover >= 0) & (iz > ref_z)
        ref[win], ref_z[win] = f, iz[win]
    assert (ref >= 0).mean() > 0.3  # the faces do overlap the image
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(got_z, ref_z)


def test_shadow_mask_fills_pixel_centres_inside():
    """fill_mask against a brute-force point-in-convex-polygon test at every pixel centre."""
    rng = np.random.default_rng(2)
    h, w, n = 50, 80, 40
    centre = rng.uniform([-5, -5], [w + 5, h + 5], (n, 1, 2))
    a = np.sort(rng.uniform(0, 2 * np.pi, (n, 5)), axis=1)
    uv = np.zeros((n, 8, 2))
    uv[:, :5] = centre + rng.uniform(0.5, 20.0, (n, 1, 1)) * np.stack([np.cos(a), np.sin(a)], -1)
    nv = np.full(n, 5, np.int64)
    nv[:3] = 0  # an empty (fully near-clipped) polygon draws nothing
    got = np.zeros((h, w), np.uint8)
    fill_mask(got, uv, nv)
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    ref = np.zeros((h, w), bool)
    for f in range(3, n):
        p = uv[f, :5]
        e = np.roll(p, -1, 0) - p  # counter-clockwise edges: the centre is left of every edge
        cross = e[:, None, None, 0] * (yy - p[:, None, None, 1]) - e[:, None, None, 1] * (xx - p[:, None, None, 0])
        ref |= (cross >= 0).all(0)
    assert ref.any() and not ref.all()
    np.testing.assert_array_equal(got.astype(bool), ref)


def test_ground_gather_matches_numpy_lookup():
    rng = np.random.default_rng(3)
    table = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    xy = rng.uniform(-30, 30, (5000, 2)).astype(np.float32)
    m = np.array([[0.8, 0.6], [-0.6, 0.8], [30.2, 20.7]], np.float32)  # rotation / 0.1 m + offset
    out = np.empty((len(xy), 3), np.uint8)
    gather_ground(xy, m, table, out)
    ij = xy.astype(np.float64) @ m[:2].astype(np.float64) + m[2]
    ix = np.clip(ij[:, 0].astype(np.int64), 0, 59)
    iy = np.clip(ij[:, 1].astype(np.int64), 0, 39)
    same = (out == table[iy, ix]).all(1)
    assert ((ij[:, 0] < 0) | (ij[:, 0] >= 60)).any()  # some points fall off the map: clamped
    assert same.mean() > 0.999  # float32 vs float64 may round a point on a texel edge apart


def test_scatter_faces_equals_fancy_indexing():
    """The compiled colour scatter writes what ``img[hit] = color[face_buf[hit]]`` wrote, for both
    image types, and leaves uncovered pixels alone."""
    rng = np.random.default_rng(4)
    face_buf = rng.integers(-3, 7, (30, 50)).astype(np.int32)  # negative: no face
    for dtype in (np.uint8, np.float32):
        color = rng.uniform(0, 255, (7, 3)).astype(dtype)
        img = rng.uniform(0, 255, (30, 50, 3)).astype(dtype)
        ref = img.copy()
        hit = face_buf >= 0
        ref[hit] = color[face_buf[hit]]
        scatter_faces(face_buf, color, img)
        np.testing.assert_array_equal(img, ref)


def test_place_parts_equals_the_rotation_einsum_bit_for_bit():
    """The written-out yaw rotation of the part corners gives the bytes the general einsum gave
    (the data a seed produces must not move with the speed-up)."""
    rng = np.random.default_rng(6)
    lo = rng.uniform(-3, 0, (400, 3))
    hi = lo + rng.uniform(0, 3, (400, 3))
    boxes = np.stack([lo[:, 0], hi[:, 0], lo[:, 1], hi[:, 1], lo[:, 2], hi[:, 2]], 1)
    yaw = rng.uniform(-4, 4, 400)
    base = np.column_stack([rng.uniform(-500, 500, (400, 2)), np.zeros(400)])
    corners, rot, center, half = _place_parts(boxes, yaw, base)
    local = np.where(CORNER_BITS[None].astype(bool), hi[:, None, :], lo[:, None, :])
    assert corners.tobytes() == (np.einsum("pij,pkj->pki", rot, local) + base[:, None, :]).tobytes()
    assert center.tobytes() == (np.einsum("pij,pj->pi", rot, (lo + hi) / 2) + base).tobytes()
    np.testing.assert_array_equal(half, (hi - lo) / 2)
