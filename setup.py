"""imkd_ros as an ament_python package: `colcon build` on a vehicle, `pip install -e .` in the venv."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "imkd_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={PACKAGE: ["resources/*", "rig/*.yaml", "ops/csrc/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*")),
        # .msg definitions for the rosbags typestore (imkd_ros.bag) in an installed package
        (f"share/{PACKAGE}/interfaces/imkd_msgs", glob("msg/msg/*.msg")),
        (f"share/{PACKAGE}/interfaces/vision_msgs", glob("third_party/ros_interfaces/vision_msgs/msg/*.msg")),
        (f"share/{PACKAGE}/models", glob("models/*.yaml") + glob("models/*.pt") + glob("models/*.md")),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="imkd_ros maintainers",
    maintainer_email="imkd@example.com",
    description="IMKD camera-radar 3D object detection (LiDAR-distilled) as a ROS 2 node",
    license="Apache-2.0",
    python_requires=">=3.11",
    entry_points={
        "console_scripts": [
            "detector_node = imkd_ros.ros.detector_node:main",
            "imkd = imkd_ros.cli:main",
        ],
    },
)
