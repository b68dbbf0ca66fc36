"""Fused attention backward in Triton, without atomics, recomputing the weights from ``lse``:

1. over targets: ``t_e = alpha_e * dL/dalpha_e`` per edge and ``Dsum_i = sum_j t_ij``;
2. over targets again: ``g_s = t - alpha * Dsum_i``, ``g_pre`` through the LeakyReLU (it
   overwrites ``t`` and is the gradient of the per-edge term), and the target half's gradient;
3. over sources: the gradients of the source half and of the values.

See :mod:`gatlib.ops.triton.kernels` for the whole design."""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import triton
import triton.language as tl
from torch import Tensor

from ..graph_args import csr_tensors
from .launch import (acc_dtype, blocks, check_graph, dummy, keep_u8, on_input_device, params,
                     pow2, sum_merge, ws)
from .plan import plans
from .tiles import (chunk_lanes, dscore, edge_block, edge_scores, edge_tile, gather, heads, lanes,
                   load_lse, node_tile, program, scalars, store_row)

__all__ = ["attention_bwd"]


@triton.jit
def _attention_bwd_dsum_kernel(
    tgt_ptr, src_ptr,       # [T, H, D], [S, H, D] the halves of the score
    v_ptr,                  # [S, H, C] values
    term_ptr,               # [E, H] per-edge score term, caller's order
    keep_ptr,               # [E, H] uint8 dropout keep mask, caller's order
    galpha_ptr,             # [E, H] gradient of the returned weights, caller's order
    dout_ptr,               # [T, H, C] gradient of the output
    col_ptr, perm_ptr,      # [E] source and caller's id of each target-sorted edge
    params_ptr,             # [3] (scale, negative slope, 1 / (1 - p))
    chunk_row_ptr, chunk_start_ptr, chunk_end_ptr, chunk_slot_ptr,   # [NC] the work list
    lse_ptr,                # [H, T] log-sum-exp from the forward pass
    t_ptr,                  # [E, H] out: alpha * dL/dalpha, caller's order (accumulation dtype)
    dsum_ptr,               # [T, H] out: sum over in-edges of t
    ws_ptr,                 # [NS, H] partial sums of the chunks of split rows
    stride_tn, stride_th, stride_sn, stride_sh, stride_vn, stride_vh,
    stride_dn, stride_dh,   # dout strides
    stride_lh,
    H, D, C,
    KIND: tl.constexpr, HAS_TERM: tl.constexpr, HAS_KEEP: tl.constexpr,
    HAS_GALPHA: tl.constexpr,
    BLOCK_E: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_C: tl.constexpr,
):
    (offs_h, mask_h, offs_d, mask_hd, offs_c, mask_hc, i, start, end, slot, whole, part, scale,
     slope, keep_scale, t_val) = program(tgt_ptr, stride_tn, stride_th, chunk_row_ptr,
                                         chunk_start_ptr, chunk_end_ptr, chunk_slot_ptr,
                                         params_ptr, H, D, C, BLOCK_H, BLOCK_D, BLOCK_C)
    ACC = t_val.dtype
    do = node_tile(dout_ptr, i, stride_dn, stride_dh, offs_h, offs_c, mask_hc).to(ACC)  # [BH, BC]
    lse = load_lse(lse_ptr, offs_h * stride_lh + i, mask_h)
    dsum = tl.zeros([BLOCK_H], dtype=ACC)
    for e0 in range(start, end, BLOCK_E):
        mask_e, mask_eh, j, eid = edge_block(e0, end, mask_h, col_ptr, perm_ptr, BLOCK_E)
        _other, s, _pre = edge_scores(t_val, src_ptr, j, eid, mask_e, mask_eh, stride_sn,
                                      stride_sh, offs_h, offs_d, mask_hd, term_ptr, H, scale,
                                      slope, KIND, HAS_TERM)
        alpha = tl.where(mask_eh, tl.exp(s - lse[None, :]), 0.0)              # [BE, BH]
        vv = gather(v_ptr, j, stride_vn, stride_vh, offs_h, offs_c, mask_e,
                    mask_hc).to(ACC)                                          # [BE, BH, BC]
        g = tl.sum(do[None, :, :] * vv, axis=2)                               # dL/dw [BE, BH]
        if HAS_KEEP:
            keep = edge_tile(keep_ptr, eid, offs_h, mask_eh, H, 0)
            g = tl.where(keep != 0, g * keep_scale, 0.0)
        if HAS_GALPHA:
            g += edge_tile(galpha_ptr, eid, offs_h, mask_eh, H, 0.0).to(ACC)
        t = alpha * g
        tl.store(t_ptr + eid[:, None] * H + offs_h[None, :], t, mask=mask_eh)
        dsum += tl.sum(t, axis=0)
    tl.store(dsum_ptr + i * H + offs_h, dsum, mask=whole)
    tl.store(ws_ptr + slot * H + offs_h, dsum, mask=part)


