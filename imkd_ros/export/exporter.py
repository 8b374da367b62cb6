"""torch.export / ONNX export of anything that calls ``imkd::bev_pool``, with checks.

An ``ExportSpec`` names a module, example inputs (flat tensors: images, calibration, radar and
the five geometry tensors) and which input dims are dynamic (the geometry's point count P and
interval count K change with calibration). ``export_program`` keeps the custom op as one node;
``export_onnx`` turns it into one ``imkd::BevPool`` node (imkd_ros/export/onnx_ops.py);
``onnx_max_abs_diff`` runs the ONNX with onnxruntime on CPU (BevPool in Python) against PyTorch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import Tensor, nn

import imkd_ros.ops.bev_pool  # noqa: F401
from imkd_ros.export import onnx_ops
from imkd_ros.ops.bev_pool_geometry import BevPoolGeometry

log = logging.getLogger(__name__)

NUM_POINTS = "num_points"
NUM_INTERVALS = "num_intervals"


@dataclass
class ExportSpec:
    """What to export: module(*args) with named inputs/outputs and dynamic geometry dims."""

    module: nn.Module
    args: tuple[Tensor, ...]
    input_names: list[str]
    output_names: list[str]
    # input name -> {dim: torch.export.Dim}; geometry inputs get P / K automatically
    dynamic: dict[str, dict[int, Any]] = field(default_factory=dict)
    # ONNX metadata_props (imkd.points_max / imkd.intervals_max: the engine's profile bounds)
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.args) != len(self.input_names):
            raise ValueError(f"{len(self.args)} args but {len(self.input_names)} input names")
        points = torch.export.Dim(NUM_POINTS, min=2)
        intervals = torch.export.Dim(NUM_INTERVALS, min=2)
        for name in self.input_names:
            if name in ("ranks_depth", "ranks_feat", "ranks_bev"):
                self.dynamic.setdefault(name, {0: points})
            elif name in ("interval_starts", "interval_lengths"):
                self.dynamic.setdefault(name, {0: intervals})

    def dynamic_shapes(self) -> tuple[Any, ...]:
        return tuple(self.dynamic.get(n) for n in self.input_names)

    def feeds_tensors(self, args: Sequence[Tensor] | None = None) -> dict[str, Tensor]:
        args = self.args if args is None else args
        return dict(zip(self.input_names, args))

    def feeds(self, args: Sequence[Tensor] | None = None) -> dict[str, Any]:
        args = self.args if args is None else args
        return {n: a.detach().cpu().numpy() for n, a in zip(self.input_names, args)}


class BevPoolModule(nn.Module):
    """Just the op: the op-level export (what the TensorRT plugin replaces)."""

    def __init__(self, batch: int, bev_h: int, bev_w: int) -> None:
        super().__init__()
        self.batch, self.bev_h, self.bev_w = batch, bev_h, bev_w

    def forward(self, depth: Tensor, feat: Tensor, ranks_depth: Tensor, ranks_feat: Tensor,
                ranks_bev: Tensor, interval_starts: Tensor, interval_lengths: Tensor) -> Tensor:
        return torch.ops.imkd.bev_pool(depth, feat, ranks_depth, ranks_feat, ranks_bev,
                                       interval_starts, interval_lengths, self.batch, self.bev_h,
                                       self.bev_w)


def bev_pool_op_spec(depth: Tensor, feat: Tensor, geometry: BevPoolGeometry) -> ExportSpec:
    from imkd_ros.export.student import META_INTERVALS_MAX, META_POINTS_MAX, META_PRECISION  # noqa: PLC0415  (cycle: export.student imports exporter)

    p_max = depth.numel()
    meta = {META_POINTS_MAX: str(p_max),
            META_INTERVALS_MAX: str(min(p_max, geometry.batch * geometry.bev_h * geometry.bev_w)),
            META_PRECISION: "fp16" if feat.dtype == torch.float16 else "fp32"}
    return ExportSpec(
        BevPoolModule(geometry.batch, geometry.bev_h, geometry.bev_w),
        (depth, feat, *geometry.tensors()),
        ["depth", "feat", "ranks_depth", "ranks_feat", "ranks_bev", "interval_starts",
         "interval_lengths"],
        ["bev"],
        metadata=meta,
    )


def export_program(spec: ExportSpec) -> torch.export.ExportedProgram:
    """torch.export with the geometry dims dynamic; bev_pool stays one node."""

    spec.module.eval()
    with torch.no_grad():
        return torch.export.export(spec.module, spec.args, dynamic_shapes=spec.dynamic_shapes(),
                                   strict=False)


def count_bev_pool_nodes(program: torch.export.ExportedProgram) -> int:
    target = torch.ops.imkd.bev_pool.default
    return sum(1 for n in program.graph.nodes if n.op == "call_function" and n.target is target)


def save_pt2(spec: ExportSpec, path: str | Path) -> torch.export.ExportedProgram:
    program = export_program(spec)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, str(path))
    return program


def export_onnx(spec: ExportSpec, path: str | Path | None = None,
                program: torch.export.ExportedProgram | None = None) -> Any:
    """ONNX (opset 20 + imkd::BevPool v1) via the dynamo exporter; returns the ModelProto.

    ``spec.metadata`` goes into metadata_props (the engine builder reads the profile bounds).
    """

    program = program or export_program(spec)
    onnx_program = torch.onnx.export(
        program, spec.args, dynamo=True, custom_translation_table=onnx_ops.custom_translation_table(),
        input_names=list(spec.input_names), output_names=list(spec.output_names), verbose=False,
    )
    if onnx_program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    model = onnx_program.model_proto
    onnx_ops.rename_dynamic_dims(model, {
        "ranks_depth": NUM_POINTS, "ranks_feat": NUM_POINTS, "ranks_bev": NUM_POINTS,
        "interval_starts": NUM_INTERVALS, "interval_lengths": NUM_INTERVALS,
    })
    nodes = onnx_ops.bev_pool_nodes(model)
    if not nodes:
        raise RuntimeError("exported ONNX has no imkd::BevPool node")
    for key, value in spec.metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(path))
    return model


def _flatten_outputs(out: Any) -> list[Tensor]:
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, dict):
        return [v for v in out.values()]
    return list(out)


def onnx_max_abs_diff(model: Any, spec: ExportSpec, args: Sequence[Tensor] | None = None,
                      threads: int = 1) -> dict[str, float]:
    """Max |ONNX (onnxruntime CPU) - PyTorch| per output for ``args`` (default: spec.args)."""

    args = tuple(spec.args if args is None else args)
    session = onnx_ops.ort_session(model, threads=threads)
    got = session.run(list(spec.output_names), spec.feeds(args))
    spec.module.eval()
    with torch.no_grad():
        ref = _flatten_outputs(spec.module(*args))
    diffs = {}
    for name, g, r in zip(spec.output_names, got, ref):
        r_np = r.detach().float().cpu().numpy()
        if g.shape != r_np.shape:
            raise AssertionError(f"output {name}: ONNX shape {g.shape} != torch {r_np.shape}")
        diffs[name] = float(np.abs(g.astype(np.float64) - r_np.astype(np.float64)).max()) if g.size else 0.0
    return diffs
