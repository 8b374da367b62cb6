"""Tiny end-to-end training runs: teacher -> distilled student, exact resume, 2-rank DDP (gloo)."""

from __future__ import annotations

import csv
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import yaml

from imkd_ros.model.imkd import load_student, load_teacher
from imkd_ros.model.synthetic import tiny_config
from imkd_ros.model.teacher import LabelTeacher
from imkd_ros.train import trainer
from imkd_ros.train.data import DataSpec
from imkd_ros.train.trainer import TrainConfig, train


@pytest.fixture(scope="module")
def tiny_yaml(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config().to_dict()))
    return str(path)


def _tc(tiny_yaml: str, out: Path, **kw) -> TrainConfig:
    base = dict(model=tiny_yaml, train_data=DataSpec("simple:4:0"), cache_dir=None, out=str(out),
                epochs=2, batch_size=2, lr=2e-3, threads=1, progress=False)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def teacher_ckpt(tiny_yaml, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("teacher")
    train(_tc(tiny_yaml, out, variant="teacher", val_data=DataSpec("simple:2:9")))
    return str(out / "teacher.pt")


def test_teacher_run_writes_everything(teacher_ckpt):
    out = Path(teacher_ckpt).parent
    for name in ("teacher.pt", "last.pt", "metrics.csv", "loss_curve.png", "summary.json"):
        assert (out / name).exists(), name
    rows = list(csv.DictReader((out / "metrics.csv").read_text().splitlines()))
    assert rows[-1]["epoch"] == "2" and rows[-1]["val_NDS"] and len(rows) >= 2
    state = torch.load(out / "last.pt", weights_only=True)  # resume checkpoint: weights_only-safe
    assert state["epoch"] == 2 and "optimizer" in state and "scheduler" in state
    assert load_teacher(teacher_ckpt) is not None


@pytest.mark.parametrize("variant", ["imkd", "camera_only"])
def test_student_variants_train(tiny_yaml, teacher_ckpt, tmp_path, variant):
    summary = train(_tc(tiny_yaml, tmp_path, variant=variant, teacher_ckpt=teacher_ckpt, epochs=1))
    assert summary["steps"] == 2
    student = load_student(tmp_path / "student.pt")
    assert not any(k.startswith("teacher") for k in student.state_dict())
    rows = list(csv.DictReader((tmp_path / "metrics.csv").read_text().splitlines()))
    if variant == "imkd":
        assert float(rows[0]["distill_l1"]) > 0 and float(rows[0]["distill_l2"]) > 0
    else:
        assert "distill_l1" not in rows[0]


def test_resume_is_exact(tiny_yaml, teacher_ckpt, tmp_path):
    kw = dict(variant="imkd", teacher_ckpt=teacher_ckpt, epochs=2)
    train(_tc(tiny_yaml, tmp_path / "full", **kw))
    train(_tc(tiny_yaml, tmp_path / "cut", max_steps=2, **kw))  # stops after epoch 1
    assert torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["epoch"] == 1
    train(_tc(tiny_yaml, tmp_path / "cut", **kw))  # resumes epoch 2
    a = load_student(tmp_path / "full" / "student.pt").state_dict()
    b = load_student(tmp_path / "cut" / "student.pt").state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def _ddp_worker(rank: int, world: int, port: int, tiny_yaml: str, out: str, teacher: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    tc = _tc(tiny_yaml, Path(out), variant="imkd", teacher_ckpt=teacher, epochs=1,
             train_data=DataSpec("simple:8:0"))

    trainer.train(tc)
    # what each rank ended with (the DDP-wrapped task's own copy)
    torch.save(trainer.LAST_TASK_STATE, Path(out) / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_ddp_two_gloo_ranks_end_identical(tiny_yaml, teacher_ckpt, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, tiny_yaml, str(tmp_path), teacher_ckpt), nprocs=2, join=True)
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    summary = yaml.safe_load((tmp_path / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 2  # 8 frames / (2 ranks x batch 2)


@pytest.mark.gpu
def test_cuda_amp_run(tiny_yaml, teacher_ckpt, tmp_path):
    """fp16 autocast + GradScaler on one GPU: a distilled student trains to finite losses."""
    summary = train(_tc(tiny_yaml, tmp_path, variant="imkd", teacher_ckpt=teacher_ckpt, epochs=1,
                        device="cuda", amp="on"))
    assert summary["steps"] == 2
    rows = list(csv.DictReader((tmp_path / "metrics.csv").read_text().splitlines()))
    assert all(float(r["loss"]) == float(r["loss"]) for r in rows)  # not NaN
    assert load_student(tmp_path / "student.pt") is not None


def test_label_teacher_is_trained_and_distilled(tiny_yaml, teacher_ckpt, tmp_path):
    """The label teacher is built by training (variant label_teacher) and switched on per run."""
    train(_tc(tiny_yaml, tmp_path / "label", variant="label_teacher", epochs=1, val_data=DataSpec("simple:2:9")))
    label = tmp_path / "label" / "label_teacher.pt"
    assert isinstance(load_teacher(label), LabelTeacher)
    with pytest.raises(ValueError, match="label teacher"):
        train(_tc(tiny_yaml, tmp_path / "missing", variant="imkd_label", teacher_ckpt=teacher_ckpt, epochs=1))
    train(_tc(tiny_yaml, tmp_path / "student", variant="imkd_label", teacher_ckpt=teacher_ckpt,
              label_teacher_ckpt=str(label), epochs=1))
    rows = list(csv.DictReader((tmp_path / "student" / "metrics.csv").read_text().splitlines()))
    student = load_student(tmp_path / "student" / "student.pt")
    assert float(rows[0]["distill_label"]) > 0
    # the velocity term is logged exactly when the config distils velocity (cpu.yaml: off since v4)
    assert ("distill_vel" in rows[0]) == student.cfg.distill.velocity
    assert student.cfg.distill.label and not any("label" in k for k in student.state_dict())


def test_init_starts_from_the_given_weights(tiny_yaml, teacher_ckpt, tmp_path):
    train(_tc(tiny_yaml, tmp_path, variant="teacher", init_ckpt=teacher_ckpt, epochs=1, max_steps=1, lr=1e-12))
    a = dict(load_teacher(teacher_ckpt).named_parameters())
    b = dict(load_teacher(tmp_path / "teacher.pt").named_parameters())
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)


def test_init_may_change_loss_weights_but_not_the_architecture(tiny_yaml, teacher_ckpt, tmp_path):
    # a continued run re-weights its losses (velocity code weight 0.2 -> 1.0) on the same weights
    cw = tiny_config().head.code_weights
    train(_tc(tiny_yaml, tmp_path / "reweighted", variant="teacher", init_ckpt=teacher_ckpt, epochs=1,
              max_steps=1, lr=1e-12, overrides={"head.code_weights": cw[:8] + [1.0, 1.0]}))
    assert load_teacher(tmp_path / "reweighted" / "teacher.pt").cfg.head.code_weights[8:] == [1.0, 1.0]
    with pytest.raises(ValueError, match="another model config: teacher.bev_blocks"):
        train(_tc(tiny_yaml, tmp_path / "wider", variant="teacher", init_ckpt=teacher_ckpt, epochs=1,
                  max_steps=1, overrides={"teacher.bev_blocks": tiny_config().teacher.bev_blocks + 1}))
