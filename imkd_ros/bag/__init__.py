"""rosbag2 tooling support (rosbags): the typestore with our and vision_msgs types registered."""

from imkd_ros.bag.typestore import interface_msg_files, make_typestore

__all__ = ["interface_msg_files", "make_typestore"]
