"""A nuScenes-format scene (ours or real nuScenes) -> rosbag2 (MCAP or sqlite3) with rosbags.

The bag is what a vehicle would record: every sample_data (12 Hz cameras, 13 Hz radars, 20 Hz
LiDAR, keyframes and sweeps) at its own timestamp, in its sensor frame, with /tf (odom -> base_link
per ego pose) and /tf_static (base_link -> sensor frames). Ground truth is added at keyframes,
in base_link, computed by the same NuScenesReader that training uses, so replay and eval agree.
Camera JPEGs and radar PCD records are copied byte for byte. Topics: docs/topics.md.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer

from imkd_ros.bag import make_typestore
from imkd_ros.constants import ATTRIBUTES, CLASSES, LIDAR_NAME
from imkd_ros.data.nuscenes_reader import NuScenesReader, ReaderConfig
from imkd_ros.data.pcd import POINTFIELD_DATATYPE, load_lidar_bin, read_pcd

BASE_FRAME = "base_link"
ODOM_FRAME = "odom"
TF_TOPIC = "/tf"
TF_STATIC_TOPIC = "/tf_static"
GT_DETECTIONS_TOPIC = "/ground_truth/detections"
GT_OBJECTS_TOPIC = "/ground_truth/objects"

LIDAR_DTYPE = np.dtype(
    {"names": ["x", "y", "z", "intensity", "ring"], "formats": ["<f4", "<f4", "<f4", "<f4", "<u2"],
     "offsets": [0, 4, 8, 12, 16], "itemsize": 20}
)


def frame_id(channel: str) -> str:
    """nuScenes channel -> ROS frame id (CAM_FRONT -> cam_front)."""
    return channel.lower()


def image_topic(channel: str) -> str:
    return f"/{frame_id(channel)}/image_raw/compressed"


def camera_info_topic(channel: str) -> str:
    return f"/{frame_id(channel)}/camera_info"


def points_topic(channel: str) -> str:
    return f"/{frame_id(channel)}/points"


@dataclass
class BagOptions:
    storage: str = "mcap"  # mcap | sqlite3
    cameras: bool = True
    radars: bool = True
    lidar: bool = True
    ground_truth: bool = True
    overwrite: bool = False
    # GT filtering as the reader does it (filter_empty_boxes etc.); sensors are never filtered.
    reader_config: ReaderConfig = field(
        default_factory=lambda: ReaderConfig(load_lidar=False, load_images=False, radar_sweeps=0)
    )


@dataclass
class BagSummary:
    path: Path
    scene: str
    storage: str
    counts: dict[str, int]
    start_ns: int
    end_ns: int
    seconds: float
    bytes: int
    skipped_files: int = 0  # sample_data whose file is missing (e.g. a download without sweeps)

    def lines(self) -> list[str]:
        out = [
            f"wrote {self.path} ({self.storage}, {self.bytes / 1e6:.1f} MB) from scene {self.scene}: "
            f"{(self.end_ns - self.start_ns) / 1e9:.2f} s of data in {self.seconds:.1f} s"
        ]
        out += [f"  {topic:42s} {n:6d}" for topic, n in sorted(self.counts.items())]
        if self.skipped_files:
            out.append(f"  skipped {self.skipped_files} sample_data whose file is missing")
        return out


# ------------------------------------------------------------------------------ message builders
class _Msgs:
    """rosbags message constructors for one typestore."""

    def __init__(self, store):
        self.store = store
        t = store.types
        self.Time = t["builtin_interfaces/msg/Time"]
        self.Header = t["std_msgs/msg/Header"]
        self.CompressedImage = t["sensor_msgs/msg/CompressedImage"]
        self.CameraInfo = t["sensor_msgs/msg/CameraInfo"]
        self.RegionOfInterest = t["sensor_msgs/msg/RegionOfInterest"]
        self.PointCloud2 = t["sensor_msgs/msg/PointCloud2"]
        self.PointField = t["sensor_msgs/msg/PointField"]
        self.TFMessage = t["tf2_msgs/msg/TFMessage"]
        self.TransformStamped = t["geometry_msgs/msg/TransformStamped"]
        self.Transform = t["geometry_msgs/msg/Transform"]
        self.Vector3 = t["geometry_msgs/msg/Vector3"]
        self.Quaternion = t["geometry_msgs/msg/Quaternion"]
        self.Point = t["geometry_msgs/msg/Point"]
        self.Pose = t["geometry_msgs/msg/Pose"]
        self.PoseWithCovariance = t["geometry_msgs/msg/PoseWithCovariance"]
        self.Detection3DArray = t["vision_msgs/msg/Detection3DArray"]
        self.Detection3D = t["vision_msgs/msg/Detection3D"]
        self.BoundingBox3D = t["vision_msgs/msg/BoundingBox3D"]
        self.ObjectHypothesis = t["vision_msgs/msg/ObjectHypothesis"]
        self.ObjectHypothesisWithPose = t["vision_msgs/msg/ObjectHypothesisWithPose"]
        self.Object3DArray = t["imkd_msgs/msg/Object3DArray"]
        self.Object3D = t["imkd_msgs/msg/Object3D"]

    def header(self, frame: str, stamp_ns: int):
        return self.Header(stamp=self.Time(sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000)),
                           frame_id=frame)

    def quat(self, wxyz) -> object:
        w, x, y, z = (float(v) for v in wxyz)
        return self.Quaternion(x=x, y=y, z=z, w=w)

    def transform(self, parent: str, child: str, stamp_ns: int, record: dict):
        tx, ty, tz = (float(v) for v in record["translation"])
        return self.TransformStamped(
            header=self.header(parent, stamp_ns),
            child_frame_id=child,
            transform=self.Transform(
                translation=self.Vector3(x=tx, y=ty, z=tz), rotation=self.quat(record["rotation"])
            ),
        )

    def compressed_image(self, frame: str, stamp_ns: int, jpeg: bytes, fmt: str = "jpeg"):
        return self.CompressedImage(header=self.header(frame, stamp_ns), format=fmt,
                                    data=np.frombuffer(jpeg, dtype=np.uint8))

    def camera_info(self, frame: str, stamp_ns: int, k: np.ndarray, width: int, height: int):
        k = np.asarray(k, np.float64).reshape(3, 3)
        p = np.zeros((3, 4))
        p[:, :3] = k
        return self.CameraInfo(
            header=self.header(frame, stamp_ns),
            height=int(height),
            width=int(width),
            distortion_model="plumb_bob",
            d=np.zeros(5, np.float64),
            k=k.reshape(-1).copy(),
            r=np.eye(3).reshape(-1),
            p=p.reshape(-1),
            binning_x=0,
            binning_y=0,
            roi=self.RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
        )

    def cloud(self, frame: str, stamp_ns: int, points: np.ndarray, raw: bytes | None = None):
        """PointCloud2 from a structured array (raw: the same records as stored, copied as-is)."""
        dtype = points.dtype
        fields = []
        for name in dtype.names:
            ft, off = dtype.fields[name][:2]
            datatype = POINTFIELD_DATATYPE[np.dtype(f"{ft.kind}{ft.itemsize}")]
            fields.append(self.PointField(name=name, offset=int(off), datatype=datatype, count=1))
        data = np.frombuffer(raw if raw is not None else points.tobytes(), dtype=np.uint8)
        finite = all(
            np.all(np.isfinite(points[n])) for n in ("x", "y", "z") if n in dtype.names
        )
        return self.PointCloud2(
            header=self.header(frame, stamp_ns),
            height=1,
            width=int(len(points)),
            fields=fields,
            is_bigendian=False,
            point_step=int(dtype.itemsize),
            row_step=int(dtype.itemsize * len(points)),
            data=data,
            is_dense=bool(finite),
        )


def _qos_profiles(latched: bool):
    zero = QosTime(sec=0, nsec=0)
    return [
        Qos(
            history=QosHistory.KEEP_LAST,
            depth=1 if latched else 10,
            reliability=QosReliability.RELIABLE,
            durability=QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE,
            deadline=zero,
            lifespan=zero,
            liveliness=QosLiveliness.AUTOMATIC,
            liveliness_lease_duration=zero,
            avoid_ros_namespace_conventions=False,
        )
    ]


# ----------------------------------------------------------------------------------- the writer
def scene_sample_data(reader: NuScenesReader, scene: dict) -> dict[str, list[dict]]:
    """Every sample_data of the scene per channel, time-ordered (keyframes and sweeps)."""
    nusc = reader.nusc
    samples = reader.scene_sample_tokens(scene)
    in_scene = set(samples)
    first = nusc.get("sample", samples[0])
    out: dict[str, list[dict]] = {}
    for channel, token in first["data"].items():
        sd = nusc.get("sample_data", token)
        while sd["prev"]:
            prev = nusc.get("sample_data", sd["prev"])
            if prev["sample_token"] not in in_scene:
                break
            sd = prev
        chain = []
        while True:
            if sd["sample_token"] in in_scene:
                chain.append(sd)
            if not sd["next"]:
                break
            sd = nusc.get("sample_data", sd["next"])
        out[channel] = sorted(chain, key=lambda r: r["timestamp"])
    return out


def _modality(reader: NuScenesReader, sd: dict) -> str:
    if "sensor_modality" in sd:
        return sd["sensor_modality"]
    cs = reader.nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
    return reader.nusc.get("sensor", cs["sensor_token"])["modality"]


def _jpeg_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        return img.size


def write_scene_bag(
    dataroot: str | Path,
    version: str,
    scene_name: str,
    out: str | Path,
    options: BagOptions | None = None,
    reader: NuScenesReader | None = None,
) -> BagSummary:
    """Convert one scene; returns per-topic message counts."""
    opts = options or BagOptions()
    t0 = time.perf_counter()
    out = Path(out)
    if out.exists():
        if not opts.overwrite:
            raise FileExistsError(f"{out} exists (use --overwrite)")
        if not (out / "metadata.yaml").is_file():
            raise FileExistsError(f"{out} exists and is not a rosbag2 folder; not removing it")
        shutil.rmtree(out)
    storage = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[opts.storage]

    reader = reader or NuScenesReader(dataroot, version, opts.reader_config)
    nusc = reader.nusc
    scene = reader.scene_by_name(scene_name)
    chains = scene_sample_data(reader, scene)
    store = make_typestore()
    msgs = _Msgs(store)

    counts: Counter[str] = Counter()
    skipped = 0
    # Events: (t_us, order, kind, payload); tf before data before ground truth at equal stamps.
    events: list[tuple[int, int, str, Any]] = []  # (time us, order, kind, record or token)
    seen_poses: set[str] = set()
    channels: dict[str, str] = {}
    for channel, chain in chains.items():
        modality = _modality(reader, chain[0]) if chain else ""
        included = not ((modality == "camera" and not opts.cameras) or (modality == "radar" and not opts.radars) or (
            modality == "lidar" and not opts.lidar
        ))
        channels[channel] = modality
        for sd in chain:
            # Every ego pose goes to /tf, also of left-out sensors: GT stamps are LIDAR_TOP poses.
            if sd["ego_pose_token"] not in seen_poses:
                seen_poses.add(sd["ego_pose_token"])
                events.append((nusc.get("ego_pose", sd["ego_pose_token"])["timestamp"], 0, "tf", sd["ego_pose_token"]))
            if not included:
                continue
            if not (reader.dataroot / sd["filename"]).is_file():
                skipped += 1
                continue
            events.append((sd["timestamp"], 1, modality, sd))
    if opts.ground_truth:
        for token in reader.scene_sample_tokens(scene):
            events.append((nusc.get("sample", token)["timestamp"], 2, "gt", token))
    events.sort(key=lambda e: (e[0], e[1]))
    if not events:
        raise ValueError(f"scene {scene_name} has no sample_data")
    start_us = events[0][0]
    end_ns = start_us * 1000
    writer = Writer(out, version=9, storage_plugin=storage)
    with writer:
        conns: dict[str, object] = {}

        def conn(topic: str, msgtype: str, latched: bool = False):
            c = conns.get(topic)
            if c is None:
                c = writer.add_connection(topic, msgtype, typestore=store, offered_qos_profiles=_qos_profiles(latched))
                conns[topic] = c
            return c

        def write(topic: str, msgtype: str, stamp_ns: int, msg, latched: bool = False) -> None:
            nonlocal end_ns
            writer.write(conn(topic, msgtype, latched), stamp_ns, store.serialize_cdr(msg, msgtype))
            counts[topic] += 1
            end_ns = max(end_ns, stamp_ns)

        # /tf_static: base_link -> each sensor frame (camera frames are optical, as calibrated).
        statics = []
        for channel, chain in chains.items():
            if channel in channels and chain:
                cs = nusc.get("calibrated_sensor", chain[0]["calibrated_sensor_token"])
                statics.append(msgs.transform(BASE_FRAME, frame_id(channel), start_us * 1000, cs))
        write(TF_STATIC_TOPIC, "tf2_msgs/msg/TFMessage", start_us * 1000, msgs.TFMessage(transforms=statics),
              latched=True)

        for t_us, _, kind, payload in events:
            stamp = int(t_us) * 1000
            if kind == "tf":
                pose = nusc.get("ego_pose", payload)
                tf = msgs.transform(ODOM_FRAME, BASE_FRAME, stamp, pose)
                write(TF_TOPIC, "tf2_msgs/msg/TFMessage", stamp, msgs.TFMessage(transforms=[tf]))
            elif kind == "camera":
                sd = payload
                channel = sd.get("channel") or _channel_of(reader, sd)
                fid = frame_id(channel)
                path = reader.dataroot / sd["filename"]
                data = path.read_bytes()
                fmt = "png" if path.suffix.lower() == ".png" else "jpeg"
                write(image_topic(channel), "sensor_msgs/msg/CompressedImage", stamp,
                      msgs.compressed_image(fid, stamp, data, fmt))
                cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
                w, h = int(sd.get("width") or 0), int(sd.get("height") or 0)
                if not (w and h):
                    w, h = _jpeg_size(path)
                write(camera_info_topic(channel), "sensor_msgs/msg/CameraInfo", stamp,
                      msgs.camera_info(fid, stamp, np.array(cs["camera_intrinsic"]), w, h))
            elif kind == "radar":
                sd = payload
                channel = sd.get("channel") or _channel_of(reader, sd)
                pcd = read_pcd(reader.dataroot / sd["filename"])
                write(points_topic(channel), "sensor_msgs/msg/PointCloud2", stamp,
                      msgs.cloud(frame_id(channel), stamp, pcd.points, pcd.raw))
            elif kind == "lidar":
                sd = payload
                channel = sd.get("channel") or _channel_of(reader, sd)
                pts = load_lidar_bin(reader.dataroot / sd["filename"])
                arr = np.zeros(len(pts), LIDAR_DTYPE)
                for i, name in enumerate(("x", "y", "z", "intensity")):
                    arr[name] = pts[:, i]
                arr["ring"] = np.clip(pts[:, 4], 0, 65535).astype(np.uint16)
                write(points_topic(channel), "sensor_msgs/msg/PointCloud2", stamp,
                      msgs.cloud(frame_id(channel), stamp, arr))
            elif kind == "gt":
                det, obj = gt_messages(msgs, reader, payload, stamp)
                write(GT_DETECTIONS_TOPIC, "vision_msgs/msg/Detection3DArray", stamp, det)
                write(GT_OBJECTS_TOPIC, "imkd_msgs/msg/Object3DArray", stamp, obj)

    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    return BagSummary(out, scene_name, opts.storage, dict(counts), start_us * 1000, end_ns,
                      time.perf_counter() - t0, size, skipped)


def _channel_of(reader: NuScenesReader, sd: dict) -> str:
    cs = reader.nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
    return reader.nusc.get("sensor", cs["sensor_token"])["channel"]


def gt_messages(msgs: _Msgs, reader: NuScenesReader, sample_token: str, stamp_ns: int):
    """Detection3DArray + Object3DArray of a keyframe's ground truth, in base_link."""
    boxes, instances = reader.gt_boxes(sample_token)
    header = msgs.header(BASE_FRAME, stamp_ns)
    dets, objs = [], []
    for i in range(len(boxes)):
        x, y, z = (float(v) for v in boxes.center[i])
        w, l, h = (float(v) for v in boxes.size[i])
        yaw = float(boxes.yaw[i])
        label = int(boxes.labels[i])
        name = CLASSES[label]
        q = msgs.Quaternion(x=0.0, y=0.0, z=float(np.sin(yaw / 2)), w=float(np.cos(yaw / 2)))
        pose = msgs.Pose(position=msgs.Point(x=x, y=y, z=z), orientation=q)
        dets.append(
            msgs.Detection3D(
                header=header,
                results=[
                    msgs.ObjectHypothesisWithPose(
                        hypothesis=msgs.ObjectHypothesis(class_id=name, score=float(boxes.scores[i])),
                        pose=msgs.PoseWithCovariance(pose=pose, covariance=np.zeros(36)),
                    )
                ],
                bbox=msgs.BoundingBox3D(center=pose, size=msgs.Vector3(x=l, y=w, z=h)),
                id=instances[i],
            )
        )
        attr = int(boxes.attributes[i])
        objs.append(
            msgs.Object3D(
                class_name=name,
                class_id=label,
                score=float(boxes.scores[i]),
                center=msgs.Point(x=x, y=y, z=z),
                yaw=yaw,
                width=w,
                length=l,
                height=h,
                vx=float(boxes.velocity[i, 0]),
                vy=float(boxes.velocity[i, 1]),
                attribute=ATTRIBUTES[attr] if 0 <= attr < len(ATTRIBUTES) else "",
                track_id=int(boxes.track_ids[i]) if boxes.track_ids is not None else 0,
            )
        )
    return (
        msgs.Detection3DArray(header=header, detections=dets),
        msgs.Object3DArray(header=header, objects=objs),
    )


__all__ = [
    "BASE_FRAME",
    "GT_DETECTIONS_TOPIC",
    "GT_OBJECTS_TOPIC",
    "LIDAR_DTYPE",
    "LIDAR_NAME",
    "ODOM_FRAME",
    "BagOptions",
    "BagSummary",
    "camera_info_topic",
    "frame_id",
    "image_topic",
    "points_topic",
    "scene_sample_data",
    "write_scene_bag",
]
