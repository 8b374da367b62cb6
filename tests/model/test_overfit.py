"""Teacher and student overfit a handful of synthetic frames: losses fall, boxes are found."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from imkd_ros.model import IMKD, LidarTeacher, Preprocessor
from imkd_ros.model.synthetic import random_frame, tiny_config
from imkd_ros.model.teacher import LabelTeacher
from imkd_ros.types import Boxes

torch.set_num_threads(1)
STEPS = 100


@pytest.fixture(scope="module")
def data():
    cfg = tiny_config()
    frames = [random_frame(10 + i, raw_hw=(128, 352), num_boxes=3, extent=24) for i in range(2)]
    return cfg, frames, Preprocessor(cfg)(frames)


@pytest.fixture(scope="module")
def trained_teacher(data):
    cfg, _, batch = data
    torch.manual_seed(0)
    teacher = LidarTeacher(cfg).train()
    opt = torch.optim.AdamW(teacher.parameters(), 5e-3)
    history = []
    for _ in range(STEPS):
        losses = teacher.loss(teacher(batch["lidar"], batch["lidar_mask"]), batch["teacher_targets"])
        total = sum(losses.values())
        opt.zero_grad()
        total.backward()
        opt.step()
        history.append(total.item())
    return teacher.eval(), history


def _matches(pred: list[Boxes], frames, score=0.3, dist=2.0) -> tuple[int, int, int]:
    """(GT boxes found within ``dist`` m by a same-class box above ``score``, GT total, predictions)."""
    hit = total = npred = 0
    for boxes, frame in zip(pred, frames):
        boxes = boxes.select(boxes.scores > score)
        npred += len(boxes)
        for i in range(len(frame.gt)):
            total += 1
            same = boxes.labels == frame.gt.labels[i]
            d = np.linalg.norm(boxes.center[same, :2] - frame.gt.center[i, :2], axis=1)
            hit += bool(len(d) and d.min() < dist)
    return hit, total, npred


def test_teacher_overfits(data, trained_teacher):
    _, frames, batch = data
    teacher, history = trained_teacher
    assert np.mean(history[-5:]) < 0.1 * np.mean(history[:5])
    with torch.no_grad():
        hit, total, npred = _matches(teacher.decode(teacher(batch["lidar"], batch["lidar_mask"])), frames)
    assert hit == total and npred <= 2 * total


def test_student_overfits_with_distillation(data, trained_teacher):
    cfg, frames, batch = data
    torch.manual_seed(0)
    model = IMKD(cfg, trained_teacher[0]).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], 5e-3)
    history = []
    for _ in range(STEPS):
        losses, _ = model(batch)
        total = sum(losses.values())
        opt.zero_grad()
        total.backward()
        opt.step()
        history.append({k: v.item() for k, v in losses.items()})
    first, last = history[0], history[-1]
    assert sum(last.values()) < 0.1 * sum(first.values())
    for key in ("heatmap", "bbox", "depth", "distill_l1", "distill_l2"):
        assert last[key] < first[key], key
    model.eval()
    with torch.no_grad():
        hit, total, npred = _matches(model.student.decode(model.student(batch)), frames)
    assert hit >= total - 1 and npred <= 2 * total


def test_label_teacher_overfits_and_distils(data):
    cfg, frames, batch = data
    cfg = _with_label(cfg)
    torch.manual_seed(0)
    label = LabelTeacher(cfg).train()
    opt = torch.optim.AdamW(label.parameters(), 5e-3)
    history = []
    for _ in range(STEPS):
        total = sum(label.loss(label(batch["targets"]), batch["targets"]).values())
        opt.zero_grad()
        total.backward()
        opt.step()
        history.append(total.item())
    assert history[-1] < 0.1 * history[0]
    label.eval()
    with torch.no_grad():
        hit, total, _ = _matches(label.head.decode(label(batch["targets"])["head"]), frames)
    assert hit == total
    model = IMKD(cfg, label_teacher=label).train()
    losses, _ = model(batch)
    assert "distill_label" in losses
    sum(losses.values()).backward()
    assert model.distiller.label_adapter[0].weight.grad is not None
    assert all(p.grad is None for p in model.label_teacher.parameters())


def _with_label(cfg):
    cfg = copy.deepcopy(cfg)
    cfg.distill.label = True
    return cfg
