"""Procedural traffic scenes: road layout, ego trajectory and agents of the 10 nuScenes classes.

A scene is a flat world (ground at z = 0, x/y in metres) with one main road (straight or curved)
and optionally a crossing road. Every agent follows a polyline path with a speed profile, so its
state (position, heading, velocity) is known analytically at any sensor timestamp. States are
sampled on a fine time grid once and interpolated per sensor firing.

Class statistics follow nuScenes (mean sizes from the devkit's train set, class frequencies,
attribute mix): cars dominate, pedestrians walk on sidewalks or cross at crosswalks, barriers and
cones appear in road-work zones, trailers are parked or towed, cycles are ridden or parked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from imkd_ros.constants import ATTR_TO_ID, CLASS_TO_ID, CLASSES, NO_ATTRIBUTE

CONDITIONS = ("day", "night", "rain", "fog")
CONDITION_PROBS = (0.55, 0.15, 0.18, 0.12)
ROAD_TYPES = ("straight", "curved", "intersection")

# nuScenes mean (w, l, h) and a spread; sizes are drawn per instance.
SIZE_MEAN = {
    "car": (1.95, 4.62, 1.73),
    "truck": (2.52, 6.94, 2.84),
    "construction_vehicle": (2.82, 6.56, 3.21),
    "bus": (2.95, 11.19, 3.49),
    "trailer": (2.92, 12.28, 3.87),
    "barrier": (2.53, 0.50, 0.98),
    "motorcycle": (0.77, 2.11, 1.47),
    "bicycle": (0.61, 1.70, 1.30),
    "pedestrian": (0.67, 0.73, 1.77),
    "traffic_cone": (0.41, 0.41, 1.07),
}
SIZE_STD = {
    "car": (0.12, 0.35, 0.17),
    "truck": (0.25, 1.6, 0.45),
    "construction_vehicle": (0.35, 1.2, 0.5),
    "bus": (0.10, 0.9, 0.2),
    "trailer": (0.2, 2.0, 0.35),
    "barrier": (0.4, 0.08, 0.08),
    "motorcycle": (0.12, 0.15, 0.15),
    "bicycle": (0.08, 0.12, 0.12),
    "pedestrian": (0.08, 0.1, 0.12),
    "traffic_cone": (0.06, 0.06, 0.15),
}
VEHICLES = ("car", "truck", "construction_vehicle", "bus", "trailer")
CYCLES = ("motorcycle", "bicycle")

DT_GRID = 0.01  # s, agent state grid


@dataclass
class Road:
    """A road along a centreline polyline; lanes are on both sides (right-hand traffic)."""

    xy: np.ndarray  # (K, 2) centreline, ~1 m spacing
    lanes_per_dir: int
    lane_width: float = 3.5
    parking: tuple[bool, bool] = (False, False)  # (right side, left side) parking lane
    parking_width: float = 2.4
    sidewalk_width: float = 3.0
    bike_width: float = 1.5  # cycle lane between the outer lane and parking / kerb

    def __post_init__(self) -> None:
        d = np.diff(self.xy, axis=0)
        self.s = np.concatenate([[0.0], np.cumsum(np.hypot(d[:, 0], d[:, 1]))])
        head = np.arctan2(d[:, 1], d[:, 0])
        self.heading = np.unwrap(np.concatenate([head, head[-1:]]))

    @property
    def length(self) -> float:
        return float(self.s[-1])

    @property
    def half_width(self) -> float:
        return self.lanes_per_dir * self.lane_width

    def edge_offset(self, side: int) -> float:
        """Lateral offset of the kerb on ``side`` (+1 left, -1 right)."""
        park = self.parking[0 if side < 0 else 1]
        return side * (self.half_width + self.bike_width + (self.parking_width if park else 0.0))

    def pose(self, s: np.ndarray, lateral: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """(N, 2) points at arc length ``s`` offset ``lateral`` to the left, and headings (N,)."""
        s = np.atleast_1d(np.asarray(s, dtype=np.float64))
        x = np.interp(s, self.s, self.xy[:, 0])
        y = np.interp(s, self.s, self.xy[:, 1])
        h = np.interp(s, self.s, self.heading)
        lat = np.broadcast_to(np.asarray(lateral, dtype=np.float64), s.shape)
        return np.stack([x - np.sin(h) * lat, y + np.cos(h) * lat], axis=1), h

    def lane_path(self, lateral: float, reverse: bool, step: float = 1.0) -> np.ndarray:
        s = np.arange(0.0, self.length + 1e-6, step)
        xy, _ = self.pose(s, lateral)
        return xy[::-1].copy() if reverse else xy

    def lane_change_path(self, lat0: float, lat1: float, s_c: float, span: float, reverse: bool,
                         step: float = 1.0) -> np.ndarray:
        """A lane path moving from ``lat0`` to ``lat1`` around road coordinate ``s_c`` over ``span`` m
        (smoothstep: the heading turns by a few degrees and back, like a real lane change)."""
        s = np.arange(0.0, self.length + 1e-6, step)
        u = np.clip((s - (s_c - span / 2)) / span, 0.0, 1.0)
        if reverse:
            u = 1.0 - u
        lat = lat0 + (lat1 - lat0) * u * u * (3 - 2 * u)
        xy, _ = self.pose(s, lat)
        return xy[::-1].copy() if reverse else xy

    def lane_center(self, lane: int, direction: int) -> float:
        """Lateral offset of lane ``lane`` (0 = innermost) in ``direction`` (+1 along s, -1 against)."""
        return -direction * (lane + 0.5) * self.lane_width


@dataclass
class Agent:
    """One annotated object (or the ego): a path with a speed profile, or a static pose."""

    cls: str
    size: np.ndarray  # (w, l, h)
    path: np.ndarray | None  # (K, 2) polyline or None for static
    s0: float = 0.0
    speed: np.ndarray | None = None  # speed on the time grid (T,), set by Scene.finalize
    static_xy: np.ndarray | None = None
    static_yaw: float = 0.0
    kind: str = "traffic"  # traffic | parked | stopped | walking | standing | sitting | static
    rider: bool = False
    category: str = ""
    appearance: dict = field(default_factory=dict)
    yaw_offset: float = 0.0  # heading relative to the path tangent (barriers: pi/2)


@dataclass
class Prop:
    """Unannotated static structure (building, tree, pole, guard rail, wall)."""

    kind: str
    center: np.ndarray  # (3,) bottom-centre x, y and z = 0
    size: np.ndarray  # (w, l, h)
    yaw: float
    color: np.ndarray


@dataclass
class Scene:
    name: str
    condition: str
    road_type: str
    roads: list[Road]
    ego: Agent
    agents: list[Agent]
    props: list[Prop]
    duration: float
    seed: int
    description: str = ""
    times: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # Filled by finalize(): states on the grid, (T, N, ...) for agents, (T, ...) for ego.
    grid_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 2)))
    grid_yaw: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    grid_vel: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 2)))
    ego_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    ego_yaw: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ego_vel: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    sizes: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))

    # ---------------------------------------------------------------------------------------
    def finalize(self) -> None:
        self.times = np.arange(0.0, self.duration + 0.5 + 1e-9, DT_GRID)
        states = [_agent_states(a, self.times) for a in self.agents]
        xy, yaw, vel = zip(*states, strict=True) if states else ((), (), ())
        n = len(self.agents)
        t = len(self.times)
        self.grid_xy = np.stack(xy, axis=1) if n else np.zeros((t, 0, 2))
        self.grid_yaw = np.stack(yaw, axis=1) if n else np.zeros((t, 0))
        self.grid_vel = np.stack(vel, axis=1) if n else np.zeros((t, 0, 2))
        self.ego_xy, self.ego_yaw, self.ego_vel = _agent_states(self.ego, self.times)
        self.labels = np.array([CLASS_TO_ID[a.cls] for a in self.agents], dtype=np.int64)
        self.sizes = np.array([a.size for a in self.agents], dtype=np.float64).reshape(-1, 3)

    def _interp(self, t: float) -> tuple[int, float]:
        f = min(max(t / DT_GRID, 0.0), len(self.times) - 1.000001)
        i = int(f)
        return i, f - i

    def agent_states(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Agents at scene time ``t`` (s): centre (N, 3), yaw (N,), velocity (N, 2); world frame."""
        i, w = self._interp(t)
        xy = self.grid_xy[i] * (1 - w) + self.grid_xy[i + 1] * w
        yaw = self.grid_yaw[i] * (1 - w) + self.grid_yaw[i + 1] * w
        vel = self.grid_vel[i] * (1 - w) + self.grid_vel[i + 1] * w
        center = np.concatenate([xy, self.sizes[:, 2:3] / 2], axis=1)
        return center, _wrap(yaw), vel

    def ego_state(self, t: float) -> tuple[np.ndarray, float, np.ndarray, float]:
        """Ego pose at ``t``: xy (2,), yaw, velocity (2,) world frame, yaw rate (rad/s)."""
        i, w = self._interp(t)
        xy = self.ego_xy[i] * (1 - w) + self.ego_xy[i + 1] * w
        yaw = self.ego_yaw[i] * (1 - w) + self.ego_yaw[i + 1] * w
        vel = self.ego_vel[i] * (1 - w) + self.ego_vel[i + 1] * w
        yaw_rate = (self.ego_yaw[i + 1] - self.ego_yaw[i]) / DT_GRID
        return xy, float(_wrap(yaw)), vel, float(yaw_rate)

    def attributes(self, t: float) -> np.ndarray:
        """Attribute index per agent at ``t`` (depends on its current speed and role)."""
        _, _, vel = self.agent_states(t)
        speed = np.hypot(vel[:, 0], vel[:, 1])
        out = np.full(len(self.agents), NO_ATTRIBUTE, dtype=np.int64)
        for k, a in enumerate(self.agents):
            if a.cls in VEHICLES:
                if speed[k] > 0.3:
                    out[k] = ATTR_TO_ID["vehicle.moving"]
                elif a.kind == "parked":
                    out[k] = ATTR_TO_ID["vehicle.parked"]
                else:
                    out[k] = ATTR_TO_ID["vehicle.stopped"]
            elif a.cls in CYCLES:
                out[k] = ATTR_TO_ID["cycle.with_rider" if a.rider else "cycle.without_rider"]
            elif a.cls == "pedestrian":
                if a.kind == "sitting":
                    out[k] = ATTR_TO_ID["pedestrian.sitting_lying_down"]
                elif speed[k] > 0.2:
                    out[k] = ATTR_TO_ID["pedestrian.moving"]
                else:
                    out[k] = ATTR_TO_ID["pedestrian.standing"]
        return out