@triton.jit
def _attention_bwd_dst_kernel(
    tgt_ptr, src_ptr,       # [T, H, D], [S, H, D] the halves of the score
    term_ptr,               # [E, H] per-edge score term, caller's order
    col_ptr, perm_ptr,      # [E] source and caller's id of each target-sorted edge
    params_ptr,             # [3] (scale, negative slope, 1 / (1 - p))
    chunk_row_ptr, chunk_start_ptr, chunk_end_ptr, chunk_slot_ptr,   # [NC] the work list
    lse_ptr,                # [H, T] log-sum-exp from the forward pass
    dsum_ptr,               # [T, H] sum over in-edges of alpha * dL/dalpha
    g_ptr,                  # [E, H] in: alpha * dL/dalpha; out: dL/dpre (caller's order)
    grad_tgt_ptr,           # [T, H, D] out: gradient of the target half
    ws_ptr,                 # [NS, H, D] partial gradients of the chunks of split rows
    stride_tn, stride_th, stride_sn, stride_sh, stride_lh,
    stride_gn, stride_gh,   # grad_tgt strides
    H, D,
    KIND: tl.constexpr, HAS_TERM: tl.constexpr,
    BLOCK_E: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr,
):
    ACC = lse_ptr.dtype.element_ty
    offs_h, mask_h = heads(H, BLOCK_H)
    offs_d, mask_hd = lanes(D, mask_h, BLOCK_D)
    scale, slope, _keep_scale = scalars(params_ptr)
    i, start, end, slot, whole, part = chunk_lanes(chunk_row_ptr, chunk_start_ptr,
                                                   chunk_end_ptr, chunk_slot_ptr, offs_h, mask_h)
    t_val = node_tile(tgt_ptr, i, stride_tn, stride_th, offs_h, offs_d,
                      mask_hd).to(ACC)[None, :, :]
    lse = load_lse(lse_ptr, offs_h * stride_lh + i, mask_h)
    dsum = tl.load(dsum_ptr + i * H + offs_h, mask=mask_h, other=0.0)
    grad = tl.zeros([BLOCK_H, BLOCK_D], dtype=ACC)
    for e0 in range(start, end, BLOCK_E):
        mask_e, mask_eh, j, eid = edge_block(e0, end, mask_h, col_ptr, perm_ptr, BLOCK_E)
        s_val, s, pre = edge_scores(t_val, src_ptr, j, eid, mask_e, mask_eh, stride_sn,
                                    stride_sh, offs_h, offs_d, mask_hd, term_ptr, H, scale,
                                    slope, KIND, HAS_TERM)
        alpha = tl.exp(s - lse[None, :])
        t = edge_tile(g_ptr, eid, offs_h, mask_eh, H, 0.0)
        g = t - alpha * dsum[None, :]                                         # dL/ds [BE, BH]
        if KIND == 0:
            # LeakyReLU'(x) = 1 for x > 0, the slope otherwise (as torch's own backward).
            g = tl.where(pre > 0, g, g * slope)
        g = tl.where(mask_eh, g, 0.0)
        tl.store(g_ptr + eid[:, None] * H + offs_h[None, :], g, mask=mask_eh)
        grad += dscore(g, s_val, scale, KIND)
    store_row(grad_tgt_ptr, i, stride_gn, stride_gh, ws_ptr, slot, H, D, offs_h, offs_d,
              mask_hd, whole, part, grad)


