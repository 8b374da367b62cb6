"""The launch file cannot run here (no launch/launch_ros on PyPI); check what it refers to exists."""

from __future__ import annotations

import ast
import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch" / "detector.launch.py"


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == name]


def test_launch_file_refers_to_real_things() -> None:
    tree = ast.parse(LAUNCH.read_text())
    node = _calls(tree, "Node")[0]
    kw = {k.arg: k.value for k in node.keywords}
    assert kw["package"].id == "PKG" and 'PKG = "imkd_ros"' in LAUNCH.read_text()
    executable = ast.literal_eval(kw["executable"])
    setup = (ROOT / "setup.py").read_text()
    assert f'"{executable} = imkd_ros.ros.detector_node:main"' in setup
    args = {ast.literal_eval(c.args[0]) for c in _calls(tree, "DeclareLaunchArgument")}
    assert {"params_file", "backend", "use_sim_time", "namespace", "model"} <= args
    # the default params file and the DDS profile are installed where the launch file looks
    for folder, name in (("config", "detector.yaml"), ("config", "fastdds_shm.xml")):
        assert (ROOT / folder / name).exists()
    assert '(f"share/{PACKAGE}/config", glob("config/*"))' in setup
    assert '(f"share/{PACKAGE}/launch", glob("launch/*.py"))' in setup


def test_console_scripts_install_under_lib_for_ros2_run() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["install"]["install_scripts"] == "$base/lib/imkd_ros"


def test_shipped_dds_profile_matches_the_tested_one() -> None:
    """config/ (installed for the vehicle) and the package resource (tests) carry the same SHM setup."""
    a = (ROOT / "config" / "fastdds_shm.xml").read_text()
    b = (ROOT / "imkd_ros" / "resources" / "fastdds_shm.xml").read_text()
    assert a == b and "<segment_size>67108864</segment_size>" in a
