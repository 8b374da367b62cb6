"""The TensorRT plugin definitions against a stand-in ``tensorrt.plugin`` (TensorRT cannot be
installed here): the decorated functions register under imkd::BevPool, the output shape is
(batch, bev_h, bev_w, C), and the AOT kernel named exists in the PTX with exactly the parameter
list TensorRT will pass (7 input pointers, then the int32 extra args, then 1 output pointer).

This checks our side of the ABI; TensorRT's own behaviour is only checked by `imkd doctor --gpu`.
"""

from __future__ import annotations

import re
import shutil
import sys
import types
from pathlib import Path

import pytest

from imkd_ros.export import trt_plugin

pytestmark = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed (PTX build)")


class Expr:
    """Symbolic int stand-in: keeps a readable formula."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __mul__(self, other: object) -> Expr:
        return Expr(f"({self.text}*{other})")

    def __repr__(self) -> str:
        return self.text


class ShapeExprs(list):
    @classmethod
    def from_tuple(cls, items) -> ShapeExprs:
        return cls(items)

    def numel(self) -> Expr:
        return Expr("*".join(str(x) for x in self))


class TensorDesc:
    def __init__(self, name: str, rank: int, dtype: str) -> None:
        self.shape_expr = ShapeExprs(Expr(f"{name}[{i}]") for i in range(rank))
        self.dtype = dtype


def _fake_trt() -> tuple[types.ModuleType, types.ModuleType, dict]:
    registry: dict = {}

    def deco(kind):
        def outer(plugin_id):
            def inner(fn):
                registry[(kind, plugin_id)] = fn
                return fn
            return inner
        return outer

    trtp = types.ModuleType("tensorrt.plugin")
    trtp.register, trtp.impl, trtp.aot_impl, trtp.autotune = (deco(k) for k in ("register", "impl", "aot", "autotune"))
    trtp.TensorDesc = TensorDesc
    trtp.ShapeExprs = ShapeExprs
    trtp.from_shape_expr = lambda shape, dtype: types.SimpleNamespace(shape_expr=shape, dtype=dtype)
    trtp.AutoTuneCombination = lambda spec: spec
    trtp.KernelLaunchParams = types.SimpleNamespace
    trtp.SymInt32 = lambda e: ("i32", e)
    trtp.SymIntExprs = types.SimpleNamespace(from_tuple=list)
    trtp.cdiv = lambda a, b: Expr(f"cdiv({a},{b})")
    trt = types.ModuleType("tensorrt")
    trt.float16, trt.float32 = "HALF", "FLOAT"
    trt.plugin = trtp
    return trt, trtp, registry


@pytest.mark.parametrize("dtype", ["FLOAT", "HALF"])
def test_plugin_contract(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, dtype: str) -> None:
    trt, trtp, registry = _fake_trt()
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "tensorrt.plugin", trtp)
    monkeypatch.setattr(trt_plugin, "_REGISTERED", {})
    monkeypatch.setenv("IMKD_PTX_CACHE", str(tmp_path / "ptx"))
    trt_plugin.register_bev_pool_plugin(arch="87", build_dir=tmp_path)
    pid = "imkd::BevPool"
    assert {k for k, p in registry if p == pid} == {"register", "impl", "aot", "autotune"}

    ins = [TensorDesc("depth", 4, dtype), TensorDesc("feat", 4, dtype)]
    ins += [TensorDesc(n, 1, "INT32") for n in ("rd", "rf", "rb", "st", "ln")]
    out = registry[("register", pid)](*ins, 2, 128, 128)
    assert [str(e) for e in out.shape_expr] == ["2", "128", "128", "feat[3]"] and out.dtype == dtype
    combo = registry[("autotune", pid)](*ins, [out])[0]
    assert len(combo.split(",")) == len(ins) + 1  # one type entry per input and output

    name, ptx, launch, extra = registry[("aot", pid)](*ins, 2, 128, 128, [out], 0)
    assert launch.block_x == trt_plugin.BLOCK and str(launch.grid_x).startswith("cdiv(")
    ptx_text = ptx.decode()
    assert ".target sm_87" in ptx_text
    match = re.search(rf"\.entry {name.decode()}\((.*?)\)", ptx_text, re.S)
    assert match, f"{name!r} not in PTX"
    params = re.findall(r"\.param \.(u64|u32)", match.group(1))
    # TensorRT AOT order: input pointers, extra int32 scalars, output pointers
    assert params == ["u64"] * len(ins) + ["u32"] * len(extra) + ["u64"] * 1
    assert [str(e[1]) for e in extra] == ["st[0]", "feat[3]", "2*128*128*feat[3]"]
    assert name.decode().endswith("_f16" if dtype == "HALF" else "_f32")
