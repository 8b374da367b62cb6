"""What ``model:=`` may name, checked before anything is loaded: a checkpoint or a TensorRT engine.

Rule: every way a model file can be wrong ends in one ModelFileError whose one-line message names
the file and what was expected (the node logs it as its FATAL line and exits; no traceback).
  * ``*.pt``: a student (or IMKD) checkpoint written by ``imkd train`` / ``save_checkpoint``,
    loaded with ``weights_only=True``.
  * ``*.engine`` / ``*.plan``: a TensorRT engine of the student, built by ``imkd export --format
    engine --checkpoint X.pt``. An engine holds only the network: the checkpoint it was built
    from must sit beside it with the same stem (``X.pt``), for the model config, the camera
    geometry and the box decoding. Engines run on the tensorrt backend only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imkd_ros.model.imkd import load_student

CHECKPOINT_SUFFIXES = (".pt", ".pth")
ENGINE_SUFFIXES = (".engine", ".plan")


class ModelFileError(ValueError):
    """The model file is missing or not what ``model:=`` accepts (message: one line, names the file)."""


class ModelFileNotFoundError(ModelFileError, FileNotFoundError):
    """The model file (or an engine's checkpoint) does not exist."""


@dataclass(frozen=True)
class ModelFile:
    """A validated model path: the checkpoint, and the engine when one was given."""

    checkpoint: Path
    engine: Path | None = None

    @property
    def kind(self) -> str:
        return "engine" if self.engine is not None else "checkpoint"


def resolve_model_file(model: str | Path) -> ModelFile:
    """Classify and check ``model`` (exists, right kind, engine's checkpoint beside it)."""
    path = Path(model).expanduser()
    expected = (f"a student checkpoint ({'/'.join(CHECKPOINT_SUFFIXES)}) or a TensorRT engine "
                f"({'/'.join(ENGINE_SUFFIXES)}) with its checkpoint beside it")
    suffix = path.suffix.lower()
    if suffix not in CHECKPOINT_SUFFIXES + ENGINE_SUFFIXES:
        raise ModelFileError(f"model {path}: unknown file type {path.suffix or '(none)'!r}, expected {expected}")
    if not path.is_file():
        raise ModelFileNotFoundError(f"model {path}: no such file (expected {expected})")
    if suffix in CHECKPOINT_SUFFIXES:
        return ModelFile(checkpoint=path)
    checkpoint = path.with_suffix(".pt")
    if not checkpoint.is_file():
        raise ModelFileNotFoundError(f"model {path}: a TensorRT engine needs the student checkpoint it was built from "
                             f"beside it as {checkpoint} (model config, geometry, box decoding); not found")
    return ModelFile(checkpoint=checkpoint, engine=path)


def load_student_checkpoint(path: Path):  # -> imkd_ros.model.imkd.Student
    """The Student of a checkpoint, or ModelFileError saying why the file is not one."""

    try:
        return load_student(path)
    except Exception as exc:  # unpickling, zip, missing keys, wrong shapes: all "not a checkpoint"
        text = " ".join(str(exc).split())
        why = f"{type(exc).__name__}: {text.split('. ')[0][:200]}"  # first sentence: torch's are long
        raise ModelFileError(f"model {path}: not an imkd student checkpoint (expected a .pt written by "
                             f"`imkd train`, with 'config' and 'state_dict'): {why}") from exc
