#!/usr/bin/env bash
# The main job (README: make demo): a synthetic recording replayed into the detector node with the
# shipped model, over loopback DDS in a private domain; live rate/latency, metrics and pictures.
set -euo pipefail
cd "$(dirname "$0")/.."
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
unset ROS_LOCALHOST_ONLY
exec .venv/bin/python -m imkd_ros.cli demo "$@"
