"""The one detection pipeline shared by the ROS node and the offline replay."""

from imkd_ros.pipeline.pipeline import (
    CameraInput,
    DetectorPipeline,
    FrameDetector,
    KeyframeInput,
    PipelineConfig,
    PipelineResult,
    PreparedKeyframe,
    StagedDetector,
    output_threshold,
    transform_boxes,
)
from imkd_ros.pipeline.radar import RadarSweepPoints, merge_sweeps
from imkd_ros.pipeline.transforms import TransformBuffer, TransformError, TransformRejected
from imkd_ros.pipeline.worker import InferenceWorker, StagedWorker

__all__ = [
    "CameraInput",
    "DetectorPipeline",
    "FrameDetector",
    "InferenceWorker",
    "KeyframeInput",
    "PipelineConfig",
    "PipelineResult",
    "PreparedKeyframe",
    "RadarSweepPoints",
    "StagedDetector",
    "StagedWorker",
    "TransformBuffer",
    "TransformError",
    "TransformRejected",
    "merge_sweeps",
    "output_threshold",
    "transform_boxes",
]
