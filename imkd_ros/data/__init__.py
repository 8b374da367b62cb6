"""nuScenes-format data: the dataset reader, the rosbag2 converter and `imkd data` commands."""
