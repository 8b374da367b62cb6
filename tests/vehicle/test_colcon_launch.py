"""The vehicle path as a vehicle user runs it: a colcon workspace, the real launch file, detections.

A plain `colcon build` of imkd_ros + imkd_msgs (colcon from PyPI), then launch/detector.launch.py
through the upstream launch.LaunchService with DEFAULT arguments (tests/vehicle/launch_runner.py
does what `ros2 launch` does), a recording played into it over loopback DDS: the node becomes
ready from the installed package, detections arrive, and killing the node ends the launch.
Everything waits on events (log lines, messages, process exits) with generous timeouts: the CI
machine has 2 loaded cores. The upstream code comes from ../shared/vendor (tests/vendor.py: a
failure in CI when it is missing, a skip elsewhere).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from vision_msgs.msg import Detection3DArray

from imkd_ros.testing import LOOPBACK_PROFILE, wait_for
from tests.vendor import ROOT, VENDOR_PYTHON, require_vendor

# A colcon build of a ROS message package takes minutes on a loaded 2-core box: a generous per-test limit.
pytestmark = [pytest.mark.ros, pytest.mark.slow, pytest.mark.timeout(2400)]

RUNNER = Path(__file__).with_name("launch_runner.py")
NS = "/perception/imkd_detector"
# What setup.py installs from, copied so the build never writes into the checkout.
SOURCES = ("imkd_ros", "launch", "config", "models", "resource", "third_party", "package.xml", "setup.py",
           "setup.cfg")
BUILD_TIMEOUT_S = 1500


def _require_tools() -> Path:
    require_vendor("python", "launch")
    require_vendor("python", "launch_ros")
    require_vendor("interfaces", "composition_interfaces")
    colcon = Path(sys.executable).with_name("colcon")
    missing = []
    if not colcon.is_file():
        missing.append(f"colcon ({colcon}; colcon-common-extensions is pinned in requirements.lock)")
    probe = subprocess.run([sys.executable, "-c", "import composition_interfaces.srv"], capture_output=True)
    if probe.returncode != 0:
        missing.append("composition_interfaces in the venv (tools/build_interfaces.sh builds it)")
    if missing:
        pytest.fail("vehicle test prerequisites missing: " + "; ".join(missing), pytrace=False)
    return colcon


def _copy_sources(src: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    pkg = src / "imkd_ros"
    pkg.mkdir(parents=True)
    for name in SOURCES:
        p = ROOT / name
        if p.is_dir():
            shutil.copytree(p, pkg / name, ignore=ignore)
        else:
            shutil.copy2(p, pkg / name)
    shutil.copytree(ROOT / "msg", src / "imkd_msgs", ignore=ignore)


def underlay(env: dict[str, str]) -> dict[str, str]:
    """The venv as the ROS underlay, as `source /opt/ros/<distro>/setup.bash` makes /opt/ros/<distro>
    on a vehicle: on PATH (CMake finds ament through it) and in AMENT_PREFIX_PATH."""
    env = dict(env)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["AMENT_PREFIX_PATH"] = sys.prefix
    return env


def _build_env() -> dict[str, str]:
    env = underlay(dict(os.environ))
    env.pop("PYTHONPATH", None)  # the build and the install must stand on their own
    env["MAKEFLAGS"] = "-j2"
    return env


def colcon_build(ws: Path, *extra: str) -> Path:
    """Build the workspace's packages with colcon; returns the install dir (raises with the log tail)."""
    colcon = _require_tools()
    log = ws / "colcon.log"
    cmd = [str(colcon), "--log-base", str(ws / "log"), "build", "--base-paths", str(ws / "src"),
           "--build-base", str(ws / "build"), "--install-base", str(ws / "install"), "--parallel-workers", "1",
           *extra, "--cmake-args", "-DBUILD_TESTING=OFF"]
    with open(log, "wb") as out:
        rc = subprocess.run(cmd, cwd=ws, env=_build_env(), stdout=out, stderr=subprocess.STDOUT,
                            timeout=BUILD_TIMEOUT_S).returncode
    assert rc == 0, f"colcon build failed ({' '.join(cmd)}):\n{log.read_text(errors='replace')[-6000:]}"
    return ws / "install"


