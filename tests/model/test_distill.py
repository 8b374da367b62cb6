"""Distillation losses: zero at student == teacher, grow with the difference, follow intensity."""

from __future__ import annotations

import pytest
import torch

from imkd_ros.model.config import DistillConfig
from imkd_ros.model.distill import (
    Distiller,
    activation_intensity,
    intensity_map,
    label_loss,
    level1_loss,
    level2_loss,
    response_loss,
    velocity_distill_loss,
)

torch.set_num_threads(1)

B, C, H, W = 2, 6, 8, 8


def _teacher(seed=0):
    return torch.rand(B, C, H, W, generator=torch.Generator().manual_seed(seed))


def _intensity():
    inten = torch.zeros(B, 1, H, W)
    inten[:, :, 2, 2] = 1.0  # strong LiDAR signal
    inten[:, :, 5, 5] = 0.1  # weak
    return inten


def _l1(s, t, inten, cfg):
    return level1_loss(s, t, inten, None, None, cfg)


def _l2(s, t, inten, cfg):
    return level2_loss(s, t, inten, None, cfg)


@pytest.mark.parametrize("loss_fn", [_l1, _l2])
def test_zero_when_equal_and_grows(loss_fn):
    cfg = DistillConfig()
    t = _teacher()
    inten = _intensity()
    assert loss_fn(t.clone(), t, inten, cfg).item() == pytest.approx(0.0, abs=1e-7)
    noise = torch.randn(B, C, H, W, generator=torch.Generator().manual_seed(1))
    values = [loss_fn(t + eps * noise, t, inten, cfg).item() for eps in (0.05, 0.2, 0.5, 1.0)]
    assert all(a < b for a, b in zip(values, values[1:])), values


@pytest.mark.parametrize("loss_fn", [_l1, _l2])
def test_weighting_follows_intensity(loss_fn):
    cfg = DistillConfig(level2_relation_weight=0.0, level2_discrepancy_gain=0.0)
    t = _teacher()
    inten = _intensity()
    strong, weak = t.clone(), t.clone()
    strong[:, :, 2, 2] += 1.0
    weak[:, :, 5, 5] += 1.0
    l_strong = loss_fn(strong, t, inten, cfg).item()
    l_weak = loss_fn(weak, t, inten, cfg).item()
    # weight ratio (floor + 1.0) / (floor + 0.1) = 5.5 with the default floor of 0.1
    assert l_strong / l_weak == pytest.approx((0.1 + 1.0) / (0.1 + 0.1), rel=1e-4)
    default = DistillConfig()
    assert loss_fn(strong, t, inten, default) > 2 * loss_fn(weak, t, inten, default)


def test_level1_radar_and_foreground_boost():
    cfg = DistillConfig()
    t = _teacher()
    inten = torch.full((B, 1, H, W), 0.5)
    s = t.clone()
    s[:, :, 2, 2] += 1.0
    occ = torch.zeros(B, 1, H, W)
    occ[:, :, 0, 0] = 1  # every sample has a radar return somewhere
    fg = torch.zeros(B, 1, H, W)
    base = level1_loss(s, t, inten, occ, fg, cfg)
    occ[:, :, 2, 2] = 1
    assert level1_loss(s, t, inten, occ, fg, cfg) > base
    fg[:, :, 2, 2] = 1
    assert level1_loss(s, t, inten, occ, fg, cfg) > level1_loss(s, t, inten, occ, None, cfg)


def test_level2_relation_term_is_scale_sensitive_only_in_feature_term():
    cfg = DistillConfig(level2_relation_weight=1.0)
    t = _teacher()
    inten = torch.ones(B, 1, H, W)
    rel_only = DistillConfig(level2_relation_weight=1.0)
    # a channel-scaled copy has the same spatial affinity, so only the feature term is non-zero
    scaled = level2_loss(2 * t, t, inten, None, rel_only).item()
    feat_only = level2_loss(2 * t, t, inten, None, DistillConfig(level2_relation_weight=0.0)).item()
    assert scaled == pytest.approx(feat_only, rel=1e-5)
    shuffled = t[:, :, torch.randperm(H)]
    assert level2_loss(shuffled, t, inten, None, cfg) > level2_loss(shuffled, t, inten, None,
                                                                     DistillConfig(level2_relation_weight=0.0))


def test_response_loss():
    cfg = DistillConfig()
    heads = [{"heatmap": torch.randn(B, 2, H, W)}]
    assert response_loss(heads, heads, cfg).item() == pytest.approx(0.0, abs=1e-7)
    other = [{"heatmap": heads[0]["heatmap"] + 1.0}]
    assert response_loss(other, heads, cfg) > 0


