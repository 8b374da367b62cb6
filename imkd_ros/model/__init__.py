"""The IMKD model: student (camera + radar), LiDAR teacher, distillation, preprocessing."""

from imkd_ros.model.config import IMKDConfig, load_config
from imkd_ros.model.imkd import (
    IMKD,
    CheckpointError,
    Student,
    load_checkpoint,
    load_student,
    load_teacher,
    save_checkpoint,
    verify_checkpoint,
)
from imkd_ros.model.preprocess import Preprocessor, batch_to
from imkd_ros.model.teacher import LidarTeacher

__all__ = [
    "IMKD",
    "CheckpointError",
    "IMKDConfig",
    "LidarTeacher",
    "Preprocessor",
    "Student",
    "batch_to",
    "load_checkpoint",
    "load_config",
    "load_student",
    "load_teacher",
    "save_checkpoint",
    "verify_checkpoint",
]
