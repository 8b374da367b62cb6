"""CenterHead: target encoding -> ideal outputs -> decode recovers the boxes; loss sanity."""

from __future__ import annotations

import math

import numpy as np
import torch

from imkd_ros.constants import CLASS_TO_ID
from imkd_ros.model.config import HeadConfig
from imkd_ros.model.head import CenterHead, circle_nms, focal_loss, gaussian_radius, targets_to_outputs
from imkd_ros.ops.bev_pool_geometry import BevGrid
from imkd_ros.types import Boxes

torch.set_num_threads(1)

GRID = BevGrid(-25.6, 25.6, -25.6, 25.6, -5.0, 3.0, 0.8)


def _boxes() -> Boxes:
    names = ["car", "pedestrian", "truck", "barrier", "bicycle", "car"]
    center = np.array([[10.3, -4.1, 0.8], [3.3, 7.9, 0.9], [-15.2, 12.7, 1.5], [-3.1, -20.2, 0.5],
                       [20.1, 20.5, 0.6], [-8.0, -8.0, 0.7]], np.float32)
    size = np.array([[1.9, 4.5, 1.6], [0.6, 0.7, 1.8], [2.5, 7.2, 3.1], [2.4, 0.5, 1.0],
                     [0.6, 1.7, 1.2], [2.0, 4.8, 1.5]], np.float32)
    return Boxes(center=center, size=size,
                 yaw=np.array([0.3, -2.8, 1.6, 3.0, -0.7, -1.2], np.float32),
                 velocity=np.array([[3.0, -1.0], [0.5, 0.2], [0, 0], [0, 0], [2, 2], [-4, 1]], np.float32),
                 labels=np.array([CLASS_TO_ID[n] for n in names]),
                 scores=np.ones(6, np.float32),
                 attributes=np.array([0, 6, 1, -1, 3, 2]))


def test_encode_decode_roundtrip():
    head = CenterHead(8, HeadConfig(), GRID)
    gt = _boxes()
    targets = head.encode_batch([gt, gt.select(np.array([0, 2, 4]))])
    assert sum(int(t["mask"][0].sum()) for t in targets) == 6
    decoded = head.decode(targets_to_outputs(targets, GRID))
    for sample, ref in zip(decoded, [gt, gt.select(np.array([0, 2, 4]))]):
        assert len(sample) == len(ref)
        for i in range(len(ref)):
            j = int(np.argmin(np.linalg.norm(sample.center - ref.center[i], axis=1)))
            np.testing.assert_allclose(sample.center[j], ref.center[i], atol=1e-4)
            np.testing.assert_allclose(sample.size[j], ref.size[i], rtol=1e-4)
            dyaw = math.remainder(float(sample.yaw[j] - ref.yaw[i]), 2 * math.pi)
            assert abs(dyaw) < 1e-4
            np.testing.assert_allclose(sample.velocity[j], ref.velocity[i], atol=1e-4)
            assert sample.labels[j] == ref.labels[i]
            assert sample.attributes[j] == ref.attributes[i]
            assert sample.scores[j] > 0.99


def test_boxes_outside_grid_are_skipped():
    head = CenterHead(8, HeadConfig(), GRID)
    gt = _boxes()
    gt.center[0, 0] = 40.0
    targets = head.encode_batch([gt])
    assert sum(int(t["mask"].sum()) for t in targets) == 5


def test_focal_loss_prefers_correct_heatmap():
    head = CenterHead(8, HeadConfig(), GRID)
    tgt = head.encode_batch([_boxes()])[0]["heatmap"]
    good = focal_loss(torch.logit(tgt.clamp(1e-4, 1 - 1e-4)), tgt)
    bad = focal_loss(torch.zeros_like(tgt), tgt)
    assert good < 0.1 * bad


def test_circle_nms_and_radius():
    xy = np.array([[0, 0], [0.5, 0], [5, 5]], np.float32)
    keep = circle_nms(xy, np.array([0.9, 0.95, 0.5], np.float32), 1.0)
    assert keep.tolist() == [1, 2]
    assert gaussian_radius(5.6, 2.4, 0.1) > gaussian_radius(1.0, 1.0, 0.1) > 0


def test_head_loss_backward():
    head = CenterHead(8, HeadConfig(), GRID)
    x = torch.randn(2, 8, GRID.ny, GRID.nx)
    losses = head.loss(head(x), head.encode_batch([_boxes(), Boxes.empty()]))
    total = sum(losses.values())
    total.backward()
    assert torch.isfinite(total) and all(v >= 0 for v in losses.values())


def test_default_nms_keeps_cars_in_adjacent_lanes():
    """Two cars side by side one lane apart (3.5 m) are two cars; a duplicate peak 1 m away is not."""
    r = HeadConfig().nms_radius
    xy = np.array([[10.0, 0.0], [10.0, 3.5], [11.0, 0.0]], np.float32)
    keep = circle_nms(xy, np.array([0.9, 0.8, 0.7], np.float32), r["car"])
    assert sorted(keep.tolist()) == [0, 1]
    # pedestrians walking side by side (0.6 m) stay two
    assert len(circle_nms(xy[:2] * 0.6 / 3.5, np.array([0.9, 0.8], np.float32), r["pedestrian"])) == 2
