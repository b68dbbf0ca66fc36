"""Segment softmax in Triton (PyG's ``softmax(src, index)``): per chunk of a segment, an online
log-sum-exp, then the weights in a second pass; the backward ``y * (g - sum_segment(g * y))``
in two passes. Entries are read in the caller's order through the segment-sorted ``perm``."""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl
from torch import Tensor

from . import launch
from .launch import acc_dtype, on_input_device, pow2, sum_merge, ws
from .plan import row_plan, segments
from .tiles import (chunk, edge_block, edge_tile, finish_lse, heads, load_lse, lse_merge_kernel,
                   split_lanes)

__all__ = ["segment_softmax_fwd", "segment_softmax_bwd"]


@triton.jit
def _segment_softmax_fwd_kernel(
    src_ptr,                # [E, H] scores, caller's order
    perm_ptr,               # [E] caller's id of each segment-sorted entry
    chunk_row_ptr, chunk_start_ptr, chunk_end_ptr, chunk_slot_ptr,   # [NC] the work list
    lse_ptr,                # [H, N] out: log-sum-exp of each segment (accumulation dtype)
    ws_m_ptr, ws_l_ptr,     # [NS, H] partial max and sum of the chunks of split segments
    stride_lh,
    H,
    BLOCK_E: tl.constexpr, BLOCK_H: tl.constexpr,
):
    ACC = lse_ptr.dtype.element_ty
    offs_h, mask_h = heads(H, BLOCK_H)
    i, start, end = chunk(chunk_row_ptr, chunk_start_ptr, chunk_end_ptr)
    slot, whole, part = split_lanes(chunk_slot_ptr, offs_h, mask_h)
    m = tl.full([BLOCK_H], float("-inf"), dtype=ACC)
    l = tl.zeros([BLOCK_H], dtype=ACC)
    for e0 in range(start, end, BLOCK_E):
        _mask_e, mask_eh, eid, _j = edge_block(e0, end, mask_h, perm_ptr, perm_ptr, BLOCK_E)
        x = edge_tile(src_ptr, eid, offs_h, mask_eh, H, float("-inf")).to(ACC)  # [BE, BH]
        m_new = tl.maximum(m, tl.max(x, axis=0))
        m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
        l = l * tl.exp(m - m_use) + tl.sum(tl.exp(x - m_use[None, :]), axis=0)
        m = m_new
    _ok, _l_safe, lse = finish_lse(m, l)
    tl.store(lse_ptr + offs_h * stride_lh + i, lse, mask=whole)
    tl.store(ws_m_ptr + slot * H + offs_h, m, mask=part)
    tl.store(ws_l_ptr + slot * H + offs_h, l, mask=part)


@triton.jit
def _segment_softmax_out_kernel(
    src_ptr,                # [E, H] scores, caller's order
    perm_ptr,               # [E] caller's id of each segment-sorted entry
    chunk_row_ptr, chunk_start_ptr, chunk_end_ptr,   # [NC] the work list
    lse_ptr,                # [H, N] final log-sum-exp
    out_ptr,                # [E, H] out: softmax, caller's order
    stride_lh,
    H,
    BLOCK_E: tl.constexpr, BLOCK_H: tl.constexpr,
):
    ACC = lse_ptr.dtype.element_ty
    offs_h, mask_h = heads(H, BLOCK_H)
    i, start, end = chunk(chunk_row_ptr, chunk_start_ptr, chunk_end_ptr)
    lse = load_lse(lse_ptr, offs_h * stride_lh + i, mask_h)   # all -inf: zeros, not NaN
    for e0 in range(start, end, BLOCK_E):
        _mask_e, mask_eh, eid, _j = edge_block(e0, end, mask_h, perm_ptr, perm_ptr, BLOCK_E)
        x = edge_tile(src_ptr, eid, offs_h, mask_eh, H, float("-inf")).to(ACC)
        y = tl.exp(x - lse[None, :])
        tl.store(out_ptr + eid[:, None] * H + offs_h[None, :], y.to(out_ptr.dtype.element_ty),
                 mask=mask_eh)


@triton.jit
def _segment_softmax_bwd_dot_kernel(
    grad_ptr,               # [E, H] gradient of the softmax output, caller's order
    y_ptr,                  # [E, H] softmax output, caller's order
    perm_ptr,               # [E] caller's id of each segment-sorted entry
    chunk_row_ptr, chunk_start_ptr, chunk_end_ptr, chunk_slot_ptr,   # [NC] the work list
    dot_ptr,                # [N, H] out: sum over the segment of grad * y
    ws_ptr,                 # [NS, H] partial sums of the chunks of split segments
    H,
    BLOCK_E: tl.constexpr, BLOCK_H: tl.constexpr,
):
    ACC = dot_ptr.dtype.element_ty
    offs_h, mask_h = heads(H, BLOCK_H)
    i, start, end = chunk(chunk_row_ptr, chunk_start_ptr, chunk_end_ptr)
    slot, whole, part = split_lanes(chunk_slot_ptr, offs_h, mask_h)
    dot = tl.zeros([BLOCK_H], dtype=ACC)
    for e0 in range(start, end, BLOCK_E):
        _mask_e, mask_eh, eid, _j = edge_block(e0, end, mask_h, perm_ptr, perm_ptr, BLOCK_E)
        g = edge_tile(grad_ptr, eid, offs_h, mask_eh, H, 0.0)
        y = edge_tile(y_ptr, eid, offs_h, mask_eh, H, 0.0)
        dot += tl.sum(g.to(ACC) * y.to(ACC), axis=0)
    tl.store(dot_ptr + i * H + offs_h, dot, mask=whole)
    tl.store(ws_ptr + slot * H + offs_h, dot, mask=part)