def test_intensity_map_range():
    cfg = DistillConfig()
    counts = torch.zeros(B, 1, H, W)
    counts[:, :, 1, 1] = 50
    m = intensity_map(_teacher(), counts, cfg)
    assert m.shape == (B, 1, H, W) and m.min() >= 0 and m.max() <= 1
    assert m[:, :, 1, 1].min() > m[:, :, 6, 6].max() - 0.5
    a = activation_intensity(torch.zeros(B, C, H, W))
    assert torch.isfinite(a).all()


def test_distiller_switches_and_weights():
    student = {"radar_bev": torch.randn(B, 4, H, W), "fused_bev": torch.randn(B, 5, H, W),
               "radar_occupancy": torch.zeros(B, 1, H, W),
               "head": [{"heatmap": torch.randn(B, 2, H, W)}]}
    teacher = {"teacher_bev": _teacher(), "lidar_counts": torch.ones(B, 1, H, W),
               "head": [{"heatmap": torch.randn(B, 2, H, W)}]}
    targets = [{"heatmap": torch.zeros(B, 2, H, W)}]
    full = Distiller(DistillConfig(), 4, 5, C)(student, teacher, targets)
    assert set(full) == {"distill_l1", "distill_l2", "distill_resp"}
    none = Distiller(DistillConfig(level1=False, level2=False, response=False), 4, 5, C)
    assert none(student, teacher, targets) == {}
    torch.manual_seed(0)
    d1 = Distiller(DistillConfig(level1_weight=1.0), 4, 5, C)
    torch.manual_seed(0)
    d3 = Distiller(DistillConfig(level1_weight=3.0), 4, 5, C)
    a = d1(student, teacher, targets)["distill_l1"]
    b = d3(student, teacher, targets)["distill_l1"]
    assert b.item() == pytest.approx(3 * a.item(), rel=1e-5)
    a.backward()
    assert d1.radar_adapter[0].weight.grad is not None


def test_label_loss_follows_foreground():
    t = _teacher()
    fg = torch.zeros(B, 1, H, W)
    fg[:, :, 3, 3] = 1.0
    assert label_loss(t.clone(), t, fg).item() == pytest.approx(0.0, abs=1e-7)
    inside, outside = t.clone(), t.clone()
    inside[:, :, 3, 3] += 1.0
    outside[:, :, 6, 1] += 1.0
    assert label_loss(inside, t, fg) > 0 and label_loss(outside, t, fg).item() == pytest.approx(0.0, abs=1e-7)


def test_level1_ignores_a_sample_without_radar():
    """A frame with every radar silent (an outage, radar dropout) has nothing to imitate with."""
    cfg = DistillConfig()
    t = _teacher()
    inten = torch.full((B, 1, H, W), 0.5)
    s = t.clone()
    s[1:] += 3.0  # only the samples after the first are wrong
    occ = torch.zeros(B, 1, H, W)
    occ[0, :, 1, 1] = 1  # only the first sample has radar
    assert level1_loss(s, t, inten, occ, None, cfg).item() == pytest.approx(0.0, abs=1e-6)
    occ[1, :, 1, 1] = 1
    assert level1_loss(s, t, inten, occ, None, cfg).item() > 1.0


def test_exempt_classes_take_their_regions_out_of_both_feature_levels():
    """A pedestrian's GT region gets no feature imitation; a car's region and the rest are kept."""
    tasks = [["car"], ["pedestrian", "traffic_cone"]]
    targets = [{"heatmap": torch.zeros(B, 1, H, W)}, {"heatmap": torch.zeros(B, 2, H, W)}]
    targets[0]["heatmap"][:, 0, 2, 2] = 1.0  # a car
    targets[1]["heatmap"][:, 0, 5, 5] = 1.0  # a pedestrian
    t = _teacher()
    student = {"radar_bev": torch.randn(B, 4, H, W), "fused_bev": torch.randn(B, 5, H, W),
               "radar_occupancy": torch.ones(B, 1, H, W), "head": []}
    teacher = {"teacher_bev": t, "lidar_counts": torch.ones(B, 1, H, W), "head": []}
    cfg = DistillConfig(response=False, level2_relation_weight=0.0)
    torch.manual_seed(0)
    plain = Distiller(cfg, 4, 5, C, tasks)
    torch.manual_seed(0)
    exempt = Distiller(DistillConfig(response=False, level2_relation_weight=0.0,
                                     exempt_classes=["pedestrian"]), 4, 5, C, tasks)
    a, b = plain(student, teacher, targets), exempt(student, teacher, targets)
    assert set(a) == set(b) == {"distill_l1", "distill_l2"}
    assert all(a[k].item() != pytest.approx(b[k].item(), rel=1e-4) for k in a)
    # an error only at the pedestrian cell is invisible to the exempt distiller, a car's is not
    inten = torch.full((B, 1, H, W), 0.5)
    keep = 1 - targets[1]["heatmap"][:, :1]
    for where, seen in (((5, 5), False), ((2, 2), True)):
        s = t.clone()
        s[:, :, where[0], where[1]] += 2.0
        for loss in (level1_loss(s, t, inten, None, None, cfg, keep), level2_loss(s, t, inten, None, cfg, keep)):
            assert (loss.item() > 1e-6) is seen
    with pytest.raises(ValueError, match="exempt_classes"):
        Distiller(DistillConfig(exempt_classes=["pedestrain"]), 4, 5, C, tasks)


