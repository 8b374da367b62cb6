"""`ros2 launch imkd_ros detector.launch.py [name:=value ...]` without ros2cli (not on PyPI).

Does what ros2launch does: find the launch file in the installed package's share directory through
the ament index, include it with the command-line arguments into a LaunchService, run it, and exit
with its return code. Run it in an environment with the colcon workspace sourced and the upstream
launch / launch_ros / osrf_pycommon (../shared/vendor/python) on PYTHONPATH.
"""

from __future__ import annotations

import os
import sys

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription, LaunchService
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import AnyLaunchDescriptionSource


def main(argv: list[str]) -> int:
    path = os.path.join(get_package_share_directory("imkd_ros"), "launch", "detector.launch.py")
    args = [tuple(a.split(":=", 1)) for a in argv]
    if any(len(a) != 2 for a in args):
        print(f"[launch_runner] arguments must be name:=value, got {argv}", file=sys.stderr)
        return 2
    print(f"[launch_runner] launch file {path}", flush=True)
    service = LaunchService(argv=argv, noninteractive=True)
    service.include_launch_description(LaunchDescription([
        IncludeLaunchDescription(AnyLaunchDescriptionSource(path), launch_arguments=args)]))
    rc = service.run()
    print(f"[launch_runner] launch ended, return code {rc}", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
