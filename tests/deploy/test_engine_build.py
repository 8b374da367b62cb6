"""The TensorRT engine path on the REAL student ONNX, through a fake ``tensorrt`` module.

Issue 13 defects 1, 2, 5 (cache key, timing cache, nvcc at run time) and int8: everything of ours
between the ONNX file and TensorRT runs here in CI; only TensorRT itself is faked (see
fake_tensorrt.py). The fp16 student ONNX is exported once for the module (~1 min on 2 CPUs).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx
import pytest
import torch

from imkd_ros.cli import main
from imkd_ros.export.exporter import export_onnx
from imkd_ros.export.student import student_spec
from imkd_ros.model import Student, load_config
from imkd_ros.model.student_io import GEOMETRY_INPUTS, example_inputs, points_max
from imkd_ros.ops import bev_pool_cuda
from imkd_ros.runtime import BackendUnavailableError
from imkd_ros.runtime import engine as engine_mod
from imkd_ros.runtime.engine import (
    EngineConfig,
    EngineTarget,
    UnsupportedPrecisionError,
    geometry_profile,
    get_or_build_engine,
)
from imkd_ros.runtime.tensorrt_backend import TensorRTBackend
from imkd_ros.runtime.trt_runner import load_engine
from tests.deploy import fake_tensorrt

ORIN = EngineTarget("10.3.0", "Orin (nvgpu)", "8.7")
H200 = EngineTarget("10.13.0", "NVIDIA H200", "9.0")


@pytest.fixture(scope="module")
def student() -> Student:
    torch.manual_seed(0)
    return Student(load_config("cpu")).eval()


@pytest.fixture(scope="module")
def student_onnx(student: Student, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "student_fp16.onnx"
    export_onnx(student_spec(student, example_inputs(student), "fp16"), path)
    return path


@pytest.fixture()
def lib(tmp_path: Path) -> Path:
    return fake_tensorrt.fake_plugin_library(tmp_path)


def _cfg(tmp_path: Path, lib: Path, precision: str = "fp16") -> EngineConfig:
    return EngineConfig(precision=precision, cache_dir=tmp_path / "engines", plugin_library=lib)


def test_geometry_profile_of_the_student_onnx(student: Student, student_onnx: Path) -> None:
    """Defect 1: the depth tensor is internal to the student graph; the bounds come from metadata."""
    model = onnx.load(str(student_onnx), load_external_data=False)
    assert "depth" not in {i.name for i in model.graph.input}
    prof = geometry_profile(model, EngineConfig())
    p_max = points_max(student, 1, 6)
    k_max = min(p_max, student.grid.ny * student.grid.nx)
    assert set(prof) == set(GEOMETRY_INPUTS)
    for name in ("ranks_depth", "ranks_feat", "ranks_bev"):
        assert prof[name] == (1, p_max // 2, p_max)
    for name in ("interval_starts", "interval_lengths"):
        assert prof[name] == (1, k_max // 2, k_max)
    del model.metadata_props[:]
    with pytest.raises(ValueError, match="EngineConfig.points"):
        geometry_profile(model, EngineConfig())
    assert geometry_profile(model, EngineConfig(points=(1, 5, 9)))["ranks_bev"] == (1, 5, 9)


def test_engine_build_on_student_onnx_loads_plugins_first_and_is_strongly_typed(
        student_onnx: Path, lib: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_tensorrt.install(monkeypatch)
    path = get_or_build_engine(student_onnx, _cfg(tmp_path, lib), target=ORIN)
    assert path.read_bytes() == b"FAKE-ENGINE"
    names = fake.names()
    assert names.index("init_libnvinfer_plugins") < names.index("parse_from_file")
    assert names.index("load_library") < names.index("parse_from_file")
    assert fake.loaded_libraries == [str(lib.resolve())]
    strongly = 1 << int(fake.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    assert fake.network_flags == [strongly] and fake.builder_flags == []  # no weak-typing FP16 flag
    (shapes,) = fake.profiles
    assert set(shapes) == set(GEOMETRY_INPUTS)
    assert all(len(lo) == 1 and lo[0] == 1 for lo, _, _ in shapes.values())
    # timing cache per GPU + TensorRT version
    assert (tmp_path / "engines" / "timing_orin-nvgpu_sm87_trt10.3.0.cache").read_bytes() == b"timing"
    # second start: cache hit, nothing rebuilt
    assert get_or_build_engine(student_onnx, _cfg(tmp_path, lib), target=ORIN) == path
    assert fake.names().count("build_serialized_network") == 1


def test_cache_key_tracks_kernel_plugin_tensorrt_and_gpu(
        student_onnx: Path, lib: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect 5: a .cu fix, a rebuilt plugin, another TensorRT or GPU never reuses a stale engine."""

    kernel = tmp_path / "bev_pool_kernel.cu"
    shutil.copyfile(bev_pool_cuda.KERNEL_SOURCE, kernel)
    monkeypatch.setattr(bev_pool_cuda, "KERNEL_SOURCE", kernel)
    fake = fake_tensorrt.install(monkeypatch)
    cfg = _cfg(tmp_path, lib)
    first = get_or_build_engine(student_onnx, cfg, target=ORIN)
    kernel.write_text(kernel.read_text() + "\n// a kernel fix\n")
    second = get_or_build_engine(student_onnx, cfg, target=ORIN)
    lib.write_bytes(lib.read_bytes() + b"rebuilt")
    third = get_or_build_engine(student_onnx, cfg, target=ORIN)
    fourth = get_or_build_engine(student_onnx, cfg, target=H200)
    assert len({first, second, third, fourth}) == 4
    assert fake.names().count("build_serialized_network") == 4
    caches = sorted(p.name for p in (tmp_path / "engines").glob("timing_*.cache"))
    assert caches == ["timing_nvidia-h200_sm90_trt10.13.0.cache", "timing_orin-nvgpu_sm87_trt10.3.0.cache"]


