"""Run real ROS 2 nodes as subprocesses and talk to them, without DDS ever leaving loopback.

Why this shape: `ros2 launch` and launch_testing are not available from PyPI, and a vehicle-grade
test must exercise real serialisation and real DDS between processes. Every process started here
gets ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST (ROS_LOCALHOST_ONLY is ignored since Kilted), a
Fast DDS profile whose UDP transport is bound to 127.0.0.1 (and a 64 MB shared-memory segment,
without which best-effort images > 512 KB vanish silently), and a ROS_DOMAIN_ID leased with a
file lock so parallel test runs on one machine never see each other.
"""

from __future__ import annotations

import fcntl
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
LOOPBACK_PROFILE = RESOURCES / "fastdds_shm_loopback.xml"
# Domain ids valid for every RMW on Linux (0..101); 0 is avoided: it is everybody's default.
_DOMAIN_RANGE = range(1, 102)


@dataclass
class DomainLease:
    """A ROS_DOMAIN_ID held exclusively (flock) by this process until released."""

    domain_id: int
    _fd: int

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1


def lease_domain(seed: int | None = None) -> DomainLease:
    """Lease a free ROS_DOMAIN_ID on this machine (file locks in the temp dir)."""
    ids = list(_DOMAIN_RANGE)
    random.Random(seed if seed is not None else os.getpid() ^ time.time_ns()).shuffle(ids)
    lock_dir = Path(tempfile.gettempdir()) / "imkd_ros_domains"
    lock_dir.mkdir(exist_ok=True)
    for domain_id in ids:
        fd = os.open(lock_dir / f"{domain_id}.lock", os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return DomainLease(domain_id, fd)
    raise RuntimeError("no free ROS_DOMAIN_ID in 1..101 on this machine")


def loopback_ros_env(domain_id: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a ROS 2 process that can only talk over loopback, in its own domain."""
    env = dict(os.environ if base is None else base)
    env.pop("ROS_LOCALHOST_ONLY", None)  # deprecated and ignored; avoid confusing warnings
    env.update(
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        ROS_STATIC_PEERS="",
        ROS_DOMAIN_ID=str(domain_id),
        RMW_IMPLEMENTATION="rmw_fastrtps_cpp",
        FASTDDS_DEFAULT_PROFILES_FILE=str(LOOPBACK_PROFILE),
        PYTHONUNBUFFERED="1",
    )
    return env


def assert_loopback_env(env: Mapping[str, str] | None = None) -> None:
    """Refuse to start DDS in a process whose environment could send packets off this machine."""
    env = os.environ if env is None else env
    problems = []
    if env.get("ROS_AUTOMATIC_DISCOVERY_RANGE") != "LOCALHOST":
        problems.append("ROS_AUTOMATIC_DISCOVERY_RANGE must be LOCALHOST")
    if env.get("FASTDDS_DEFAULT_PROFILES_FILE") != str(LOOPBACK_PROFILE):
        problems.append(f"FASTDDS_DEFAULT_PROFILES_FILE must be {LOOPBACK_PROFILE}")
    if not env.get("ROS_DOMAIN_ID"):
        problems.append("ROS_DOMAIN_ID must be set (a leased id)")
    if problems:
        raise RuntimeError("unsafe DDS environment: " + "; ".join(problems))


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, poll: float = 0.02) -> None:
    """Poll until predicate() is true; raise TimeoutError naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(poll)


class NodeProcess:
    """A ROS 2 node started as `python -m MODULE [args] --ros-args ...`, always cleaned up.

    Output goes to a log file (not a pipe, so a chatty node can never block on a full pipe);
    `log()` returns it for assertions and failure messages.
    """

    def __init__(
        self,
        module: str,
        env: Mapping[str, str],
        args: Iterable[str] = (),
        ros_args: Iterable[str] = (),
        log_dir: Path | None = None,
        name: str | None = None,
    ) -> None:
        assert_loopback_env(env)
        self.name = name or module.rsplit(".", 1)[-1]
        log_dir = Path(log_dir or tempfile.mkdtemp(prefix="imkd_node_"))
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{self.name}.log"
        self._log_file = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        cmd = [sys.executable, "-m", module, *args]
        ros_args = list(ros_args)
        if ros_args:
            cmd += ["--ros-args", *ros_args]
        self.cmd = cmd
        self.proc = subprocess.Popen(
            cmd, env=dict(env), stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        if not self._log_file.closed:
            self._log_file.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> int:
        """SIGINT (clean rclpy shutdown), then SIGTERM, then SIGKILL; returns the exit code."""
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if not self._log_file.closed:
            self._log_file.close()
        return self.proc.returncode if self.proc.returncode is not None else -9

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"NodeProcess({' '.join(self.cmd)!r}, pid={self.proc.pid})"


class TopicCollector:
    """An rclpy node in its own context and executor thread that records messages per topic.

    The test process must have a loopback environment (the pytest fixture sets it) before use.
    """

    def __init__(self, name: str = "imkd_test_collector") -> None:
        # optional: the domain lease and NodeProcess work without rclpy (imkd demo, pure-core tests)
        import rclpy  # noqa: PLC0415
        from rclpy.context import Context  # noqa: PLC0415
        from rclpy.executors import SingleThreadedExecutor  # noqa: PLC0415

        assert_loopback_env()
        self._rclpy = rclpy
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.messages: dict[str, list[Any]] = {}
        self._lock = threading.Lock()
        self._subs: list[Any] = []
        self._thread = threading.Thread(target=self._spin, name=f"{name}-spin", daemon=True)
        self._stop = threading.Event()
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set() and self.context.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def subscribe(self, topic: str, msg_type: Any, qos: Any = 10, keep: int = 1000) -> None:
        """Record up to `keep` messages of `topic` (older ones are dropped, never unbounded)."""
        with self._lock:
            self.messages[topic] = deque(maxlen=keep)  # type: ignore[assignment]

        def callback(msg: Any, topic: str = topic) -> None:
            with self._lock:
                self.messages[topic].append(msg)

        self._subs.append(self.node.create_subscription(msg_type, topic, callback, qos))

    def publisher(self, topic: str, msg_type: Any, qos: Any = 10) -> Any:
        return self.node.create_publisher(msg_type, topic, qos)

    def received(self, topic: str) -> list[Any]:
        with self._lock:
            return list(self.messages.get(topic, ()))

    def wait_for_publishers(self, topic: str, count: int = 1, timeout: float = 60.0) -> None:
        wait_for(lambda: self.node.count_publishers(topic) >= count, timeout, f"{count} publisher(s) on {topic}")

    def wait_for_subscribers(self, topic: str, count: int = 1, timeout: float = 60.0) -> None:
        wait_for(
            lambda: self.node.count_subscribers(topic) >= count, timeout, f"{count} subscriber(s) on {topic}"
        )

    def wait_for_messages(self, topic: str, count: int = 1, timeout: float = 60.0) -> list[Any]:
        wait_for(lambda: len(self.received(topic)) >= count, timeout, f"{count} message(s) on {topic}")
        return self.received(topic)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.executor.shutdown()
        self.node.destroy_node()
        if self.context.ok():
            self._rclpy.shutdown(context=self.context)

    def __enter__(self) -> TopicCollector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