@triton.jit
def _segment_softmax_bwd_kernel(
    grad_ptr,               # [E, H] gradient of the softmax output, caller's order
    y_ptr,                  # [E, H] softmax output, caller's order
    perm_ptr,               # [E] caller's id of each segment-sorted entry
    chunk_row_ptr, chunk_start_ptr, chunk_end_ptr,   # [NC] the work list
    dot_ptr,                # [N, H] sum over each segment of grad * y
    out_ptr,                # [E, H] out: gradient of the scores, caller's order
    H,
    BLOCK_E: tl.constexpr, BLOCK_H: tl.constexpr,
):
    ACC = dot_ptr.dtype.element_ty
    offs_h, mask_h = heads(H, BLOCK_H)
    i, start, end = chunk(chunk_row_ptr, chunk_start_ptr, chunk_end_ptr)
    dot = tl.load(dot_ptr + i * H + offs_h, mask=mask_h, other=0.0)
    for e0 in range(start, end, BLOCK_E):
        _mask_e, mask_eh, eid, _j = edge_block(e0, end, mask_h, perm_ptr, perm_ptr, BLOCK_E)
        g = edge_tile(grad_ptr, eid, offs_h, mask_eh, H, 0.0)
        y = edge_tile(y_ptr, eid, offs_h, mask_eh, H, 0.0)
        dx = y.to(ACC) * (g.to(ACC) - dot[None, :])
        tl.store(out_ptr + eid[:, None] * H + offs_h[None, :], dx.to(out_ptr.dtype.element_ty),
                 mask=mask_eh)


def _flat(x: Tensor) -> Tensor:
    tail = 1
    for d in x.shape[1:]:
        tail *= d
    return x.reshape(x.size(0), tail)                                      # [E, H]


def _launch(index: Tensor, num_nodes: int, split: Optional[int], H: int, dtype):
    """What both passes of the segment softmax launch with: the entries sorted by segment
    (``perm``), the row plan, the accumulation dtype, the block sizes over entries and heads,
    and the grid (chunks x head blocks)."""
    rowptr, perm = segments(index, num_nodes)
    plan = row_plan(rowptr, split)
    bh = min(pow2(H), 64)
    be = max(16, min(launch.TILE_BUDGET // 16, launch.TILE_BUDGET // bh))  # 128 at 2048
    return perm, plan, acc_dtype(dtype), be, bh, (plan.num_chunks, triton.cdiv(H, bh))


@on_input_device
def segment_softmax_fwd(src: Tensor, index: Tensor, num_nodes: int,
                        split: Optional[int] = None) -> Tensor:
    """Softmax of ``src [E, *]`` over the entries sharing a segment ``index [E]`` (unsorted).
    A segment whose scores are all ``-inf`` gets zeros."""
    x = _flat(src).contiguous()                                            # [E, H]
    E, H = x.shape
    out = torch.empty_like(x)
    if E == 0 or H == 0:
        return out.view(src.shape)
    perm, plan, acc, be, bh, grid = _launch(index, num_nodes, split, H, src.dtype)
    lse = torch.empty(H, num_nodes, dtype=acc, device=src.device)
    ws_m = ws(plan.num_slots, H, dtype=acc, device=src.device)
    ws_l = ws(plan.num_slots, H, dtype=acc, device=src.device)
    _segment_softmax_fwd_kernel[grid](x, perm, *plan.chunks(), lse, ws_m, ws_l, lse.stride(0),
                                      H, BLOCK_E=be, BLOCK_H=bh)
    if plan.num_split:
        lse_merge_kernel[(plan.num_split, triton.cdiv(H, bh))](
            ws_m, ws_l, ws_m, plan.split_row, plan.split_ptr, lse, lse, 0, 0, lse.stride(0),
            H, 0, HAS_ACC=False, BLOCK_H=bh, BLOCK_C=1)
    _segment_softmax_out_kernel[grid](x, perm, plan.chunk_row, plan.chunk_start,
                                      plan.chunk_end, lse, out, lse.stride(0), H,
                                      BLOCK_E=be, BLOCK_H=bh)
    return out.view(src.shape)


@on_input_device
def segment_softmax_bwd(grad: Tensor, out: Tensor, index: Tensor, num_nodes: int,
                        split: Optional[int] = None) -> Tensor:
    """Gradient of :func:`segment_softmax_fwd`: ``y * (g - sum_segment(g * y))``."""
    g, y = _flat(grad).contiguous(), _flat(out).contiguous()               # [E, H]
    E, H = y.shape
    dx = torch.empty(E, H, dtype=grad.dtype, device=grad.device)
    if E == 0 or H == 0:
        return dx.view(out.shape)
    perm, plan, acc, be, bh, grid = _launch(index, num_nodes, split, H, out.dtype)
    dot = torch.empty(num_nodes, H, dtype=acc, device=grad.device)
    work = ws(plan.num_slots, H, dtype=acc, device=grad.device)
    _segment_softmax_bwd_dot_kernel[grid](g, y, perm, *plan.chunks(), dot, work, H,
                                          BLOCK_E=be, BLOCK_H=bh)
    sum_merge(work, plan, dot)
    _segment_softmax_bwd_kernel[grid](g, y, perm, plan.chunk_row, plan.chunk_start,
                                      plan.chunk_end, dot, dx, H, BLOCK_E=be, BLOCK_H=bh)
    return dx.view(out.shape)
