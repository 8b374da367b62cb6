"""The thin ROS 2 shell: message conversion, the detector node, the bag player."""
