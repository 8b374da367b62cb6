"""Box-part meshes per class: every object is a handful of axis-aligned cuboids in its own frame.

Why parts and not one box: the camera network must learn real shape cues (car cabins with dark
windows and wheels, pedestrians as tall thin bodies with heads, striped cones, bus window bands),
and the LiDAR / radar see the same geometry. A part is (x0, x1, y0, y1, z0, z1) in metres in the
object frame (x forward along the length l, y left along the width w, z up from the ground),
with an RGB colour, an emission code (0 none, 1 head light, 2 tail light) and a LiDAR
reflectivity (0..255).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GLASS = np.array([40.0, 52.0, 64.0])
TYRE = np.array([22.0, 22.0, 24.0])
DARK = np.array([45.0, 45.0, 48.0])
HEAD = np.array([250.0, 250.0, 235.0])
TAIL = np.array([200.0, 20.0, 20.0])
METAL = np.array([150.0, 150.0, 155.0])


@dataclass
class Mesh:
    boxes: np.ndarray  # (P, 6) x0, x1, y0, y1, z0, z1 (metres, object frame)
    colors: np.ndarray  # (P, 3) float RGB
    emissive: np.ndarray  # (P,) int8
    reflect: np.ndarray  # (P,) float LiDAR reflectivity


class _MB:
    def __init__(self, size: np.ndarray):
        self.w, self.l, self.h = (float(v) for v in size)
        self.rows: list[tuple] = []

    def add(self, x0, x1, y0, y1, z0, z1, color, emissive=0, reflect=30.0):
        """Fractions: x, y in [-0.5, 0.5] of l, w; z in [0, 1] of h."""
        self.rows.append((x0 * self.l, x1 * self.l, y0 * self.w, y1 * self.w, z0 * self.h, z1 * self.h,
                          *np.asarray(color, float), emissive, reflect))

    def build(self) -> Mesh:
        a = np.asarray(self.rows, dtype=np.float64)
        return Mesh(a[:, :6].copy(), a[:, 6:9].copy(), a[:, 9].astype(np.int8), a[:, 10].copy())


def _wheels(m: _MB, xs, z1: float, color=TYRE, wfrac: float = 0.14, yin: float = 0.38):
    for x in xs:
        for sgn in (-1, 1):
            y0, y1 = (yin, 0.5) if sgn > 0 else (-0.5, -yin)
            m.add(x - wfrac / 2, x + wfrac / 2, y0, y1, 0.0, z1, color, 0, 6.0)


def _lights(m: _MB, zl: float, zh: float, front: bool = True, rear: bool = True, y: float = 0.42):
    if front:
        m.add(0.497, 0.503, y - 0.12, y, zl, zh, HEAD, 1, 120.0)
        m.add(0.497, 0.503, -y, -y + 0.12, zl, zh, HEAD, 1, 120.0)
    if rear:
        m.add(-0.503, -0.497, y - 0.1, y, zl, zh, TAIL, 2, 120.0)
        m.add(-0.503, -0.497, -y, -y + 0.1, zl, zh, TAIL, 2, 120.0)


def _person(m: _MB, ap: dict, x0: float, x1: float, y0: float, y1: float, z0: float, z1: float,
            sitting: bool = False) -> None:
    """A person standing in the sub-box (fractions of the object box)."""
    hgt = z1 - z0
    xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
    xr, yr = (x1 - x0) / 2, (y1 - y0) / 2
    shirt, pants, skin, hair = ap["shirt"], ap["pants"], ap["skin"], ap["hair"]
    if sitting:
        m.add(xm - xr, xm + xr * 0.9, ym - yr * 0.8, ym + yr * 0.8, z0, z0 + 0.35 * hgt, pants, 0, 20)
        m.add(xm - xr * 0.9, xm - xr * 0.1, ym - yr, ym + yr, z0 + 0.35 * hgt, z0 + 0.8 * hgt, shirt, 0, 25)
        m.add(xm - xr * 0.75, xm - xr * 0.25, ym - yr * 0.35, ym + yr * 0.35, z0 + 0.8 * hgt, z1, skin, 0, 20)
        return
    # Legs (a gap between them), torso with arms, neck, head with hair.
    m.add(xm - xr * 0.35, xm + xr * 0.35, ym - yr * 0.55, ym - yr * 0.08, z0, z0 + 0.47 * hgt, pants, 0, 18)
    m.add(xm - xr * 0.35, xm + xr * 0.35, ym + yr * 0.08, ym + yr * 0.55, z0, z0 + 0.47 * hgt, pants, 0, 18)
    m.add(xm - xr * 0.45, xm + xr * 0.45, ym - yr * 0.62, ym + yr * 0.62, z0 + 0.47 * hgt, z0 + 0.82 * hgt,
          shirt, 0, 25)
    m.add(xm - xr * 0.3, xm + xr * 0.3, ym - yr, ym - yr * 0.64, z0 + 0.45 * hgt, z0 + 0.8 * hgt, shirt, 0, 25)
    m.add(xm - xr * 0.3, xm + xr * 0.3, ym + yr * 0.64, ym + yr, z0 + 0.45 * hgt, z0 + 0.8 * hgt, shirt, 0, 25)
    m.add(xm - xr * 0.28, xm + xr * 0.32, ym - yr * 0.3, ym + yr * 0.3, z0 + 0.84 * hgt, z0 + 0.97 * hgt,
          skin, 0, 20)
    m.add(xm - xr * 0.32, xm + xr * 0.2, ym - yr * 0.32, ym + yr * 0.32, z0 + 0.94 * hgt, z1, hair, 0, 10)


def build_mesh(cls: str, size: np.ndarray, ap: dict, rider: bool = False, kind: str = "") -> Mesh:
    """Mesh of an annotated object; slightly inset from its box (annotations are drawn with margin)."""
    inset = np.array([max(1 - 0.06 / max(size[0], 0.1), 0.9), max(1 - 0.1 / max(size[1], 0.1), 0.9), 0.985])
    m = _MB(np.asarray(size, dtype=np.float64) * inset)
    var = int(ap.get("variant", 0))
    body = ap.get("body", METAL)
    cargo = ap.get("cargo", METAL)
    if cls == "car":
        # variant 0 sedan, 1 SUV / hatchback (tall, long cabin), 2 van (cabin all the way back)
        cab = [(-0.3, 0.18, 0.55), (-0.45, 0.2, 0.6), (-0.5, 0.28, 0.55)][var]
        m.add(-0.5, 0.5, -0.5, 0.5, 0.17, cab[2], body, 0, 35)
        m.add(cab[0], cab[1], -0.45, 0.45, cab[2], 0.93, GLASS, 0, 8)
        m.add(cab[0] + 0.02, cab[1] - 0.03, -0.43, 0.43, 0.93, 1.0, body, 0, 35)
        m.add(cab[0] + 0.04, cab[1] - 0.04, -0.46, 0.46, cab[2] + 0.04, cab[2] + 0.08, body, 0, 35)  # beltline
        m.add(0.46, 0.5, -0.3, 0.3, 0.18, 0.3, DARK, 0, 60)  # grille / plate
        _wheels(m, (0.32, -0.32), 0.26)
        _lights(m, 0.42, 0.52)
    elif cls == "truck":
        cab_len = 0.28 if var != 2 else 0.22
        m.add(0.5 - cab_len, 0.5, -0.5, 0.5, 0.12, 0.62, body, 0, 35)
        m.add(0.5 - cab_len + 0.03, 0.48, -0.47, 0.47, 0.62, 0.82, GLASS, 0, 8)
        m.add(0.5 - cab_len + 0.03, 0.47, -0.45, 0.45, 0.82, 0.86, body, 0, 35)
        if var == 1:  # flatbed with a low load
            m.add(-0.5, 0.5 - cab_len - 0.02, -0.5, 0.5, 0.12, 0.32, DARK, 0, 30)
            m.add(-0.45, 0.1, -0.4, 0.4, 0.32, 0.6, cargo, 0, 40)
        else:  # box body
            m.add(-0.5, 0.5 - cab_len - 0.02, -0.5, 0.5, 0.14, 1.0, cargo, 0, 45)
        _wheels(m, (0.36, -0.2, -0.36), 0.18, wfrac=0.1)
        _lights(m, 0.2, 0.28)
    elif cls == "bus":
        m.add(-0.5, 0.5, -0.5, 0.5, 0.1, 1.0, body, 0, 40)
        m.add(-0.45, 0.44, -0.505, 0.505, 0.45, 0.85, GLASS, 0, 8)  # window band
        m.add(0.495, 0.505, -0.45, 0.45, 0.35, 0.9, GLASS, 0, 8)  # windscreen
        m.add(0.498, 0.506, -0.3, 0.3, 0.9, 0.97, np.array([255.0, 150, 30]), 1, 90)  # route display
        m.add(0.2, 0.32, -0.507, -0.45, 0.1, 0.85, DARK, 0, 20)  # door
        _wheels(m, (0.33, -0.3), 0.14, wfrac=0.08)
        _lights(m, 0.14, 0.22)
    elif cls == "trailer":
        m.add(-0.5, 0.42, -0.5, 0.5, 0.28, 1.0, cargo, 0, 45)
        m.add(0.42, 0.5, -0.05, 0.05, 0.25, 0.32, DARK, 0, 30)  # hitch
        m.add(-0.5, 0.42, -0.45, 0.45, 0.22, 0.28, DARK, 0, 30)  # chassis
        if var == 0:  # container ribs
            for x in np.linspace(-0.4, 0.3, 6):
                m.add(x, x + 0.02, -0.505, 0.505, 0.3, 0.98, cargo * 0.7, 0, 45)
        _wheels(m, (-0.3, -0.4), 0.22, wfrac=0.07)
        _lights(m, 0.25, 0.3, front=False)
    elif cls == "construction_vehicle":
        m.add(-0.5, 0.15, -0.5, 0.5, 0.0, 0.2, TYRE, 0, 8)  # tracks / wheels
        m.add(-0.48, 0.12, -0.42, 0.42, 0.2, 0.55, body, 0, 40)
        m.add(-0.25, 0.1, -0.4, 0.2, 0.55, 0.97, GLASS, 0, 8)  # cab
        m.add(-0.26, 0.11, -0.41, 0.21, 0.97, 1.0, body, 0, 40)
        if var == 2:  # roller / loader: front drum or blade
            m.add(0.3, 0.5, -0.5, 0.5, 0.0, 0.35, METAL, 0, 50)
            m.add(0.12, 0.3, -0.1, 0.1, 0.15, 0.3, body, 0, 40)
        else:  # excavator arm with bucket
            m.add(0.1, 0.42, -0.06, 0.06, 0.55, 0.85, body, 0, 40)
            m.add(0.4, 0.47, -0.06, 0.06, 0.2, 0.85, body, 0, 40)
            m.add(0.38, 0.5, -0.18, 0.18, 0.0, 0.22, METAL, 0, 50)
    elif cls in ("bicycle", "motorcycle"):
        mc = cls == "motorcycle"
        top = 0.62 if rider else 0.95
        wz = 0.42 * (1.0 if not rider else 0.6) if not mc else 0.38 * (1.0 if not rider else 0.6)
        m.add(0.2, 0.5, -0.12, 0.12, 0.0, wz, TYRE, 0, 8)  # front wheel
        m.add(-0.5, -0.2, -0.12, 0.12, 0.0, wz, TYRE, 0, 8)  # rear wheel
        if mc:
            m.add(-0.3, 0.3, -0.35, 0.35, wz * 0.4, wz * 1.3, body, 0, 40)  # tank / engine
            m.add(-0.4, 0.0, -0.25, 0.25, wz * 1.3, wz * 1.45, DARK, 0, 15)  # seat
            m.add(0.5 - 0.02, 0.5, -0.2, 0.2, wz * 1.2, wz * 1.4, HEAD, 1, 120)
            m.add(-0.5, -0.48, -0.15, 0.15, wz * 1.0, wz * 1.15, TAIL, 2, 120)
        else:
            m.add(-0.3, 0.3, -0.05, 0.05, wz * 0.6, wz * 1.0, body, 0, 40)  # frame
            m.add(-0.28, -0.12, -0.1, 0.1, wz * 1.0, wz * 1.15, DARK, 0, 15)  # saddle
        m.add(0.22, 0.28, -0.5, 0.5, top * 0.95 if not rider else wz * 1.6, top if not rider else wz * 1.7, DARK, 0, 30)
        if rider:
            _person(m, ap, -0.35, 0.15, -0.5, 0.5, wz * 1.1, 1.0)
    elif cls == "pedestrian":
        _person(m, ap, -0.45, 0.45, -0.5, 0.5, 0.0, 1.0, sitting=kind == "sitting")
    elif cls == "traffic_cone":
        m.add(-0.5, 0.5, -0.5, 0.5, 0.0, 0.06, DARK if var else body, 0, 20)
        n = 4
        for k in range(n):
            f = 1.0 - 0.7 * (k + 0.5) / n
            z0 = 0.06 + 0.94 * k / n
            color = body if k % 2 == 0 else np.array([245.0, 245, 245])
            m.add(-0.35 * f, 0.35 * f, -0.35 * f, 0.35 * f, z0, z0 + 0.94 / n, color, 0, 60 if k % 2 == 0 else 160)
    elif cls == "barrier":
        # Long side is the width (y). Variants: concrete jersey, striped plastic, fence-like.
        if var == 0:
            m.add(-0.5, 0.5, -0.5, 0.5, 0.0, 0.3, body, 0, 45)
            m.add(-0.25, 0.25, -0.5, 0.5, 0.3, 1.0, body, 0, 45)
        else:
            m.add(-0.5, 0.5, -0.5, -0.4, 0.0, 0.55, DARK, 0, 20)
            m.add(-0.5, 0.5, 0.4, 0.5, 0.0, 0.55, DARK, 0, 20)
            segs = 6
            for k in range(segs):
                y0 = -0.5 + k / segs
                color = body if k % 2 == 0 else cargo
                m.add(-0.2, 0.2, y0, y0 + 1 / segs, 0.55, 1.0, color, 0, 60 if k % 2 == 0 else 150)
    else:
        m.add(-0.5, 0.5, -0.5, 0.5, 0.0, 1.0, body, 0, 30)
    return m.build()


def prop_mesh(kind: str, size: np.ndarray, color: np.ndarray, rng: np.random.Generator | None = None) -> Mesh:
    """Meshes of unannotated structures: buildings with window rows, trees, poles."""
    m = _MB(size)
    if kind == "building":
        m.add(-0.5, 0.5, -0.5, 0.5, 0.0, 1.0, color, 0, 50)
        floors = max(int(size[2] / 3.2), 1)
        for f in range(floors):
            z0 = (f * 3.2 + 1.0) / size[2]
            z1 = min((f * 3.2 + 2.4) / size[2], 0.98)
            # A window strip on each of the two long facades (+-y; the length runs along the road),
            # standing 3 cm proud of the wall.
            dy = 0.03 / max(float(size[0]), 0.1)
            m.add(-0.47, 0.47, -0.5 - dy, -0.5, z0, z1, GLASS * 1.3, 0, 10)
            m.add(-0.47, 0.47, 0.5, 0.5 + dy, z0, z1, GLASS * 1.3, 0, 10)
            # and on the end walls
            dx = 0.03 / max(float(size[1]), 0.1)
            m.add(-0.5 - dx, -0.5, -0.4, 0.4, z0, z1, GLASS * 1.3, 0, 10)
            m.add(0.5, 0.5 + dx, -0.4, 0.4, z0, z1, GLASS * 1.3, 0, 10)
    elif kind == "tree":
        m.add(-0.07, 0.07, -0.07, 0.07, 0.0, 0.45, np.array([90.0, 65, 40]), 0, 30)
        m.add(-0.5, 0.5, -0.5, 0.5, 0.35, 0.85, color, 0, 25)
        m.add(-0.3, 0.3, -0.3, 0.3, 0.85, 1.0, color * 0.85, 0, 25)
    elif kind == "pole":
        m.add(-0.5, 0.5, -0.5, 0.5, 0.0, 1.0, color, 0, 60)
        m.add(-0.5, 0.5, -6.0, 0.5, 0.97, 1.0, color, 0, 60)  # arm over the road
        m.add(-1.0, 1.0, -6.0, -4.0, 0.95, 0.97, HEAD, 1, 100)  # lamp
    else:
        m.add(-0.5, 0.5, -0.5, 0.5, 0.0, 1.0, color, 0, 30)
    return m.build()
