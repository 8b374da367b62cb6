"""ros2 launch imkd_ros detector.launch.py [params_file:=...] [backend:=auto] [use_sim_time:=false]
[namespace:=perception] [model:=...]

Starts the IMKD detector node with the shipped parameters and the Fast DDS profile that carries
full-size camera images over shared memory (without it, best-effort images > 512 KB are dropped
silently between processes).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PKG = "imkd_ros"


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PKG)
    args = [
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([share, "config", "detector.yaml"]),
            description="Node parameters (topics, frames, model, sync).",
        ),
        DeclareLaunchArgument("backend", default_value="auto", description="tensorrt | torch-cuda | torch-cpu | auto"),
        DeclareLaunchArgument("model", default_value="", description="Checkpoint (.pt) or engine; empty: params file"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="Use /clock (bag replay)."),
        DeclareLaunchArgument("namespace", default_value="perception", description="Node namespace."),
        DeclareLaunchArgument("fastdds_profile", default_value="true", description="Set the SHM Fast DDS profile."),
    ]
    profile = SetEnvironmentVariable(
        "FASTDDS_DEFAULT_PROFILES_FILE",
        PathJoinSubstitution([share, "config", "fastdds_shm.xml"]),
        condition=IfCondition(LaunchConfiguration("fastdds_profile")),
    )
    node = Node(
        package=PKG,
        executable="detector_node",
        name="imkd_detector",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "backend": LaunchConfiguration("backend"),
                "model_override": LaunchConfiguration("model"),
                "use_sim_time": LaunchConfiguration("use_sim_time"),
            },
        ],
        # Sensor topics are parameters (params_file); /tf, /tf_static and /clock are absolute as in
        # tf2_ros. Remap here only if this vehicle publishes TF under another name.
        remappings=[],
    )
    return LaunchDescription([*args, profile, node])
