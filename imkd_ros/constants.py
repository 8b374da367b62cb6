"""Names shared by every room: nuScenes sensor channels, detection classes and attributes.

Kept in one place so the synthetic world, the model head, the metrics and the ROS messages agree.
"""

from __future__ import annotations

# nuScenes camera channels, in the order the model stacks them (clockwise from the front).
CAMERA_NAMES: tuple[str, ...] = (
    "CAM_FRONT",
    "CAM_FRONT_RIGHT",
    "CAM_BACK_RIGHT",
    "CAM_BACK",
    "CAM_BACK_LEFT",
    "CAM_FRONT_LEFT",
)
RADAR_NAMES: tuple[str, ...] = (
    "RADAR_FRONT",
    "RADAR_FRONT_LEFT",
    "RADAR_FRONT_RIGHT",
    "RADAR_BACK_LEFT",
    "RADAR_BACK_RIGHT",
)
LIDAR_NAME = "LIDAR_TOP"

# The 10 nuScenes detection classes (detection names, as in the devkit's DetectionConfig).
CLASSES: tuple[str, ...] = (
    "car",
    "truck",
    "construction_vehicle",
    "bus",
    "trailer",
    "barrier",
    "motorcycle",
    "bicycle",
    "pedestrian",
    "traffic_cone",
)
CLASS_TO_ID: dict[str, int] = {c: i for i, c in enumerate(CLASSES)}

# nuScenes attribute names (index 0..7); "" means "no attribute" (barrier, traffic_cone).
ATTRIBUTES: tuple[str, ...] = (
    "vehicle.moving",
    "vehicle.parked",
    "vehicle.stopped",
    "cycle.with_rider",
    "cycle.without_rider",
    "pedestrian.moving",
    "pedestrian.standing",
    "pedestrian.sitting_lying_down",
)
ATTR_TO_ID: dict[str, int] = {a: i for i, a in enumerate(ATTRIBUTES)}
NO_ATTRIBUTE = -1

# Full nuScenes category names used when writing annotations (detection name -> category).
CLASS_TO_CATEGORY: dict[str, str] = {
    "car": "vehicle.car",
    "truck": "vehicle.truck",
    "construction_vehicle": "vehicle.construction",
    "bus": "vehicle.bus.rigid",
    "trailer": "vehicle.trailer",
    "barrier": "movable_object.barrier",
    "motorcycle": "vehicle.motorcycle",
    "bicycle": "vehicle.bicycle",
    "pedestrian": "human.pedestrian.adult",
    "traffic_cone": "movable_object.trafficcone",
}

# Radar point fields in the order the nuScenes radar PCD stores them (18 fields).
RADAR_PCD_FIELDS: tuple[str, ...] = (
    "x", "y", "z", "dyn_prop", "id", "rcs", "vx", "vy", "vx_comp", "vy_comp",
    "is_quality_valid", "ambig_state", "x_rms", "y_rms", "invalid_state", "pdh0",
    "vx_rms", "vy_rms",
)
