"""model:= accepts a checkpoint or a TensorRT engine, or stops the node with one FATAL line."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from imkd_ros.runtime import BackendUnavailableError, create_detector
from imkd_ros.runtime.model_file import ModelFileError, resolve_model_file
from imkd_ros.share import share_file
from tests.vendor import ROOT


def test_checkpoint_and_engine_are_accepted(tmp_path: Path) -> None:
    ckpt = tmp_path / "student.pt"
    ckpt.write_bytes(b"x")
    assert resolve_model_file(ckpt).kind == "checkpoint"
    engine = tmp_path / "student.engine"
    engine.write_bytes(b"x")
    mf = resolve_model_file(engine)
    assert (mf.kind, mf.engine, mf.checkpoint) == ("engine", engine, ckpt)


@pytest.mark.parametrize("name,make,match", [
    ("missing.pt", False, r"missing\.pt: no such file \(expected a student checkpoint"),
    ("model.onnx", True, r"model\.onnx: unknown file type '\.onnx', expected a student checkpoint"),
    ("lonely.engine", True, r"lonely\.engine: a TensorRT engine needs the student checkpoint .*lonely\.pt"),
    ("noext", True, r"noext: unknown file type '\(none\)'"),
])
def test_bad_model_files_say_which_file_and_what_was_expected(tmp_path: Path, name: str, make: bool,
                                                              match: str) -> None:
    path = tmp_path / name
    if make:
        path.write_bytes(b"x")
    with pytest.raises(ModelFileError, match=match) as info:
        resolve_model_file(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_garbage_checkpoint_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelFileError, match=r"broken\.pt: not an imkd student checkpoint") as info:
        create_detector(bad, backend="torch-cpu")
    assert "\n" not in str(info.value) and len(str(info.value)) < 400


def test_engine_needs_tensorrt_and_says_so(tmp_path: Path) -> None:
    """Here (no GPU) an engine cannot run: the error names TensorRT, or the backend that cannot run it."""

    engine = tmp_path / "student.engine"
    engine.write_bytes(b"engine bytes")
    shutil.copy(share_file("models", "imkd_student_cpu.pt"), tmp_path / "student.pt")
    with pytest.raises(BackendUnavailableError, match=r"student\.engine is a TensorRT engine: it runs on backend "
                                                      r"tensorrt \(or auto\), not torch-cpu"):
        create_detector(engine, backend="torch-cpu")
    with pytest.raises(BackendUnavailableError, match="backend tensorrt"):
        create_detector(engine, backend="auto")


@pytest.mark.ros
def test_node_with_a_bad_model_logs_one_fatal_line_and_exits_2(ros_env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    cmd = [sys.executable, "-m", "imkd_ros.ros.detector_node", "--ros-args", "--params-file",
           str(ROOT / "config" / "detector.yaml"), "-p", f"model:={bad}"]
    out = subprocess.run(cmd, env=ros_env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    log = out.stdout + out.stderr
    assert out.returncode == 2, log[-3000:]
    fatal = [line for line in log.splitlines() if "[FATAL]" in line]
    assert len(fatal) == 1, log
    assert re.search(r"model \S*broken\.pt: not an imkd student checkpoint \(expected", fatal[0]), log
    assert "Traceback" not in log
