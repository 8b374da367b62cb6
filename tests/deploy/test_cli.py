"""`imkd doctor [--gpu]` and `imkd export` from the command line (CPU machine behaviour)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from imkd_ros.cli import main
from imkd_ros.runtime.base import cuda_status, tensorrt_status


def test_doctor_reports_and_skips_loudly(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "torch:" in out and "tensorrt" in out and "doctor: 0 failed" in out


def test_doctor_gpu_skips_with_reasons_without_cuda(capsys: pytest.CaptureFixture[str]) -> None:
    if cuda_status() is None:
        pytest.skip("CUDA present: the GPU checks really run (tests/deploy/test_gpu.py)")
    assert main(["doctor", "--gpu"]) == 0
    out = capsys.readouterr().out
    assert "[SKIP] kernel vs CPU op: torch" in out
    assert "[SKIP] tensorrt fp16: backend tensorrt:" in out
    assert "latency torch-cpu fp32" in out


def test_export_op_onnx_and_pt2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--format", "onnx", "--op-only", "--out", str(tmp_path / "op.onnx")]) == 0
    model = onnx.load(str(tmp_path / "op.onnx"))
    assert [n.op_type for n in model.graph.node] == ["BevPool"]
    assert "max|diff|" in capsys.readouterr().out
    assert main(["export", "--format", "pt2", "--op-only", "--out", str(tmp_path / "op.pt2")]) == 0
    assert (tmp_path / "op.pt2").stat().st_size > 0


def test_export_engine_without_tensorrt_fails_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if tensorrt_status() is None:
        pytest.skip("TensorRT present")
    rc = main(["export", "--format", "engine", "--op-only", "--no-check", "--out", str(tmp_path / "op.engine")])
    assert rc == 2
    assert "TensorRT is not installed" in capsys.readouterr().err
    assert (tmp_path / "op.onnx").exists()  # the ONNX step still ran