@triton.jit
def _attention_bwd_src_kernel(
    tgt_ptr, src_ptr,       # [T, H, D], [S, H, D] the halves of the score
    dout_ptr,               # [T, H, C] gradient of the output
    term_ptr,               # [E, H] per-edge score term, caller's order
    keep_ptr,               # [E, H] uint8 dropout keep mask, caller's order
    g_ptr,                  # [E, H] dL/dpre, caller's order (from the target-side pass)
    col_t_ptr,              # [E] target of each source-sorted edge
    eid_t_ptr,              # [E] caller's id of each source-sorted edge
    params_ptr,             # [3] (scale, negative slope, 1 / (1 - p))
    chunk_row_ptr, chunk_start_ptr, chunk_end_ptr, chunk_slot_ptr,   # [NC] work list (sources)
    lse_ptr,                # [H, T] log-sum-exp from the forward pass
    grad_src_ptr,           # [S, H, D] out: gradient of the source half
    grad_v_ptr,             # [S, H, C] out: gradient of the values
    ws_s_ptr,               # [NS, H, D] partial source-half gradients of split sources
    ws_v_ptr,               # [NS, H, C] partial value gradients of split sources
    stride_tn, stride_th, stride_sn, stride_sh, stride_dn, stride_dh, stride_lh,
    stride_gsn, stride_gsh,  # grad_src strides
    stride_gvn, stride_gvh,  # grad_v strides
    H, D, C,
    KIND: tl.constexpr, HAS_TERM: tl.constexpr, HAS_KEEP: tl.constexpr,
    BLOCK_E: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_C: tl.constexpr,
):
    # The source's half of the score s_val [1, BH, BD], loaded once (the score is symmetric in
    # the two halves, so the score block gathers the targets' halves).
    (offs_h, mask_h, offs_d, mask_hd, offs_c, mask_hc, j, start, end, slot, whole, part, scale,
     slope, keep_scale, s_val) = program(src_ptr, stride_sn, stride_sh, chunk_row_ptr,
                                         chunk_start_ptr, chunk_end_ptr, chunk_slot_ptr,
                                         params_ptr, H, D, C, BLOCK_H, BLOCK_D, BLOCK_C)
    grad_s = tl.zeros([BLOCK_H, BLOCK_D], dtype=s_val.dtype)
    grad_v = tl.zeros([BLOCK_H, BLOCK_C], dtype=s_val.dtype)
    for e0 in range(start, end, BLOCK_E):
        mask_e, mask_eh, i, eid = edge_block(e0, end, mask_h, col_t_ptr, eid_t_ptr, BLOCK_E)
        t_val, s, _pre = edge_scores(s_val, tgt_ptr, i, eid, mask_e, mask_eh, stride_tn,
                                     stride_th, offs_h, offs_d, mask_hd, term_ptr, H, scale,
                                     slope, KIND, HAS_TERM)
        lse = load_lse(lse_ptr, offs_h[None, :] * stride_lh + i[:, None], mask_eh)
        w = tl.where(mask_eh, tl.exp(s - lse), 0.0)                           # [BE, BH]
        if HAS_KEEP:
            keep = edge_tile(keep_ptr, eid, offs_h, mask_eh, H, 0)
            w = tl.where(keep != 0, w * keep_scale, 0.0)
        do = gather(dout_ptr, i, stride_dn, stride_dh, offs_h, offs_c, mask_e,
                    mask_hc).to(s_val.dtype)                                  # [BE, BH, BC]
        grad_v += tl.sum(w[:, :, None] * do, axis=0)
        g = edge_tile(g_ptr, eid, offs_h, mask_eh, H, 0.0)
        grad_s += dscore(g, t_val, scale, KIND)
    store_row(grad_src_ptr, j, stride_gsn, stride_gsh, ws_s_ptr, slot, H, D, offs_h, offs_d,
              mask_hd, whole, part, grad_s)
    store_row(grad_v_ptr, j, stride_gvn, stride_gvh, ws_v_ptr, slot, H, C, offs_h, offs_c,
              mask_hc, whole, part, grad_v)


