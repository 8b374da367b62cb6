"""imkd_ros.share finds runtime files in the dev venv and through the ament index (installs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from imkd_ros import share
from tests.vendor import ROOT


def test_dev_venv_uses_the_source_tree() -> None:
    assert share.source_root() == ROOT
    for parts in (("models", "imkd_student_cpu.pt"), ("config", "detector.yaml"), ("config", "detector.rviz"),
                  ("config", "fastdds_shm.xml"), ("launch", "detector.launch.py")):
        assert share.share_file(*parts) == ROOT.joinpath(*parts)


def test_missing_file_names_it_and_where_it_looked() -> None:
    with pytest.raises(FileNotFoundError, match=r"imkd_ros file models/nope\.pt not found; searched .*"):
        share.share_file("models", "nope.pt")


def _fake_install(tmp_path: Path) -> Path:
    prefix = tmp_path / "install" / "imkd_ros"
    (prefix / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (prefix / "share" / "ament_index" / "resource_index" / "packages" / "imkd_ros").write_text("")
    (prefix / "share" / "imkd_ros" / "models").mkdir(parents=True)
    (prefix / "share" / "imkd_ros" / "models" / "only_installed.pt").write_bytes(b"x")
    return prefix


@pytest.mark.parametrize("with_ament_index", [True, False], ids=["ament_index_python", "fallback"])
def test_installed_files_are_found_through_the_ament_index(tmp_path: Path, monkeypatch, with_ament_index) -> None:
    prefix = _fake_install(tmp_path)
    monkeypatch.setenv("AMENT_PREFIX_PATH", f"{tmp_path / 'elsewhere'}:{prefix}")
    if not with_ament_index:
        monkeypatch.setitem(sys.modules, "ament_index_python", None)
        monkeypatch.setitem(sys.modules, "ament_index_python.packages", None)
    assert share.share_file("models", "only_installed.pt") == prefix / "share" / "imkd_ros" / "models" / \
        "only_installed.pt"


def test_without_ament_prefix_path_nothing_breaks(monkeypatch) -> None:
    monkeypatch.delenv("AMENT_PREFIX_PATH", raising=False)
    assert share.share_dirs()[0] == ROOT


def test_importing_share_needs_no_ros() -> None:
    code = "import sys; sys.modules['ament_index_python'] = None\nimport imkd_ros.share as s\nprint(s.share_dirs())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
