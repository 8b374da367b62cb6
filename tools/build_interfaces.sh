#!/usr/bin/env bash
# Build vision_msgs, tf2_msgs (third_party/ros_interfaces) and imkd_msgs (msg/) into $VIRTUAL_ENV
# with the rosidl generators from the ros-kilted-* wheels. On a vehicle use colcon instead
# (README, "On the vehicle").
set -euo pipefail
cd "$(dirname "$0")/.."
: "${VIRTUAL_ENV:?activate the venv or set VIRTUAL_ENV}"
export PATH="$VIRTUAL_ENV/bin:$PATH"   # CMake finds ament/rosidl packages through PATH
PY="$VIRTUAL_ENV/bin/python"
BUILD=${IMKD_BUILD_DIR:-build/interfaces}

# The wheels' CMake export files carry the wheel builder's Python paths; point them at this venv.
py_inc=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
np_inc=$("$PY" -c 'import numpy; print(numpy.get_include())')
{ grep -rlE '/opt/python/cp311-cp311' "$VIRTUAL_ENV"/share/*/cmake/ 2>/dev/null || true; } | while read -r f; do
  sed -i -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$np_inc#g" \
         -e "s#/opt/python/cp311-cp311/include/python3.11#$py_inc#g" "$f"
done

build_pkg() {  # name source_dir
  cmake -S "$2" -B "$BUILD/$1" -DCMAKE_INSTALL_PREFIX="$VIRTUAL_ENV" -DBUILD_TESTING=OFF \
    -DPython3_EXECUTABLE="$PY" -DCMAKE_BUILD_TYPE=Release >"$BUILD/$1.log" 2>&1 \
    && cmake --build "$BUILD/$1" -j"$(nproc)" >>"$BUILD/$1.log" 2>&1 \
    && cmake --install "$BUILD/$1" >>"$BUILD/$1.log" 2>&1 \
    || { echo "building $1 failed; log: $BUILD/$1.log" >&2; tail -30 "$BUILD/$1.log" >&2; exit 1; }
  echo "built $1"
}
mkdir -p "$BUILD"
build_pkg vision_msgs third_party/ros_interfaces/vision_msgs
build_pkg tf2_msgs third_party/ros_interfaces/tf2_msgs
build_pkg imkd_msgs msg
"$PY" -c 'import vision_msgs.msg, tf2_msgs.msg, imkd_msgs.msg; print("interfaces import OK")'

# composition_interfaces: launch_ros imports it, and tests/vehicle runs the real launch file through
# the upstream launch/launch_ros in ../shared/vendor (none of them is on PyPI; a vehicle's ROS has
# them). Required in CI, skipped with a note elsewhere when the vendor dir is absent.
VENDOR=${IMKD_VENDOR_DIR:-$PWD/../shared/vendor}
if [ -f "$VENDOR/interfaces/composition_interfaces/CMakeLists.txt" ]; then
  build_pkg composition_interfaces "$VENDOR/interfaces/composition_interfaces"
  "$PY" -c 'import composition_interfaces.srv; print("composition_interfaces import OK")'
elif [ "${CI:-}" = true ]; then
  echo "CI: $VENDOR/interfaces/composition_interfaces not found (../shared/vendor beside the clone)" >&2
  exit 1
else
  echo "skipping composition_interfaces: $VENDOR/interfaces not found (only tests/vehicle needs it)"
fi