@on_input_device
def attention_bwd(kind: int, grad_out: Tensor, grad_alpha: Optional[Tensor], tgt: Tensor,
                  src: Tensor, v: Tensor, lse: Tensor, graph: List[Tensor],
                  term: Optional[Tensor], keep_mask: Optional[Tensor], scale: float,
                  slope: float, dropout: float, split: Optional[int] = None
                  ) -> Tuple[Tensor, Tensor, Tensor, Optional[Tensor]]:
    """Backward of :func:`~gatlib.ops.triton.attention_fwd.attention_fwd` from the saved
    ``lse [H, T]``.

    Returns ``(grad_tgt [T, H, D], grad_src [S, H, D], grad_v [S, H, C], grad_term)``, each in
    its input's dtype; ``grad_term`` is ``[E, H]`` in the caller's order (in the accumulation
    dtype, for the caller to cast), or None without a term.
    """
    T, H, D = tgt.shape
    S, C = src.size(0), v.size(2)
    check_graph(graph, T, S, H, term)
    gt = csr_tensors(graph)
    E, dev = gt.num_edges, v.device
    acc = acc_dtype(tgt.dtype)
    if H == 0 or E == 0:
        zero = torch.zeros(E, H, dtype=acc, device=dev) if term is not None else None
        return (torch.zeros_like(tgt), torch.zeros_like(src), torch.zeros_like(v), zero)
    # Every row of these is written: by its own program, or by the merge of a split row.
    grad_tgt = torch.empty(T, H, D, dtype=tgt.dtype, device=dev)
    grad_src = torch.empty(S, H, D, dtype=src.dtype, device=dev)
    grad_v = torch.empty(S, H, C, dtype=v.dtype, device=dev)
    g = torch.empty(E, H, dtype=acc, device=dev)      # [E, H] the one per-edge buffer
    tgt, src, v = tgt.contiguous(), src.contiguous(), v.contiguous()
    grad_out, lse = grad_out.contiguous(), lse.contiguous()
    term = term.contiguous() if term is not None else None
    grad_alpha = grad_alpha.contiguous() if grad_alpha is not None else None
    keep = keep_u8(keep_mask)
    prm = params(scale, slope, dropout, acc, dev)
    be, bh = blocks(H, D, C)
    bd, bc = pow2(D), pow2(C)
    hg = triton.cdiv(H, bh)
    term_arg = term if term is not None else dummy(dev)
    keep_arg = keep if keep is not None else dummy(dev, torch.uint8)
    flags = dict(KIND=kind, HAS_TERM=term is not None)

    # 1. Over targets: t = alpha * dL/dalpha per edge, Dsum per target.
    plan, plan_t, eid_t = plans(graph, split, source_side=True)
    NS = plan.num_slots
    dsum = torch.empty(T, H, dtype=acc, device=dev)
    work = ws(NS, H, dtype=acc, device=dev)
    _attention_bwd_dsum_kernel[(plan.num_chunks, hg)](
        tgt, src, v, term_arg, keep_arg, grad_alpha if grad_alpha is not None else dummy(dev),
        grad_out, gt.col, gt.perm, prm, *plan.chunks(), lse, g, dsum, work,
        tgt.stride(0), tgt.stride(1), src.stride(0), src.stride(1), v.stride(0), v.stride(1),
        grad_out.stride(0), grad_out.stride(1), lse.stride(0), H, D, C,
        HAS_KEEP=keep is not None, HAS_GALPHA=grad_alpha is not None,
        BLOCK_E=be, BLOCK_H=bh, BLOCK_D=bd, BLOCK_C=bc, **flags)
    sum_merge(work, plan, dsum)
    # 2. Over targets: dL/dpre per edge (into g), gradient of the target half.
    be_d, bh_d = blocks(H, D)
    work = ws(NS, H, D, dtype=acc, device=dev)
    _attention_bwd_dst_kernel[(plan.num_chunks, triton.cdiv(H, bh_d))](
        tgt, src, term_arg, gt.col, gt.perm, prm, *plan.chunks(), lse, dsum, g, grad_tgt, work,
        tgt.stride(0), tgt.stride(1), src.stride(0), src.stride(1), lse.stride(0),
        grad_tgt.stride(0), grad_tgt.stride(1), H, D,
        BLOCK_E=be_d, BLOCK_H=bh_d, BLOCK_D=bd, **flags)
    sum_merge(work, plan, grad_tgt)
    # 3. Over sources: gradients of the source half and of the values.
    if S > 0:
        NS_t = plan_t.num_slots
        ws_s = ws(NS_t, H, D, dtype=acc, device=dev)
        ws_v = ws(NS_t, H, C, dtype=acc, device=dev)
        _attention_bwd_src_kernel[(plan_t.num_chunks, hg)](
            tgt, src, grad_out, term_arg, keep_arg, g, gt.col_t, eid_t, prm, *plan_t.chunks(),
            lse, grad_src, grad_v, ws_s, ws_v,
            tgt.stride(0), tgt.stride(1), src.stride(0), src.stride(1),
            grad_out.stride(0), grad_out.stride(1), lse.stride(0),
            grad_src.stride(0), grad_src.stride(1), grad_v.stride(0), grad_v.stride(1), H, D, C,
            HAS_KEEP=keep is not None, BLOCK_E=be, BLOCK_H=bh, BLOCK_D=bd, BLOCK_C=bc,
            **flags)
        sum_merge(ws_s, plan_t, grad_src)
        sum_merge(ws_v, plan_t, grad_v)
    return grad_tgt, grad_src, grad_v, (g if term is not None else None)
