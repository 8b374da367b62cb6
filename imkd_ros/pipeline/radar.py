"""Multi-sweep radar in the keyframe's ego frame, as the model wants it.

Why here and not in the shell: the replay and the node must produce the same points, and this is
where ego motion matters: a sweep taken 0.4 s before the keyframe at 15 m/s is 6 m off if it is not
brought through odom into the keyframe's base_link.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from imkd_ros.constants import RADAR_PCD_FIELDS
from imkd_ros.types import RADAR_FEATURES


@dataclass
class RadarSweepPoints:
    """One radar sweep in its sensor frame: structured or column arrays with x, y, z, rcs, vx_comp, vy_comp."""

    sensor_frame: str
    stamp_ns: int
    xyz: np.ndarray  # (P, 3) float
    rcs: np.ndarray  # (P,)
    vel_comp: np.ndarray  # (P, 2) ego-motion compensated velocity in the sensor frame (nuScenes vx_comp, vy_comp)


def merge_sweeps(
    sweeps: list[RadarSweepPoints],
    key_stamp_ns: int,
    base_from_sensor: dict[str, np.ndarray],
    key_from_base_at: Callable[[int], np.ndarray],
) -> tuple[np.ndarray, int]:
    """Stack sweeps into (P, len(RADAR_FEATURES)) in the keyframe ego frame.

    key_from_base_at(stamp_ns) -> 4x4 maps base_link at that time into base_link at the keyframe.
    Sweep index counts from 0 (newest) per radar; returns (points, dropped non-finite points).
    """
    out: list[np.ndarray] = []
    dropped = 0
    by_sensor: dict[str, list[RadarSweepPoints]] = {}
    for s in sweeps:
        by_sensor.setdefault(s.sensor_frame, []).append(s)
    for frame, group in by_sensor.items():
        group.sort(key=lambda s: -s.stamp_ns)
        for idx, s in enumerate(group):
            finite = np.isfinite(s.xyz).all(1) & np.isfinite(s.rcs) & np.isfinite(s.vel_comp).all(1)
            dropped += int((~finite).sum())
            if not finite.any():
                continue
            m = key_from_base_at(s.stamp_ns) @ base_from_sensor[frame]
            xyz = s.xyz[finite] @ m[:3, :3].T + m[:3, 3]
            v = np.concatenate([s.vel_comp[finite], np.zeros((int(finite.sum()), 1))], 1) @ m[:3, :3].T
            n = xyz.shape[0]
            cols = np.empty((n, len(RADAR_FEATURES)), np.float32)
            cols[:, 0:3] = xyz
            cols[:, 3] = s.rcs[finite]
            cols[:, 4:6] = v[:, :2]
            cols[:, 6] = (key_stamp_ns - s.stamp_ns) * 1e-9
            cols[:, 7] = idx
            out.append(cols)
    if not out:
        return np.zeros((0, len(RADAR_FEATURES)), np.float32), dropped
    return np.concatenate(out, 0), dropped


def radar_point_filter(points: np.ndarray, invalid_states: tuple[int, ...] = (0,),
                       dynprop_states: tuple[int, ...] = tuple(range(7)),
                       ambig_states: tuple[int, ...] = (3,)) -> np.ndarray:
    """Mask of usable ARS408 points in an (N, 18) nuScenes-field array: the devkit's default filter
    (RadarPointCloud.from_file), applied identically in training data and on the car."""

    f = {n: i for i, n in enumerate(RADAR_PCD_FIELDS)}
    return (np.isin(points[:, f["invalid_state"]], invalid_states)
            & np.isin(points[:, f["dyn_prop"]], dynprop_states)
            & np.isin(points[:, f["ambig_state"]], ambig_states))
