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

log = logging.getLogger(__name__)

__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "BackendUnavailableError",
    "Detector",
    "create_detector",
    "make_backend",
    "select_backend",
]


def create_detector(model: str | Path, backend: str = "auto", precision: str = "fp32",
                    cuda_graph: bool = False) -> tuple[Detector, str]:
    """(Detector for a student checkpoint on the chosen backend, why that backend)."""
    from imkd_ros.model.imkd import load_student

    path = Path(model)
    if not path.exists():
        raise FileNotFoundError(f"model checkpoint not found: {path}")
    if path.suffix in (".engine", ".plan"):
        raise ValueError(f"{path}: pass the student checkpoint (.pt); engines are built from it "
                         "and cached automatically (see `imkd export --format engine`)")
    student = load_student(path)
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
