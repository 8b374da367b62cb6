"""tools/gpu_validate.py dry-runs on a machine without a GPU: the CPU steps (geometries, fp64
references) run, every GPU step is skipped with the reason, and one JSON is written."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from imkd_ros.ops.bev_pool_cuda import cuda_unavailable_reason

ROOT = Path(__file__).resolve().parents[2]
GPU_STEPS = ("kernels", "torch_extension", "backends", "tensorrt")


def _tool():
    spec = importlib.util.spec_from_file_location("gpu_validate", ROOT / "tools" / "gpu_validate.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_validate"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_gpu_validate_dry_run_on_cpu(tmp_path: Path) -> None:
    reason = cuda_unavailable_reason()
    if reason is None:
        pytest.skip("CUDA present: run tools/gpu_validate.py for real")
    out = tmp_path / "gpu.json"
    assert _tool().main(["--quick", "--iters", "2", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    steps = {s["name"]: s for s in report["steps"]}
    assert list(steps) == ["env", "cases", "kernels", "torch_extension", "backends", "tensorrt"]
    assert steps["env"]["status"] == "ok" and steps["cases"]["status"] == "ok"
    cases = {c["case"]: c for c in steps["cases"]["results"]}
    assert set(cases) == {"random_paper", "frustum_paper", "frustum_shipped"}
    for name in ("frustum_paper", "frustum_shipped"):  # the real frustum leaves cells empty
        assert 0 < cases[name]["empty_cells"] < cases[name]["cells"] and cases[name]["points"] > 0
    for name in GPU_STEPS:
        assert steps[name]["status"] == "skip" and steps[name]["reason"] == reason
