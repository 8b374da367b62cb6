"""Offline replay and the live node give the same detections on the same recording.

Both run DetectionFrontend on the same messages with the same parameters file; the live one gets
them over loopback DDS from the player (sim time). Tolerance: same keyframe stamps; boxes paired by
assignment on centre distance within a class (never by score order: an untrained model gives
near-equal scores, and ties paired different boxes), centres within 1e-3 m, scores within 1e-4
(float32 model, same weights, same inputs). A box without a partner is allowed only at the
selection boundary (score threshold or the max_detections cut), where a 1e-4 score difference may
legitimately decide which of two near-equal boxes is kept.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from imkd_ros.replay.replay import Replay, ReplayOptions, load_params
from imkd_ros.ros.detections import object3d_array_to_boxes
from imkd_ros.ros.msgutil import time_to_ns
from imkd_ros.runtime import create_detector
from imkd_ros.types import Boxes
from tests.ros.test_node import (
    NS,
    PENDING,
    ROOT,
    START_TIMEOUT_S,
    play_and_wait,
    start_detector,
    subscribe_outputs,
    wait_drained,
)

CENTRE_ATOL = 1e-3  # m
SCORE_ATOL = 1e-4
_CLASS_MISMATCH = 1e6  # assignment cost that keeps boxes of different classes apart


def match_boxes(ref: Boxes, got: Boxes, cutoff: float, limit: int, centre_atol: float = CENTRE_ATOL,
                score_atol: float = SCORE_ATOL) -> list[tuple[int, int]]:
    """Pair `got` with `ref` by optimal assignment (centre distance + score, same class), assert
    each pair agrees within tolerance, and return the (ref, got) index pairs.

    Boxes left without a partner must lie at the selection boundary: within score_atol of the score
    threshold, or of the lowest score kept when the other side is full (max_detections)."""
    pairs: list[tuple[int, int]] = []
    if len(ref) and len(got):
        dist = np.linalg.norm(ref.center[:, None, :].astype(np.float64) - got.center[None, :, :], axis=-1)
        cost = (dist + np.abs(ref.scores[:, None] - got.scores[None, :].astype(np.float64))
                + _CLASS_MISMATCH * (ref.labels[:, None] != got.labels[None, :]))
        rows, cols = linear_sum_assignment(cost)
        pairs = [(int(i), int(j)) for i, j in zip(rows, cols, strict=True)
                 if ref.labels[i] == got.labels[j] and dist[i, j] <= centre_atol]
    for i, j in pairs:
        assert abs(float(ref.scores[i]) - float(got.scores[j])) <= score_atol, (i, j, ref.scores[i], got.scores[j])
        np.testing.assert_allclose(got.center[j], ref.center[i], atol=centre_atol)
    for side, mine, other, used in (("offline", ref, got, {i for i, _ in pairs}),
                                    ("live", got, ref, {j for _, j in pairs})):
        edge = [cutoff] + ([float(other.scores.min())] if len(other) >= limit else [])
        for k in sorted(set(range(len(mine))) - used):
            s = float(mine.scores[k])
            assert any(abs(s - e) <= score_atol for e in edge), (
                f"{side} box {k} (class {mine.labels[k]}, score {s:.6f}, centre {mine.center[k]}) has no partner "
                f"and is not at the selection boundary {edge}")
    return pairs


def _boxes(centres, scores, labels) -> Boxes:
    n = len(scores)
    return Boxes(np.asarray(centres, np.float32).reshape(n, 3), np.ones((n, 3), np.float32), np.zeros(n, np.float32),
                 np.zeros((n, 2), np.float32), np.asarray(labels, np.int64), np.asarray(scores, np.float32),
                 np.full(n, -1, np.int64))


def test_matching_pairs_by_position_not_by_score_order() -> None:
    """Near-equal scores in another order (what broke the score-sorted pairing) still pair right."""
    ref = _boxes([[0, 0, 0], [36.8, 0, 0], [5, 5, 0]], [0.50001, 0.50000, 0.3], [0, 0, 1])
    got = _boxes([[36.8, 0, 0], [5, 5, 0], [0, 0, 0]], [0.50003, 0.3, 0.49999], [0, 1, 0])
    assert sorted(match_boxes(ref, got, cutoff=0.02, limit=50)) == [(0, 2), (1, 0), (2, 1)]
    moved = _boxes([[36.8, 0, 0], [5, 5, 0], [0, 0.01, 0]], [0.50003, 0.3, 0.49999], [0, 1, 0])
    with pytest.raises(AssertionError, match="no partner"):
        match_boxes(ref, moved, cutoff=0.02, limit=50)
    wrong_class = _boxes([[36.8, 0, 0], [5, 5, 0], [0, 0, 0]], [0.50003, 0.3, 0.49999], [0, 0, 0])
    with pytest.raises(AssertionError, match="no partner"):
        match_boxes(ref, wrong_class, cutoff=0.02, limit=50)
    wrong_score = _boxes([[36.8, 0, 0], [5, 5, 0], [0, 0, 0]], [0.50003, 0.3, 0.45], [0, 1, 0])
    with pytest.raises(AssertionError):
        match_boxes(ref, wrong_score, cutoff=0.02, limit=50)
    # at the score threshold, a box kept on one side only is a legitimate tie
    edge = _boxes([[0, 0, 0], [36.8, 0, 0], [5, 5, 0], [9, 9, 0]], [0.50001, 0.5, 0.3, 0.02003], [0, 0, 1, 2])
    assert len(match_boxes(edge, got, cutoff=0.02, limit=50)) == 3
    # at the max_detections cut (the other side full), a box scoring as the lowest one kept is a tie
    cut = _boxes([[0, 0, 0], [36.8, 0, 0], [5, 5, 0], [9, 9, 0]], [0.50001, 0.5, 0.3, 0.29995], [0, 0, 1, 2])
    assert len(match_boxes(cut, got, cutoff=0.02, limit=3)) == 3
    with pytest.raises(AssertionError, match="selection boundary"):
        match_boxes(cut, got, cutoff=0.02, limit=50)


@pytest.mark.ros
@pytest.mark.slow
def test_replay_equals_live_node(start_node, collector, synthetic_recording, untrained_student, tmp_path: Path):
    bag = synthetic_recording["bag"]
    params = replace(load_params(ROOT / "config" / "detector.yaml"), score_threshold=0.02, max_detections=50)
    detector, _ = create_detector(untrained_student, backend="torch-cpu")
    replay = Replay(bag, detector, params, ReplayOptions(out_dir=tmp_path / "replay", write_bag=False, render=[],
                                                         render_worst=0))
    replay.run()
    # the replay keeps every decoded box (metrics before the threshold); what the node publishes
    # is that set at the node's threshold
    offline = {o.result.stamp_ns: replay.at_node_threshold(o.result.boxes) for o in replay.outputs}
    assert len(offline) >= 30

    subscribe_outputs(collector)
    node = start_detector(start_node, untrained_student, "-p", f"pending_frames:={PENDING}",
                          "-p", f"score_threshold:={params.score_threshold}",
                          "-p", f"max_detections:={params.max_detections}")
    collector.wait_for_publishers(f"{NS}/objects", timeout=START_TIMEOUT_S)
    play_and_wait(start_node, node, bag)
    # the last camera set may wait for radar past the end of the recording (sim time stops there)
    wait_drained(collector, f"{NS}/objects", expected=len(offline) - 1)
    live = {time_to_ns(m.header.stamp): object3d_array_to_boxes(m) for m in collector.received(f"{NS}/objects")}
    assert node.alive(), node.log()

    assert set(live) <= set(offline), "live keyframes must be keyframes of the replay"
    # a slow CPU may drop keyframes live (oldest first, counted); every one it did publish must match,
    # and the newest PENDING always reach the model
    assert len(live) >= min(PENDING, len(offline) - 1), (len(live), len(offline))
    compared = 0
    for stamp, boxes in live.items():
        ref = offline[stamp]
        pairs = match_boxes(ref, boxes, cutoff=params.score_threshold, limit=params.max_detections)
        compared += len(pairs)
    assert compared > 0, "the comparison must see boxes (untrained model, threshold from the params file)"
