"""Session-wide safety and ROS fixtures.

Before any test can import rclpy, this process gets a leased ROS_DOMAIN_ID, loopback-only
discovery and the loopback Fast DDS profile, so nothing a test does can reach another host.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from imkd_ros.model.config import load_config
from imkd_ros.model.imkd import Student, save_checkpoint
from imkd_ros.testing import NodeProcess, TopicCollector, lease_domain, loopback_ros_env

_LEASE = lease_domain()

# A job started in the background by a non-interactive shell (`cmd &` in a script, some CI runners)
# inherits SIGINT ignored, and an ignored signal stays ignored across exec: every node and launch the
# tests start would then shrug off the Ctrl-C the tests send them. Installing a handler here gives
# the children SIGINT's default back (handlers, unlike SIG_IGN, are reset on exec), as a terminal does.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
os.environ.update(loopback_ros_env(_LEASE.domain_id))


def pytest_report_header(config: pytest.Config) -> str:
    return f"ROS_DOMAIN_ID={_LEASE.domain_id} ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST (loopback profile)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA: no GPU on this machine (run on a GPU box: `imkd doctor --gpu`)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def ros_env() -> dict[str, str]:
    """Environment for node subprocesses: same leased domain, loopback only."""
    return loopback_ros_env(_LEASE.domain_id)


@pytest.fixture
def start_node(ros_env: dict[str, str], tmp_path: Path) -> Iterator:
    """Factory: start_node(module, args=..., ros_args=...) -> NodeProcess, stopped at teardown."""
    procs: list[NodeProcess] = []

    def _start(module: str, args=(), ros_args=(), name: str | None = None, env: dict | None = None):
        proc = NodeProcess(module, env or ros_env, args=args, ros_args=ros_args, log_dir=tmp_path, name=name)
        procs.append(proc)
        return proc

    yield _start
    for proc in procs:
        proc.stop()


@pytest.fixture
def collector() -> Iterator[TopicCollector]:
    with TopicCollector() as c:
        yield c


@pytest.fixture(scope="session")
def synthetic_recording(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One short synthetic scene (nuScenes format) and its rosbag2 recording, shared by a session."""
    root = tmp_path_factory.mktemp("recording")
    data, bag = root / "dataset", root / "bag"
    imkd = [sys.executable, "-m", "imkd_ros.cli"]
    subprocess.run([*imkd, "data", "synth", "--out", str(data), "--scenes", "1", "--seed", "11",
                    "--scene-seconds", "3", "--no-progress"], check=True, capture_output=True)
    subprocess.run([*imkd, "data", "to-bag", "--dataroot", str(data), "--version", "v1.0-synth",
                    "--scene", "scene-0001", "--out", str(bag)], check=True, capture_output=True)
    return {"dataset": data, "bag": bag}


@pytest.fixture(scope="session")
def untrained_student(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised `cpu` student checkpoint (plumbing tests that need no skill)."""
    torch.manual_seed(0)
    cfg = load_config("cpu")
    path = tmp_path_factory.mktemp("models") / "untrained_student.pt"
    save_checkpoint(path, Student(cfg), cfg)
    return path
