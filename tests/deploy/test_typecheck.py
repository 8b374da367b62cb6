"""mypy over imkd_ros/export and imkd_ros/runtime, TensorRT calls checked against tensorrt-stubs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_deploy_code_typechecks() -> None:
    pytest.importorskip("mypy", reason="mypy not installed")
    proc = subprocess.run(["bash", str(ROOT / "tools" / "typecheck.sh")], capture_output=True, text=True,
                          env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"}, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "Success" in proc.stdout
