"""``imkd::bev_pool`` in ONNX: one custom-domain ``BevPool`` node that TensorRT maps to our plugin.

The node carries what TensorRT's ONNX parser needs to find the plugin: op_type = plugin name
("BevPool"), a ``plugin_namespace`` attribute ("imkd"), ``plugin_version`` ("1") and ``aot``
(1 = use the plugin's ahead-of-time PTX kernel, see imkd_ros/export/trt_plugin.py). The per-
calibration geometry (ranks_depth/feat/bev, interval_starts/lengths) are graph inputs that feed
the node, so one engine serves every calibration with the same point-count bounds.

For checking the ONNX on CPU, ``to_ort_contrib`` copies the model into the domain that
onnxruntime-extensions serves Python ops from (``ai.onnx.contrib``), and
``register_ort_bev_pool`` implements ``BevPool`` there with the PyTorch CPU op.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import onnx

DOMAIN = "imkd"
OP_TYPE = "BevPool"
OPSET_VERSION = 1
PLUGIN_NAMESPACE = "imkd"
PLUGIN_NAME = OP_TYPE
PLUGIN_VERSION = "1"
PLUGIN_ID = f"{PLUGIN_NAMESPACE}::{PLUGIN_NAME}"  # tensorrt.plugin id
ORT_CONTRIB_DOMAIN = "ai.onnx.contrib"
# attributes only TensorRT reads (the op's own attributes are batch / bev_h / bev_w)
TRT_ONLY_ATTRS = ("plugin_namespace", "plugin_version", "aot")
GEOMETRY_INPUTS = ("ranks_depth", "ranks_feat", "ranks_bev", "interval_starts", "interval_lengths")

_SCHEMA_REGISTERED = False


def register_schema() -> None:
    """Register imkd::BevPool v1 with onnx (needed by onnxscript to emit the node); idempotent."""
    global _SCHEMA_REGISTERED
    if _SCHEMA_REGISTERED:
        return
    import onnx
    from onnx.defs import OpSchema

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
            attr("aot", at.INT, "TensorRT: use the AOT (PTX) implementation", required=False),
        ],
    )
    try:
        onnx.defs.register_schema(schema)
    except Exception as exc:  # already registered by another import path
        if "already" not in str(exc).lower():
            raise
    _SCHEMA_REGISTERED = True


def custom_translation_table(aot: bool = True) -> dict[Any, Any]:
    """``custom_translation_table`` for torch.onnx.export(dynamo=True): bev_pool -> BevPool."""
    import onnxscript
    import torch

    import imkd_ros.ops.bev_pool  # noqa: F401  (defines torch.ops.imkd.bev_pool)

    register_schema()
    opset = onnxscript.values.Opset(DOMAIN, OPSET_VERSION)

    def bev_pool_to_onnx(depth, feat, ranks_depth, ranks_feat, ranks_bev, interval_starts,
                         interval_lengths, batch: int, bev_h: int, bev_w: int):
        return opset.BevPool(
            depth, feat, ranks_depth, ranks_feat, ranks_bev, interval_starts, interval_lengths,
            batch=batch, bev_h=bev_h, bev_w=bev_w, plugin_namespace=PLUGIN_NAMESPACE,
            plugin_version=PLUGIN_VERSION, aot=int(aot),
        )

    return {torch.ops.imkd.bev_pool.default: bev_pool_to_onnx}


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


def to_ort_contrib(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy with BevPool moved to ai.onnx.contrib and TensorRT-only attributes dropped."""
    import onnx

    out = copy.deepcopy(model)
    for node in out.graph.node:
        if node.op_type == OP_TYPE and node.domain == DOMAIN:
            node.domain = ORT_CONTRIB_DOMAIN
            keep = [a for a in node.attribute if a.name not in TRT_ONLY_ATTRS]
            del node.attribute[:]
            node.attribute.extend(keep)
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
    from onnxruntime_extensions import PyCustomOpDef, get_library_path, onnx_op

    if not _ORT_REGISTERED:
        import numpy as np
        import torch

        import imkd_ros.ops.bev_pool  # noqa: F401

        i32 = PyCustomOpDef.dt_int32

        @onnx_op(
            op_type=OP_TYPE,
            inputs=[PyCustomOpDef.dt_float, PyCustomOpDef.dt_float, i32, i32, i32, i32, i32],
            outputs=[PyCustomOpDef.dt_float],
            attrs={"batch": PyCustomOpDef.dt_int64, "bev_h": PyCustomOpDef.dt_int64,
                   "bev_w": PyCustomOpDef.dt_int64},
        )
        def _bev_pool_ort(depth, feat, rd, rf, rb, st, ln, batch=1, bev_h=1, bev_w=1):
            t = [torch.from_numpy(np.ascontiguousarray(a)) for a in (depth, feat, rd, rf, rb, st, ln)]
            out = torch.ops.imkd.bev_pool(*t, int(batch), int(bev_h), int(bev_w))
            return out.numpy()

        _ORT_REGISTERED = True
    return get_library_path()


def ort_session(model: onnx.ModelProto | str, threads: int = 1) -> Any:
    """onnxruntime CPU session for an exported model, BevPool served by the Python op."""
    import onnx
    import onnxruntime as ort

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
