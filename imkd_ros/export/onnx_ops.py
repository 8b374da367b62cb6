"""``imkd::bev_pool`` in ONNX: one custom-domain ``BevPool`` node that TensorRT maps to our plugin.

The node carries what TensorRT's ONNX parser needs to find the plugin: op_type = plugin name
("BevPool"), a ``plugin_namespace`` attribute ("imkd") and ``plugin_version`` ("1"); the parser
passes the op's attributes (batch, bev_h, bev_w) to the creator of our IPluginV3
(imkd_ros/ops/csrc/bev_pool_trt_plugin.cpp, loaded from libimkd_trt_plugins.so). The per-
calibration geometry (ranks_depth/feat/bev, interval_starts/lengths) are graph inputs that feed
the node, so one engine serves every calibration with the same point-count bounds.

For checking the ONNX on CPU, ``to_ort_contrib`` copies the model into the domain that
onnxruntime-extensions serves Python ops from (``ai.onnx.contrib``), and
``register_ort_bev_pool`` implements ``BevPool`` there with the PyTorch CPU op.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import onnxruntime as ort
import onnxscript
import torch
from onnx import helper
from onnx.defs import OpSchema
from onnxruntime_extensions import PyCustomOpDef, get_library_path, onnx_op

import imkd_ros.ops.bev_pool  # noqa: F401  (defines torch.ops.imkd.bev_pool)

if TYPE_CHECKING:
    import onnx

DOMAIN = "imkd"
OP_TYPE = "BevPool"
OPSET_VERSION = 1
PLUGIN_NAMESPACE = "imkd"
PLUGIN_NAME = OP_TYPE
PLUGIN_VERSION = "1"
ORT_CONTRIB_DOMAIN = "ai.onnx.contrib"
# attributes only TensorRT reads (the op's own attributes are batch / bev_h / bev_w)
TRT_ONLY_ATTRS = ("plugin_namespace", "plugin_version")

_SCHEMA_REGISTERED = False


def register_schema() -> None:
    """Register imkd::BevPool v1 with onnx (needed by onnxscript to emit the node); idempotent."""
    global _SCHEMA_REGISTERED
    if _SCHEMA_REGISTERED:
        return

    formal = OpSchema.FormalParameter
    attr = OpSchema.Attribute
    at = OpSchema.AttrType
    i32 = "tensor(int32)"
    schema = OpSchema(
        OP_TYPE,
        DOMAIN,
        OPSET_VERSION,
        doc="BEVPoolv2 sum: out[cell, c] = sum_i depth[ranks_depth[i]] * feat[ranks_feat[i], c].",
        inputs=[
            formal("depth", "T", "(B*N, D, H, W) depth probabilities"),
            formal("feat", "T", "(B*N, H, W, C) context features"),
            formal("ranks_depth", i32, "(P,) flat index into depth"),
            formal("ranks_feat", i32, "(P,) row of feat viewed as (B*N*H*W, C)"),
            formal("ranks_bev", i32, "(P,) flat BEV cell, sorted"),
            formal("interval_starts", i32, "(K,) first point of each occupied cell"),
            formal("interval_lengths", i32, "(K,) points in each occupied cell"),
        ],
        outputs=[formal("out", "T", "(batch, bev_h, bev_w, C)")],
        type_constraints=[("T", ["tensor(float)", "tensor(float16)"], "float tensors")],
        attributes=[
            attr("batch", at.INT, "output batch"),
            attr("bev_h", at.INT, "BEV rows"),
            attr("bev_w", at.INT, "BEV columns"),
            attr("plugin_namespace", at.STRING, "TensorRT plugin namespace", required=False),
            attr("plugin_version", at.STRING, "TensorRT plugin version", required=False),
        ],
    )
    try:
        onnx.defs.register_schema(schema)
    except Exception as exc:  # already registered by another import path
        if "already" not in str(exc).lower():
            raise
    _SCHEMA_REGISTERED = True


def custom_translation_table() -> dict[Any, Any]:
    """``custom_translation_table`` for torch.onnx.export(dynamo=True): bev_pool -> BevPool."""

    register_schema()
    opset = onnxscript.values.Opset(DOMAIN, OPSET_VERSION)

    def bev_pool_to_onnx(depth, feat, ranks_depth, ranks_feat, ranks_bev, interval_starts,
                         interval_lengths, batch: int, bev_h: int, bev_w: int):
        return opset.BevPool(
            depth, feat, ranks_depth, ranks_feat, ranks_bev, interval_starts, interval_lengths,
            batch=batch, bev_h=bev_h, bev_w=bev_w, plugin_namespace=PLUGIN_NAMESPACE,
            plugin_version=PLUGIN_VERSION,
        )

    return {torch.ops.imkd.bev_pool.default: bev_pool_to_onnx,
            torch.ops.aten.index_add.default: index_add_to_onnx}


def index_add_to_onnx(self, dim: int, index, source, alpha: float = 1.0):
    """aten.index_add (dim 0) as ScatterElements(reduction="add") with expanded indices.

    The default lowering is ScatterND(reduction="add"), which TensorRT's ONNX parser has handled
    poorly (reduction ignored in 8.6, onnx-tensorrt issue 957) and onnxruntime's CPU provider
    cannot run in fp16; ScatterElements with a reduction maps to TensorRT's ScatterElements plugin.
    """

    op: Any = onnxscript.opset18  # traced by the exporter; its static tensor types don't apply
    rank = len(source.shape)
    if dim != 0 or rank > 4:
        raise NotImplementedError(f"index_add export supports dim 0 and rank <= 4 (got dim {dim}, rank {rank})")
    idx = op.Cast(index, to=onnx.TensorProto.INT64)
    if rank > 1:
        axes = op.Constant(value_ints=list(range(1, rank)))
        idx = op.Expand(op.Unsqueeze(idx, axes), op.Shape(source))
    src = source if alpha == 1.0 else op.Mul(source, op.CastLike(op.Constant(value_float=alpha), source))
    return op.ScatterElements(self, idx, src, axis=0, reduction="add")


def bev_pool_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.op_type == OP_TYPE and n.domain == DOMAIN]


def rename_dynamic_dims(model: onnx.ModelProto, names: dict[str, str]) -> None:
    """Give the geometry inputs' symbolic dims readable names (num_points / num_intervals)."""
    renames: dict[str, str] = {}
    for value in model.graph.input:
        if value.name in names:
            for dim in value.type.tensor_type.shape.dim:
                if dim.dim_param:
                    renames[dim.dim_param] = names[value.name]
    for value in (*model.graph.input, *model.graph.output, *model.graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in renames:
                dim.dim_param = renames[dim.dim_param]


def _is_fp16_node(model: onnx.ModelProto, node: onnx.NodeProto) -> bool:
    feat = node.input[1]
    for graph in (model.graph, onnx.shape_inference.infer_shapes(model).graph):
        for v in (*graph.input, *graph.value_info):
            if v.name == feat:
                return bool(v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16)
    return False


def to_ort_contrib(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy with BevPool moved to ai.onnx.contrib and TensorRT-only attributes dropped.

    onnxruntime-extensions' Python ops have no float16, so an fp16 BevPool is wrapped in Casts
    (fp16 -> fp32 -> op -> fp16) in the copy.
    """

    out = copy.deepcopy(model)
    nodes = []
    for node in out.graph.node:
        if node.op_type == OP_TYPE and node.domain == DOMAIN:
            if _is_fp16_node(out, node):
                f32 = onnx.TensorProto.FLOAT
                for i in (0, 1):
                    cast_out = f"{node.input[i]}__ort_f32"
                    nodes.append(helper.make_node("Cast", [node.input[i]], [cast_out], to=f32,
                                                  name=f"{node.name}_in{i}_f32"))
                    node.input[i] = cast_out
                result = node.output[0]
                node.output[0] = f"{result}__ort_f32"
                nodes.append(node)
                nodes.append(helper.make_node("Cast", [node.output[0]], [result],
                                              to=onnx.TensorProto.FLOAT16, name=f"{node.name}_out_f16"))
            else:
                nodes.append(node)
            node.domain = ORT_CONTRIB_DOMAIN
            keep = [a for a in node.attribute if a.name not in TRT_ONLY_ATTRS]
            del node.attribute[:]
            node.attribute.extend(keep)
        else:
            nodes.append(node)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    imports = [o for o in out.opset_import if o.domain != DOMAIN]
    del out.opset_import[:]
    out.opset_import.extend(imports)
    out.opset_import.append(onnx.helper.make_opsetid(ORT_CONTRIB_DOMAIN, 1))
    return out


_ORT_REGISTERED = False


def register_ort_bev_pool() -> str:
    """Implement ai.onnx.contrib::BevPool (float32) in Python with the PyTorch CPU op.

    Returns the onnxruntime-extensions library path to pass to
    ``SessionOptions.register_custom_ops_library``.
    """
    global _ORT_REGISTERED

    if not _ORT_REGISTERED:
        i32 = PyCustomOpDef.dt_int32
        attrs = {"batch": PyCustomOpDef.dt_int64, "bev_h": PyCustomOpDef.dt_int64,
                 "bev_w": PyCustomOpDef.dt_int64}

        def _bev_pool_ort(depth, feat, rd, rf, rb, st, ln, batch=1, bev_h=1, bev_w=1):
            t = [torch.from_numpy(np.ascontiguousarray(a)) for a in (depth, feat, rd, rf, rb, st, ln)]
            out = torch.ops.imkd.bev_pool(*t, int(batch), int(bev_h), int(bev_w))
            return out.numpy()

        f32 = PyCustomOpDef.dt_float
        onnx_op(op_type=OP_TYPE, inputs=[f32, f32, i32, i32, i32, i32, i32], outputs=[f32],
                attrs=attrs)(_bev_pool_ort)

        _ORT_REGISTERED = True
    return get_library_path()


def ort_session(model: onnx.ModelProto | str, threads: int = 1) -> Any:
    """onnxruntime CPU session for an exported model, BevPool served by the Python op."""

    if isinstance(model, str):
        model = onnx.load(model)
    lib = register_ort_bev_pool()
    opts = ort.SessionOptions()
    opts.register_custom_ops_library(lib)
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(
        to_ort_contrib(model).SerializeToString(), opts, providers=["CPUExecutionProvider"]
    )
