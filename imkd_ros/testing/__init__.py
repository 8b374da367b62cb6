"""Test and demo support: ROS 2 processes on loopback DDS with a private domain."""

from imkd_ros.testing.ros_harness import (
    LOOPBACK_PROFILE,
    DomainLease,
    NodeProcess,
    TopicCollector,
    lease_domain,
    loopback_ros_env,
    wait_for,
)

__all__ = [
    "LOOPBACK_PROFILE",
    "DomainLease",
    "NodeProcess",
    "TopicCollector",
    "lease_domain",
    "loopback_ros_env",
    "wait_for",
]
