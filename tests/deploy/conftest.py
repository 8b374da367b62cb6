"""Shared helpers for the deployment tests (CUDA kernel build, export, runtime backends)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Registered here too so the deploy tests run warning-free on their own.
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (skipped with a reason otherwise)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
