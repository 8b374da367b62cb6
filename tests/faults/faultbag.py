"""Write a copy of a recording with faults baked in, so the real player can replay them over DDS.

A fault is a function (topic, message, seconds since the bag start) -> message | None | list of
(topic, message, log time) to add. Messages are rosbags dataclasses (what the player serialises).
"""

from __future__ import annotations

import copy
import io
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer

from imkd_ros.bag import make_typestore
from imkd_ros.constants import RADAR_PCD_FIELDS
from imkd_ros.ros.clouds import fields_to_dtype

Mutation = Callable[[str, Any, float], Any]
FLT_MAX = float(np.finfo(np.float32).max)


def rewrite(src: Path, dst: Path, mutate: Mutation, extra: list[tuple[str, float, Callable[[Any], Any]]] = (),
            log_shift_ns: Callable[[str, float], int] | None = None) -> Path:
    """Copy ``src`` to ``dst`` (MCAP) applying ``mutate`` to every message.

    ``extra``: (topic, at_s, make(template) -> message) adds a message on ``topic`` at ``at_s``
    (made from the first message of that topic). ``log_shift_ns(topic, t_s)`` delays a message's
    log time (its arrival in the player) without touching its stamp."""

    store = make_typestore()
    out: list[tuple[str, str, int, Any]] = []
    with AnyReader([src], default_typestore=store) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        t0 = None
        templates: dict[str, Any] = {}
        for conn, t, raw in reader.messages():
            t0 = t if t0 is None else t0
            msg = reader.deserialize(raw, conn.msgtype)
            templates.setdefault(conn.topic, msg)
            rel = (t - t0) / 1e9
            new = mutate(conn.topic, msg, rel)
            if new is None:
                continue
            shift = log_shift_ns(conn.topic, rel) if log_shift_ns else 0
            out.append((conn.topic, conn.msgtype, t + shift, new))
        for topic, at_s, make in extra:
            out.append((topic, types[topic], t0 + int(at_s * 1e9), make(copy.deepcopy(templates[topic]))))
    out.sort(key=lambda m: m[2])
    if dst.exists():
        shutil.rmtree(dst)
    writer = Writer(dst, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    used = {m[0] for m in out}
    conns = {topic: writer.add_connection(topic, ty, typestore=store) for topic, ty in types.items() if topic in used}
    for topic, ty, t, msg in out:
        writer.write(conns[topic], t, store.serialize_cdr(msg, ty))
    writer.close()
    return dst


# ---------------------------------------------------------------------------- radar
def _radar_view(msg: Any) -> np.ndarray:
    dt = fields_to_dtype(msg.fields, msg.point_step, False)
    return np.frombuffer(np.asarray(msg.data, np.uint8).tobytes(), dt, count=msg.width * msg.height).copy()


def _set_radar(msg: Any, arr: np.ndarray) -> Any:
    msg.data = np.frombuffer(arr.tobytes(), np.uint8).copy()
    msg.width, msg.height = arr.shape[0], 1
    msg.row_step = msg.point_step * arr.shape[0]
    return msg


def radar_field(msg: Any, field: str, value: float) -> Any:
    arr = _radar_view(msg)
    arr[field] = value
    return _set_radar(msg, arr)


def radar_bigendian(msg: Any) -> Any:
    msg.is_bigendian = True
    return msg


def radar_dense(msg: Any, n: int, seed: int = 0) -> Any:
    """The sweep's points repeated with jitter up to ``n`` points (a flooding driver)."""
    arr = _radar_view(msg)
    rng = np.random.default_rng(seed)
    reps = arr[rng.integers(0, len(arr), n)]
    for f in ("x", "y"):
        reps[f] = reps[f] + rng.normal(0, 0.5, n).astype(reps[f].dtype)
    return _set_radar(msg, reps)


assert "rcs" in RADAR_PCD_FIELDS and "vx_comp" in RADAR_PCD_FIELDS


# ---------------------------------------------------------------------------- images
def png_bomb_bytes(width: int = 20000, height: int = 20000) -> np.ndarray:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    return np.frombuffer(raw, np.uint8).copy()


def image_bomb(msg: Any) -> Any:
    msg.format = "png"
    msg.data = png_bomb_bytes()
    return msg


def image_garbage(msg: Any) -> Any:
    msg.data = np.frombuffer(b"\xff\xd8 not a jpeg at all" * 10, np.uint8).copy()
    return msg


def image_upscaled(msg: Any, width: int, height: int) -> Any:
    """The same view re-encoded at another resolution (same aspect as its CameraInfo)."""

    im = Image.open(io.BytesIO(np.asarray(msg.data, np.uint8).tobytes())).convert("RGB")
    buf = io.BytesIO()
    im.resize((width, height), Image.BILINEAR).save(buf, "JPEG", quality=80)
    msg.format = "jpeg"
    msg.data = np.frombuffer(buf.getvalue(), np.uint8).copy()
    return msg


# ---------------------------------------------------------------------------- CameraInfo / TF / stamps
def camera_info_broken(msg: Any) -> Any:
    msg.k = np.zeros(9)
    msg.width = msg.height = 0
    return msg


def tf_edge(template: Any, parent: str, child: str, stamp_ns: int | None = None) -> Any:
    t = template.transforms[0]
    t.header.frame_id, t.child_frame_id = parent, child
    if stamp_ns is not None:
        t.header.stamp.sec, t.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    template.transforms = [t]
    return template


def stamp_ns(msg: Any) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def set_stamp(msg: Any, ns: int) -> Any:
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(ns), 1_000_000_000)
    return msg
