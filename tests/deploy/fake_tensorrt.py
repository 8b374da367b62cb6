"""A stand-in ``tensorrt`` module that records every call (TensorRT cannot be installed here).

It is put into ``sys.modules["tensorrt"]`` at the seam, so our engine build / plugin / runner code
runs unchanged up to and through each TensorRT call; the test then checks what we asked TensorRT
to do (flags, profile shapes, plugin loading order). TensorRT's own behaviour is not modelled.
"""

from __future__ import annotations

import importlib.machinery
import types
from enum import IntEnum
from pathlib import Path
from typing import Any

from imkd_ros.runtime import trt_plugins


class FakeTensorRT(types.ModuleType):
    def __init__(self, version: str = "10.3.0") -> None:
        super().__init__("tensorrt")
        self.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)  # find_spec() callers
        self.__version__ = version
        self.calls: list[tuple[str, Any]] = []
        self.loaded_libraries: list[str] = []
        self.profiles: list[dict[str, tuple[Any, Any, Any]]] = []
        self.network_flags: list[int] = []
        self.builder_flags: list[Any] = []
        self.parsed: list[str] = []
        fake = self

        class Logger:
            WARNING = 2

            def __init__(self, severity: int = 2) -> None:
                fake.calls.append(("Logger", severity))

        class NetworkDefinitionCreationFlag(IntEnum):
            EXPLICIT_BATCH = 0
            STRONGLY_TYPED = 1

        class MemoryPoolType(IntEnum):
            WORKSPACE = 0

        class BuilderFlag(IntEnum):  # TensorRT 10 still has FP16/INT8; strongly typed must not set them
            FP16 = 0
            INT8 = 1

        class Dims(tuple):
            pass

        class Registry:
            def load_library(self, path: str) -> object:
                fake.calls.append(("load_library", path))
                fake.loaded_libraries.append(path)
                return object()

        class Profile:
            def __init__(self) -> None:
                self.shapes: dict[str, tuple[Any, Any, Any]] = {}
                fake.profiles.append(self.shapes)

            def set_shape(self, name: str, lo: Any, opt: Any, hi: Any) -> None:
                self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))

        class TimingCache:
            def serialize(self) -> bytes:
                return b"timing"

        class Config:
            def __init__(self) -> None:
                self.builder_optimization_level = 0
                self._timing = TimingCache()

            def set_memory_pool_limit(self, pool: Any, size: int) -> None:
                fake.calls.append(("set_memory_pool_limit", size))

            def set_flag(self, flag: Any) -> None:
                fake.builder_flags.append(flag)

            def add_optimization_profile(self, profile: Profile) -> int:
                return 0

            def create_timing_cache(self, data: bytes) -> TimingCache:
                fake.calls.append(("create_timing_cache", bytes(data)))
                return self._timing

            def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool) -> bool:
                return True

            def get_timing_cache(self) -> TimingCache:
                return self._timing

        class Network:
            pass

        class Builder:
            def __init__(self, logger: Logger) -> None:
                fake.calls.append(("Builder", None))

            def create_network(self, flags: int) -> Network:
                fake.network_flags.append(flags)
                return Network()

            def create_builder_config(self) -> Config:
                return Config()

            def create_optimization_profile(self) -> Profile:
                return Profile()

            def build_serialized_network(self, network: Network, config: Config) -> bytes:
                fake.calls.append(("build_serialized_network", None))
                return b"FAKE-ENGINE"

        class OnnxParser:
            num_errors = 0

            def __init__(self, network: Network, logger: Logger) -> None:
                pass

            def parse_from_file(self, path: str) -> bool:
                fake.calls.append(("parse_from_file", path))
                fake.parsed.append(path)
                return True

        class Runtime:
            def __init__(self, logger: Logger) -> None:
                pass

            def deserialize_cuda_engine(self, data: bytes) -> object:
                fake.calls.append(("deserialize_cuda_engine", bytes(data)))
                return object()

        self.Logger = Logger
        self.NetworkDefinitionCreationFlag = NetworkDefinitionCreationFlag
        self.MemoryPoolType = MemoryPoolType
        self.BuilderFlag = BuilderFlag
        self.Dims = Dims
        self.Builder = Builder
        self.OnnxParser = OnnxParser
        self.Runtime = Runtime
        self._registry = Registry()

    def init_libnvinfer_plugins(self, logger: Any, namespace: str) -> bool:
        self.calls.append(("init_libnvinfer_plugins", namespace))
        return True

    def get_plugin_registry(self) -> Any:
        return self._registry

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


def install(monkeypatch: Any, version: str = "10.3.0") -> FakeTensorRT:
    """Put a fresh FakeTensorRT into sys.modules and forget loaded plugin libraries."""

    fake = FakeTensorRT(version)
    monkeypatch.setitem(__import__("sys").modules, "tensorrt", fake)
    monkeypatch.setattr(trt_plugins, "_LOADED", {})
    return fake


def fake_plugin_library(tmp: Path, content: bytes = b"\x7fELF fake plugin") -> Path:
    path = tmp / "libimkd_trt_plugins.so"
    path.write_bytes(content)
    return path
