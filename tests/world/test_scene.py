"""Procedural scenes: determinism, plausible classes/sizes/speeds/attributes, no collisions."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from imkd_ros.constants import ATTRIBUTES, CLASSES
from imkd_ros.world.scene import SIZE_MEAN, _pair_overlap, generate_scene

MAX_SPEED = {"car": 17.0, "truck": 17.0, "bus": 17.0, "trailer": 17.0, "construction_vehicle": 17.0,
             "motorcycle": 17.0, "bicycle": 7.0, "pedestrian": 2.5, "barrier": 0.0, "traffic_cone": 0.0}
ATTR_PREFIX = {"car": "vehicle.", "truck": "vehicle.", "bus": "vehicle.", "trailer": "vehicle.",
               "construction_vehicle": "vehicle.", "motorcycle": "cycle.", "bicycle": "cycle.",
               "pedestrian": "pedestrian."}


def test_deterministic():
    a = generate_scene(3, 1, 4.0)
    b = generate_scene(3, 1, 4.0)
    assert a.description == b.description and len(a.agents) == len(b.agents)
    np.testing.assert_array_equal(a.agent_states(2.0)[0], b.agent_states(2.0)[0])
    c = generate_scene(4, 1, 4.0)
    assert len(c.agents) != len(a.agents) or not np.array_equal(c.agent_states(2.0)[0], a.agent_states(2.0)[0])


# Pinned scenes: the generator's random-draw order defines the data set (refactors must keep it).
# Agent classes / kinds in order are exact; positions are compared with a tolerance.
PINNED = [
    ((3, 1, 4.0, None), "condition=day, road=curved, lanes=2x2, density=0.70", 73, 29, "9a6f58d9d33a7afb", 5537.399),
    ((21, 0, 10.0, "intersection"), "condition=day, road=intersection, lanes=1x2, density=0.53", 37, 50,
     "cf6b1b23487cbb79", 2085.525),
    ((8, 5, 2.0, None), "condition=day, road=straight, lanes=1x2, density=0.39", 64, 25, "970d5c65991e2de7",
     2537.53),
    ((0, 2, 6.0, "curved"), "condition=rain, road=curved, lanes=2x2, density=0.68", 49, 30, "b913593212180c29",
     3322.809),
]


@pytest.mark.parametrize(("case", "desc", "n_agents", "n_props", "digest", "abs_xy_sum"), PINNED)
def test_generator_output_is_pinned(case, desc, n_agents, n_props, digest, abs_xy_sum):
    seed, index, duration, road = case
    sc = generate_scene(seed, index, duration, road_type=road)
    assert sc.description == desc
    assert (len(sc.agents), len(sc.props)) == (n_agents, n_props)
    seq = " ".join(f"{a.cls}/{a.kind}" for a in sc.agents)
    assert hashlib.sha1(seq.encode()).hexdigest()[:16] == digest
    c, _, _ = sc.agent_states(1.0)
    assert float(np.abs(c[:, :2]).sum()) == pytest.approx(abs_xy_sum, abs=0.01)


@pytest.mark.parametrize("road", ["straight", "curved", "intersection"])
def test_scene_plausibility(road):
    for idx in range(3):
        sc = generate_scene(21, idx, 10.0, road_type=road)
        assert f"road={road}" in sc.description and "condition=" in sc.description
        classes = {a.cls for a in sc.agents}
        assert classes <= set(CLASSES) and "car" in classes and "pedestrian" in classes
        for a in sc.agents:
            mean = np.asarray(SIZE_MEAN[a.cls])
            assert np.all(a.size > 0.3 * mean) and np.all(a.size < 1.9 * mean), (a.cls, a.size)
        for t in np.arange(0.5, 10.01, 0.5):
            c, yaw, vel = sc.agent_states(t)
            speed = np.hypot(vel[:, 0], vel[:, 1])
            for k, a in enumerate(sc.agents):
                assert speed[k] <= MAX_SPEED[a.cls] + 1e-6, (a.cls, speed[k])
            # Boxes stand on the ground.
            np.testing.assert_allclose(c[:, 2], sc.sizes[:, 2] / 2)
            # Heading follows the motion for moving vehicles and cycles.
            mov = speed > 1.0
            vdir = np.arctan2(vel[mov, 1], vel[mov, 0])
            err = np.abs((vdir - yaw[mov] + np.pi) % (2 * np.pi) - np.pi)
            assert np.all(err < 0.08)
            attrs = sc.attributes(t)
            for k, a in enumerate(sc.agents):
                if a.cls in ATTR_PREFIX:
                    assert ATTRIBUTES[attrs[k]].startswith(ATTR_PREFIX[a.cls])
                else:
                    assert attrs[k] == -1
                if a.cls in ("car", "truck", "bus") and speed[k] > 1.0:
                    assert ATTRIBUTES[attrs[k]] == "vehicle.moving"
            # No moving object overlaps another object or the ego (keyframe times).
            exy, eyaw, _, _ = sc.ego_state(t)
            ce = np.concatenate([c[:, :2], exy[None]])
            ye = np.concatenate([yaw, [eyaw]])
            se = np.concatenate([sc.sizes, sc.ego.size[None]])
            ov = _pair_overlap(ce, ye, se)
            np.fill_diagonal(ov, False)
            moving = np.array([a.path is not None for a in sc.agents] + [True])
            bad = ov & (moving[:, None] | moving[None, :])
            assert not bad.any(), [(sc.agents[i].cls if i < len(sc.agents) else "ego",
                                    sc.agents[j].cls if j < len(sc.agents) else "ego")
                                   for i, j in zip(*np.nonzero(bad))][:3]


def test_conditions_and_classes_cover_the_set():
    conds, classes = set(), set()
    for i in range(24):
        sc = generate_scene(8, i, 2.0)
        conds.add(sc.condition)
        classes |= {a.cls for a in sc.agents}
    assert conds == {"day", "night", "rain", "fog"}
    assert classes == set(CLASSES)
