"""``imkd::bev_pool``: the BEVPoolv2 weighted sum, as a torch custom op with a fast CPU kernel.

out[cell, c] = sum over the cell's interval of depth[ranks_depth[i]] * feat[ranks_feat[i], c]

Why a custom op: torch.export keeps it as one node, so ONNX / TensorRT can swap in the CUDA
kernel / plugin (imkd_ros/ops/csrc, imkd_ros/export) while the CPU path stays pure torch.

The CPU kernel never materialises the (P, C) lifted point features. The precomputed geometry
is a sparse matrix S (cells x feature pixels) whose entries are depth probabilities, so the
pooling is one CSR sparse-dense matmul ``S @ feat``; the feature gradient is ``S^T @ grad`` and
the depth gradient a sampled dense-dense matmul of grad and feat on S's sparsity pattern.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor


def bev_pool_naive(
    depth: Tensor,
    feat: Tensor,
    ranks_depth: Tensor,
    ranks_feat: Tensor,
    ranks_bev: Tensor,
    batch: int,
    bev_h: int,
    bev_w: int,
) -> Tensor:
    """Reference: lift every point to (P, C) and scatter-add it into its cell (index_add)."""
    c = feat.shape[-1]
    vals = depth.reshape(-1)[ranks_depth.long()].unsqueeze(1) * feat.reshape(-1, c)[ranks_feat.long()]
    out = feat.new_zeros(batch * bev_h * bev_w, c)
    out.index_add_(0, ranks_bev.long(), vals)
    return out.view(batch, bev_h, bev_w, c)


def _interval_points(starts: Tensor, lengths: Tensor, num_points: int) -> Tensor | None:
    """Point indices covered by the intervals, in interval order; None when that is 0..P-1."""
    lengths = lengths.long()
    starts = starts.long()
    total = int(lengths.sum()) if lengths.numel() else 0
    if total == num_points and (starts.numel() == 0 or (
        int(starts[0]) == 0 and bool((starts[1:] == starts[:-1] + lengths[:-1]).all())
    )):
        return None
    if total == 0:
        return starts.new_zeros(0)
    first = torch.repeat_interleave(starts - torch.cumsum(lengths, 0) + lengths, lengths)
    return first + torch.arange(total, device=starts.device)


def _crow_from_counts(counts: Tensor) -> Tensor:
    crow = counts.new_zeros(counts.numel() + 1)
    torch.cumsum(counts, 0, out=crow[1:])
    return crow


def _csr_mm(crow: Tensor, col: Tensor, vals: Tensor, shape: tuple[int, int], dense: Tensor) -> Tensor:
    """CSR (shape) @ dense; indices are built here so the invariant check is skipped."""
    with warnings.catch_warnings(), torch.autocast(dense.device.type, enabled=False):
        warnings.simplefilter("ignore", UserWarning)  # "CSR support is in beta"
        mat = torch.sparse_csr_tensor(crow, col, vals, size=shape, check_invariants=False)
        return torch.sparse.mm(mat, dense)


def _csr_sddmm(crow: Tensor, col: Tensor, vals: Tensor, shape: tuple[int, int], left: Tensor,
               right: Tensor) -> Tensor:
    """Per stored entry (i, j) of the CSR pattern: <left[i], right[j]>, in storage order."""
    with warnings.catch_warnings(), torch.autocast(left.device.type, enabled=False):
        warnings.simplefilter("ignore", UserWarning)
        mat = torch.sparse_csr_tensor(crow, col, vals, size=shape, check_invariants=False)
        return torch.sparse.sampled_addmm(mat, left, right.t(), beta=0.0).values()


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _selected(ranks_depth, ranks_feat, ranks_bev, interval_starts, interval_lengths):
    """(rd, rf, rb) as int64 restricted to points inside intervals, ordered by cell."""
    pts = _interval_points(interval_starts, interval_lengths, ranks_bev.numel())
    rd, rf, rb = ranks_depth.long(), ranks_feat.long(), ranks_bev.long()
    if pts is not None:
        rd, rf, rb = rd[pts], rf[pts], rb[pts]
    if rb.numel() > 1 and not bool((rb[1:] >= rb[:-1]).all()):  # tolerate unsorted input
        order = torch.argsort(rb, stable=True)
        rd, rf, rb = rd[order], rf[order], rb[order]
    return rd, rf, rb


@torch.library.custom_op("imkd::bev_pool", mutates_args=())
def bev_pool_op(
    depth: Tensor,
    feat: Tensor,
    ranks_depth: Tensor,
    ranks_feat: Tensor,
    ranks_bev: Tensor,
    interval_starts: Tensor,
    interval_lengths: Tensor,
    batch: int,
    bev_h: int,
    bev_w: int,
) -> Tensor:
    """BEVPoolv2 sum. depth (BN,D,H,W), feat (BN,H,W,C) -> (batch, bev_h, bev_w, C)."""
    c = feat.shape[-1]
    cells = batch * bev_h * bev_w
    cdt = _compute_dtype(feat.dtype)
    rd, rf, rb = _selected(ranks_depth, ranks_feat, ranks_bev, interval_starts, interval_lengths)
    feat2d = feat.reshape(-1, c).to(cdt)
    vals = depth.reshape(-1).to(cdt)[rd]
    if vals.numel() == 0:
        return feat.new_zeros(batch, bev_h, bev_w, c)
    crow = _crow_from_counts(torch.bincount(rb, minlength=cells))
    out = _csr_mm(crow, rf, vals, (cells, feat2d.shape[0]), feat2d)
    return out.to(feat.dtype).view(batch, bev_h, bev_w, c)


@bev_pool_op.register_fake
def _bev_pool_fake(depth, feat, ranks_depth, ranks_feat, ranks_bev, interval_starts,
                   interval_lengths, batch, bev_h, bev_w):
    return feat.new_empty(batch, bev_h, bev_w, feat.shape[-1])


@torch.library.custom_op("imkd::bev_pool_backward", mutates_args=())
def bev_pool_backward(
    grad_out: Tensor,
    depth: Tensor,
    feat: Tensor,
    ranks_depth: Tensor,
    ranks_feat: Tensor,
    ranks_bev: Tensor,
    interval_starts: Tensor,
    interval_lengths: Tensor,
) -> tuple[Tensor, Tensor]:
    """Gradients of bev_pool for depth and feat (a separate op so export/AOT can trace it)."""
    c = feat.shape[-1]
    cdt = _compute_dtype(feat.dtype)
    rd, rf, rb = _selected(ranks_depth, ranks_feat, ranks_bev, interval_starts, interval_lengths)
    g2d = grad_out.reshape(-1, c).to(cdt)
    feat2d = feat.reshape(-1, c).to(cdt)
    depth_flat = depth.reshape(-1).to(cdt)
    grad_depth = torch.zeros_like(depth_flat)
    grad_feat = torch.zeros_like(feat2d)
    if rd.numel():
        cells = g2d.shape[0]
        crow = _crow_from_counts(torch.bincount(rb, minlength=cells))
        # d depth[rd_i] = <grad[rb_i], feat[rf_i]>: a sampled dense-dense matmul on S's pattern
        dots = _csr_sddmm(crow, rf, depth_flat[rd], (cells, feat2d.shape[0]), g2d, feat2d)
        grad_depth.index_add_(0, rd, dots)
        # d feat = S^T @ grad: CSR with rows = feature pixels.
        order = torch.argsort(rf)
        crow_t = _crow_from_counts(torch.bincount(rf, minlength=feat2d.shape[0]))
        grad_feat = _csr_mm(crow_t, rb[order], depth_flat[rd[order]], (feat2d.shape[0], cells), g2d)
    return grad_depth.to(depth.dtype).view_as(depth), grad_feat.to(feat.dtype).view_as(feat)


@bev_pool_backward.register_fake
def _bev_pool_backward_fake(grad_out, depth, feat, ranks_depth, ranks_feat, ranks_bev,
                            interval_starts, interval_lengths):
    return torch.empty_like(depth), torch.empty_like(feat)


def _setup_context(ctx, inputs, output):
    depth, feat, rd, rf, rb, st, ln, _b, _h, _w = inputs
    ctx.save_for_backward(depth, feat, rd, rf, rb, st, ln)


def _backward(ctx, grad):
    depth, feat, rd, rf, rb, st, ln = ctx.saved_tensors
    gd, gf = bev_pool_backward(grad.contiguous(), depth, feat, rd, rf, rb, st, ln)
    return gd, gf, None, None, None, None, None, None, None, None


bev_pool_op.register_autograd(_backward, setup_context=_setup_context)


def bev_pool(depth: Tensor, feat: Tensor, ranks_depth: Tensor, ranks_feat: Tensor, ranks_bev: Tensor,
             interval_starts: Tensor, interval_lengths: Tensor, batch: int, bev_h: int, bev_w: int) -> Tensor:
    """``imkd::bev_pool``; an fp16 feat gets its depth cast to fp16 first.

    Under fp16 autocast the depth softmax comes out fp32 and the context fp16; the ONNX node, the
    TensorRT plugin and the CUDA kernels take one float type for both (fp16 I/O, fp32
    accumulation inside), so the cast is made here, visibly, in the traced graph. Other mixes
    (e.g. bf16 training on CPU) go to the op as they are: its CPU kernel computes in fp32.
    """
    if feat.dtype == torch.float16 and depth.dtype != feat.dtype:
        depth = depth.to(feat.dtype)
    return bev_pool_op(depth, feat, ranks_depth, ranks_feat, ranks_bev, interval_starts,
                       interval_lengths, batch, bev_h, bev_w)
