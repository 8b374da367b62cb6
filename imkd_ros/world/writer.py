"""nuScenes v1.0 table writer: the 13 JSON tables, deterministic tokens, the split file.

Tokens are md5 hex digests of readable keys (``"<seed>/sample/<scene>/<i>"``), so the same seed
always writes byte-identical tables. Layout under ``dataroot``::

    <version>/{attribute,calibrated_sensor,category,ego_pose,instance,log,map,sample,
               sample_annotation,sample_data,scene,sensor,visibility}.json
    samples/<CHANNEL>/*.jpg|*.pcd|*.pcd.bin     key frames
    sweeps/<CHANNEL>/*                          intermediate frames
    maps/<token>.png                            map stub (ground material raster)
    <version>/splits.json     {"train": [scene names], "val": [...], "test": [], "synth_train": ..., "synth_val": ...}
"""

from __future__ import annotations

import hashlib
import json
import os

from imkd_ros.constants import ATTRIBUTES, CAMERA_NAMES, LIDAR_NAME, RADAR_NAMES

TABLES = (
    "attribute", "calibrated_sensor", "category", "ego_pose", "instance", "log", "map", "sample",
    "sample_annotation", "sample_data", "scene", "sensor", "visibility",
)

# nuScenes categories with their lidarseg indices (object classes).
CATEGORIES = (
    ("animal", 1, "All animals, e.g. cats, rats, dogs, deer, birds."),
    ("human.pedestrian.adult", 2, "Adult subcategory."),
    ("human.pedestrian.child", 3, "Child subcategory."),
    ("human.pedestrian.construction_worker", 4, "Construction worker"),
    ("human.pedestrian.personal_mobility", 5, "A small electric or self-propelled vehicle."),
    ("human.pedestrian.police_officer", 6, "Police officer."),
    ("human.pedestrian.stroller", 7, "Strollers."),
    ("human.pedestrian.wheelchair", 8, "Wheelchairs."),
    ("movable_object.barrier", 9, "Temporary road barrier placed in the scene in order to redirect traffic."),
    ("movable_object.debris", 10, "Movable object that is left on the driveable surface."),
    ("movable_object.pushable_pullable", 11, "Objects that a pedestrian may push or pull."),
    ("movable_object.trafficcone", 12, "All types of traffic cone."),
    ("static_object.bicycle_rack", 13, "Area or device intended to park or secure the bicycles in a row."),
    ("vehicle.bicycle", 14, "Human or electric powered 2-wheeled vehicle designed to travel at lower speeds."),
    ("vehicle.bus.bendy", 15, "Bendy bus subcategory."),
    ("vehicle.bus.rigid", 16, "Rigid bus subcategory."),
    ("vehicle.car", 17, "Vehicle designed primarily for personal use, e.g. sedans, hatch-backs, wagons, vans."),
    ("vehicle.construction", 18, "Vehicles primarily designed for construction. Typically very slow moving."),
    ("vehicle.emergency.ambulance", 19, "All types of ambulances."),
    ("vehicle.emergency.police", 20, "All types of police vehicles."),
    ("vehicle.motorcycle", 21, "Gasoline or electric powered 2-wheeled vehicle designed to move rapidly."),
    ("vehicle.trailer", 22, "Any vehicle trailer, both for trucks, cars and motorcycles."),
    ("vehicle.truck", 23, "Vehicles primarily designed to haul cargo including pick-ups, lorries, trucks."),
)
VISIBILITY = (("1", "v0-40"), ("2", "v40-60"), ("3", "v60-80"), ("4", "v80-100"))


def visibility_token(fraction: float) -> str:
    if fraction < 0.4:
        return "1"
    if fraction < 0.6:
        return "2"
    if fraction < 0.8:
        return "3"
    return "4"


class NuScenesWriter:
    def __init__(self, dataroot: str, version: str, seed: int, static_tables: bool = True):
        self.root = dataroot
        self.version = version
        self.seed = int(seed)
        self.tables: dict[str, list[dict]] = {t: [] for t in TABLES}
        self.splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
        for sub in ("samples", "sweeps"):
            for ch in (*CAMERA_NAMES, *RADAR_NAMES, LIDAR_NAME):
                os.makedirs(os.path.join(dataroot, sub, ch), exist_ok=True)
        os.makedirs(os.path.join(dataroot, version), exist_ok=True)
        os.makedirs(os.path.join(dataroot, "maps"), exist_ok=True)
        if static_tables:  # a per-scene worker's writer leaves them to the parent
            self._static_tables()

    def token(self, *parts) -> str:
        key = "/".join(str(p) for p in (self.seed, *parts))
        return hashlib.md5(key.encode()).hexdigest()

    def _static_tables(self) -> None:
        for name, idx, desc in CATEGORIES:
            self.tables["category"].append(
                {"token": self.token("category", name), "name": name, "description": desc, "index": idx})
        for name in ATTRIBUTES:
            self.tables["attribute"].append(
                {"token": self.attribute_token(name), "name": name, "description": name.replace(".", " ")})
        for tok, level in VISIBILITY:
            self.tables["visibility"].append(
                {"token": tok, "level": level, "description": f"visibility of whole object is {level[1:]}%"})
        for ch in CAMERA_NAMES:
            self.tables["sensor"].append({"token": self.sensor_token(ch), "channel": ch, "modality": "camera"})
        for ch in RADAR_NAMES:
            self.tables["sensor"].append({"token": self.sensor_token(ch), "channel": ch, "modality": "radar"})
        self.tables["sensor"].append({"token": self.sensor_token(LIDAR_NAME), "channel": LIDAR_NAME,
                                      "modality": "lidar"})

    def category_token(self, name: str) -> str:
        return self.token("category", name)

    def attribute_token(self, name: str) -> str:
        return self.token("attribute", name)

    def sensor_token(self, channel: str) -> str:
        return self.token("sensor", channel)

    def add(self, table: str, record: dict) -> dict:
        self.tables[table].append(record)
        return record

    def write_bytes(self, rel_path: str, data: bytes) -> None:
        with open(os.path.join(self.root, rel_path), "wb") as f:
            f.write(data)

    def merge(self, tables: dict[str, list[dict]]) -> None:
        """Append the records of a per-scene writer (in scene order, for determinism)."""
        for name, recs in tables.items():
            self.tables[name].extend(recs)

    def finish(self) -> None:
        for name in TABLES:
            path = os.path.join(self.root, self.version, f"{name}.json")
            with open(path, "w") as f:
                json.dump(self.tables[name], f)  # no indent: the C encoder is ~5x faster
        # The devkit's custom-split file: predefined names (train/val) for our reader, and
        # synth_train / synth_val, which DetectionEval resolves from this file (not its own lists).
        splits = {**self.splits, "synth_train": self.splits["train"], "synth_val": self.splits["val"]}
        with open(os.path.join(self.root, self.version, "splits.json"), "w") as f:
            json.dump(splits, f, indent=1)
