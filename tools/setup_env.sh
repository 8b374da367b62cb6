#!/usr/bin/env bash
# One-command environment: a .venv with the pinned stack (torch CPU, ROS 2 Kilted wheels,
# nuscenes-devkit, rosbags, ...) and the interface packages PyPI lacks (vision_msgs, tf2_msgs,
# imkd_msgs) built into it with rosidl. Re-running it when everything is present is a no-op.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${IMKD_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3

log() { printf '[setup] %s\n' "$*"; }
hash_of() { cat "$@" | sha256sum | cut -c1-16; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PY" -m venv "$VENV"
fi
# pip's find-links on this machine warn about every absent local index folder: keep the log readable.
pip_() { "$VENV/bin/python" -m pip "$@" 2>&1 | { grep -v "^WARNING: Location 'file://" || true; }; }

pip_ --version >/dev/null || { echo "[setup] pip missing in $VENV" >&2; exit 1; }

# 1. Python dependencies, exactly as locked.
deps_hash=$(hash_of requirements.lock requirements-nodeps.txt setup.py setup.cfg)
if [ "$(cat "$VENV/.imkd-deps" 2>/dev/null)" != "$deps_hash" ]; then
  log "installing pinned dependencies (requirements.lock)"
  pip_ install -q -r requirements.lock
  pip_ install -q --no-deps -r requirements-nodeps.txt  # stubs only: their deps are TensorRT itself
  pip_ install -q --no-deps --no-build-isolation -e .
  echo "$deps_hash" > "$VENV/.imkd-deps"
else
  log "python dependencies up to date"
fi

# 2. Interface packages missing from PyPI, built with rosidl into the venv prefix.
msgs_hash=$(hash_of tools/build_interfaces.sh msg/CMakeLists.txt msg/package.xml msg/msg/*.msg \
  third_party/ros_interfaces/*/CMakeLists.txt third_party/ros_interfaces/*/msg/*.msg \
  "$VENV/.imkd-deps")
if [ "$(cat "$VENV/.imkd-msgs" 2>/dev/null)" != "$msgs_hash" ]; then
  log "building interface packages (vision_msgs, tf2_msgs, imkd_msgs)"
  VIRTUAL_ENV=$VENV bash tools/build_interfaces.sh
  echo "$msgs_hash" > "$VENV/.imkd-msgs"
else
  log "interface packages up to date"
fi
log "ready: $VENV"
