"""TensorRT plugins the student's engines need, loaded before every parse and deserialisation.

Two plugin sources:

* libnvinfer_plugin: the ONNX parser maps ScatterElements-with-reduction (the radar scatter) to
  its plugin, so an engine built from our ONNX references it; ``init_libnvinfer_plugins`` must run
  in every process that deserialises such an engine, not only in the one that built it.
* ``libimkd_trt_plugins.so``: our IPluginV3 ``imkd::BevPool`` (imkd_ros/ops/csrc/
  bev_pool_trt_plugin.cpp + bev_pool_kernel.cu, built by tools/build_cuda.sh). TensorRT loads it
  through ``IPluginRegistry.load_library``, which calls the library's ``getCreators``; trtexec /
  C++ runtimes load the same file (``--staticPlugins`` / ``loadLibrary``). No Python, no nvcc at
  run time.

``init_plugins`` is idempotent per process (TensorRT refuses to load a library twice).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PLUGIN_LIBRARY_NAME = "libimkd_trt_plugins.so"
PLUGIN_LIBRARY_ENV = "IMKD_TRT_PLUGIN_LIB"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PLUGIN_DIR = REPO_ROOT / "build" / "trt_plugin"

_LOADED: dict[str, Any] = {}


class PluginLibraryMissingError(FileNotFoundError):
    """libimkd_trt_plugins.so was not found (the message says how to build it)."""


def plugin_library_path() -> Path:
    """$IMKD_TRT_PLUGIN_LIB, else build/trt_plugin/libimkd_trt_plugins.so in the checkout."""
    env = os.environ.get(PLUGIN_LIBRARY_ENV)
    path = Path(env) if env else DEFAULT_PLUGIN_DIR / PLUGIN_LIBRARY_NAME
    if not path.is_file():
        raise PluginLibraryMissingError(
            f"TensorRT plugin library {path} not found: build it on this machine with "
            f"`bash tools/build_cuda.sh` (nvcc + TensorRT headers) or set {PLUGIN_LIBRARY_ENV}")
    return path.resolve()


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def init_plugins(trt: Any, logger: Any, library: str | Path | None = None) -> Path:
    """libnvinfer_plugin's creators + our plugin library, registered with TensorRT; the path.

    ``trt`` is the imported ``tensorrt`` module (passed in so callers and tests choose it).
    """
    if not trt.init_libnvinfer_plugins(logger, ""):
        raise RuntimeError("tensorrt.init_libnvinfer_plugins failed (libnvinfer_plugin missing?)")
    path = Path(library).resolve() if library else plugin_library_path()
    key = str(path)
    if key not in _LOADED:
        handle = trt.get_plugin_registry().load_library(key)
        if handle is None:
            raise RuntimeError(f"TensorRT could not load the plugin library {path} (built for another "
                               "TensorRT/CUDA? see the TensorRT log)")
        _LOADED[key] = handle
        log.info("loaded TensorRT plugin library %s", path)
    return path
