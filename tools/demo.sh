#!/usr/bin/env bash
# The main job. Until the detector node and replay land, it runs what exists: the two-process DDS
# smoke test, then (if present) a small synthetic recording rendered to PNG.
set -euo pipefail
cd "$(dirname "$0")/.."
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
bash tools/run_tests.sh -q tests/foundation/test_ros_smoke.py -p no:cacheprovider
