"""The launch file's DDS profile choice, run through the upstream launch (no DDS is started)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.vendor import ROOT, VENDOR_PYTHON, require_vendor

CODE = r"""
import importlib.util, os, sys
from launch import LaunchContext
from launch.actions import LogInfo, SetEnvironmentVariable
spec = importlib.util.spec_from_file_location("detector_launch", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
for shm in ("false", "true"):
    ctx = LaunchContext()
    ctx.launch_configurations["shm_profile"] = shm
    for action in mod._dds_profile(ctx):
        if isinstance(action, SetEnvironmentVariable):
            action.execute(ctx)
        print(shm, type(action).__name__)
    print(shm, "PROFILE", os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE", "unset"))
"""


def _run(tmp_path: Path, profile: str | None) -> list[str]:
    require_vendor("python", "launch")
    require_vendor("python", "launch_ros")
    prefix = tmp_path / "install"  # an ament prefix with the package registered and its config
    (prefix / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (prefix / "share" / "ament_index" / "resource_index" / "packages" / "imkd_ros").write_text("")
    (prefix / "share" / "imkd_ros" / "config").mkdir(parents=True)
    (prefix / "share" / "imkd_ros" / "config" / "fastdds_shm.xml").write_text("<profiles/>")
    env = {k: v for k, v in os.environ.items() if k != "FASTDDS_DEFAULT_PROFILES_FILE"}
    env.update(PYTHONPATH=str(VENDOR_PYTHON), AMENT_PREFIX_PATH=str(prefix))
    if profile is not None:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = profile
    out = subprocess.run([sys.executable, "-c", CODE, str(ROOT / "launch" / "detector.launch.py")], env=env,
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.splitlines()


def test_shm_profile_is_opt_in_and_set_only_when_none_is(tmp_path: Path) -> None:
    lines = _run(tmp_path, None)
    assert lines[0] == "false PROFILE unset"  # default: the environment is left alone
    shipped = tmp_path / "install" / "share" / "imkd_ros" / "config" / "fastdds_shm.xml"
    assert lines[1:] == ["true SetEnvironmentVariable", "true LogInfo", f"true PROFILE {shipped}"]


def test_a_profile_the_user_set_is_never_replaced(tmp_path: Path) -> None:
    mine = str(tmp_path / "my_vehicle_profile.xml")
    lines = _run(tmp_path, mine)
    assert lines == [f"false PROFILE {mine}", "true LogInfo", f"true PROFILE {mine}"]
