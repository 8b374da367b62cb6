"""imkd::bev_pool against the naive scatter reference, opcheck, gradcheck and the geometry."""

from __future__ import annotations

import pytest
import torch

from imkd_ros.ops import (
    BevGrid,
    GeometryCache,
    bev_pool,
    bev_pool_naive,
    compute_bev_pool_geometry,
)
from imkd_ros.ops.bev_pool_geometry import GeometryError, calibration_key

torch.set_num_threads(1)

GRID = BevGrid(-4.0, 4.0, -3.0, 3.0, -2.0, 2.0, 1.0)  # 6 x 8 cells


def _random_case(bn=3, d=5, h=4, w=6, c=7, batch=1, seed=0, dtype=torch.float32, spread=6.0):
    g = torch.Generator().manual_seed(seed)
    # about half the points fall outside the grid (x, y or z)
    pts = (torch.rand(bn, d, h, w, 3, generator=g) * 2 - 1) * torch.tensor([spread, spread, 3.0])
    geo = compute_bev_pool_geometry(pts, GRID, batch)
    depth = torch.rand(bn, d, h, w, generator=g).softmax(1).to(dtype)
    feat = torch.randn(bn, h, w, c, generator=g).to(dtype)
    return pts, geo, depth, feat


def _args(geo, depth, feat):
    return (depth, feat, *geo.tensors(), geo.batch, geo.bev_h, geo.bev_w)


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_naive_reference(batch, seed):
    pts, geo, depth, feat = _random_case(bn=2 * batch, batch=batch, seed=seed)
    assert 0 < geo.num_points < pts[..., 0].numel()  # some points dropped
    out = bev_pool(*_args(geo, depth, feat))
    ref = bev_pool_naive(depth, feat, geo.ranks_depth, geo.ranks_feat, geo.ranks_bev,
                         geo.batch, geo.bev_h, geo.bev_w)
    assert out.shape == (batch, GRID.ny, GRID.nx, feat.shape[-1])
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    # empty cells are exactly zero
    occupied = torch.zeros(batch * GRID.ny * GRID.nx, dtype=torch.bool)
    occupied[geo.ranks_bev.long()] = True
    assert (out.reshape(-1, feat.shape[-1])[~occupied] == 0).all()
    assert (~occupied).any()


def test_matches_brute_force_sum():
    pts, geo, depth, feat = _random_case(seed=5)
    out = bev_pool(*_args(geo, depth, feat))
    ix, iy, inside = GRID.cell_index(pts)
    expect = torch.zeros(1, GRID.ny, GRID.nx, feat.shape[-1])
    bn, d, h, w = depth.shape
    for n in range(bn):
        for k in range(d):
            for i in range(h):
                for j in range(w):
                    if inside[n, k, i, j]:
                        expect[0, iy[n, k, i, j], ix[n, k, i, j]] += depth[n, k, i, j] * feat[n, i, j]
    torch.testing.assert_close(out, expect, rtol=1e-5, atol=1e-5)


def test_half_precision():
    _, geo, depth, feat = _random_case(seed=3)
    out = bev_pool(*_args(geo, depth.half(), feat.half()))
    assert out.dtype == torch.float16
    ref = bev_pool(*_args(geo, depth, feat))
    torch.testing.assert_close(out.float(), ref, rtol=1e-2, atol=1e-2)


def test_all_points_outside():
    pts = torch.full((1, 2, 2, 2, 3), 100.0)
    geo = compute_bev_pool_geometry(pts, GRID, 1)
    assert geo.num_points == 0
    out = bev_pool(torch.rand(1, 2, 2, 2), torch.rand(1, 2, 2, 3), *geo.tensors(), 1, 6, 8)
    assert out.shape == (1, 6, 8, 3) and (out == 0).all()


def test_geometry_invariants():
    _, geo, _, _ = _random_case(bn=4, batch=2, seed=4)
    for t in geo.tensors():
        assert t.dtype == torch.int32
    rb = geo.ranks_bev.long()
    assert (rb[1:] >= rb[:-1]).all()
    st, ln = geo.interval_starts.long(), geo.interval_lengths.long()
    assert st[0] == 0 and (st[1:] == st[:-1] + ln[:-1]).all() and ln.sum() == rb.numel()
    assert (rb[st] == rb[st + ln - 1]).all()  # one cell per interval
    assert len(torch.unique(rb)) == st.numel()  # one interval per cell


def test_opcheck():
    _, geo, depth, feat = _random_case(seed=7)
    depth.requires_grad_(True)
    feat.requires_grad_(True)
    torch.library.opcheck(torch.ops.imkd.bev_pool.default, _args(geo, depth, feat))


