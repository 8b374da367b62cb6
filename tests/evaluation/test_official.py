"""Official path (submission JSON in the global frame + devkit DetectionEval) vs the in-memory path."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imkd_ros.cli import main
from imkd_ros.data.nuscenes_reader import NuScenesReader, ReaderConfig, get_nuscenes, parse_condition
from imkd_ros.evaluation import evaluate
from imkd_ros.evaluation.official import official_evaluate, write_submission
from imkd_ros.types import Boxes

from . import fixture

SCENES = (("scene-e001", "day"), ("scene-e002", "night"), ("scene-e003", "rain"), ("scene-e004", "fog"))
SPLITS = {"train": ["scene-e004"], "val": ["scene-e001", "scene-e002", "scene-e003"], "test": [],
          "synth_val": ["scene-e001", "scene-e002", "scene-e003"]}
KEYS = ("mAP", "NDS", "mATE", "mASE", "mAOE", "mAVE", "mAAE")


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """Our-world style dataset: version v1.0-evalfix, splits.json with train/val + synth_* names."""
    root = fixture.build(tmp_path_factory.mktemp("evalfix"), scenes=SCENES, splits=SPLITS)
    return load(root, "v1.0-evalfix", "val")


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    """Scenes named like nuScenes' mini_val, version v1.0-mini: the devkit's predefined split resolves."""
    root = fixture.build(tmp_path_factory.mktemp("evalmini"), version="v1.0-mini",
                         scenes=(("scene-0103", "day"), ("scene-0916", "night")), seed=3)
    return load(root, "v1.0-mini", "mini_val")


def load(root, version, split):
    nusc = get_nuscenes(root, version)
    reader = NuScenesReader(root, version, ReaderConfig(nan_velocity_to_zero=False, load_images=False,
                                                        load_lidar=False), nusc=nusc)
    tokens = reader.sample_tokens(split=split)
    gt, meta = {}, {}
    for tok in tokens:
        sample = nusc.get("sample", tok)
        gt[tok], _ = reader.gt_boxes(sample)
        meta[tok] = {"condition": parse_condition(reader.scene_of(tok)["description"]),
                     "ego_to_global": reader.keyframe_ego_to_global(sample)}
    return {"root": root, "version": version, "split": split, "nusc": nusc, "tokens": tokens, "gt": gt,
            "meta": meta}


def noisy(gt: dict[str, Boxes], seed: int = 1, fps: int = 2) -> dict[str, Boxes]:
    """GT with noise on every field, distinct scores, and some false positives."""
    rng = np.random.default_rng(seed)
    out = {}
    for tok, g in gt.items():
        n = len(g)
        keep = rng.uniform(size=n) > 0.15
        p = g.select(keep)
        m = len(p)
        p.center = p.center + rng.normal(0, 0.5, (m, 3)).astype(np.float32)
        p.size = p.size * rng.uniform(0.8, 1.2, (m, 3)).astype(np.float32)
        p.yaw = p.yaw + rng.normal(0, 0.3, m).astype(np.float32)
        p.velocity = np.nan_to_num(p.velocity) + rng.normal(0, 0.5, (m, 2)).astype(np.float32)
        p.attributes = np.where(rng.uniform(size=m) < 0.2, -1, p.attributes).astype(np.int64)
        p.scores = rng.uniform(0.2, 1.0, m).astype(np.float32)
        fp = g.select(rng.integers(0, max(n, 1), fps) if n else np.zeros(0, int))
        fp.center = fp.center + rng.uniform(3, 6, fp.center.shape).astype(np.float32)
        fp.velocity = np.nan_to_num(fp.velocity)
        fp.scores = rng.uniform(0.0, 0.5, len(fp)).astype(np.float32)
        out[tok] = Boxes(*(np.concatenate([getattr(p, f), getattr(fp, f)]) for f in
                           ("center", "size", "yaw", "velocity", "labels", "scores", "attributes")))
    return out


def both(ds, preds, tmp_path, split=None, **kw):
    path = write_submission(tmp_path / "results.json", preds, nusc=ds["nusc"], tokens=ds["tokens"])
    official = official_evaluate(ds["nusc"], path, split=split or ds["split"], output_dir=tmp_path / "devkit", **kw)
    memory = evaluate(preds, ds["gt"], ds["meta"], **kw)
    return official, memory


def assert_same(a: dict, b: dict, tol: float = 1e-6) -> None:
    assert a["classes"] == b["classes"]
    assert a["num_gt"] == b["num_gt"] and a["num_pred"] == b["num_pred"]
    for k in KEYS:
        assert (a[k] is None and b[k] is None) or a[k] == pytest.approx(b[k], abs=tol), k
    for c in a["classes"]:
        assert a["per_class"][c]["AP"] == pytest.approx(b["per_class"][c]["AP"], abs=tol), c


def test_fixture_has_the_devkit_cases(synth):
    nusc = synth["nusc"]
    assert len(synth["tokens"]) == 12  # 3 val scenes x 4 samples; scene-e004 is train
    assert sum(a["num_lidar_pts"] == 0 for a in nusc.sample_annotation) == len(SCENES)  # dropped
    vel = [nusc.box_velocity(a["token"]) for a in nusc.sample_annotation]
    assert any(np.isnan(v).all() for v in vel)  # the single-annotation pedestrian


@pytest.mark.parametrize("split, mode", [("val", "tokens"), ("synth_val", "devkit")])
def test_official_equals_in_memory_synthetic(synth, tmp_path, split, mode):
    preds = noisy(synth["gt"])
    official, memory = both(synth, preds, tmp_path, split=split)
    assert official["split_mode"] == mode
    assert 0.2 < memory["mAP"] < 0.95  # a non-trivial case
    assert_same(official, memory)
    for group in ("by_condition", "by_distance"):
        assert list(official[group]) == list(memory[group])
        for name in memory[group]:
            assert_same(official[group][name], memory[group][name])
    assert list(memory["by_condition"]) == ["day", "night", "rain"]


def test_official_equals_in_memory_predefined_mini_split(mini, tmp_path):
    preds = noisy(mini["gt"], seed=7)
    official, memory = both(mini, preds, tmp_path)
    assert official["split_mode"] == "devkit"  # the plain DetectionEval(nusc, cfg, results, "mini_val")
    assert_same(official, memory)
    # the leaderboard's 10-class numbers match too
    official10, memory10 = both(mini, preds, tmp_path, include_absent=True)
    assert len(official10["classes"]) == 10
    assert_same(official10, memory10)
    assert official10["mAP"] < official["mAP"]


def test_perfect_predictions_official(synth, tmp_path):
    preds = {k: v.select(np.ones(len(v), bool)) for k, v in synth["gt"].items()}
    official, memory = both(synth, preds, tmp_path)
    for rep in (official, memory):
        assert rep["mAP"] == pytest.approx(1.0, abs=1e-6)
        assert rep["NDS"] == pytest.approx(1.0, abs=1e-5)
    # the submission is in the global frame: the boxes land on the annotations
    data = json.loads((tmp_path / "results.json").read_text())
    assert set(data["results"]) == set(synth["tokens"])
    assert data["meta"]["use_camera"] and data["meta"]["use_radar"] and not data["meta"]["use_lidar"]
    nusc = synth["nusc"]
    tok = synth["tokens"][1]
    anns = [nusc.get("sample_annotation", a) for a in nusc.get("sample", tok)["anns"]]
    ann_xyz = np.array([a["translation"] for a in anns])
    for box in data["results"][tok]:
        d = np.linalg.norm(ann_xyz - np.array(box["translation"]), axis=1)
        assert d.min() < 1e-4
        ann = anns[int(d.argmin())]
        q, qa = np.array(box["rotation"]), np.array(ann["rotation"])
        assert min(np.abs(q - qa).max(), np.abs(q + qa).max()) < 1e-5


@pytest.mark.parametrize("change, metric", [("shift", "mATE"), ("rotate", "mAOE")])
def test_degraded_predictions_official(synth, tmp_path, change, metric):
    preds = {}
    for k, v in synth["gt"].items():
        p = v.select(np.ones(len(v), bool))
        p.velocity = np.nan_to_num(p.velocity)
        if change == "shift":
            p.center[:, 1] += 0.4
        else:
            p.yaw = p.yaw + np.float32(0.3)
        preds[k] = p
    official, memory = both(synth, preds, tmp_path)
    assert_same(official, memory)
    # (boxes near a class-range edge cross it when shifted: a miss + a false positive, so approximately)
    assert official[metric] == pytest.approx(0.4 if change == "shift" else 0.3, abs=0.03)
    assert official["mAP"] > 0.95
    other = "mAOE" if metric == "mATE" else "mATE"
    assert official[other] < 0.03


def test_empty_predictions_official(synth, tmp_path):
    official, memory = both(synth, {}, tmp_path)
    assert official["mAP"] == memory["mAP"] == 0.0
    assert official["NDS"] == memory["NDS"] == 0.0


def test_class_subset_official(synth, tmp_path):
    preds = noisy(synth["gt"], seed=4)
    official, memory = both(synth, preds, tmp_path, classes=["car", "pedestrian", "bus"])
    assert official["classes"] == ["car", "pedestrian"]
    assert_same(official, memory)


@pytest.mark.slow
def test_official_equals_in_memory_on_imkd_synth(tmp_path_factory):
    """The same check on a dataset written by ``imkd data synth`` (our world's splits.json)."""
    pytest.importorskip("imkd_ros.world.synth")

    root = tmp_path_factory.mktemp("synthworld") / "ds"
    assert main(["data", "synth", "--out", str(root), "--scenes", "2", "--seed", "5", "--scene-seconds", "3",
                 "--image-scale", "0.1", "--camera-sweeps", "none", "--val-fraction", "0.5", "--no-progress"]) == 0
    version = next(p.name for p in root.iterdir() if (p / "sample.json").is_file())
    for split, mode in (("val", "tokens"), ("synth_val", "devkit")):
        ds = load(root, version, split)
        tmp = tmp_path_factory.mktemp(split)
        official, memory = both(ds, noisy(ds["gt"]), tmp, split=split)
        assert official["split_mode"] == mode and memory["num_gt"] > 0
        assert_same(official, memory)
        for group in ("by_condition", "by_distance"):
            for name in memory[group]:
                assert_same(official[group][name], memory[group][name])
        perfect = {k: v.select(np.ones(len(v), bool)) for k, v in ds["gt"].items()}
        official, memory = both(ds, perfect, tmp, split=split)
        for rep in (official, memory):
            assert rep["mAP"] == pytest.approx(1.0, abs=1e-6) and rep["NDS"] == pytest.approx(1.0, abs=1e-5)
