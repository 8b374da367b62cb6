"""TensorRT engines of the student: build from our ONNX, cache on disk, find again at start.

Build (``build_engine``): plugins first (libnvinfer_plugin + libimkd_trt_plugins.so, see
trt_plugins.py), then a STRONGLY TYPED network parsed from the ONNX: the ONNX's own types decide
every layer's precision, so an fp16 ONNX (exported under autocast, index math kept fp32) builds an
fp16 engine on TensorRT 10 and 11 alike and TensorRT never lowers the fp32 index math to fp16
(which the weakly typed FP16 flag was free to do). The geometry inputs are dynamic: P (frustum
points) in [1, P_max], K (occupied cells) in [1, K_max], with P_max / K_max read from the ONNX
metadata the exporter writes (``imkd.points_max`` / ``imkd.intervals_max``): inside the student
graph the depth tensor is internal, so its shape cannot be read from the graph inputs.

int8: explicit quantisation only. An ONNX with QuantizeLinear/DequantizeLinear nodes (e.g. from
NVIDIA ModelOpt) builds strongly typed with its own scales; anything else raises
``UnsupportedPrecisionError`` (the implicit calibrator is deprecated in 10.x, removed in 11).

Cache (``get_or_build_engine``): key = sha256 of the ONNX bytes + the kernel and plugin sources +
the plugin library file + TensorRT version + GPU name and compute capability + the build config.
A .cu fix, a rebuilt plugin, a TensorRT upgrade or another GPU gives a new engine; the timing
cache is per GPU + TensorRT version.

UNVERIFIED with a real TensorRT (none installable where this was written): the calls follow the
TensorRT 10.x Python API, are type-checked against tensorrt-stubs 10.13 (tools/typecheck.sh), and
tests/deploy/test_engine_build.py runs this whole path on the real student ONNX against a fake
``tensorrt`` module that records every call.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from imkd_ros.ops import bev_pool_cuda
from imkd_ros.ops.bev_pool_geometry import GEOMETRY_INPUTS
from imkd_ros.runtime import trt_plugins

if TYPE_CHECKING:
    from imkd_ros.model.imkd import Student

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path(os.environ.get("IMKD_ENGINE_CACHE", Path.home() / ".cache" / "imkd_ros" / "engines"))
# ONNX metadata written by imkd_ros/export/exporter.py, read here (no import across the rooms)
META_POINTS_MAX = "imkd.points_max"
META_INTERVALS_MAX = "imkd.intervals_max"
META_PRECISION = "imkd.precision"
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
PRECISIONS = ("fp32", "fp16", "int8")


class UnsupportedPrecisionError(ValueError):
    """The requested engine precision cannot be built from this ONNX (message says why)."""


def require_tensorrt() -> str:
    """Raise ImportError saying what is missing unless ``import tensorrt`` works; its version.

    Callers then ``import tensorrt as trt`` themselves so mypy checks their calls against the
    tensorrt stubs (a module returned from a helper would be typed Any).
    """
    hint = ("pip install tensorrt-cu12 / tensorrt-cu13 from NVIDIA's index, or use JetPack's "
            "python3-libnvinfer")
    try:
        import tensorrt as trt  # noqa: PLC0415  (optional: TensorRT)
    except ImportError as exc:
        raise ImportError(f"TensorRT is not installed ({hint}): {exc}") from exc
    if not hasattr(trt, "Builder"):  # e.g. only tensorrt-stubs: a namespace package, no library
        raise ImportError(f"TensorRT is not installed ({hint}): `tensorrt` has no runtime (stubs only?)")
    return str(trt.__version__)


@dataclass
class EngineConfig:
    precision: str = "fp16"  # fp32 | fp16 | int8 (int8: the ONNX must carry Q/DQ nodes)
    workspace_gb: float = 4.0
    cache_dir: Path = field(default_factory=lambda: DEFAULT_CACHE_DIR)
    timing_cache: Path | None = None  # default: <cache_dir>/timing_<gpu>_<trt>.cache
    # geometry profile overrides: (min, opt, max) for P (points) and K (intervals)
    points: tuple[int, int, int] | None = None
    intervals: tuple[int, int, int] | None = None
    builder_optimization_level: int = 3
    plugin_library: Path | None = None  # default: trt_plugins.plugin_library_path()

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be fp32|fp16|int8, not {self.precision!r}")
        self.cache_dir = Path(self.cache_dir)


@dataclass(frozen=True)
class EngineTarget:
    """What an engine is only valid for: this TensorRT on this GPU."""

    trt_version: str
    gpu_name: str
    compute_capability: str  # "8.7" (Orin), "9.0" (H100/H200), ...

    def slug(self) -> str:
        gpu = re.sub(r"[^A-Za-z0-9]+", "-", self.gpu_name).strip("-").lower() or "gpu"
        return f"{gpu}_sm{self.compute_capability.replace('.', '')}_trt{self.trt_version}"


def current_target(trt_version: str, device: int = 0) -> EngineTarget:
    """EngineTarget of CUDA device ``device`` (raises RuntimeError without a GPU)."""

    if not torch.cuda.is_available():
        raise RuntimeError("no CUDA GPU visible: TensorRT engines are built and run on the GPU")
    major, minor = torch.cuda.get_device_capability(device)
    return EngineTarget(trt_version, torch.cuda.get_device_name(device), f"{major}.{minor}")


def plugin_fingerprint(library: Path) -> dict[str, str]:
    """Hashes of what the BevPool plugin is made of: kernel + plugin sources and the built .so."""

    # Read through the module at call time (a rebuilt .cu, or a test's copy, changes the key).
    sources = bev_pool_cuda.KERNEL_SOURCE.read_bytes() + bev_pool_cuda.TRT_PLUGIN_SOURCE.read_bytes()
    src = hashlib.sha256(sources).hexdigest()
    return {"kernel_source": src, "plugin_library": trt_plugins.file_sha256(library)}


def engine_cache_key(onnx_bytes: bytes, target: EngineTarget, cfg: EngineConfig,
                     plugin: dict[str, str]) -> str:
    h = hashlib.sha256()
    h.update(onnx_bytes)
    meta = {"target": asdict(target), "plugin": plugin, "precision": cfg.precision,
            "points": cfg.points, "intervals": cfg.intervals, "opt_level": cfg.builder_optimization_level,
            "workspace_gb": cfg.workspace_gb}
    h.update(json.dumps(meta, sort_keys=True).encode())
    return h.hexdigest()[:24]


def timing_cache_path(cfg: EngineConfig, target: EngineTarget) -> Path:
    """One timing cache per GPU + TensorRT version (TensorRT rejects or mis-times another's)."""
    return cfg.timing_cache or cfg.cache_dir / f"timing_{target.slug()}.cache"


def _metadata(onnx_model: Any) -> dict[str, str]:
    return {p.key: p.value for p in onnx_model.metadata_props}


def geometry_profile(onnx_model: Any, cfg: EngineConfig) -> dict[str, tuple[int, int, int]]:
    """(min, opt, max) of the dynamic dim of each geometry input of the ONNX.

    P_max / K_max come from the exporter's metadata; an ONNX without it needs EngineConfig.points
    (and optionally .intervals). Never reads the shape of a tensor inside the graph.
    """
    inputs = {i.name for i in onnx_model.graph.input}
    missing = [n for n in GEOMETRY_INPUTS if n not in inputs]
    if missing:
        raise ValueError(f"ONNX lacks the geometry inputs {missing} (not exported by imkd_ros?)")
    meta = _metadata(onnx_model)
    if cfg.points is not None:
        p_max = cfg.points[2]
    elif META_POINTS_MAX in meta:
        p_max = int(meta[META_POINTS_MAX])
    else:
        raise ValueError(f"the ONNX has no {META_POINTS_MAX} metadata (export it with `imkd export`), "
                         "so pass EngineConfig.points=(min, opt, max)")
    if cfg.intervals is not None:
        k_max = cfg.intervals[2]
    elif META_INTERVALS_MAX in meta:
        k_max = min(p_max, int(meta[META_INTERVALS_MAX]))
    else:
        k_max = p_max
    if p_max < 1 or k_max < 1:
        raise ValueError(f"bad geometry bounds P_max={p_max}, K_max={k_max}")
    points = cfg.points or (1, max(1, p_max // 2), p_max)
    intervals = cfg.intervals or (1, max(1, k_max // 2), k_max)
    for name, (lo, opt, hi) in (("points", points), ("intervals", intervals)):
        if not 1 <= lo <= opt <= hi:
            raise ValueError(f"{name} profile must be 1 <= min <= opt <= max, got {(lo, opt, hi)}")
    return {name: points if name.startswith("ranks") else intervals for name in GEOMETRY_INPUTS}


def has_qdq(onnx_model: Any) -> bool:
    return any(n.op_type in QDQ_OPS for n in onnx_model.graph.node)


def check_precision(onnx_model: Any, precision: str) -> None:
    """Raise UnsupportedPrecisionError when ``precision`` cannot come from this ONNX."""
    if precision == "int8" and not has_qdq(onnx_model):
        raise UnsupportedPrecisionError(
            "int8 needs an explicitly quantized ONNX (QuantizeLinear/DequantizeLinear nodes, e.g. "
            "from NVIDIA ModelOpt on the fp32 export); this ONNX has none and imkd_ros does not make "
            "one. Implicit int8 calibration is not supported (deprecated in TensorRT 10, removed in 11)")
    exported = _metadata(onnx_model).get(META_PRECISION)
    if precision == "fp16" and exported == "fp32":
        raise UnsupportedPrecisionError(
            "fp16 engine from an fp32 ONNX: the network is strongly typed, so export with "
            "--precision fp16 (autocast, index math kept fp32)")


def build_engine(onnx_path: str | Path, cfg: EngineConfig, target: EngineTarget | None = None) -> bytes:
    """Parse the ONNX (BevPool -> our plugin) and build a serialized strongly typed engine."""
    import onnx  # noqa: PLC0415  (optional: onnx only to build an engine)

    trt_version = require_tensorrt()
    import tensorrt as trt  # noqa: PLC0415  (optional: TensorRT)

    target = target or current_target(trt_version)

    model = onnx.load(str(onnx_path), load_external_data=False)
    check_precision(model, cfg.precision)
    shapes = geometry_profile(model, cfg)

    logger = trt.Logger(trt.Logger.WARNING)
    trt_plugins.init_plugins(trt, logger, cfg.plugin_library)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise RuntimeError("TensorRT could not parse the ONNX:\n" + "\n".join(errors))

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(cfg.workspace_gb * (1 << 30)))
    config.builder_optimization_level = cfg.builder_optimization_level
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in shapes.items():
        profile.set_shape(name, trt.Dims([lo]), trt.Dims([opt]), trt.Dims([hi]))
    config.add_optimization_profile(profile)

    timing_path = timing_cache_path(cfg, target)
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
                        target: EngineTarget | None = None) -> Path:
    """The cached engine for this ONNX / plugin / TensorRT / GPU / config; built if missing."""
    cfg = cfg or EngineConfig()
    trt_version = require_tensorrt()
    target = target or current_target(trt_version)
    library = Path(cfg.plugin_library) if cfg.plugin_library else trt_plugins.plugin_library_path()
    plugin = plugin_fingerprint(library)
    onnx_bytes = Path(onnx_path).read_bytes()
    key = engine_cache_key(onnx_bytes, target, cfg, plugin)
    engine_path = cfg.cache_dir / f"imkd_{key}.engine"
    if engine_path.exists():
        log.info("TensorRT engine cache hit: %s", engine_path)
        return engine_path
    log.info("TensorRT engine cache miss (%s, %s): building", target.slug(), cfg.precision)
    build_cfg = EngineConfig(**{**asdict(cfg), "plugin_library": library})
    data = build_engine(onnx_path, build_cfg, target)
    cfg.cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = engine_path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(engine_path)
    meta = {"onnx": str(onnx_path), "target": asdict(target), "plugin": plugin, **asdict(build_cfg)}
    engine_path.with_suffix(".json").write_text(json.dumps(meta, default=str, indent=1))
    return engine_path


def student_hash(student: Student) -> str:
    """Weights + config of a student: names its ONNX files in the engine cache."""
    h = hashlib.sha256(repr(student.cfg.to_dict()).encode())
    for name, t in student.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def student_onnx_path(cache_dir: Path, student: Student, precision: str) -> Path:
    """Where `imkd export --format engine` leaves the student's ONNX and the runtime finds it.

    int8 reads ``student_<hash>_int8.onnx``, an explicitly quantized (Q/DQ) ONNX the user puts
    there (e.g. ModelOpt applied to the fp32 one).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be fp32|fp16|int8, not {precision!r}")
    return Path(cache_dir) / f"student_{student_hash(student)}_{precision}.onnx"
