"""In-memory nuScenes metrics: perfect and degraded predictions, class subsets, breakdowns, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pyquaternion import Quaternion

from imkd_ros.constants import ATTR_TO_ID, CLASS_TO_ID, NO_ATTRIBUTE
from imkd_ros.evaluation import evaluate
from imkd_ros.evaluation.metrics import boxes_to_detection_boxes, yaw_to_quaternion
from imkd_ros.types import Boxes

# (class, attribute, (w, l, h))
KINDS = [
    ("car", "vehicle.moving", (1.9, 4.5, 1.6)),
    ("pedestrian", "pedestrian.standing", (0.7, 0.6, 1.8)),
    ("barrier", None, (2.0, 0.5, 1.0)),
    ("traffic_cone", None, (0.4, 0.4, 0.8)),
    ("bicycle", "cycle.with_rider", (0.6, 1.7, 1.4)),
]


def make_boxes(rng: np.random.Generator, n: int, kinds=KINDS, dist=(4.0, 28.0)) -> Boxes:
    k = rng.integers(0, len(kinds), n)
    r = rng.uniform(*dist, n)
    a = rng.uniform(-np.pi, np.pi, n)
    return Boxes(
        center=np.stack([r * np.cos(a), r * np.sin(a), rng.uniform(0.3, 1.0, n)], 1).astype(np.float32),
        size=np.array([kinds[i][2] for i in k], np.float32).reshape(-1, 3),
        yaw=rng.uniform(-np.pi, np.pi, n).astype(np.float32),
        velocity=rng.normal(0, 3, (n, 2)).astype(np.float32),
        labels=np.array([CLASS_TO_ID[kinds[i][0]] for i in k], np.int64),
        scores=np.ones(n, np.float32),
        attributes=np.array([ATTR_TO_ID[kinds[i][1]] if kinds[i][1] else NO_ATTRIBUTE for i in k], np.int64),
    )


def copy(b: Boxes) -> Boxes:
    return b.select(np.ones(len(b), bool))


@pytest.fixture(scope="module")
def dataset():
    rng = np.random.default_rng(0)
    gt = {f"s{i:02d}": make_boxes(rng, 12) for i in range(12)}
    meta = {tok: {"condition": ("day", "night", "rain")[i % 3]} for i, tok in enumerate(gt)}
    return gt, meta


def test_quaternion_convention():
    for yaw in (-2.5, 0.0, 0.7, 3.0):
        q = Quaternion(axis=[0, 0, 1], angle=yaw)
        assert np.allclose(yaw_to_quaternion(yaw), q.elements)


def test_perfect_predictions(dataset):
    gt, meta = dataset
    rep = evaluate({k: copy(v) for k, v in gt.items()}, gt, meta)
    assert rep["classes"] == ["car", "barrier", "bicycle", "pedestrian", "traffic_cone"]  # constants.CLASSES order
    assert rep["mAP"] == pytest.approx(1.0, abs=1e-9)
    assert rep["NDS"] == pytest.approx(1.0, abs=1e-9)
    for k in ("mATE", "mASE", "mAOE", "mAVE", "mAAE"):
        assert rep[k] == pytest.approx(0.0, abs=1e-6)
    # the devkit leaves cone orientation/velocity/attribute and barrier velocity/attribute undefined
    assert rep["per_class"]["traffic_cone"]["AOE"] is None
    assert rep["per_class"]["barrier"]["AVE"] is None
    assert rep["per_class"]["barrier"]["AOE"] == pytest.approx(0.0, abs=1e-6)
    assert rep["num_gt"] == rep["num_pred"] == sum(len(v) for v in gt.values())


def test_absent_classes_only_count_when_asked(dataset):
    gt, meta = dataset
    pred = {k: copy(v) for k, v in gt.items()}
    rep = evaluate(pred, gt, meta, include_absent=True, with_breakdowns=False)
    assert len(rep["classes"]) == 10
    assert rep["mAP"] == pytest.approx(5 / 10)
    assert rep["per_class"]["truck"]["AP"] == 0.0


def test_class_subset(dataset):
    gt, meta = dataset
    pred = {k: copy(v) for k, v in gt.items()}
    # break the pedestrians only: the subset without them stays perfect
    for b in pred.values():
        b.center[b.labels == CLASS_TO_ID["pedestrian"], 0] += 5.0
    rep = evaluate(pred, gt, meta, classes=["car", "barrier", "bus"], with_breakdowns=False)
    assert rep["classes"] == ["car", "barrier"]  # bus is absent from the GT
    assert set(rep["per_class"]) == {"car", "barrier"}
    assert rep["mAP"] == pytest.approx(1.0)
    assert rep["num_gt"] == sum(int(np.isin(b.labels, [0, 5]).sum()) for b in gt.values())
    full = evaluate(pred, gt, meta, with_breakdowns=False)
    assert full["per_class"]["pedestrian"]["AP"] == 0.0
    assert full["mAP"] == pytest.approx(4 / 5)
    with_bus = evaluate(pred, gt, meta, classes=["car", "bus"], include_absent=True, with_breakdowns=False)
    assert with_bus["classes"] == ["car", "bus"] and with_bus["mAP"] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        evaluate(pred, gt, meta, classes=["cars"])


@pytest.mark.parametrize(
    "change, metric, expected",
    [
        ("shift", "mATE", 0.3),
        ("rotate", "mAOE", 0.25),
        ("scale", "mASE", None),
        ("velocity", "mAVE", 1.0),
        ("attribute", "mAAE", 1.0),
    ],
)
def test_degraded_predictions_hit_the_right_error(dataset, change, metric, expected):
    gt, meta = dataset
    pred = {}
    for k, b in gt.items():
        p = copy(b)
        if change == "shift":
            p.center[:, 0] += 0.3
        elif change == "rotate":
            p.yaw = p.yaw + np.float32(0.25)
        elif change == "scale":
            p.size = p.size * np.float32(1.2)
        elif change == "velocity":
            p.velocity[:, 1] += 1.0
        elif change == "attribute":
            swap = {ATTR_TO_ID["vehicle.moving"]: ATTR_TO_ID["vehicle.parked"],
                    ATTR_TO_ID["pedestrian.standing"]: ATTR_TO_ID["pedestrian.moving"],
                    ATTR_TO_ID["cycle.with_rider"]: ATTR_TO_ID["cycle.without_rider"]}
            p.attributes = np.array([swap.get(int(a), int(a)) for a in p.attributes], np.int64)
        pred[k] = p
    rep = evaluate(pred, gt, meta, with_breakdowns=False)
    if expected is None:  # 1.2x in every dimension: 1 - IoU = 1 - 1/1.2^3
        expected = 1 - 1 / 1.2**3
    assert rep[metric] == pytest.approx(expected, abs=1e-5)
    assert rep["mAP"] == pytest.approx(1.0)  # every change keeps the centres within 0.5 m
    for other in {"mATE", "mASE", "mAOE", "mAVE", "mAAE"} - {metric}:
        assert rep[other] == pytest.approx(0.0, abs=1e-5), other
    assert rep["NDS"] == pytest.approx(1.0 - min(expected, 1.0) / 10, abs=1e-5)  # (5 mAP + sum(1 - err)) / 10


def test_false_positives_and_misses_lower_ap(dataset):
    gt, meta = dataset
    rng = np.random.default_rng(5)
    pred = {}
    for i, (k, b) in enumerate(gt.items()):
        p = copy(b)
        p.scores = rng.uniform(0.5, 1.0, len(p)).astype(np.float32)
        if i % 2:  # half the samples: drop every other box (misses)
            p = p.select(np.arange(len(p)) % 2 == 0)
        fp = make_boxes(rng, 4, dist=(5.0, 25.0))
        fp.scores = rng.uniform(0.0, 0.6, 4).astype(np.float32)
        pred[k] = Boxes(*(np.concatenate([getattr(p, f), getattr(fp, f)]) for f in
                          ("center", "size", "yaw", "velocity", "labels", "scores", "attributes")))
    rep = evaluate(pred, gt, meta, with_breakdowns=False)
    assert 0.3 < rep["mAP"] < 0.95
    assert 0.0 < rep["NDS"] < 1.0


def test_empty_predictions_and_samples_without_gt(dataset):
    gt, meta = dataset
    rep = evaluate({}, gt, meta)
    assert rep["mAP"] == 0.0 and rep["NDS"] == 0.0 and rep["num_pred"] == 0
    assert all(v["mAP"] == 0.0 for v in rep["by_condition"].values())
    # samples with no GT at all: nothing to average -> None, not a crash
    empty_gt = {"a": Boxes.empty(), "b": None}
    rep = evaluate({"a": copy(gt["s00"])}, empty_gt, None)
    assert rep["mAP"] is None and rep["NDS"] is None and rep["classes"] == []
    # a sample without GT among others: its predictions are false positives
    gt2 = dict(gt)
    gt2["extra"] = Boxes.empty()
    pred = {k: copy(v) for k, v in gt.items()}
    pred["extra"] = copy(gt["s01"])
    pred["extra"].scores[:] = 2.0  # ranked first: precision suffers
    rep = evaluate(pred, gt2, None, with_breakdowns=False)
    assert rep["mAP"] < 0.99
    # predictions for samples that are not evaluated are ignored, and counted
    rep = evaluate({**{k: copy(v) for k, v in gt.items()}, "other": copy(gt["s01"])}, gt, None,
                   with_breakdowns=False)
    assert rep["mAP"] == pytest.approx(1.0) and rep["ignored_prediction_samples"] == 1


def test_class_range_and_point_filters():
    rng = np.random.default_rng(1)
    cone = [("traffic_cone", None, (0.4, 0.4, 0.8))]
    near = make_boxes(rng, 6, kinds=cone, dist=(5, 25))
    far = make_boxes(rng, 6, kinds=cone, dist=(31, 45))  # beyond the 30 m cone range
    gt = {"s": Boxes(*(np.concatenate([getattr(near, f), getattr(far, f)]) for f in
                      ("center", "size", "yaw", "velocity", "labels", "scores", "attributes")))}
    rep = evaluate({"s": copy(near)}, gt, None, with_breakdowns=False)
    assert rep["num_gt"] == 6 and rep["mAP"] == pytest.approx(1.0)
    # GT with 0 points are dropped (point counts from meta)
    counts = np.array([0, 0, 3, 3, 3, 3] + [5] * 6)
    rep = evaluate({"s": near.select(np.arange(6) >= 2)}, gt, {"s": {"gt_num_pts": counts}}, with_breakdowns=False)
    assert rep["num_gt"] == 4 and rep["mAP"] == pytest.approx(1.0)
    # ego_to_global only rotates the distance vector: the range filter must not change
    yaw = 1.1
    m = np.eye(4)
    m[:2, :2] = [[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]]
    m[:3, 3] = [900.0, -300.0, 0.0]
    rep2 = evaluate({"s": copy(near)}, gt, {"s": {"ego_to_global": m}}, with_breakdowns=False)
    assert rep2["num_gt"] == 6 and rep2["mAP"] == pytest.approx(1.0)


def test_breakdowns_filter_by_distance_and_condition():
    rng = np.random.default_rng(2)
    car = [("car", "vehicle.moving", (1.9, 4.5, 1.6))]
    gt, pred, meta = {}, {}, {}
    for i in range(6):
        bands = [make_boxes(rng, 3, car, d) for d in ((3, 18), (21, 29), (32, 48))]
        g = Boxes(*(np.concatenate([getattr(b, f) for b in bands]) for f in
                    ("center", "size", "yaw", "velocity", "labels", "scores", "attributes")))
        tok = f"t{i}"
        gt[tok] = g
        cond = "day" if i < 3 else "night"
        meta[tok] = {"condition": cond}
        p = copy(g)
        d = np.linalg.norm(p.center[:, :2], axis=1)
        p.center[(d >= 20) & (d < 30), 0] += 0.7  # the 20-30 m band is 0.7 m off: misses at 0.5 m
        if cond == "night":
            p = p.select(d < 20)  # at night only the near band is detected
        pred[tok] = p
    rep = evaluate(pred, gt, meta)
    bd = rep["by_distance"]
    assert list(bd) == ["0-20m", "20-30m", "30m+"]
    assert bd["0-20m"]["num_gt"] == 18 and bd["20-30m"]["num_gt"] == 18 and bd["30m+"]["num_gt"] == 18
    assert bd["0-20m"]["mAP"] == pytest.approx(1.0) and bd["0-20m"]["NDS"] == pytest.approx(1.0)
    # 0.7 m off: AP 0 at the 0.5 m threshold; at 1/2/4 m the day half is found (recall 0.5 at precision 1):
    # AP = (recall bins 11..50 of 11..100) = 40/90
    assert bd["20-30m"]["mAP"] == pytest.approx(0.75 * 40 / 90)
    assert bd["20-30m"]["mATE"] == pytest.approx(0.7, abs=1e-5)
    assert bd["30m+"]["num_pred"] == 9  # only daytime far cars
    # predictions are filtered by band too: the near band sees no far predictions as false positives
    assert bd["0-20m"]["num_pred"] == 18
    bc = rep["by_condition"]
    assert list(bc) == ["day", "night"]
    assert bc["day"]["num_samples"] == 3 and bc["night"]["num_samples"] == 3
    assert bc["night"]["num_pred"] == 9 and bc["day"]["num_pred"] == 27
    assert bc["day"]["mAP"] > bc["night"]["mAP"]
    # each breakdown is a full metric set
    for group in (*bd.values(), *bc.values()):
        assert {"mAP", "NDS", "mATE", "per_class"} <= set(group)


def test_max_boxes_per_sample_keeps_the_best():
    rng = np.random.default_rng(3)
    b = make_boxes(rng, 600)
    b.scores = rng.uniform(0, 1, 600).astype(np.float32)
    out = boxes_to_detection_boxes("s", b, is_gt=False, max_boxes=500)
    assert len(out) == 500
    assert min(x.detection_score for x in out) >= np.sort(b.scores)[100] - 1e-7


def test_invalid_predictions_are_dropped_not_fatal(dataset):
    gt, meta = dataset
    pred = {k: copy(v) for k, v in gt.items()}
    bad = copy(gt["s00"])
    bad.scores[0] = np.nan
    bad.size[1] = 0.0
    bad.center[2, 0] = np.inf
    bad.labels[3] = 42
    pred["s00"] = bad
    rep = evaluate(pred, gt, meta, with_breakdowns=False)
    assert rep["num_pred"] == sum(len(v) for v in gt.values()) - 4
    assert 0.9 < rep["mAP"] < 1.0