def sourced(install: Path, argv: list[str]) -> list[str]:
    """argv run in a bash that sourced the workspace, as a vehicle shell does."""
    quoted = " ".join(subprocess.list2cmdline([a]) for a in argv)
    return ["bash", "-c", f"source {install / 'setup.bash'} && exec {quoted}"]


def vehicle_env(ros_env: dict[str, str]) -> dict[str, str]:
    """Loopback DDS in the leased domain; only the upstream ROS Python code on PYTHONPATH."""
    env = underlay(ros_env)
    env["PYTHONPATH"] = str(VENDOR_PYTHON)
    return env


@pytest.fixture(scope="module")
def plain_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("colcon_ws")
    _copy_sources(ws / "src")
    return colcon_build(ws)


@dataclass
class Launch:
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def node_pids(self) -> list[int]:
        return [int(p) for p in re.findall(r"detector_node-\d+\]: process started with pid \[(\d+)\]", self.log())]

    def stop(self) -> None:
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGINT, 30), (signal.SIGTERM, 10), (signal.SIGKILL, 10)):
                try:
                    os.killpg(self.proc.pid, sig)
                    self.proc.wait(wait)
                    break
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    continue


@pytest.fixture
def start_launch(ros_env: dict[str, str], tmp_path: Path) -> Iterator:
    launches: list[Launch] = []

    def _start(install: Path, *args: str) -> Launch:
        log_path = tmp_path / f"launch{len(launches)}.log"
        with open(log_path, "wb") as out:
            proc = subprocess.Popen(sourced(install, [sys.executable, str(RUNNER), *args]), env=vehicle_env(ros_env),
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path)
        launches.append(Launch(proc, log_path))
        return launches[-1]

    yield _start
    for launch in launches:
        launch.stop()


def _wait_log(launch: Launch, pattern: str, timeout: float, what: str) -> re.Match:
    found: list[re.Match] = []

    def seen() -> bool:
        m = re.search(pattern, launch.log())
        if m:
            found.append(m)
            return True
        assert launch.proc.poll() is None, f"launch ended (rc {launch.proc.returncode}) before {what}:\n" \
                                           f"{launch.log()[-6000:]}"
        return False

    try:
        wait_for(seen, timeout, what, poll=0.2)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{launch.log()[-6000:]}") from None
    return found[0]


def _proc_environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(kv.decode(errors="replace").split("=", 1) for kv in raw if b"=" in kv)


def test_installed_package_finds_its_files(plain_install: Path) -> None:
    """In the plain install, the package and every runtime file come from install/, not the source."""
    code = ("import imkd_ros, imkd_ros.share as s\n"
            "print(imkd_ros.__file__)\n"
            "for f in (('models', 'imkd_student_cpu.pt'), ('config', 'detector.yaml'), ('config', 'detector.rviz'),\n"
            "          ('config', 'fastdds_shm.xml'), ('launch', 'detector.launch.py')):\n"
            "    print(s.share_file(*f))\n"
            "from imkd_ros.testing import LOOPBACK_PROFILE\n"
            "print(LOOPBACK_PROFILE if LOOPBACK_PROFILE.is_file() else 'missing')\n")
    env = _build_env()
    out = subprocess.run(sourced(plain_install, [sys.executable, "-c", code]), env=env, capture_output=True,
                         text=True, timeout=300, cwd=plain_install)  # never the checkout: '' is on sys.path
    assert out.returncode == 0, out.stderr[-3000:]
    paths = [Path(p) for p in out.stdout.split()]
    assert len(paths) == 7, out.stdout
    for p in paths:
        assert p.is_file() and p.resolve().is_relative_to(plain_install.resolve()), p
    assert "site-packages" in str(paths[0])  # a real (copied) install, not the source tree


