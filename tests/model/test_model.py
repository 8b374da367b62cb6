"""Student / teacher / IMKD wiring: both configs build and train a step; geometry reuse;
checkpoints; torchvision-compatible backbone names."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
import torch

from imkd_ros.model import (
    IMKD,
    IMKDConfig,
    LidarTeacher,
    Preprocessor,
    Student,
    load_config,
    load_student,
    load_teacher,
    save_checkpoint,
)
from imkd_ros.model.backbone import RESNET_SPECS, ResNet, load_torchvision_weights
from imkd_ros.model.imkd import StudentExport, student_outputs_flat
from imkd_ros.model.synthetic import random_frame, tiny_config
from imkd_ros.types import Boxes

torch.set_num_threads(1)


def _train_step(cfg: IMKDConfig, frames) -> tuple[dict, IMKD]:
    batch = Preprocessor(cfg, train=True)(frames)
    model = IMKD(cfg).train()
    losses, _ = model(batch)
    total = sum(losses.values())
    total.backward()
    assert torch.isfinite(total)
    student_grads = [p.grad for p in model.student.parameters() if p.requires_grad]
    assert sum(g is not None and bool(g.abs().sum() > 0) for g in student_grads) > 0.9 * len(student_grads)
    assert all(p.grad is None for p in model.teacher.parameters())
    assert model.distiller.radar_adapter[0].weight.grad is not None
    return losses, model


def test_cpu_config_forward_backward():
    cfg = load_config("cpu")
    frames = [random_frame(0, raw_hw=(128, 352)), random_frame(1, raw_hw=(128, 352))]
    losses, model = _train_step(cfg, frames)
    assert {"heatmap", "bbox", "attr", "depth", "distill_l1", "distill_l2", "distill_resp"} <= set(losses)
    student = model.student.eval()
    batch = Preprocessor(cfg)(frames)
    with torch.no_grad():
        boxes = student.decode(student(batch))
    assert len(boxes) == 2 and all(isinstance(b, Boxes) for b in boxes)


@pytest.mark.slow
def test_paper_config_forward_backward():
    cfg = load_config("paper")
    assert cfg.backbone.depth == 50 and (cfg.image.height, cfg.image.width) == (256, 704)
    assert cfg.grid.bev_grid().shape == (128, 128) and cfg.depth.num_bins == 70
    t0 = time.perf_counter()
    _train_step(cfg, [random_frame(0, raw_hw=(256, 704))])
    print(f"paper forward+backward, batch 1: {time.perf_counter() - t0:.1f} s")


def test_precomputed_geometry_matches_and_is_cached():
    cfg = tiny_config()
    frames = [random_frame(3, raw_hw=(128, 352))]
    batch = Preprocessor(cfg)(frames)
    student = Student(cfg).eval()
    geo = student.geometry(batch["intrinsics"], batch["cam_to_ego"], batch["img_aug"])
    assert student.geometry(batch["intrinsics"], batch["cam_to_ego"], batch["img_aug"]) is geo
    with torch.no_grad():
        a = student(batch)["head"][0]["heatmap"]
        b = student(batch, geo)["head"][0]["heatmap"]
    torch.testing.assert_close(a, b)
    moved = batch["cam_to_ego"].clone()
    moved[..., 0, 3] += 0.5
    assert student.geometry(batch["intrinsics"], moved, batch["img_aug"]) is not geo


def test_invalid_camera_contributes_nothing():
    cfg = tiny_config()
    frame = random_frame(4, raw_hw=(128, 352))
    student = Student(cfg).eval()
    frame.camera_valid[:] = False
    with torch.no_grad():
        out = student(Preprocessor(cfg)([frame]))
    assert out["cam_mass"].abs().max() == 0 and out["cam_bev"].abs().max() == 0


def test_checkpoint_roundtrip(tmp_path):
    cfg = tiny_config()
    batch = Preprocessor(cfg)([random_frame(5, raw_hw=(128, 352))])
    student = Student(cfg).eval()
    save_checkpoint(tmp_path / "s.pt", student, cfg)
    loaded = load_student(tmp_path / "s.pt")
    assert loaded.cfg == cfg
    with torch.no_grad():
        torch.testing.assert_close(student(batch)["head"][1]["box"], loaded(batch)["head"][1]["box"])
    imkd = IMKD(cfg)
    save_checkpoint(tmp_path / "i.pt", imkd, cfg, kind="imkd")
    load_student(tmp_path / "i.pt")
    teacher = LidarTeacher(cfg)
    save_checkpoint(tmp_path / "t.pt", teacher, cfg, kind="teacher")
    load_teacher(tmp_path / "t.pt")


def test_config_yaml_roundtrip_and_strictness():
    for name in ("paper", "cpu"):
        cfg = load_config(name)
        assert IMKDConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(KeyError):
        IMKDConfig.from_dict({"backbone": {"dept": 50}})


@pytest.mark.parametrize("depth, params", [(18, 11_176_512), (50, 23_508_032)])
def test_backbone_matches_torchvision_layout(depth, params):
    block, layers = RESNET_SPECS[depth]
    net = ResNet(block, layers)
    assert sum(p.numel() for p in net.parameters()) == params  # torchvision resnet minus fc
    keys = set(net.state_dict())
    assert {"conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
            "layer4.1.bn2.weight"} <= keys
    if depth == 50:
        assert "layer4.2.conv3.weight" in keys
    feats = net(torch.zeros(1, 3, 64, 64))
    assert [f.shape[-1] for f in feats] == [16, 8, 4, 2]


def test_teacher_forward_shapes():
    cfg = tiny_config()
    batch = Preprocessor(cfg)([random_frame(6, raw_hw=(128, 352))])
    teacher = LidarTeacher(cfg)
    out = teacher(batch["lidar"], batch["lidar_mask"])
    ny, nx = teacher.grid.shape  # its own grid: a 2x refinement of the student's 32 x 32
    assert (ny, nx) == (64, 64) and out["teacher_bev"].shape == (1, teacher.out_channels, ny, nx)
    assert teacher.to_student_grid(out)["teacher_bev"].shape[-2:] == (32, 32)
    assert out["lidar_counts"].sum() == batch["lidar_mask"].sum() - int(
        (np.abs(batch["lidar"][0, :, :2].numpy()) >= 32).any(1)[batch["lidar_mask"][0].numpy()].sum())


def test_student_exports_with_bev_pool_node():
    cfg = tiny_config()
    batch = Preprocessor(cfg)([random_frame(7, raw_hw=(128, 352))], targets=False)
    student = Student(cfg).eval()
    geo = student.geometry(batch["intrinsics"], batch["cam_to_ego"], batch["img_aug"])
    wrapper = StudentExport(student).eval()
    inputs = StudentExport.example_inputs(batch, geo)
    with torch.no_grad():
        ep = torch.export.export(wrapper, inputs)
        targets = [n.target for n in ep.graph.nodes if n.op == "call_function"]
        assert torch.ops.imkd.bev_pool.default in targets
        got = ep.module()(*inputs)
        ref = student_outputs_flat(student(batch, geo))
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b)


def test_edge_frames_empty_radar_no_gt_no_lidar():
    cfg = tiny_config()
    a = random_frame(8, raw_hw=(128, 352))
    b = random_frame(9, raw_hw=(96, 320))  # another raw resolution
    a.radar = np.zeros((0, a.radar.shape[1]), np.float32)
    a.lidar = None
    b.gt = None
    batch = Preprocessor(cfg)([a, b])
    assert "targets" not in batch and "lidar" not in batch
    assert batch["radar_mask"][0].sum() == 0
    student = Student(cfg).eval()
    with torch.no_grad():
        out = student(batch)
    assert out["radar_intensity"][0].abs().max() == 0
    assert len(student.decode(out)) == 2


def test_no_depth_target_for_invalid_camera():
    cfg = tiny_config()
    frame = random_frame(12, raw_hw=(128, 352))
    frame.camera_valid[2] = False
    target = Preprocessor(cfg)([frame])["depth_target"]
    assert (target[2] == -1).all() and (target[0] >= 0).any()


def test_load_torchvision_weights(tmp_path):
    block, layers = RESNET_SPECS[18]
    src = ResNet(block, layers)
    state = dict(src.state_dict())
    state["fc.weight"] = torch.zeros(1000, 512)
    state["fc.bias"] = torch.zeros(1000)
    torch.save(state, tmp_path / "resnet18.pth")
    dst = ResNet(block, layers)
    missing, unexpected = load_torchvision_weights(dst, str(tmp_path / "resnet18.pth"))
    assert missing == [] and unexpected == []
    torch.testing.assert_close(dst.layer3[1].conv2.weight, src.layer3[1].conv2.weight)


def test_every_student_parameter_gets_a_gradient():
    """DDP without find_unused_parameters needs every parameter in the graph, even with no
    attribute labels in the batch."""
    cfg = tiny_config()
    frame = random_frame(13, raw_hw=(128, 352))
    frame.gt.attributes[:] = -1
    batch = Preprocessor(cfg)([frame])
    student = Student(cfg).train()
    sum(student.loss(student(batch), batch).values()).backward()
    unused = [n for n, p in student.named_parameters() if p.grad is None]
    assert unused == []


def test_read_only_images_preprocess_like_writable_ones():
    """Decoded or cached frames can be read-only buffers; they preprocess to the same tensor,
    without torch's non-writable-array warning, and the frame is left untouched."""
    cfg = tiny_config()
    frame = random_frame(11, raw_hw=(128, 352))
    want = Preprocessor(cfg)([frame])["images"]
    for img in frame.images:
        img.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = Preprocessor(cfg)([frame])["images"]
    assert torch.equal(got, want)
    assert not frame.images[0].flags.writeable
