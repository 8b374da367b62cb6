"""Run a serialized TensorRT engine on torch CUDA buffers (execute_async_v3, optional CUDA graph).

Inputs are bound by name to torch tensors (moved to the engine's device and dtype), outputs are
torch tensors allocated from the shapes TensorRT resolves after ``set_input_shape``. With
``cuda_graph=True`` the first run for a given set of input shapes is captured into a CUDA graph
(inputs are copied into static buffers), later runs with the same shapes just replay it: the
geometry's point count only changes with calibration, so replays are the common case.

Every deserialisation goes through ``load_engine``, which registers libnvinfer_plugin's creators
and our plugin library first (trt_plugins.init_plugins): an engine built from our ONNX references
both, and a fresh process (every restart) has neither registered. No nvcc, no Python plugin code.

UNVERIFIED: written to the TensorRT 10.x Python API and type-checked against tensorrt-stubs
(tools/typecheck.sh); never run with a real TensorRT or GPU. ``load_engine`` is exercised by
tests/deploy/test_engine_build.py against a fake ``tensorrt`` module.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from imkd_ros.runtime.engine import require_tensorrt
from imkd_ros.runtime.trt_plugins import init_plugins

log = logging.getLogger(__name__)


def torch_dtype(dtype: Any) -> torch.dtype:
    """torch dtype of a tensorrt.DataType."""
    import tensorrt as trt  # noqa: PLC0415  (optional: TensorRT)

    table: dict[Any, torch.dtype] = {
        trt.DataType.FLOAT: torch.float32,
        trt.DataType.HALF: torch.float16,
        trt.DataType.INT32: torch.int32,
        trt.DataType.INT64: torch.int64,
        trt.DataType.INT8: torch.int8,
        trt.DataType.BOOL: torch.bool,
        trt.DataType.BF16: torch.bfloat16,
    }
    return table[dtype]


def load_engine(engine_path: str | Path, plugin_library: str | Path | None = None) -> tuple[Any, Any, Any]:
    """(logger, runtime, engine): plugins registered, then the engine deserialised."""
    require_tensorrt()
    import tensorrt as trt  # noqa: PLC0415  (optional: TensorRT)

    logger = trt.Logger(trt.Logger.WARNING)
    init_plugins(trt, logger, plugin_library)  # before every deserialisation, in every process
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
    if engine is None:
        raise RuntimeError(f"could not deserialize TensorRT engine {engine_path} (built for another "
                           "TensorRT version / GPU, or a plugin missing? see the TensorRT log)")
    return logger, runtime, engine


class TensorRTRunner:
    """One engine + one execution context on one CUDA device."""

    def __init__(self, engine_path: str | Path, device: int = 0, cuda_graph: bool = False,
                 plugin_library: str | Path | None = None) -> None:
        if not torch.cuda.is_available():
            raise RuntimeError("TensorRT runner needs a CUDA GPU visible to torch")
        import tensorrt as trt  # noqa: PLC0415  (optional: TensorRT)

        self.device = torch.device("cuda", device)
        with torch.cuda.device(self.device):
            self.logger, self.runtime, self.engine = load_engine(engine_path, plugin_library)
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.input_names = [n for n in names if is_input[n]]
        self.output_names = [n for n in names if not is_input[n]]
        self.dtypes = {n: torch_dtype(self.engine.get_tensor_dtype(n)) for n in names}
        self.cuda_graph = cuda_graph
        self.stream = torch.cuda.Stream(self.device)
        self._graph: torch.cuda.CUDAGraph | None = None
        self._graph_shapes: tuple[tuple[int, ...], ...] | None = None
        self._static_in: dict[str, torch.Tensor] = {}
        self._static_out: dict[str, torch.Tensor] = {}

    def _bind(self, feeds: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        for name in self.input_names:
            t = feeds[name]
            if not self.context.set_input_shape(name, tuple(t.shape)):
                raise ValueError(f"TensorRT rejected shape {tuple(t.shape)} for input {name} (outside the profile?)")
            self.context.set_tensor_address(name, int(t.data_ptr()))
        outs = {}
        for name in self.output_names:
            dims = self.context.get_tensor_shape(name)
            shape = tuple(int(dims[i]) for i in range(len(dims)))
            outs[name] = torch.empty(shape, dtype=self.dtypes[name], device=self.device)
            self.context.set_tensor_address(name, int(outs[name].data_ptr()))
        return outs

    def _prepare(self, feeds: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise KeyError(f"missing engine inputs: {missing}")
        return {n: feeds[n].to(self.device, self.dtypes[n]).contiguous() for n in self.input_names}

    def infer(self, feeds: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Run once; returns the outputs (on the engine's device), synchronised with the caller."""
        inputs = self._prepare(feeds)
        caller = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(caller)
        with torch.cuda.stream(self.stream):
            if self.cuda_graph:
                outs = self._run_graph(inputs)
            else:
                outs = self._bind(inputs)
                if not self.context.execute_async_v3(self.stream.cuda_stream):
                    raise RuntimeError("TensorRT execute_async_v3 failed")
        caller.wait_stream(self.stream)
        for t in (*inputs.values(), *outs.values()):
            t.record_stream(caller)
        return outs

    def _run_graph(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        shapes = tuple(tuple(inputs[n].shape) for n in self.input_names)
        if self._graph is None or shapes != self._graph_shapes:
            self._static_in = {n: t.clone() for n, t in inputs.items()}
            self._static_out = self._bind(self._static_in)
            # one plain run first: TensorRT does lazy setup on the first enqueue for new shapes
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError("TensorRT execute_async_v3 failed")
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=self.stream):
                self.context.execute_async_v3(self.stream.cuda_stream)
            self._graph, self._graph_shapes = graph, shapes
            log.info("captured TensorRT CUDA graph for shapes %s", shapes)
        for n, t in inputs.items():
            self._static_in[n].copy_(t, non_blocking=True)
        self._graph.replay()
        return {n: t.clone() for n, t in self._static_out.items()}
