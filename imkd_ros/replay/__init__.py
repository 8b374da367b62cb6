"""Offline validation: replay a rosbag2 recording through the node's own front end."""