def test_int8_without_qdq_is_a_clear_error(student_onnx: Path, lib: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_tensorrt.install(monkeypatch)
    with pytest.raises(UnsupportedPrecisionError, match="explicitly quantized"):
        get_or_build_engine(student_onnx, _cfg(tmp_path, lib, "int8"), target=ORIN)
    assert "Builder" not in fake.names()  # refused before any TensorRT work
    model = onnx.load(str(student_onnx), load_external_data=False)
    model.graph.node.add(op_type="QuantizeLinear", input=["x", "s"], output=["q"])
    engine_mod.check_precision(model, "int8")  # a Q/DQ graph is accepted


def test_runner_registers_plugins_before_every_deserialisation(
        lib: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect 2 (restart) and 'no nvcc at run time': two fresh processes, no compiler anywhere."""

    def no_compiler(*args: object, **kwargs: object) -> None:
        raise AssertionError("the runtime must not compile anything")

    monkeypatch.setattr(bev_pool_cuda, "find_nvcc", no_compiler)
    monkeypatch.setattr(bev_pool_cuda, "build_ptx", no_compiler)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CUDA_HOME", str(tmp_path / "no-cuda"))
    engine = tmp_path / "x.engine"
    engine.write_bytes(b"FAKE-ENGINE")
    for _start in range(2):
        fake = fake_tensorrt.install(monkeypatch)  # a new process: nothing registered yet
        load_engine(engine, lib)
        names = fake.names()
        assert names.index("init_libnvinfer_plugins") < names.index("deserialize_cuda_engine")
        assert names.index("load_library") < names.index("deserialize_cuda_engine")
    # within one process the library is loaded once (TensorRT refuses a second load)
    load_engine(engine, lib)
    assert fake.names().count("load_library") == 1
    assert fake.names().count("init_libnvinfer_plugins") == 2


def test_tensorrt_backend_without_exported_onnx_names_the_command(student: Student, tmp_path: Path) -> None:
    backend = TensorRTBackend("fp16", engine_config=EngineConfig(cache_dir=tmp_path))
    with pytest.raises(BackendUnavailableError, match="imkd export --format engine"):
        backend.onnx_for(student)


def test_fp16_onnx_keeps_index_math_fp32(student_onnx: Path) -> None:
    """Defect 4: no Floor/Round/Ceil/Cast-to-int takes float16, while the network is really fp16."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(student_onnx)))
    g = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*g.input, *g.value_info, *g.output)}
    types.update({t.name: t.data_type for t in g.initializer})
    tp = onnx.TensorProto
    ints = {tp.INT8, tp.INT16, tp.INT32, tp.INT64, tp.UINT8, tp.UINT16, tp.UINT32, tp.UINT64}
    index_nodes, half_inputs = [], []
    for node in g.node:
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        if node.op_type in ("Floor", "Round", "Ceil") or (node.op_type == "Cast" and to in ints):
            index_nodes.append(node.name)
            assert node.input[0] in types, f"{node.name}: input type unknown"
            if types[node.input[0]] == tp.FLOAT16:
                half_inputs.append(f"{node.op_type} {node.name}")
    assert len(index_nodes) >= 5 and half_inputs == []
    # ... and the heavy part is half: the BevPool node and most convolutions run in fp16
    (bev,) = [n for n in g.node if n.op_type == "BevPool"]
    assert types[bev.input[0]] == types[bev.input[1]] == tp.FLOAT16
    conv_out = [types.get(n.output[0]) for n in g.node if n.op_type == "Conv"]
    assert conv_out and all(t == tp.FLOAT16 for t in conv_out)
    inputs = {i.name: i.type.tensor_type.elem_type for i in g.input}
    assert inputs["images"] == tp.FLOAT16
    assert all(inputs[k] == tp.FLOAT for k in ("intrinsics", "cam_to_ego", "img_aug", "radar"))


def test_export_engine_command_through_the_fake(lib: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """`imkd export --format engine --op-only`: ONNX -> runtime engine cache -> engine file."""

    fake = fake_tensorrt.install(monkeypatch)
    monkeypatch.setenv("IMKD_TRT_PLUGIN_LIB", str(lib))
    monkeypatch.setattr(engine_mod, "current_target", lambda version, device=0: ORIN)
    out = tmp_path / "op.engine"
    rc = main(["export", "--format", "engine", "--op-only", "--no-check", "--precision", "fp16",
               "--cache-dir", str(tmp_path / "cache"), "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert out.read_bytes() == b"FAKE-ENGINE" and fake.parsed == [str(out.with_suffix(".onnx"))]
    assert main(["export", "--format", "engine", "--precision", "int8", "--out", str(out)]) == 2
    assert "explicitly quantized" in capsys.readouterr().err
