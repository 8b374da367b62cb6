"""Checkpoint integrity (issue 12): a damaged or wrong file refuses to load with one clear line."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from imkd_ros.model.config import load_config
from imkd_ros.model.imkd import (
    CheckpointError,
    Student,
    file_sha256,
    load_student,
    save_checkpoint,
    sidecar_path,
    verify_checkpoint,
)

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = [ROOT / "models" / "imkd_student_cpu.pt", ROOT / "models" / "imkd_teacher_cpu.pt"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    cfg = load_config("cpu")
    path = tmp_path_factory.mktemp("ckpt") / "student.pt"
    save_checkpoint(path, Student(cfg), cfg)
    return path


def flip(src: Path, dst: Path, n_bytes: int = 4096, at: float = 0.6) -> None:
    data = bytearray(src.read_bytes())
    start = int(len(data) * at)
    for i in range(start, start + n_bytes):
        data[i] ^= 0xFF
    dst.write_bytes(bytes(data))


def test_saved_checkpoint_has_sidecar_and_inner_digest(ckpt) -> None:
    assert sidecar_path(ckpt).read_text().split() == [file_sha256(ckpt), ckpt.name]
    data = verify_checkpoint(ckpt)
    assert len(data["integrity"]["state_sha256"]) == 64
    load_student(ckpt)


@pytest.mark.parametrize("keep_sidecar", [True, False])
def test_bit_flipped_checkpoint_refuses_to_load(ckpt, tmp_path, keep_sidecar) -> None:
    bad = tmp_path / "student.pt"
    flip(ckpt, bad)
    if keep_sidecar:
        shutil.copyfile(sidecar_path(ckpt), sidecar_path(bad))
    with pytest.raises(CheckpointError) as info:
        load_student(bad)
    msg = str(info.value)
    assert "\n" not in msg and str(bad) in msg
    assert ("does not match" in msg) if keep_sidecar else ("corrupt" in msg or "not a readable" in msg)


def test_weights_flipped_inside_tensor_data_caught_without_sidecar(ckpt, tmp_path) -> None:
    data = torch.load(ckpt, weights_only=True)
    key = next(k for k, v in data["state_dict"].items() if v.numel() > 1000)
    data["state_dict"][key].view(-1)[:100] += 1.0  # a re-saved file with altered weights, old digest
    bad = tmp_path / "altered.pt"
    torch.save(data, bad)
    with pytest.raises(CheckpointError, match="do not match their stored digest"):
        load_student(bad)


@pytest.mark.parametrize("kind", ["directory", "empty", "random", "truncated", "not_a_dict"])
def test_bad_files_give_one_line(ckpt, tmp_path, kind) -> None:
    path = tmp_path / "model.pt"
    if kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 100_000, dtype=np.uint8).tobytes())
    elif kind == "truncated":
        path.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    else:
        torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError) as info:
        load_student(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_models_match_their_sidecar_and_model_card(path) -> None:
    digest = sidecar_path(path).read_text().split()[0]
    assert digest == file_sha256(path)
    assert digest in (ROOT / "models" / "MODEL_CARD.md").read_text()
    verify_checkpoint(path)


def test_shipped_student_copy_with_flipped_bytes_refuses(tmp_path) -> None:
    src = SHIPPED[0]
    bad = tmp_path / src.name
    flip(src, bad)
    shutil.copyfile(sidecar_path(src), sidecar_path(bad))
    with pytest.raises(CheckpointError, match="does not match"):
        load_student(bad)
