"""Bags and live ROS agree: the typestore's definitions and type hashes match the rosidl builds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from imkd_msgs.msg import Object3D, Object3DArray
from rclpy.serialization import deserialize_message, serialize_message

from imkd_ros.bag import make_typestore

TYPES = [
    "vision_msgs/msg/Detection3DArray",
    "vision_msgs/msg/Detection3D",
    "imkd_msgs/msg/Object3DArray",
    "imkd_msgs/msg/DetectorStatus",
    "tf2_msgs/msg/TFMessage",
]


@pytest.mark.parametrize("name", TYPES)
def test_type_hash_matches_rosidl_build(name: str) -> None:
    """rosidl writes each built type's RIHS01 hash into share/<pkg>/msg/<Type>.json."""
    pkg, _, typ = name.split("/")
    generated = json.loads((Path(sys.prefix) / "share" / pkg / "msg" / f"{typ}.json").read_text())
    expected = generated["type_hashes"][0]
    assert expected["type_name"] == name
    assert make_typestore().hash_rihs01(name) == expected["hash_string"]


def test_cdr_round_trip_between_rosbags_and_rclpy() -> None:
    store = make_typestore()
    msg = Object3DArray()
    msg.header.frame_id = "base_link"
    msg.objects.append(Object3D(class_name="bus", class_id=3, score=0.5, yaw=1.0, vx=2.0, attribute="vehicle.moving"))
    raw = serialize_message(msg)
    decoded = store.deserialize_cdr(raw, "imkd_msgs/msg/Object3DArray")
    assert decoded.header.frame_id == "base_link"
    assert decoded.objects[0].class_name == "bus" and decoded.objects[0].vx == 2.0
    back = deserialize_message(bytes(store.serialize_cdr(decoded, "imkd_msgs/msg/Object3DArray")), Object3DArray)
    assert back == msg
