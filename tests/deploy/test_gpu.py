"""GPU checks (skipped with a reason where CUDA / CuPy / TensorRT are missing): the CUDA kernel
against the CPU op, the torch CUDA backend and the TensorRT engine against torch CPU."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from imkd_ros.runtime import doctor
from imkd_ros.runtime.base import cuda_status, tensorrt_status

pytestmark = pytest.mark.gpu


def _assert_ok(checks: list[doctor.Check]) -> None:
    for c in checks:
        print(c.line())
    failed = [c.line() for c in checks if c.status == "fail"]
    assert not failed, failed
    if all(c.status == "skip" for c in checks):
        pytest.skip("; ".join(c.detail for c in checks))


def test_cuda_kernel_matches_cpu_op() -> None:
    _assert_ok(doctor.check_cuda_kernel())


def test_ptx_via_cupy_matches_cpu_op() -> None:
    pytest.importorskip("cupy", reason="cupy not installed")
    _assert_ok(doctor.check_cupy_kernel())


def test_backends_match_torch_cpu() -> None:
    checks = doctor.check_backends(None, "cpu", iters=5)
    _assert_ok([c for c in checks if c.status != "info"])


def test_tensorrt_plugin_matches_cpu_op(tmp_path) -> None:
    """The BevPool plugin alone through TensorRT (tools/gpu_validate.py's tensorrt step)."""

    missing = [r for r in (cuda_status(), tensorrt_status()) if r]
    if missing:
        pytest.skip("; ".join(missing))
    path = Path(__file__).resolve().parents[2] / "tools" / "gpu_validate.py"
    spec = importlib.util.spec_from_file_location("gpu_validate", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_validate"] = mod
    spec.loader.exec_module(mod)
    out = tmp_path / "trt.json"
    rc = mod.main(["--only", "tensorrt", "--out", str(out)])
    steps = {s["name"]: s for s in json.loads(out.read_text())["steps"]}
    assert rc == 0 and steps["tensorrt"]["status"] == "ok", steps["tensorrt"]
