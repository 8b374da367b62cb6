"""GPU checks (skipped with a reason where CUDA / CuPy / TensorRT are missing): the CUDA kernel
against the CPU op, the torch CUDA backend and the TensorRT engine against torch CPU."""

from __future__ import annotations

import pytest

from imkd_ros.runtime import doctor

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


def test_tensorrt_plugin_matches_cpu_op() -> None:
    _assert_ok(doctor.check_trt_plugin())
