"""Inference backends (torch CPU / CUDA, TensorRT) behind one interface, and the detector.

``create_detector(checkpoint, backend="auto")`` is what the ROS node and the replay call.
"""

from __future__ import annotations

import logging
from pathlib import Path

from imkd_ros.runtime.base import (
    BACKEND_NAMES,
    Backend,
    BackendUnavailableError,
    Detector,
    make_backend,
    select_backend,
)
from imkd_ros.runtime.model_file import ModelFile, ModelFileError, load_student_checkpoint, resolve_model_file
from imkd_ros.runtime.tensorrt_backend import TensorRTBackend

log = logging.getLogger(__name__)

__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "BackendUnavailableError",
    "Detector",
    "ModelFile",
    "ModelFileError",
    "create_detector",
    "make_backend",
    "resolve_model_file",
    "select_backend",
]


def create_detector(model: str | Path, backend: str = "auto", precision: str = "fp32",
                    cuda_graph: bool = False) -> tuple[Detector, str]:
    """(Detector for a student checkpoint or TensorRT engine on the chosen backend, why that backend).

    A bad model file raises ModelFileError (one line naming the file and what was expected); an
    engine on a machine or backend without TensorRT raises BackendUnavailableError. With
    ``backend="auto"`` and a checkpoint, a TensorRT box whose engine cannot be built or loaded falls
    back to torch-cuda and says why.
    """
    mf = resolve_model_file(model)
    student = load_student_checkpoint(mf.checkpoint)
    if mf.engine is not None:
        if backend not in ("auto", "tensorrt"):
            raise BackendUnavailableError(f"model {mf.engine} is a TensorRT engine: it runs on backend tensorrt "
                                          f"(or auto), not {backend}")
        make_backend("tensorrt", precision, cuda_graph)  # raises, naming what is missing, without TensorRT
        why = f"TensorRT engine {mf.engine} (checkpoint {mf.checkpoint.name})"
        trt = TensorRTBackend(precision, cuda_graph=cuda_graph, engine_path=mf.engine)
        return Detector(student, trt, why), why
    chosen, why = select_backend(backend, precision, cuda_graph)
    try:
        return Detector(student, chosen, why), why
    except BackendUnavailableError as exc:
        if backend != "auto" or chosen.name.split("-")[0] != "tensorrt":
            raise
        # e.g. no engine/ONNX exported for this checkpoint yet: say so and run torch-cuda
        why = f"auto: TensorRT available but not usable ({exc}); torch-cuda instead"
        log.warning(why)
        fallback = make_backend("torch-cuda", precision, cuda_graph)
        return Detector(student, fallback, why), why
