"""Static checks of the launch file (tests/vehicle runs it for real through launch.LaunchService)."""

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
    assert {"params_file", "backend", "use_sim_time", "namespace", "model", "on_exit", "respawn_delay",
            "shm_profile"} <= args
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


def test_launch_file_never_overrides_a_user_dds_profile() -> None:
    """The SHM profile is opt-in and only set where FASTDDS_DEFAULT_PROFILES_FILE is not (read the code)."""
    text = LAUNCH.read_text()
    tree = ast.parse(text)
    defaults = {ast.literal_eval(c.args[0]): c for c in _calls(tree, "DeclareLaunchArgument")}
    kw = {k.arg: k.value for k in defaults["shm_profile"].keywords}
    assert ast.literal_eval(kw["default_value"]) == "false"
    kw = {k.arg: k.value for k in defaults["on_exit"].keywords}
    assert ast.literal_eval(kw["default_value"]) == "shutdown"
    fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "_dds_profile")
    src = ast.get_source_segment(text, fn) or ""
    assert "context.environment.get(DDS_PROFILE_VAR" in src and src.index("if current:") < src.index(
        "SetEnvironmentVariable(")
