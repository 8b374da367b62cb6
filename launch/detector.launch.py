"""ros2 launch imkd_ros detector.launch.py [model:=X.pt|X.engine] [backend:=auto] [params_file:=...]
[use_sim_time:=false] [namespace:=perception] [on_exit:=shutdown|respawn] [respawn_delay:=2.0]
[shm_profile:=false]

Starts the IMKD detector node with the installed parameters (share/imkd_ros/config/detector.yaml).

on_exit: what happens when the detector process dies (a crash, a FATAL start-up error such as a bad
  model file). `shutdown` (default): the whole launch ends, so the supervisor that started it
  (systemd, a container runtime, a vehicle's process manager) sees the failure and decides.
  `respawn`: the launch restarts the node after respawn_delay seconds, forever.
shm_profile: Fast DDS transport. The launch NEVER replaces a FASTDDS_DEFAULT_PROFILES_FILE already
  set in the environment (a vehicle's own DDS setup wins). With shm_profile:=true and none set, it
  uses the shipped config/fastdds_shm.xml: shared memory with a 64 MB segment plus UDPv4. Needed
  when cameras publish large best-effort images: with Fast DDS's default segment, samples above
  ~512 KB (a 1600x900 rgb8 image is 4.3 MB) are dropped silently between processes.
"""

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction, SetEnvironmentVariable, Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PKG = "imkd_ros"
ON_EXIT = ("shutdown", "respawn")
DDS_PROFILE_VAR = "FASTDDS_DEFAULT_PROFILES_FILE"
TRUE = ("true", "1", "yes", "on")


def _dds_profile(context: LaunchContext) -> list:
    """The shipped SHM profile, opt-in, and only where the user has not set a profile already."""
    if LaunchConfiguration("shm_profile").perform(context).strip().lower() not in TRUE:
        return []
    current = context.environment.get(DDS_PROFILE_VAR, "")
    if current:
        return [LogInfo(msg=f"shm_profile: keeping the Fast DDS profile already set ({DDS_PROFILE_VAR}={current})")]
    profile = PathJoinSubstitution([FindPackageShare(PKG), "config", "fastdds_shm.xml"]).perform(context)
    return [SetEnvironmentVariable(DDS_PROFILE_VAR, profile),
            LogInfo(msg=f"shm_profile: Fast DDS profile {profile} (64 MB shared-memory segment)")]


def _detector(context: LaunchContext) -> list:
    """The node, ending the launch or respawning when its process exits (on_exit)."""
    on_exit = LaunchConfiguration("on_exit").perform(context).strip().lower()
    delay_text = LaunchConfiguration("respawn_delay").perform(context).strip()
    try:
        delay = float(delay_text)
    except ValueError:
        delay = -1.0
    if on_exit not in ON_EXIT or delay < 0:
        why = f"bad launch arguments: on_exit:={on_exit} (one of {', '.join(ON_EXIT)}), respawn_delay:={delay_text}"
        return [LogInfo(msg=why), Shutdown(reason=why)]
    respawn = on_exit == "respawn"
    exit_actions = None if respawn else [Shutdown(reason="the imkd detector process exited (on_exit:=shutdown)")]
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
        respawn=respawn,
        respawn_delay=delay if respawn else None,
        on_exit=exit_actions,
    )
    return [node]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PKG)
    args = [
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([share, "config", "detector.yaml"]),
            description="Node parameters (topics, frames, model, sync).",
        ),
        DeclareLaunchArgument("backend", default_value="auto", description="tensorrt | torch-cuda | torch-cpu | auto"),
        DeclareLaunchArgument("model", default_value="",
                              description="Student checkpoint (.pt) or TensorRT engine (.engine, with its .pt "
                                          "beside it); empty: params_file's model, else the shipped student"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="Use /clock (bag replay)."),
        DeclareLaunchArgument("namespace", default_value="perception", description="Node namespace."),
        DeclareLaunchArgument("on_exit", default_value="shutdown", choices=list(ON_EXIT),
                              description="When the detector process dies: shutdown (end the launch, for a "
                                          "supervisor) or respawn (restart it here)."),
        DeclareLaunchArgument("respawn_delay", default_value="2.0",
                              description="Seconds before a respawn (on_exit:=respawn)."),
        DeclareLaunchArgument("shm_profile", default_value="false",
                              description="Use the shipped 64 MB shared-memory Fast DDS profile unless "
                                          "FASTDDS_DEFAULT_PROFILES_FILE is already set."),
    ]
    return LaunchDescription([*args, OpaqueFunction(function=_dds_profile), OpaqueFunction(function=_detector)])
