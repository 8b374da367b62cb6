"""The replay scores what the model decodes (before the node's output threshold) and, separately,
what the node publishes (at its threshold); the output bag and renders hold the latter."""

from __future__ import annotations

import numpy as np

from imkd_ros.constants import CLASS_TO_ID
from imkd_ros.pipeline import PipelineResult
from imkd_ros.replay.replay import Replay, ReplayOptions, report_markdown
from imkd_ros.ros.frontend import KeyframeOutput
from imkd_ros.ros.params import NodeParams
from imkd_ros.types import Boxes


class _NoDetector:
    name = "none"

    def detect(self, frame):  # never called: outputs are injected
        raise AssertionError("not used")


def _cars(xs, scores) -> Boxes:
    n = len(xs)
    return Boxes(center=np.array([[x, 0.0, 0.8] for x in xs], np.float32),
                 size=np.tile(np.array([[1.9, 4.5, 1.6]], np.float32), (n, 1)), yaw=np.zeros(n, np.float32),
                 velocity=np.zeros((n, 2), np.float32), labels=np.full(n, CLASS_TO_ID["car"]),
                 scores=np.asarray(scores, np.float32), attributes=np.zeros(n, np.int64))


def test_metrics_before_and_at_the_node_threshold(tmp_path):
    params = NodeParams(score_threshold=0.3, max_detections=3)
    rep = Replay(tmp_path / "unused", _NoDetector(), params,
                 ReplayOptions(out_dir=tmp_path, write_bag=False, render=[], render_worst=0))
    cfg = rep.front.pipeline.config
    assert cfg.score_threshold == 0.0 and cfg.max_detections == 500  # the front end keeps everything
    stamps = [1_000_000_000 + i * 500_000_000 for i in range(4)]
    for s in stamps:
        rep.gt[s] = _cars([10.0, 20.0, 30.0, 40.0], [1.0] * 4)
        # two confident hits, two true boxes scored below the node's threshold, one low false positive
        pred = _cars([10.1, 20.1, 30.1, 40.1, -15.0], [0.9, 0.8, 0.25, 0.2, 0.1])
        rep.outputs.append(KeyframeOutput(PipelineResult(s, "base_link", pred, {}, [], 0), None, {}))
    assert len(rep.at_node_threshold(rep.outputs[0].result.boxes)) == 2
    report = rep._report(1.0)
    before, at = report["metrics"], report["metrics_at_node_threshold"]
    assert before["mAP"] > at["mAP"] + 0.2  # the low-score true boxes count before the threshold
    assert report["node_score_threshold"] == 0.3 and "before the node's output threshold" in report["metrics_scope"]
    md = report_markdown(report)
    assert "At the node's output threshold (0.3)" in md


def test_node_cap_keeps_the_best():
    rep = Replay.__new__(Replay)
    rep.node_threshold, rep.node_max = 0.1, 2
    kept = rep.at_node_threshold(_cars([1.0, 2.0, 3.0, 4.0], [0.2, 0.9, 0.05, 0.5]))
    np.testing.assert_allclose(kept.scores, [0.9, 0.5])
