"""Hand-built scenes for sensor tests: a straight road, a controllable ego and chosen objects."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imkd_ros.world.scene import DT_GRID, Agent, Road, Scene, _appearance

torch.set_num_threads(1)


def straight_path(x0: float, y: float, heading: float = 0.0, length: float = 400.0) -> np.ndarray:
    s = np.arange(0.0, length, 1.0)
    return np.stack([x0 + s * np.cos(heading), y + s * np.sin(heading)], axis=1)


def make_scene(objects: list[dict], ego_speed: float = 0.0, condition: str = "day", duration: float = 2.0,
               ego_yaw: float = 0.0) -> Scene:
    """``objects``: dicts with cls, size (w, l, h), xy, yaw and optional speed (moving along yaw)."""
    rng = np.random.default_rng(0)
    times = np.arange(0.0, duration + 0.5 + 1e-9, DT_GRID)
    road = Road(straight_path(-200.0, 0.0), 2)
    ego_path = straight_path(0.0, 0.0, ego_yaw)
    ego = Agent("car", np.array([1.73, 4.08, 1.56]), ego_path, s0=0.0, speed=np.full_like(times, ego_speed),
                kind="ego")
    agents = []
    for o in objects:
        size = np.asarray(o["size"], float)
        ap = _appearance(rng, o["cls"], False)
        if o.get("speed", 0.0) > 0:
            path = straight_path(o["xy"][0], o["xy"][1], o["yaw"])
            agents.append(Agent(o["cls"], size, path, speed=np.full_like(times, o["speed"]), appearance=ap))
        else:
            agents.append(Agent(o["cls"], size, None, static_xy=np.asarray(o["xy"], float),
                                static_yaw=float(o["yaw"]), kind=o.get("kind", "parked"), appearance=ap))
    sc = Scene("scene-test", condition, "straight", [road], ego, agents, [], duration, 0, f"condition={condition}")
    sc.finalize()
    return sc


@pytest.fixture
def scene_factory():
    return make_scene