def test_default_launch_runs_detects_and_ends_when_the_node_dies(plain_install: Path, start_launch, start_node,
                                                                 collector, synthetic_recording) -> None:
    launch = start_launch(plain_install)  # default arguments, as `ros2 launch imkd_ros detector.launch.py`
    _wait_log(launch, r"\]: ready: ", 600, "the node's ready line")
    pids = launch.node_pids()
    assert len(pids) == 1, launch.log()[-4000:]
    pid = pids[0]
    # Runs the installed executable and the installed shipped model, under the DDS profile the user set.
    model = re.search(r"model (\S+imkd_student_cpu\.pt)", launch.log())
    assert model and Path(model.group(1)).resolve().is_relative_to(plain_install.resolve()), launch.log()[-4000:]
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert any(str(plain_install / "imkd_ros" / "lib" / "imkd_ros" / "detector_node") in c.decode() for c in cmdline)
    assert _proc_environ(pid).get("FASTDDS_DEFAULT_PROFILES_FILE") == str(LOOPBACK_PROFILE)

    collector.subscribe(f"{NS}/detections", Detection3DArray)
    player = start_node("imkd_ros.ros.player", name="player",
                        args=[str(synthetic_recording["bag"]), "--rate", "0.5", "--wait-for-subscribers",
                              "/cam_front/image_raw/compressed"])
    try:
        wait_for(lambda: len(collector.messages.get(f"{NS}/detections", [])) >= 2, 600, "detections from the node")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\nlaunch:\n{launch.log()[-5000:]}\nplayer:\n{player.log()[-2000:]}") from None
    assert launch.proc.poll() is None

    os.kill(pid, signal.SIGKILL)  # the detector dies: with the default on_exit the launch must end
    try:
        launch.proc.wait(120)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the launch did not end after the node died:\n{launch.log()[-4000:]}") from None
    log = launch.log()
    assert "process has died" in log and "launch ended" in log, log[-4000:]
    assert len(launch.node_pids()) == 1  # not respawned


def test_on_exit_respawn_restarts_a_dead_node(plain_install: Path, start_launch, tmp_path: Path) -> None:
    """on_exit:=respawn: a node that dies (here: a bad model file, one FATAL line) is started again."""
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    launch = start_launch(plain_install, f"model:={bad}", "on_exit:=respawn", "respawn_delay:=0.5",
                          "shm_profile:=true")
    wait_for(lambda: len(launch.node_pids()) >= 2 or launch.proc.poll() is not None, 600, "a respawned node",
             poll=0.2)
    assert launch.proc.poll() is None, launch.log()[-4000:]
    log = launch.log()
    assert re.search(r"\[FATAL\].*model \S*broken\.pt: not an imkd student checkpoint", log), log[-4000:]
    assert "Traceback" not in log
    # shm_profile:=true with a profile already set (the tests' loopback one): kept, not replaced
    assert f"keeping the Fast DDS profile already set (FASTDDS_DEFAULT_PROFILES_FILE={LOOPBACK_PROFILE})" in log
    os.killpg(launch.proc.pid, signal.SIGINT)  # Ctrl-C still ends a respawning launch
    try:
        launch.proc.wait(120)
    except subprocess.TimeoutExpired:
        alive = subprocess.run(["ps", "-o", "pid,stat,etime,args", "-g", str(launch.proc.pid)],
                               capture_output=True, text=True).stdout
        pytest.fail(f"the launch did not end within 120 s of Ctrl-C\nstill alive:\n{alive}\n"
                    f"launch log (tail):\n{launch.log()[-6000:]}")


def test_symlink_install_finds_its_files(tmp_path: Path) -> None:
    """colcon build --symlink-install: the package runs from the source tree; the same files resolve."""
    ws = tmp_path / "ws"
    _copy_sources(ws / "src")
    shutil.rmtree(ws / "src" / "imkd_msgs")  # resource lookup only: the venv has imkd_msgs
    install = colcon_build(ws, "--symlink-install")
    code = ("import imkd_ros, imkd_ros.share as s\n"
            "print(imkd_ros.__file__)\n"
            "print(s.share_file('models', 'imkd_student_cpu.pt'))\n"
            "print(s.share_file('config', 'detector.yaml'))\n"
            "from ament_index_python.packages import get_package_share_directory as g\n"
            "print(g('imkd_ros'))\n")
    out = subprocess.run(sourced(install, [sys.executable, "-c", code]), env=_build_env(), capture_output=True,
                         text=True, timeout=300, cwd=install)
    assert out.returncode == 0, out.stderr[-3000:]
    pkg, model, params, share = (Path(p) for p in out.stdout.split())
    src = (ws / "src" / "imkd_ros").resolve()
    assert pkg.resolve().is_relative_to(src), pkg  # editable: the source copy is what runs
    assert model.is_file() and params.is_file()
    assert (share / "config" / "detector.yaml").resolve() == (src / "config" / "detector.yaml")
    assert (share / "launch" / "detector.launch.py").exists()