def test_velocity_distillation_counts_only_where_the_teacher_is_confident():
    cfg = DistillConfig(velocity_min_heat=0.3)

    def heads(vel, heat_logit):
        box = torch.zeros(1, 10, H, W)
        box[:, 8:10] = vel
        return [{"heatmap": heat_logit, "box": box}]

    heat = torch.full((1, 2, H, W), -10.0)
    heat[:, 1, 3, 3] = 10.0  # one confident teacher cell (any class channel counts)
    t_vel = torch.zeros(1, 2, H, W)
    t_vel[:, :, 3, 3] = torch.tensor([4.0, -3.0])
    same = velocity_distill_loss(heads(t_vel, heat), heads(t_vel, heat), cfg)
    assert same.item() == pytest.approx(0.0)
    # a wrong student velocity far from the teacher's confident cell costs nothing ...
    off = t_vel.clone()
    off[:, :, 6, 6] = 9.0
    assert velocity_distill_loss(heads(off, heat), heads(t_vel, heat), cfg).item() == pytest.approx(0.0)
    # ... at it, Huber with a 1 m/s knee: |4 - 0| - 0.5 + |-3 - 0| - 0.5 = 6
    zero = torch.zeros_like(t_vel)
    assert velocity_distill_loss(heads(zero, heat), heads(t_vel, heat), cfg).item() == pytest.approx(6.0, rel=1e-4)
    # the gradient reaches the student's velocity at the confident cell only
    student = heads(zero, heat)
    student[0]["box"].requires_grad_(True)
    velocity_distill_loss(student, heads(t_vel, heat), cfg).backward()
    grad = student[0]["box"].grad
    assert grad[:, 8:10, 3, 3].abs().min() > 0
    grad[:, 8:10, 3, 3] = 0
    assert grad.abs().max() == 0


def test_velocity_classes_limit_the_term_to_their_heat():
    """With velocity_classes=[pedestrian] a car's wrong velocity costs nothing, a pedestrian's does."""
    tasks = [["car"], ["pedestrian", "traffic_cone"]]

    def heads(car_vel, ped_vel):
        out = []
        for ti, (nc, vel) in enumerate(((1, car_vel), (2, ped_vel))):
            heat = torch.full((1, nc, H, W), -10.0)
            heat[:, 0, 2 + 3 * ti, 2] = 10.0  # car at (2, 2), pedestrian at (5, 2)
            box = torch.zeros(1, 10, H, W)
            box[:, 8, 2 + 3 * ti, 2] = vel
            out.append({"heatmap": heat, "box": box})
        return out

    student = {"radar_bev": torch.zeros(1, 4, H, W), "fused_bev": torch.zeros(1, 5, H, W)}
    teacher = {"teacher_bev": torch.zeros(1, C, H, W), "lidar_counts": torch.zeros(1, 1, H, W),
               "head": heads(5.0, 1.5)}
    only = dict(level1=False, level2=False, response=False, velocity=True, velocity_weight=1.0)
    ped = Distiller(DistillConfig(**only, velocity_classes=["pedestrian"]), 4, 5, C, tasks)
    every = Distiller(DistillConfig(**only), 4, 5, C, tasks)
    car_wrong = {**student, "head": heads(1.0, 1.5)}
    ped_wrong = {**student, "head": heads(5.0, 0.0)}
    assert ped(car_wrong, teacher, None)["distill_vel"].item() == pytest.approx(0.0)
    assert every(car_wrong, teacher, None)["distill_vel"].item() == pytest.approx(3.5, rel=1e-3)
    assert ped(ped_wrong, teacher, None)["distill_vel"].item() == pytest.approx(1.0, rel=1e-3)
    with pytest.raises(ValueError, match="velocity_classes"):
        Distiller(DistillConfig(**only, velocity_classes=["pedestrain"]), 4, 5, C, tasks)