def test_gradcheck():
    _, geo, depth, feat = _random_case(bn=2, d=3, h=3, w=4, c=3, seed=8, dtype=torch.float64)
    depth.requires_grad_(True)
    feat.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: bev_pool(*_args(geo, a, b)), (depth, feat))


def test_grad_matches_naive():
    _, geo, depth, feat = _random_case(seed=9)
    d1, f1 = depth.clone().requires_grad_(), feat.clone().requires_grad_()
    d2, f2 = depth.clone().requires_grad_(), feat.clone().requires_grad_()
    w = torch.randn(geo.batch, geo.bev_h, geo.bev_w, feat.shape[-1])
    (bev_pool(*_args(geo, d1, f1)) * w).sum().backward()
    (bev_pool_naive(d2, f2, geo.ranks_depth, geo.ranks_feat, geo.ranks_bev, 1, 6, 8) * w).sum().backward()
    torch.testing.assert_close(d1.grad, d2.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(f1.grad, f2.grad, rtol=1e-5, atol=1e-5)


def test_export_keeps_one_node():
    _, geo, depth, feat = _random_case(seed=10)

    class M(torch.nn.Module):
        def forward(self, d, f, a, b, c, s, ln):
            return bev_pool(d, f, a, b, c, s, ln, 1, 6, 8)

    ep = torch.export.export(M(), (depth, feat, *geo.tensors()))
    targets = [n.target for n in ep.graph.nodes if n.op == "call_function"]
    assert torch.ops.imkd.bev_pool.default in targets
    torch.testing.assert_close(ep.module()(depth, feat, *geo.tensors()), bev_pool(*_args(geo, depth, feat)))


def test_geometry_cache():
    cache = GeometryCache(max_entries=2)
    calls = []

    def compute(i):
        calls.append(i)
        return _random_case(seed=20 + i)[1]

    k1 = calibration_key(torch.eye(3), extra="a")
    k2 = calibration_key(torch.eye(3) * 2, extra="a")
    assert k1 != k2 and k1 == calibration_key(torch.eye(3), extra="a")
    g1 = cache.get_or_compute(k1, lambda: compute(1))
    assert cache.get_or_compute(k1, lambda: compute(9)) is g1 and g1.key == k1
    cache.get_or_compute(k2, lambda: compute(2))
    cache.get_or_compute(calibration_key(torch.eye(4)), lambda: compute(3))
    assert len(cache) == 2 and calls == [1, 2, 3] and cache.hits == 1


def _broken(kind: str):
    _, geo, _, _ = _random_case(seed=12)
    st, ln, rb = geo.interval_starts.clone(), geo.interval_lengths.clone(), geo.ranks_bev.clone()
    if kind == "zero length":
        st, ln = torch.cat([st, st[-1:] + ln[-1:]]), torch.cat([ln, torch.zeros(1, dtype=torch.int32)])
    elif kind == "start out of bounds":
        st[-1] += 1000
    elif kind == "cell out of bounds":
        rb[-1] = geo.batch * geo.bev_h * geo.bev_w
    elif kind == "unsorted cells":
        rb = rb.flip(0).contiguous()
    elif kind == "duplicate cell":
        split = int(ln[0]) // 2 if int(ln[0]) > 1 else None
        assert split, "case needs a cell with two points"
        st = torch.cat([st[:1], st[:1] + split, st[1:]])
        ln = torch.cat([torch.tensor([split], dtype=torch.int32), ln[:1] - split, ln[1:]])
    elif kind == "depth rank out of bounds":
        geo.ranks_depth[0] = geo.depth_numel
    elif kind == "int64":
        rb = rb.long()
    geo.interval_starts, geo.interval_lengths, geo.ranks_bev = st, ln, rb
    return geo


@pytest.mark.parametrize("kind", ["zero length", "start out of bounds", "cell out of bounds", "unsorted cells",
                                  "duplicate cell", "depth rank out of bounds", "int64"])
def test_geometry_validated_once_when_cached(kind):
    """Issue 13 defect 5: the kernels would read out of bounds or race; the cache refuses it."""

    _, good, _, _ = _random_case(seed=12)
    assert good.validate() is good and good.depth_numel > 0 and good.feat_rows > 0
    cache = GeometryCache()
    with pytest.raises(GeometryError):
        cache.get_or_compute("k", lambda: _broken(kind))
    assert len(cache) == 0


def test_under_cpu_autocast_bf16():
    _, geo, depth, feat = _random_case(seed=11)
    ref = bev_pool(*_args(geo, depth, feat))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = bev_pool(*_args(geo, depth, feat.bfloat16()))
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, rtol=2e-2, atol=2e-2)
