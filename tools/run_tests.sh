#!/usr/bin/env bash
# Runs the test suite with DDS confined to loopback (tests/conftest.py also leases a private
# ROS_DOMAIN_ID per run and sets the loopback Fast DDS profile before anything imports rclpy).
set -euo pipefail
cd "$(dirname "$0")/.."
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
unset ROS_LOCALHOST_ONLY
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
[ "$rc" -eq 5 ] && { echo "pytest collected no tests" >&2; exit 1; }
exit "$rc"
