"""Op-level export: torch.export keeps imkd::bev_pool as one node, ONNX has one BevPool node with
the TensorRT plugin attributes and dynamic geometry inputs, and onnxruntime matches PyTorch."""

from __future__ import annotations

from pathlib import Path

import onnx
import torch

from imkd_ros.export import onnx_ops
from imkd_ros.export.exporter import (
    bev_pool_op_spec,
    count_bev_pool_nodes,
    export_onnx,
    export_program,
    onnx_max_abs_diff,
    save_pt2,
)
from imkd_ros.ops import BevGrid, compute_bev_pool_geometry

GRID = BevGrid(x_min=-6, x_max=6, y_min=-6, y_max=6, resolution=1.0)


def _inputs(seed: int, spread: float = 16.0, batch: int = 2, n_cam: int = 3, d: int = 8,
            h: int = 4, w: int = 6, c: int = 5):
    g = torch.Generator().manual_seed(seed)
    pts = (torch.rand(batch * n_cam, d, h, w, 3, generator=g) - 0.5) * torch.tensor([spread, spread, 6.0])
    geom = compute_bev_pool_geometry(pts, GRID, batch)
    depth = torch.rand(batch * n_cam, d, h, w, generator=g).softmax(1)
    feat = torch.randn(batch * n_cam, h, w, c, generator=g)
    return depth, feat, geom


def test_torch_export_keeps_one_node_and_roundtrips(tmp_path: Path) -> None:
    depth, feat, geom = _inputs(0)
    spec = bev_pool_op_spec(depth, feat, geom)
    program = save_pt2(spec, tmp_path / "bev_pool.pt2")
    assert count_bev_pool_nodes(program) == 1
    loaded = torch.export.load(str(tmp_path / "bev_pool.pt2"))
    depth2, feat2, geom2 = _inputs(1, spread=14.0)  # another calibration: another point count
    assert geom2.num_points != geom.num_points
    got = loaded.module()(depth2, feat2, *geom2.tensors())
    ref = torch.ops.imkd.bev_pool(depth2, feat2, *geom2.tensors(), geom2.batch, geom2.bev_h, geom2.bev_w)
    assert torch.equal(got, ref)


def test_onnx_has_trt_plugin_node_and_matches_pytorch(tmp_path: Path) -> None:
    depth, feat, geom = _inputs(0)
    spec = bev_pool_op_spec(depth, feat, geom)
    model = export_onnx(spec, tmp_path / "bev_pool.onnx", program=export_program(spec))
    onnx.checker.check_model(model)
    (node,) = onnx_ops.bev_pool_nodes(model)
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert node.domain == "imkd" and node.op_type == "BevPool"
    assert attrs["plugin_namespace"] == b"imkd" and attrs["plugin_version"] == b"1"
    assert set(attrs) == {"batch", "bev_h", "bev_w", "plugin_namespace", "plugin_version"}
    assert (attrs["batch"], attrs["bev_h"], attrs["bev_w"]) == (geom.batch, geom.bev_h, geom.bev_w)
    assert list(node.input)[2:] == ["ranks_depth", "ranks_feat", "ranks_bev", "interval_starts",
                                    "interval_lengths"]
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
            for i in model.graph.input}
    assert dims["ranks_bev"] == ["num_points"] and dims["interval_lengths"] == ["num_intervals"]
    # same calibration, then another one through the same ONNX
    diff = onnx_max_abs_diff(model, spec)["bev"]
    depth2, feat2, geom2 = _inputs(3, spread=20.0)
    diff2 = onnx_max_abs_diff(model, spec, (depth2, feat2, *geom2.tensors()))["bev"]
    print(f"op-level ONNX vs PyTorch max|diff|: {diff:.3g} (calib A), {diff2:.3g} (calib B)")
    assert diff < 1e-5 and diff2 < 1e-5


def test_ort_copy_moves_domain_and_drops_trt_attrs() -> None:
    depth, feat, geom = _inputs(0)
    model = export_onnx(bev_pool_op_spec(depth, feat, geom))
    contrib = onnx_ops.to_ort_contrib(model)
    (node,) = [n for n in contrib.graph.node if n.op_type == "BevPool"]
    assert node.domain == "ai.onnx.contrib"
    assert {a.name for a in node.attribute} == {"batch", "bev_h", "bev_w"}
    assert onnx_ops.bev_pool_nodes(model)  # the original is untouched


def test_op_onnx_carries_the_engine_profile_bounds() -> None:
    depth, feat, geom = _inputs(0)
    model = export_onnx(bev_pool_op_spec(depth, feat, geom))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["imkd.points_max"] == str(depth.numel())
    assert int(meta["imkd.intervals_max"]) == min(depth.numel(), geom.batch * geom.bev_h * geom.bev_w)


def test_fp16_op_onnx_runs_in_ort_through_casts() -> None:
    depth, feat, geom = _inputs(4)
    spec = bev_pool_op_spec(depth.half(), feat.half(), geom)
    model = export_onnx(spec)
    contrib = onnx_ops.to_ort_contrib(model)
    assert [n.op_type for n in contrib.graph.node] == ["Cast", "Cast", "BevPool", "Cast"]
    diff = onnx_max_abs_diff(model, spec)["bev"]
    assert diff < 1e-2