def _wrap(a):
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


def _agent_states(a: Agent, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(times)
    if a.path is None or a.speed is None:
        xy = np.broadcast_to(np.asarray(a.static_xy, dtype=np.float64), (n, 2)).copy()
        return xy, np.full(n, a.static_yaw), np.zeros((n, 2))
    d = np.diff(a.path, axis=0)
    ps = np.concatenate([[0.0], np.cumsum(np.hypot(d[:, 0], d[:, 1]))])
    head = np.unwrap(np.arctan2(d[:, 1], d[:, 0]))
    s = a.s0 + np.concatenate([[0.0], np.cumsum(a.speed[:-1]) * DT_GRID])
    x = np.interp(s, ps, a.path[:, 0])
    y = np.interp(s, ps, a.path[:, 1])
    # Heading: each segment's direction at its midpoint, interpolated in between (a smooth tangent
    # that lags the chord by at most half a segment); beyond the ends, the end headings.
    h = np.interp(s, (ps[:-1] + ps[1:]) / 2, head)
    # Beyond the polyline ends np.interp clamps: extrapolate linearly instead.
    over = s > ps[-1]
    if np.any(over):
        extra = s[over] - ps[-1]
        x[over] = a.path[-1, 0] + extra * np.cos(head[-1])
        y[over] = a.path[-1, 1] + extra * np.sin(head[-1])
    xy = np.stack([x, y], axis=1)
    # Velocity from the positions themselves, so it is consistent even where the path clamps.
    vel = np.gradient(xy, DT_GRID, axis=0)
    return xy, h + a.yaw_offset, vel


def _right_turn_path(centre: np.ndarray, e_in: np.ndarray, w_in: float, w_out: float, t_arc: float,
                     before: float = 120.0, after: float = 150.0) -> np.ndarray:
    """Lane-0 path along ``e_in`` that turns right at a crossing centred at ``centre``.

    The arc starts ``t_arc`` before the centre and ends in lane 0 of the other road, heading
    ``e_in`` rotated by -90 degrees.
    """
    e_out = np.array([e_in[1], -e_in[0]])  # right of e_in
    t_a = -t_arc
    radius = -0.5 * w_out - t_a
    start = centre + t_a * e_in + 0.5 * w_in * e_out
    pre = start[None] + np.arange(-before, 0.0, 1.0)[:, None] * e_in[None]
    phi = np.linspace(0.0, np.pi / 2, max(int(radius * np.pi), 8))  # ~0.5 m steps
    c = start + radius * e_out
    arc = c[None] - radius * np.cos(phi)[:, None] * e_out[None] + radius * np.sin(phi)[:, None] * e_in[None]
    end = arc[-1]
    post = end[None] + np.arange(1.0, after, 1.0)[:, None] * e_out[None]
    return np.concatenate([pre, arc, post])


def _speed_profile(times: np.ndarray, v0: float, vmax: float, events: list[tuple[float, float]]) -> np.ndarray:
    """Speeds on the grid from piecewise-constant accelerations ``events`` = [(t_start, accel)]."""
    acc = np.zeros_like(times)
    for t0, a in sorted(events):
        acc[times >= t0] = a
    v = np.empty_like(times)
    cur = v0
    for k in range(len(times)):
        v[k] = cur
        cur = min(max(cur + acc[k] * DT_GRID, 0.0), vmax)
    return v


# =============================================================================================
# Generation
# =============================================================================================


def _curved_centerline(rng: np.random.Generator, length: float) -> np.ndarray:
    step = 1.0
    n = int(length / step)
    curv = np.zeros(n)
    pos = 0
    while pos < n:
        seg = int(rng.uniform(60, 200))
        k = 0.0 if rng.random() < 0.3 else rng.choice([-1, 1]) / rng.uniform(60, 250)
        curv[pos:pos + seg] = k
        pos += seg
    # Smooth curvature changes (clothoid-like transitions).
    kernel = np.ones(25) / 25
    curv = np.convolve(curv, kernel, mode="same")
    head = np.cumsum(curv) * step
    head -= head[n // 2]
    xy = np.cumsum(np.stack([np.cos(head), np.sin(head)], axis=1) * step, axis=0)
    return xy - xy[n // 2]


def sample_size(rng: np.random.Generator, cls: str, scale: float = 1.0) -> np.ndarray:
    m = np.asarray(SIZE_MEAN[cls])
    s = np.asarray(SIZE_STD[cls])
    size = m * scale + rng.normal(0, 1, 3) * s
    return np.clip(size, m * 0.6, m * 1.6)


class _Builder:
    """Accumulates agents while keeping them apart (simple occupancy along lanes)."""

    def __init__(self, rng: np.random.Generator, times: np.ndarray):
        self.rng = rng
        self.times = times
        self.agents: list[Agent] = []
        self.static_boxes: list[tuple[np.ndarray, float]] = []  # (xy, radius) of static objects

    def free(self, xy: np.ndarray, radius: float) -> bool:
        return all(np.hypot(*(xy - c)) >= r + radius for c, r in self.static_boxes)

    def add_static(self, cls: str, xy: np.ndarray, yaw: float, kind: str, size: np.ndarray | None = None,
                   rider: bool = False, category: str = "", check: bool = True) -> Agent | None:
        size = sample_size(self.rng, cls) if size is None else size
        radius = 0.5 * float(np.hypot(size[0], size[1]))
        if check and not self.free(xy, radius):
            return None
        a = Agent(cls, size, None, static_xy=np.asarray(xy, float), static_yaw=float(yaw), kind=kind, rider=rider,
                  category=category, appearance=_appearance(self.rng, cls, rider))
        self.static_boxes.append((np.asarray(xy, float), radius))
        self.agents.append(a)
        return a

    def add_moving(self, cls: str, path: np.ndarray, s0: float, speed: np.ndarray, kind: str = "traffic",
                   size: np.ndarray | None = None, rider: bool = False, category: str = "") -> Agent:
        size = sample_size(self.rng, cls) if size is None else size
        a = Agent(cls, size, path, s0=s0, speed=speed, kind=kind, rider=rider, category=category,
                  appearance=_appearance(self.rng, cls, rider))
        self.agents.append(a)
        return a


CAR_COLORS = np.array(
    [[235, 235, 235], [25, 25, 28], [140, 142, 148], [190, 192, 196], [160, 20, 25], [30, 50, 120],
     [20, 80, 50], [210, 170, 40], [90, 60, 40], [60, 110, 170], [240, 240, 225], [70, 70, 75]], dtype=np.float64)
CLOTHES = np.array(
    [[30, 30, 35], [200, 200, 205], [50, 60, 120], [150, 30, 40], [60, 100, 60], [120, 110, 90],
     [220, 180, 60], [90, 90, 95], [20, 40, 80], [170, 120, 160]], dtype=np.float64)
SKIN = np.array([[230, 190, 160], [190, 140, 110], [140, 95, 70], [95, 65, 45]], dtype=np.float64)


def _appearance(rng: np.random.Generator, cls: str, rider: bool) -> dict:
    jitter = lambda c: np.clip(c + rng.normal(0, 8, 3), 0, 255)  # noqa: E731
    ap: dict = {"variant": int(rng.integers(0, 3))}
    if cls in ("car", "truck", "trailer", "motorcycle", "bicycle"):
        ap["body"] = jitter(CAR_COLORS[rng.integers(len(CAR_COLORS))])
        ap["cargo"] = jitter(CAR_COLORS[rng.integers(len(CAR_COLORS))] * 0.5 + 120)
    elif cls == "bus":
        ap["body"] = jitter(np.array([[200, 40, 40], [240, 240, 240], [40, 90, 170], [230, 180, 30],
                                      [40, 140, 80]], float)[rng.integers(5)])
        ap["cargo"] = ap["body"]
    elif cls == "construction_vehicle":
        ap["body"] = jitter(np.array([[235, 170, 20], [230, 120, 20], [200, 200, 60]], float)[rng.integers(3)])
        ap["cargo"] = ap["body"]
    elif cls == "barrier":
        ap["body"] = jitter(np.array([[200, 200, 195], [220, 90, 30], [230, 230, 230], [180, 30, 30]],
                                     float)[rng.integers(4)])
        ap["cargo"] = jitter(np.array([240.0, 240, 240]))
    elif cls == "traffic_cone":
        ap["body"] = jitter(np.array([[245, 110, 20], [235, 70, 20], [250, 150, 30]], float)[rng.integers(3)])
        ap["cargo"] = np.array([245.0, 245, 245])
    if cls == "pedestrian" or rider:
        ap["shirt"] = jitter(CLOTHES[rng.integers(len(CLOTHES))])
        ap["pants"] = jitter(CLOTHES[rng.integers(len(CLOTHES))])
        ap["skin"] = jitter(SKIN[rng.integers(len(SKIN))])
        ap["hair"] = jitter(np.array([[20, 15, 10], [80, 50, 25], [160, 130, 80], [120, 120, 120]],
                                     float)[rng.integers(4)])
    return ap


def _vehicle_class(rng: np.random.Generator, bus_ok: bool = True) -> str:
    classes = ["car", "truck", "bus", "motorcycle", "construction_vehicle"]
    p = np.array([0.80, 0.11, 0.04 if bus_ok else 0.0, 0.035, 0.015])
    return classes[rng.choice(len(classes), p=p / p.sum())]


# --- scene generation parameters (metres, seconds, m/s) -------------------------------------------
# The order of the random draws below defines the data set: changing a value changes scenes, and
# reordering draws changes every scene after it (tests/world pins a few scenes).
ROAD_TYPE_PROBS = (0.35, 0.35, 0.30)
LANES_PER_DIR, LANES_PROBS = (1, 2), (0.55, 0.45)
PARKING_PROB = (0.6, 0.5)  # (right, left) side has a parking lane
ROAD_MIN_LENGTH, ROAD_LENGTH_PER_S, ROAD_LENGTH_MARGIN = 400.0, 16, 260  # main road length
CROSS_OFFSET = (-10, 40)  # crossing position relative to the middle of the main road
CROSS_HALF_LENGTH = 150.0
CROSS_LANES = (1, 2)
INTERSECTION_MARGIN = 8.0  # beyond the crossing road's half width: "in the intersection"
STOP_LINE_GAP = 4.0  # stop line before the crossing road's edge
# ego
EGO_SIZE = (1.73, 4.08, 1.56)
EGO_STATIONARY_PROB = 0.08
EGO_VMAX = (5.0, 14.0)
EGO_V0_FRACTION = (0.6, 1.0)  # initial speed as a fraction of its top speed
EGO_WAIT_PROB = 0.5  # at an intersection: the ego stops at the crossing
EGO_LANE_CHANGE_PROB = 0.12
EGO_APPROACH_SPEED = (5.0, 9.0)  # when stopping at the crossing
EGO_BRAKE = 2.0  # m/s^2
EGO_QUEUE_AHEAD = (0, 3)  # cars waiting ahead of the ego (integers: high exclusive)
EGO_QUEUE_GAP = 2.0
EGO_APPROACH_TIME = (1.0, 5.0)  # driving time before braking
EGO_SPEED_EVENT_PROB = 0.4  # a speed change (accelerate / brake) during the scene
EGO_SPEED_EVENT_ACCEL = (0.3, 1.2)
EGO_SPEED_EVENT_LENGTH = (2, 5)
EGO_LANE_CHANGE_SECONDS = 4.0  # lane change length = this many seconds at the mean speed
AREA_BEHIND, AREA_AHEAD, ROAD_END_MARGIN = 70.0, 90.0, 5.0  # populated part of the main road
# traffic
DENSITY = (0.3, 1.0)
LANE_SPEED_MEAN, LANE_SPEED_STD, LANE_SPEED_RANGE = 10.0, 2.5, (4.0, 15.0)
EGO_LANE_FASTER = 0.5  # traffic in the ego lane keeps ahead of the ego
MEAN_GAP = 25.0  # mean free gap between vehicles at density 1 (exponential)
MIN_GAP_MOVING, MIN_GAP_WAITING = 4.0, 6.0
QUEUE_GAP = (1.5, 3.0)
EGO_CLEARANCE = 12.0  # no vehicle starts within this (plus its length) of the ego
LANE_CHANGE_PROB = 0.12
LANE_CHANGE_SECONDS = (3.0, 5.0)
TRAILER_PROB, TRAILER_GAP = 0.25, 0.6
CROSS_SPEED_MEAN, CROSS_SPEED_STD, CROSS_SPEED_RANGE = 9.0, 2.0, (4.0, 13.0)
CROSS_QUEUE_MAX, CROSS_QUEUE_GAP = 5, (1.5, 3.5)
TURN_PROB, TURN_SPEED = 0.7, (4.0, 7.0)
# parked vehicles
PARKED_SKIP_PROB, PARKED_SKIP = 0.3, (5, 20)
PARKED_GAP = (0.8, 3.0)
PARKED_REVERSED_PROB = 0.15
# pedestrians
PEDESTRIANS_PER_DENSITY, PEDESTRIANS_BASE = 22, 4
PED_WALKING, PED_STANDING = 0.72, 0.95  # cumulative: walking, standing, else sitting
CHILD_PROB, CHILD_SCALE = 0.1, 0.8
WALK_SPEED_MEAN, WALK_SPEED_STD, WALK_SPEED_RANGE = 1.35, 0.25, (0.6, 2.2)
CROSSING_PEDESTRIANS = 3  # Poisson mean at an intersection
CROSSWALK_OFFSET = 3.0
# cyclists
CYCLISTS_PER_DENSITY = 3.0
BICYCLE_PROB, PARKED_CYCLE_PROB = 0.6, 0.55
BICYCLE_SPEED, MOTORCYCLE_SPEED = (3.0, 6.0), (6.0, 11.0)
RIDER_MIN_HEIGHT = 1.6
# road works, kerb objects, bus stop
ROADWORKS_PROB = 0.45
ROADWORKS_LENGTH = (15, 45)
CONES = (3, 9)
CONE_SPACING = 2.5
CONSTRUCTION_VEHICLE_PROB = 0.6
WORKERS = (0, 4)
KERB_OBJECTS = 1.5  # Poisson mean of loose cones / barriers along the kerb
BUS_STOP_PROB = 0.25
BUS_STOP_WAITING = (1, 5)


@dataclass
class _Layout:
    """The roads of a scene and where their crossing is (s along the main road)."""

    main: Road
    cross: Road | None
    cross_s: float

    @property
    def roads(self) -> list[Road]:
        return [self.main] + ([self.cross] if self.cross is not None else [])

    @property
    def cross_hw(self) -> float:
        return self.cross.half_width if self.cross is not None else 0.0

    @property
    def stop_line(self) -> float:  # main-road stop line, direction +1
        return self.cross_s - self.cross_hw - STOP_LINE_GAP

    @property
    def stop_line_back(self) -> float:  # direction -1
        return self.cross_s + self.cross_hw + STOP_LINE_GAP

    def in_intersection(self, s: float, margin: float = 0.0) -> bool:
        return self.cross is not None and abs(s - self.cross_s) < self.cross_hw + INTERSECTION_MARGIN + margin


@dataclass
class _EgoPlan:
    """The ego's lane, motion and the stretch of main road (lo, hi) that gets populated."""

    agent: Agent
    lane: int
    vmax: float
    s0: float
    speed: np.ndarray
    stationary: bool
    stops_at_crossing: bool
    lane_change: bool
    queue_sizes: list[np.ndarray]
    s_range: tuple[float, float]
    lo: float
    hi: float


def _layout_step(rng: np.random.Generator, duration: float, road_type: str, lanes: int) -> _Layout:
    parking = (bool(rng.random() < PARKING_PROB[0]), bool(rng.random() < PARKING_PROB[1]))
    length = max(ROAD_MIN_LENGTH, duration * ROAD_LENGTH_PER_S + ROAD_LENGTH_MARGIN)
    if road_type == "curved":
        center = _curved_centerline(rng, length)
    else:
        xs = np.arange(-length / 2, length / 2 + 1e-6, 1.0)
        center = np.stack([xs, np.zeros_like(xs)], axis=1)
    main = Road(center, lanes, parking=parking)
    cross = None
    cross_s = main.length / 2 + float(rng.uniform(*CROSS_OFFSET))
    if road_type == "intersection":
        (cxy, ch) = main.pose(np.array([cross_s]))
        h = ch[0] + np.pi / 2
        ts = np.arange(-CROSS_HALF_LENGTH, CROSS_HALF_LENGTH + 1e-6, 1.0)
        cpts = cxy[0][None, :] + ts[:, None] * np.array([np.cos(h), np.sin(h)])[None, :]
        cross = Road(cpts, int(rng.choice(CROSS_LANES)), parking=(False, False))
    return _Layout(main, cross, cross_s)


def _ego_step(rng: np.random.Generator, lay: _Layout, times: np.ndarray, duration: float, road_type: str,
              lanes: int) -> _EgoPlan:
    main = lay.main
    s_mid = main.length / 2
    ego_lane = int(rng.integers(0, lanes))
    ego_lat = main.lane_center(ego_lane, +1)
    stationary = rng.random() < EGO_STATIONARY_PROB
    vmax = float(rng.uniform(*EGO_VMAX))
    v0 = 0.0 if stationary else float(rng.uniform(*EGO_V0_FRACTION)) * vmax
    s0 = s_mid - (0.0 if stationary else v0 * duration * 0.5)
    stops = road_type == "intersection" and not stationary and rng.random() < EGO_WAIT_PROB
    path = main.lane_path(ego_lat, reverse=False)
    lane_change = lanes > 1 and not stationary and not stops and rng.random() < EGO_LANE_CHANGE_PROB
    queue_sizes: list[np.ndarray] = []
    if stationary:
        speed = np.zeros_like(times)
    elif stops:
        # Approach and stop behind a queue before the crossing.
        v0 = float(rng.uniform(*EGO_APPROACH_SPEED))
        queue_sizes = [sample_size(rng, "car") for _ in range(int(rng.integers(*EGO_QUEUE_AHEAD)))]
        stop_s = lay.stop_line - sum(q[1] + EGO_QUEUE_GAP for q in queue_sizes) - 2.0 - EGO_SIZE[1] / 2
        brake_dist = v0 * v0 / (2 * EGO_BRAKE)
        s0 = stop_s - brake_dist - v0 * float(rng.uniform(*EGO_APPROACH_TIME))
        t_brake = (stop_s - brake_dist - s0) / v0
        speed = _speed_profile(times, v0, v0, [(t_brake, -EGO_BRAKE)])
    else:
        events = []
        if rng.random() < EGO_SPEED_EVENT_PROB:
            t_ev = float(rng.uniform(2, max(duration - 4, 2.5)))
            events.append((t_ev, float(rng.choice([-1.0, 1.0]) * rng.uniform(*EGO_SPEED_EVENT_ACCEL))))
            events.append((t_ev + float(rng.uniform(*EGO_SPEED_EVENT_LENGTH)), 0.0))
        speed = _speed_profile(times, v0, vmax, events)
    if lane_change:
        t_c = float(rng.uniform(2.0, max(duration - 3.0, 2.5)))
        s_c = s0 + float(np.sum(speed[: int(t_c / DT_GRID)]) * DT_GRID)
        path = main.lane_change_path(ego_lat, main.lane_center(1 - ego_lane, +1), s_c,
                                     max(float(speed.mean()), 3.0) * EGO_LANE_CHANGE_SECONDS, reverse=False)
    agent = Agent("car", np.array(EGO_SIZE), path, s0=float(s0), speed=speed, kind="ego")
    s_t = s0 + np.concatenate([[0.0], np.cumsum(speed[:-1]) * DT_GRID])
    s_range = (float(s_t.min()), float(s_t.max()))
    lo = max(s_range[0] - AREA_BEHIND, ROAD_END_MARGIN)
    hi = min(s_range[1] + AREA_AHEAD, main.length - ROAD_END_MARGIN)
    return _EgoPlan(agent, ego_lane, vmax, float(s0), speed, stationary, stops, lane_change, queue_sizes, s_range,
                    lo, hi)


def _traffic_step(b: _Builder, lay: _Layout, ego: _EgoPlan, density: float, duration: float) -> None:
    """Moving traffic in every lane of the main road (queues at the crossing when the ego waits)."""
    rng, times, main, lanes = b.rng, b.times, lay.main, lay.main.lanes_per_dir
    zero = np.zeros_like(times)
    lo, hi = ego.lo, ego.hi
    for direction in (+1, -1):
        for lane in range(lanes):
            lat = main.lane_center(lane, direction)
            path = main.lane_path(lat, reverse=direction < 0)
            lane_v = float(np.clip(rng.normal(LANE_SPEED_MEAN, LANE_SPEED_STD), *LANE_SPEED_RANGE))
            ego_lane_here = direction > 0 and lane == ego.lane
            if ego_lane_here and not ego.stops_at_crossing:
                lane_v = max(lane_v, ego.vmax + EGO_LANE_FASTER)

            def to_path(s: float, direction: int = direction) -> float:
                return s if direction > 0 else main.length - s

            if ego.stops_at_crossing:
                # Queue waiting at the stop line, then vehicles that already crossed driving away.
                line = lay.stop_line if direction > 0 else lay.stop_line_back
                sizes = ego.queue_sizes if ego_lane_here else [
                    sample_size(rng, "car") for _ in range(int(rng.integers(0, 5)))]
                s = line
                for size in sizes:
                    s -= direction * size[1] / 2
                    b.add_moving("car", path, to_path(s), zero, kind="stopped", size=size)
                    s -= direction * (size[1] / 2 + float(rng.uniform(*QUEUE_GAP)))
                s = (lay.cross_s + direction * (lay.cross_hw + 10.0 + float(rng.uniform(0, 30))))
                while lo < s < hi:
                    cls = _vehicle_class(rng)
                    size = sample_size(rng, cls)
                    b.add_moving(cls, path, to_path(s), _speed_profile(times, lane_v, lane_v, []), size=size,
                                 rider=cls == "motorcycle")
                    s += direction * (size[1] + float(rng.exponential(MEAN_GAP / density)) + MIN_GAP_WAITING)
                continue
            s = lo + float(rng.uniform(0, 20))
            while s < hi:
                cls = _vehicle_class(rng)
                size = sample_size(rng, cls)
                s_next = s + size[1] + float(rng.exponential(MEAN_GAP / density)) + MIN_GAP_MOVING
                if ego_lane_here and abs(s - ego.s0) < EGO_CLEARANCE + size[1]:
                    s = s_next
                    continue
                if ego_lane_here and s < ego.s0:
                    speed = ego.speed.copy()  # follow the ego at its speed: constant gap
                else:
                    speed = _speed_profile(times, lane_v, lane_v, [])
                vpath = path
                if lanes > 1 and cls in ("car", "motorcycle") and rng.random() < LANE_CHANGE_PROB:
                    # Lane change to the neighbouring lane some seconds into the scene.
                    other = main.lane_center(1 - lane, direction)
                    t_c = float(rng.uniform(1.0, max(duration - 2.0, 1.5)))
                    span = lane_v * float(rng.uniform(*LANE_CHANGE_SECONDS))
                    vpath = main.lane_change_path(lat, other, s + direction * lane_v * t_c, span,
                                                  reverse=direction < 0)
                b.add_moving(cls, vpath, to_path(s), speed, size=size, rider=cls == "motorcycle")
                # Trucks sometimes tow a trailer.
                if cls == "truck" and rng.random() < TRAILER_PROB:
                    tsize = sample_size(rng, "trailer")
                    off = (size[1] + tsize[1]) / 2 + TRAILER_GAP
                    b.add_moving("trailer", path, to_path(s) - off, speed, size=tsize)
                    s_next += tsize[1]
                s = s_next


def _cross_traffic_step(b: _Builder, lay: _Layout, ego: _EgoPlan, duration: float) -> None:
    """The crossing road: flowing traffic and a right turner while the ego waits, else a queue."""
    cross, main = lay.cross, lay.main
    if cross is None:
        return
    rng, times = b.rng, b.times
    c_mid = cross.length / 2
    for direction in (+1, -1):
        for lane in range(cross.lanes_per_dir):
            lat = cross.lane_center(lane, direction)
            path = cross.lane_path(lat, reverse=direction < 0)
            lane_v = float(np.clip(rng.normal(CROSS_SPEED_MEAN, CROSS_SPEED_STD), *CROSS_SPEED_RANGE))
            # In path coordinates, the crossing is at c_mid either way.
            if ego.stops_at_crossing:
                s = float(rng.uniform(0, 30))
                while s < cross.length:
                    cls = _vehicle_class(rng)
                    size = sample_size(rng, cls)
                    b.add_moving(cls, path, s, _speed_profile(times, lane_v, lane_v, []), size=size,
                                 rider=cls == "motorcycle")
                    s += size[1] + float(rng.exponential(MEAN_GAP)) + MIN_GAP_WAITING
                if lane == 0 and rng.random() < TURN_PROB:
                    # A car turning right onto the main road (away from the waiting ego).
                    e_in = (path[-1] - path[0]) / np.linalg.norm(path[-1] - path[0])
                    centre = cross.xy[len(cross.xy) // 2]
                    v = float(rng.uniform(*TURN_SPEED))
                    tpath = _right_turn_path(centre, e_in, cross.lane_width, main.lane_width,
                                             main.half_width + main.bike_width + 1.0)
                    d = np.diff(tpath, axis=0)
                    s_turn = float(np.argmin(np.linalg.norm(tpath - centre, axis=1)))
                    s_turn = float(np.sum(np.hypot(d[: int(s_turn), 0], d[: int(s_turn), 1])))
                    t_reach = float(rng.uniform(1.0, max(duration - 3.0, 1.5)))
                    b.add_moving("car", tpath, max(s_turn - v * t_reach, 0.0), _speed_profile(times, v, v, []))
            else:
                # Queue of stopped vehicles before the stop line.
                s = c_mid - main.half_width - STOP_LINE_GAP
                for _ in range(int(rng.integers(0, CROSS_QUEUE_MAX))):
                    cls = _vehicle_class(rng, bus_ok=False)
                    size = sample_size(rng, cls)
                    s -= size[1] / 2
                    b.add_moving(cls, path, s, np.zeros_like(times), kind="stopped", size=size,
                                 rider=cls == "motorcycle")
                    s -= size[1] / 2 + float(rng.uniform(*CROSS_QUEUE_GAP))


def _parked_step(b: _Builder, lay: _Layout, ego: _EgoPlan) -> None:
    """Parked vehicles along the parking lanes of the main road."""
    rng, main = b.rng, lay.main
    for side in (-1, +1):
        if not main.parking[0 if side < 0 else 1]:
            continue
        lat = side * (main.half_width + main.bike_width + main.parking_width / 2)
        s = ego.lo + float(rng.uniform(0, 10))
        while s < ego.hi:
            if rng.random() < PARKED_SKIP_PROB or lay.in_intersection(s, 6):
                s += float(rng.uniform(*PARKED_SKIP))
                continue
            r = rng.random()
            cls = "car" if r < 0.8 else ("truck" if r < 0.9 else ("trailer" if r < 0.95 else "motorcycle"))
            size = sample_size(rng, cls)
            s += size[1] / 2
            xy, h = main.pose(np.array([s]), lat + rng.normal(0, 0.15))
            yaw = h[0] + (np.pi if rng.random() < PARKED_REVERSED_PROB else 0.0) + rng.normal(0, 0.03)
            b.add_static(cls, xy[0], yaw, "parked", size=size)
            s += size[1] / 2 + float(rng.uniform(*PARKED_GAP))


def _pedestrian_step(b: _Builder, lay: _Layout, ego: _EgoPlan, density: float) -> None:
    """Pedestrians walking, standing or sitting on the sidewalks, and crossing at crosswalks."""
    rng, times, main, cross = b.rng, b.times, lay.main, lay.cross
    n_ped = int(rng.poisson(PEDESTRIANS_PER_DENSITY * density + PEDESTRIANS_BASE))
    walk_roads = lay.roads
    for _ in range(n_ped):
        road = walk_roads[int(rng.integers(len(walk_roads)))]
        side = int(rng.choice([-1, 1]))
        lat = road.edge_offset(side) + side * float(rng.uniform(0.6, road.sidewalk_width - 0.5))
        if road is main:
            s = float(rng.uniform(ego.lo, ego.hi))
        else:
            s = float(rng.uniform(road.length / 2 - 60, road.length / 2 + 60))
        if road is main and lay.in_intersection(s, 2):
            continue
        r = rng.random()
        scale = CHILD_SCALE if rng.random() < CHILD_PROB else 1.0
        size = sample_size(rng, "pedestrian", scale)
        category = "human.pedestrian.child" if scale < 1.0 else "human.pedestrian.adult"
        if r < PED_WALKING:
            v = float(np.clip(rng.normal(WALK_SPEED_MEAN, WALK_SPEED_STD), *WALK_SPEED_RANGE))
            direction = int(rng.choice([-1, 1]))
            path = road.lane_path(lat, reverse=direction < 0, step=1.0)
            ps = s if direction > 0 else road.length - s
            b.add_moving("pedestrian", path, ps, _speed_profile(times, v, v, []), kind="walking", size=size,
                         category=category)
        elif r < PED_STANDING:
            xy, h = road.pose(np.array([s]), lat)
            b.add_static("pedestrian", xy[0], float(rng.uniform(-np.pi, np.pi)), "standing", size=size,
                         category=category)
        else:
            size[2] = float(rng.uniform(0.9, 1.25))
            size[1] = float(rng.uniform(0.8, 1.1))
            xy, h = road.pose(np.array([s]), lat)
            b.add_static("pedestrian", xy[0], h[0] + side * np.pi / 2, "sitting", size=size, category=category)

    # Crossing pedestrians at the crosswalks (cross road is stopped when the ego drives through).
    if cross is None:
        return
    for _ in range(int(rng.poisson(CROSSING_PEDESTRIANS))):
        side = int(rng.choice([-1, 1]))
        # Crosswalk across the crossing road, on the near or far side of the main road.
        off = side * (main.half_width + CROSSWALK_OFFSET)
        c_s = cross.length / 2 + off
        lat0 = cross.edge_offset(-1) - 1.5
        lat1 = cross.edge_offset(+1) + 1.5
        a_xy, _ = cross.pose(np.array([c_s, c_s]), np.array([lat0, lat1]))
        if rng.random() < 0.5:
            a_xy = a_xy[::-1].copy()
        path = np.linspace(a_xy[0], a_xy[1], 20)
        v = float(np.clip(rng.normal(1.3, 0.2), 0.7, 2.0))
        start = float(rng.uniform(-10, 2))
        waits = ego.stops_at_crossing
        speed = _speed_profile(times, v, v, []) if not waits else np.zeros_like(times)
        b.add_moving("pedestrian", path, start * v if not waits else 0.0, speed,
                     kind="walking", category="human.pedestrian.adult")


def _cyclist_step(b: _Builder, lay: _Layout, ego: _EgoPlan, density: float) -> None:
    """Bicycles and motorcycles: parked on the sidewalk edge, or ridden in the cycle lanes."""
    rng, times, main = b.rng, b.times, lay.main
    for _ in range(int(rng.poisson(CYCLISTS_PER_DENSITY * density))):
        s = float(rng.uniform(ego.lo, ego.hi))
        if lay.in_intersection(s, 5):
            continue
        cls = "bicycle" if rng.random() < BICYCLE_PROB else "motorcycle"
        if rng.random() < PARKED_CYCLE_PROB:
            # Parked on the sidewalk edge, without a rider.
            side = int(rng.choice([-1, 1]))
            lat = main.edge_offset(side) + side * 0.7
            xy, h = main.pose(np.array([s]), lat)
            b.add_static(cls, xy[0], h[0] + side * np.pi / 2 + rng.normal(0, 0.2), "parked", rider=False)
        else:
            direction = int(rng.choice([-1, 1]))
            lat = -direction * (main.half_width + main.bike_width / 2)
            path = main.lane_path(lat, reverse=direction < 0)
            v = float(rng.uniform(*BICYCLE_SPEED)) if cls == "bicycle" else float(rng.uniform(*MOTORCYCLE_SPEED))
            size = sample_size(rng, cls)
            size[2] = max(size[2], RIDER_MIN_HEIGHT)  # the box includes the rider
            ps = s if direction > 0 else main.length - s
            b.add_moving(cls, path, ps, _speed_profile(times, v, v, []), size=size, rider=True)


def _roadworks_step(b: _Builder, lay: _Layout, ego: _EgoPlan) -> None:
    """A road-work zone (barriers, a cone taper, a construction vehicle, workers), loose cones and
    barriers along the kerb, and a bus stop with waiting people."""
    rng, main = b.rng, lay.main
    if rng.random() < ROADWORKS_PROB:
        side = int(rng.choice([-1, 1]))
        s0 = float(rng.uniform(ego.s_range[0] - 20, ego.s_range[1] + 60))
        if not lay.in_intersection(s0, 30):
            zone_len = float(rng.uniform(*ROADWORKS_LENGTH))
            lat = main.edge_offset(side) + side * float(rng.uniform(0.5, 1.8))
            # Row of barriers along the kerb; their long side (w) runs along the road.
            s = s0
            while s < s0 + zone_len:
                size = sample_size(rng, "barrier")
                xy, h = main.pose(np.array([s]), lat)
                b.add_static("barrier", xy[0], h[0] + np.pi / 2 + rng.normal(0, 0.03), "static", size=size,
                             check=False)
                s += size[0] + float(rng.uniform(0.0, 0.4))
            # Cones tapering into the lane before the zone.
            n_cones = int(rng.integers(*CONES))
            for k in range(n_cones):
                frac = k / max(n_cones - 1, 1)
                cs = s0 - 2.0 - (1 - frac) * n_cones * CONE_SPACING
                clat = lat - side * frac * 1.2 - side * 0.8
                xy, h = main.pose(np.array([cs]), clat)
                b.add_static("traffic_cone", xy[0], float(rng.uniform(-np.pi, np.pi)), "static", check=False)
            # Construction vehicle inside the zone (parked or slowly moving on the lane side).
            if rng.random() < CONSTRUCTION_VEHICLE_PROB:
                cv_lat = lat + side * 3.5
                xy, h = main.pose(np.array([s0 + zone_len / 2]), cv_lat)
                b.add_static("construction_vehicle", xy[0], h[0] + rng.normal(0, 0.3), "parked", check=False)
            for _ in range(int(rng.integers(*WORKERS))):
                xy, h = main.pose(np.array([s0 + rng.uniform(0, zone_len)]), lat + side * rng.uniform(1.2, 3.0))
                b.add_static("pedestrian", xy[0], float(rng.uniform(-np.pi, np.pi)), "standing",
                             category="human.pedestrian.construction_worker")

    # Scattered barriers/cones elsewhere (kerb protection, parking) and a bus stop.
    for _ in range(int(rng.poisson(KERB_OBJECTS))):
        side = int(rng.choice([-1, 1]))
        s = float(rng.uniform(ego.lo, ego.hi))
        xy, h = main.pose(np.array([s]), main.edge_offset(side) + side * 0.4)
        cls = "traffic_cone" if rng.random() < 0.5 else "barrier"
        b.add_static(cls, xy[0], h[0] + (np.pi / 2 if cls == "barrier" else 0.0), "static")
    if rng.random() < BUS_STOP_PROB:
        s = float(rng.uniform(ego.s_range[0], ego.s_range[1] + 60))
        if not lay.in_intersection(s, 15):
            side = -1
            lat = side * (main.half_width + 1.0)
            xy, h = main.pose(np.array([s]), lat)
            b.add_static("bus", xy[0], h[0], "stopped")
            for _ in range(int(rng.integers(*BUS_STOP_WAITING))):
                pxy, _ = main.pose(np.array([s + rng.uniform(-5, 5)]), main.edge_offset(side) + side * 1.2)
                b.add_static("pedestrian", pxy[0], float(rng.uniform(-np.pi, np.pi)), "standing")


def generate_scene(seed: int, index: int, duration: float = 20.0, name: str | None = None,
                   condition: str | None = None, road_type: str | None = None) -> Scene:
    """Deterministic scene ``index`` of a dataset with ``seed``: layout, ego, then every kind of
    agent in a fixed order, all drawn from one generator."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index), 7]))
    condition = condition or str(rng.choice(CONDITIONS, p=CONDITION_PROBS))
    road_type = road_type or str(rng.choice(ROAD_TYPES, p=list(ROAD_TYPE_PROBS)))
    times = np.arange(0.0, duration + 0.5 + 1e-9, DT_GRID)
    b = _Builder(rng, times)
    lanes = int(rng.choice(list(LANES_PER_DIR), p=list(LANES_PROBS)))
    lay = _layout_step(rng, duration, road_type, lanes)
    ego = _ego_step(rng, lay, times, duration, road_type, lanes)
    density = float(rng.uniform(*DENSITY))
    _traffic_step(b, lay, ego, density, duration)
    _cross_traffic_step(b, lay, ego, duration)
    _parked_step(b, lay, ego)
    _pedestrian_step(b, lay, ego, density)
    _cyclist_step(b, lay, ego, density)
    _roadworks_step(b, lay, ego)

    props = _roadside_props(rng, lay.roads, lay.main, ego.lo - 40, ego.hi + 40,
                            lay.cross_s if lay.cross is not None else None)
    scene_name = name or f"scene-{index + 1:04d}"
    desc = f"condition={condition}, road={road_type}, lanes={lanes}x2, density={density:.2f}"
    if ego.stops_at_crossing:
        desc += ", ego waits at crossing"
    if ego.stationary:
        desc += ", ego parked"
    if ego.lane_change:
        desc += ", ego changes lane"
    scene = Scene(scene_name, condition, road_type, lay.roads, ego.agent, b.agents, props, duration, int(seed), desc)
    scene.finalize()
    _drop_collisions(scene)
    return scene


def _roadside_props(rng: np.random.Generator, roads: list[Road], main: Road, lo: float, hi: float,
                    cross_s: float | None) -> list[Prop]:
    props: list[Prop] = []
    cross = roads[1] if len(roads) > 1 else None
    for side in (-1, 1):
        edge = abs(main.edge_offset(side)) + main.sidewalk_width
        s = max(lo, 0.0)
        while s < min(hi, main.length):
            if (cross is not None and cross_s is not None
                    and abs(s - cross_s) < cross.half_width + main.sidewalk_width + 8):
                s += 4.0
                continue
            r = rng.random()
            if r < 0.55:
                length = float(rng.uniform(8, 30))
                depth = float(rng.uniform(8, 20))
                height = float(rng.uniform(4, 25))
                setback = float(rng.uniform(1.0, 8.0))
                xy, h = main.pose(np.array([s + length / 2]), side * (edge + setback + depth / 2))
                color = np.array([[180, 170, 150], [150, 150, 155], [200, 190, 170], [120, 90, 70],
                                  [210, 210, 215], [160, 120, 90]], float)[rng.integers(6)] + rng.normal(0, 10, 3)
                props.append(Prop("building", np.array([*xy[0], 0.0]), np.array([depth, length, height]),
                                  float(h[0]), np.clip(color, 0, 255)))
                s += length + float(rng.uniform(1, 10))
            elif r < 0.8:
                xy, h = main.pose(np.array([s]), side * (edge - 0.8))
                props.append(Prop("tree", np.array([*xy[0], 0.0]), np.array([3.0, 3.0, rng.uniform(5, 9)]),
                                  float(rng.uniform(0, np.pi)), np.array([40, 90, 40]) + rng.normal(0, 12, 3)))
                s += float(rng.uniform(6, 15))
            else:
                xy, h = main.pose(np.array([s]), side * (edge - 2.6))
                props.append(Prop("pole", np.array([*xy[0], 0.0]), np.array([0.25, 0.25, rng.uniform(6, 9)]),
                                  float(h[0]) + (0.0 if side > 0 else np.pi), np.array([110.0, 110, 115])))
                s += float(rng.uniform(10, 25))
    if cross is not None:
        for side in (-1, 1):
            for sgn in (-1, 1):
                for k in range(4):
                    s = cross.length / 2 + sgn * (main.half_width + main.sidewalk_width + 14 + k * 22)
                    xy, h = cross.pose(np.array([s]), side * (cross.half_width + cross.sidewalk_width + 9))
                    props.append(Prop("building", np.array([*xy[0], 0.0]),
                                      np.array([12.0, 18.0, rng.uniform(5, 20)]), float(h[0]),
                                      np.array([170.0, 160, 150]) + rng.normal(0, 15, 3)))
    return props


def _drop_collisions(scene: Scene) -> None:
    """Remove agents whose boxes overlap another agent or the ego at any keyframe-ish time."""
    n = len(scene.agents)
    if n == 0:
        return
    keep = np.ones(n, dtype=bool)
    sizes = scene.sizes
    # Moving agents are checked at 0.25 s steps; shrink radii a bit since boxes are not discs.
    ego_size = np.asarray(scene.ego.size, dtype=np.float64)[None]
    for t in np.arange(0.0, scene.duration + 0.01, 0.25):
        c, yaw, _ = scene.agent_states(t)
        exy, eyaw, _, _ = scene.ego_state(t)
        ce = np.concatenate([c[:, :2], exy[None]], axis=0)
        ye = np.concatenate([yaw, [eyaw]])
        se = np.concatenate([sizes + 0.3, ego_size + 0.6], axis=0)
        lim = _pair_overlap(ce, ye, se)
        keep &= ~lim[:n, n]
        lim = lim[:n, :n]
        d = np.hypot(c[:, None, 0] - c[None, :, 0], c[:, None, 1] - c[None, :, 1])
        np.fill_diagonal(lim, False)
        close = (d < 20) & lim
        for i, j in zip(*np.nonzero(np.triu(close)), strict=True):
            static_pair = scene.agents[i].path is None and scene.agents[j].path is None
            if keep[i] and keep[j] and not static_pair:
                # Drop the moving one (static layout is deliberate), else the later one.
                mi = scene.agents[i].path is not None
                mj = scene.agents[j].path is not None
                keep[j if (mj or not mi) else i] = False
    if not keep.all():
        scene.agents = [a for a, k in zip(scene.agents, keep, strict=True) if k]
        scene.grid_xy = scene.grid_xy[:, keep]
        scene.grid_yaw = scene.grid_yaw[:, keep]
        scene.grid_vel = scene.grid_vel[:, keep]
        scene.labels = scene.labels[keep]
        scene.sizes = scene.sizes[keep]


def _pair_overlap(c: np.ndarray, yaw: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """(N, N) bool: oriented footprints overlap (separating-axis test on the 4 box axes)."""
    n = len(c)
    ax = np.stack([np.cos(yaw), np.sin(yaw)], axis=1)  # length axis
    ay = np.stack([-np.sin(yaw), np.cos(yaw)], axis=1)  # width axis
    hl, hw = sizes[:, 1] / 2, sizes[:, 0] / 2
    d = c[None, :, :2] - c[:, None, :2]  # (N, N, 2)
    overlap = np.ones((n, n), dtype=bool)
    for axes_i in (ax, ay):
        for owner in (0, 1):
            a = axes_i[:, None, :] if owner == 0 else axes_i[None, :, :]
            proj_d = np.abs((d * a).sum(-1))
            ri = np.abs((ax[:, None, :] * a).sum(-1)) * hl[:, None] + np.abs((ay[:, None, :] * a).sum(-1)) * hw[:, None]
            rj = np.abs((ax[None, :, :] * a).sum(-1)) * hl[None, :] + np.abs((ay[None, :, :] * a).sum(-1)) * hw[None, :]
            overlap &= proj_d <= ri + rj
    return overlap


__all__ = ["CLASSES", "Scene", "Agent", "Prop", "Road", "generate_scene"]
