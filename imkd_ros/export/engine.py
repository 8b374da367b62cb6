"""TensorRT engine build from our ONNX (with the imkd::BevPool plugin), cached on disk.

The cache key is sha256(ONNX bytes) + TensorRT version + GPU name + precision (+ the geometry
bounds), so an engine is rebuilt exactly when any of them changes; ``get_or_build_engine`` is what
the runtime calls at first start. A timing cache beside the engines makes rebuilds fast.

Dynamic inputs: the five geometry tensors have a point count P and an interval count K that
change with calibration. The optimisation profile spans P in [1, P_max] (P_max = every frustum
point = depth.numel()) and K in [1, min(P_max, batch*bev_h*bev_w)]; ``opt`` is the current
calibration's values when given.

fp16: the runtime exports an fp16 ONNX (strongly typed, imkd_ros/export/student.py) and on TensorRT
10 also sets the FP16 flag; TensorRT 11 removed that flag and the int8 calibrator, so there int8
raises a clear error.

UNVERIFIED: written to the TensorRT 10.x Python API (checked with mypy against tensorrt-stubs
10.13 by tools/typecheck.sh); no TensorRT could be installed where this was written, so it has
never built an engine. The int8 path uses the (deprecated since 10.1) implicit-quantization
calibrator API.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imkd_ros.export.onnx_ops import GEOMETRY_INPUTS, OP_TYPE

if TYPE_CHECKING:
    import tensorrt as trt
    import torch

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path(os.environ.get("IMKD_ENGINE_CACHE", Path.home() / ".cache" / "imkd_ros" / "engines"))


def require_tensorrt() -> str:
    """Raise ImportError saying what is missing unless ``import tensorrt`` works; its version.

    Callers then ``import tensorrt as trt`` themselves so mypy checks their calls against the
    tensorrt stubs (a module returned from a helper would be typed Any).
    """
    hint = ("pip install tensorrt-cu12 / tensorrt-cu13 from NVIDIA's index, or use JetPack's "
            "python3-libnvinfer")
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise ImportError(f"TensorRT is not installed ({hint}): {exc}") from exc
    if not hasattr(trt, "Builder"):  # e.g. only tensorrt-stubs: a namespace package, no library
        raise ImportError(f"TensorRT is not installed ({hint}): `tensorrt` has no runtime (stubs only?)")
    return str(trt.__version__)


@dataclass
class EngineConfig:
    precision: str = "fp16"  # fp32 | fp16 | int8 (int8 also enables fp16)
    workspace_gb: float = 4.0
    cache_dir: Path = field(default_factory=lambda: DEFAULT_CACHE_DIR)
    timing_cache: Path | None = None  # default: <cache_dir>/timing.cache
    # geometry profile overrides: (min, opt, max) for P (points) and K (intervals)
    points: tuple[int, int, int] | None = None
    intervals: tuple[int, int, int] | None = None
    prefer_aot_plugin: bool = True
    builder_optimization_level: int = 3

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "fp16", "int8"):
            raise ValueError(f"precision must be fp32|fp16|int8, not {self.precision!r}")
        self.cache_dir = Path(self.cache_dir)


def gpu_name() -> str:
    import torch

    if not torch.cuda.is_available():
        return "no-gpu"
    return torch.cuda.get_device_name(0)


def engine_cache_key(onnx_bytes: bytes, trt_version: str, gpu: str, cfg: EngineConfig) -> str:
    h = hashlib.sha256()
    h.update(onnx_bytes)
    meta = {"trt": trt_version, "gpu": gpu, "precision": cfg.precision, "points": cfg.points,
            "intervals": cfg.intervals, "aot": cfg.prefer_aot_plugin,
            "opt_level": cfg.builder_optimization_level}
    h.update(json.dumps(meta, sort_keys=True).encode())
    return h.hexdigest()[:24]


def geometry_profile(onnx_model: Any, cfg: EngineConfig) -> dict[str, tuple[int, int, int]]:
    """(min, opt, max) of the dynamic dim for each geometry input, from the ONNX graph."""
    import numpy as np

    dims = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in onnx_model.graph.input}
    node = next(n for n in onnx_model.graph.node if n.op_type == OP_TYPE)
    depth_name = node.input[0]
    attrs = {a.name: a.i for a in node.attribute}
    if depth_name in dims and all(dims[depth_name]):
        p_max = int(np.prod(dims[depth_name]))
    elif cfg.points is None:
        raise ValueError("depth has no static shape in the ONNX; pass EngineConfig.points")
    else:
        p_max = cfg.points[2]
    k_max = min(p_max, attrs.get("batch", 1) * attrs.get("bev_h", 1) * attrs.get("bev_w", 1))
    points = cfg.points or (1, max(1, p_max // 2), p_max)
    intervals = cfg.intervals or (1, max(1, k_max // 2), k_max)
    out = {}
    for name in GEOMETRY_INPUTS:
        if name in dims:
            out[name] = points if name.startswith("ranks") else intervals
    return out


def make_int8_calibrator(batches: Callable[[], Iterator[dict[str, torch.Tensor]]],
                         cache_file: Path) -> trt.IInt8EntropyCalibrator2:
    """Entropy calibrator over batches of model inputs (dicts of tensors, one sample each)."""
    require_tensorrt()
    import tensorrt as trt

    if not hasattr(trt, "IInt8EntropyCalibrator2"):
        raise RuntimeError("int8 calibration was removed in TensorRT 11 (explicit Q/DQ quantization "
                           "instead, not implemented here); use fp16, or TensorRT 10 (JetPack)")

    class _Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._it = iter(batches())
            self._keep: dict[str, Any] = {}

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> list[int]:
            try:
                feed = next(self._it)
            except StopIteration:
                return []  # no more calibration data
            self._keep = {n: feed[n].cuda().contiguous() for n in names}
            return [int(self._keep[n].data_ptr()) for n in names]

        def read_calibration_cache(self) -> bytes | None:
            return cache_file.read_bytes() if cache_file.exists() else None

        def write_calibration_cache(self, cache: Any) -> None:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            cache_file.write_bytes(bytes(cache))

    return _Calibrator()


def build_engine(onnx_path: str | Path, cfg: EngineConfig,
                 calibrator: trt.IInt8Calibrator | None = None) -> bytes:
    """Parse the ONNX (BevPool -> plugin) and build a serialized engine."""
    import onnx

    require_tensorrt()
    import tensorrt as trt

    from imkd_ros.export.trt_plugin import register_bev_pool_plugin

    register_bev_pool_plugin()
    logger = trt.Logger(trt.Logger.WARNING)
    trt.init_libnvinfer_plugins(logger, "")
    builder = trt.Builder(logger)
    flags = 0
    if cfg.prefer_aot_plugin and hasattr(trt.NetworkDefinitionCreationFlag, "PREFER_AOT_PYTHON_PLUGINS"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.PREFER_AOT_PYTHON_PLUGINS)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise RuntimeError("TensorRT could not parse the ONNX:\n" + "\n".join(errors))

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(cfg.workspace_gb * (1 << 30)))
    config.builder_optimization_level = cfg.builder_optimization_level
    # TensorRT 10 has the weak-typing precision flags; TensorRT 11 removed them and runs the
    # ONNX's own types (export with precision="fp16" for an fp16 engine there).
    weak_typing = hasattr(trt.BuilderFlag, "FP16")
    if cfg.precision in ("fp16", "int8") and weak_typing:
        config.set_flag(trt.BuilderFlag.FP16)
    if cfg.precision == "int8":
        if not weak_typing or not hasattr(config, "int8_calibrator"):
            raise RuntimeError("int8 calibration (implicit quantization) was removed in TensorRT 11; "
                               "it needs an explicitly quantized (Q/DQ) ONNX, which imkd_ros does not make")
        if calibrator is None:
            raise ValueError("int8 needs a calibrator (make_int8_calibrator)")
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = calibrator

    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in geometry_profile(onnx.load(str(onnx_path), load_external_data=False), cfg).items():
        profile.set_shape(name, trt.Dims([lo]), trt.Dims([opt]), trt.Dims([hi]))
    config.add_optimization_profile(profile)

    timing_path = cfg.timing_cache or cfg.cache_dir / "timing.cache"
    timing = config.create_timing_cache(timing_path.read_bytes() if timing_path.exists() else b"")
    config.set_timing_cache(timing, ignore_mismatch=False)

    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT engine build failed (see the TensorRT log above)")
    log.info("built TensorRT engine (%s) in %.1f s", cfg.precision, time.perf_counter() - t0)
    timing_path.parent.mkdir(parents=True, exist_ok=True)
    timing_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)


def get_or_build_engine(onnx_path: str | Path, cfg: EngineConfig | None = None,
                        calibrator: trt.IInt8Calibrator | None = None) -> Path:
    """The cached engine for this ONNX / TensorRT / GPU / precision; built if missing."""
    cfg = cfg or EngineConfig()
    trt_version = require_tensorrt()
    onnx_bytes = Path(onnx_path).read_bytes()
    gpu = gpu_name()
    key = engine_cache_key(onnx_bytes, trt_version, gpu, cfg)
    engine_path = cfg.cache_dir / f"imkd_{key}.engine"
    if engine_path.exists():
        log.info("TensorRT engine cache hit: %s", engine_path)
        return engine_path
    log.info("TensorRT engine cache miss (%s, TRT %s, %s): building", gpu, trt_version, cfg.precision)
    data = build_engine(onnx_path, cfg, calibrator)
    cfg.cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = engine_path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(engine_path)
    meta = {"onnx": str(onnx_path), "trt": trt_version, "gpu": gpu, **asdict(cfg)}
    engine_path.with_suffix(".json").write_text(json.dumps(meta, default=str, indent=1))
    return engine_path
