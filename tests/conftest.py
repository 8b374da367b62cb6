"""Session-wide safety and ROS fixtures.

Before any test can import rclpy, this process gets a leased ROS_DOMAIN_ID, loopback-only
discovery and the loopback Fast DDS profile, so nothing a test does can reach another host.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from imkd_ros.testing import NodeProcess, TopicCollector, lease_domain, loopback_ros_env

_LEASE = lease_domain()
os.environ.update(loopback_ros_env(_LEASE.domain_id))


def pytest_report_header(config: pytest.Config) -> str:
    return f"ROS_DOMAIN_ID={_LEASE.domain_id} ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST (loopback profile)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

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
