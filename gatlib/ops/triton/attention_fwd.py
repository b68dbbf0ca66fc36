"""Fused attention forward in Triton: per chunk of in-edges, the scores on the fly, the online
softmax (running max ``m`` and sum ``l`` per head) and ``acc += p v_j``; then ``out = acc / l``
and ``lse = m + log l``, and, when asked for, the weights ``alpha [E, H]`` by a second pass
once ``lse`` is final. See :mod:`gatlib.ops.triton.kernels` for the whole design."""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import triton
import triton.language as tl
from torch import Tensor

from ..graph_args import csr_tensors
from ...native.abi import ScoreKind
from .launch import (acc_dtype, blocks, check_graph, dummy, keep_u8, on_input_device, params,
                     pow2, ws)
from .plan import plans
from .tiles import (chunk, edge_block, edge_scores, edge_tile, finish_lse, gather, heads, lanes,
                   load_lse, lse_merge_kernel, node_tile, program, scalars)

__all__ = ["attention_fwd", "GAT", "DOT"]

# The score kinds (constexpr KIND of the attention kernels): gatlib's one enum, shared with the
# C kernels and the CPU backend (plain ints for the constexpr).
GAT, DOT = int(ScoreKind.GAT), int(ScoreKind.DOT)


@triton.jit
def _attention_fwd_kernel(
    tgt_ptr,            # [T, H, D] target half: q (dot) or a_dst as [T, H, 1] (gat)
    src_ptr,            # [S, H, D] source half: k (dot) or a_src as [S, H, 1] (gat)
    v_ptr,              # [S, H, C] values
    term_ptr,           # [E, H] per-edge score term (bias / edge score), caller's edge order
    keep_ptr,           # [E, H] uint8 dropout keep mask, caller's edge order
    col_ptr,            # [E] source of each target-sorted edge
    perm_ptr,           # [E] caller's edge id of each target-sorted edge
    params_ptr,         # [3] (scale, negative slope, 1 / (1 - p)) in the accumulation dtype
    chunk_row_ptr, chunk_start_ptr, chunk_end_ptr, chunk_slot_ptr,   # [NC] the work list
    out_ptr,            # [T, H, C] output
    lse_ptr,            # [H, T] log-sum-exp (accumulation dtype)
    ws_m_ptr, ws_l_ptr,  # [NS, H] partial max and sum of the chunks of split rows
    ws_acc_ptr,         # [NS, H, C] partial weighted sums of the chunks of split rows
    stride_tn, stride_th,   # tgt strides (node, head); the last dim is contiguous
    stride_sn, stride_sh,   # src strides
    stride_vn, stride_vh,   # v strides
    stride_on, stride_oh,   # out strides
    stride_lh,              # lse stride of the head (targets are contiguous)
    H, D, C,
    KIND: tl.constexpr, HAS_TERM: tl.constexpr, HAS_KEEP: tl.constexpr,
    BLOCK_E: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_C: tl.constexpr,
):
    # The target's half of the score t_val [1, BH, BD] is loaded once, in the accumulation
    # dtype.
    (offs_h, mask_h, offs_d, mask_hd, offs_c, mask_hc, i, start, end, slot, whole, part, scale,
     slope, keep_scale, t_val) = program(tgt_ptr, stride_tn, stride_th, chunk_row_ptr,
                                         chunk_start_ptr, chunk_end_ptr, chunk_slot_ptr,
                                         params_ptr, H, D, C, BLOCK_H, BLOCK_D, BLOCK_C)
    m = tl.full([BLOCK_H], float("-inf"), dtype=t_val.dtype)  # running max
    l = tl.zeros([BLOCK_H], dtype=t_val.dtype)                # running sum of exp(s - m)
    acc = tl.zeros([BLOCK_H, BLOCK_C], dtype=t_val.dtype)     # running sum of p * v
    for e0 in range(start, end, BLOCK_E):
        mask_e, mask_eh, j, eid = edge_block(e0, end, mask_h, col_ptr, perm_ptr, BLOCK_E)
        _other, s, _pre = edge_scores(t_val, src_ptr, j, eid, mask_e, mask_eh, stride_sn,
                                      stride_sh, offs_h, offs_d, mask_hd, term_ptr, H, scale,
                                      slope, KIND, HAS_TERM)
        s = tl.where(mask_eh, s, float("-inf"))
        # Online softmax; a max of -inf (nothing seen yet, or masked) is shifted by 0 instead.
        m_new = tl.maximum(m, tl.max(s, axis=0))
        m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
        corr = tl.exp(m - m_use)
        p = tl.exp(s - m_use[None, :])                                        # [BE, BH]
        l = l * corr + tl.sum(p, axis=0)
        if HAS_KEEP:
            keep = edge_tile(keep_ptr, eid, offs_h, mask_eh, H, 0)
            p = tl.where(keep != 0, p * keep_scale, 0.0)
        vv = gather(v_ptr, j, stride_vn, stride_vh, offs_h, offs_c, mask_e,
                    mask_hc).to(t_val.dtype)                                  # [BE, BH, BC]
        acc = acc * corr[:, None] + tl.sum(p[:, :, None] * vv, axis=0)
        m = m_new
    ok, l_safe, lse = finish_lse(m, l)
    out = tl.where(ok[:, None], acc / l_safe[:, None], 0.0)
    tl.store(out_ptr + i * stride_on + offs_h[:, None] * stride_oh + offs_c[None, :],
             out.to(out_ptr.dtype.element_ty), mask=mask_hc & whole[:, None])
    tl.store(lse_ptr + offs_h * stride_lh + i, lse, mask=whole)
    # A chunk of a split row leaves its partial statistics for the merge kernel.
    tl.store(ws_m_ptr + slot * H + offs_h, m, mask=part)
    tl.store(ws_l_ptr + slot * H + offs_h, l, mask=part)
    tl.store(ws_acc_ptr + slot * H * C + offs_h[:, None] * C + offs_c[None, :], acc,
             mask=mask_hc & part[:, None])


@triton.jit
def _attention_alpha_kernel(
    tgt_ptr, src_ptr,       # [T, H, D], [S, H, D] the halves of the score
    term_ptr,               # [E, H] per-edge score term, caller's order
    col_ptr, perm_ptr,      # [E] source and caller's id of each target-sorted edge
    params_ptr,             # [3] (scale, negative slope, 1 / (1 - p))
    chunk_row_ptr, chunk_start_ptr, chunk_end_ptr,   # [NC] the work list
    lse_ptr,                # [H, T] final log-sum-exp
    alpha_ptr,              # [E, H] attention weights out, caller's order
    stride_tn, stride_th, stride_sn, stride_sh, stride_lh,
    H, D,
    KIND: tl.constexpr, HAS_TERM: tl.constexpr,
    BLOCK_E: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr,
):
    ACC = lse_ptr.dtype.element_ty
    offs_h, mask_h = heads(H, BLOCK_H)
    offs_d, mask_hd = lanes(D, mask_h, BLOCK_D)
    scale, slope, _keep_scale = scalars(params_ptr)
    i, start, end = chunk(chunk_row_ptr, chunk_start_ptr, chunk_end_ptr)
    t_val = node_tile(tgt_ptr, i, stride_tn, stride_th, offs_h, offs_d,
                      mask_hd).to(ACC)[None, :, :]
    lse = load_lse(lse_ptr, offs_h * stride_lh + i, mask_h)   # an empty row: every weight is 0
    for e0 in range(start, end, BLOCK_E):
        mask_e, mask_eh, j, eid = edge_block(e0, end, mask_h, col_ptr, perm_ptr, BLOCK_E)
        _other, s, _pre = edge_scores(t_val, src_ptr, j, eid, mask_e, mask_eh, stride_sn,
                                      stride_sh, offs_h, offs_d, mask_hd, term_ptr, H, scale,
                                      slope, KIND, HAS_TERM)
        alpha = tl.exp(s - lse[None, :])                                      # [BE, BH]
        tl.store(alpha_ptr + eid[:, None] * H + offs_h[None, :],
                 alpha.to(alpha_ptr.dtype.element_ty), mask=mask_eh)


@on_input_device
def attention_fwd(kind: int, tgt: Tensor, src: Tensor, v: Tensor, graph: List[Tensor],
                  term: Optional[Tensor], keep_mask: Optional[Tensor], scale: float,
                  slope: float, dropout: float, return_attention: bool,
                  split: Optional[int] = None) -> Tuple[Tensor, Tensor, Tensor]:
    """Fused attention forward over the CSR view.

    Args:
        kind: :data:`GAT` (``tgt = a_dst [T, H, 1]``, ``src = a_src [S, H, 1]``) or :data:`DOT`
            (``tgt = q [T, H, D]``, ``src = k [S, H, D]``).
        v: ``[S, H, C]`` values.
        graph: the tensors of a ``GraphCSR`` (``graph_tensors``), optionally followed by its
            work lists (:func:`~gatlib.ops.triton.plan.graph_plans`, built with the same
            ``split``).
        term: ``[E, H]`` per-edge score term in the caller's order, or None.
        keep_mask: ``[E, H]`` bool dropout keep mask in the caller's order, or None.
        scale, slope, dropout: dot-product scale, LeakyReLU slope, dropout probability.
        return_attention: also compute ``alpha [E, H]`` in the caller's order.
        split: longest run of edges per program (default :data:`~gatlib.ops.triton.plan.SPLIT`).

    Returns:
        ``out [T, H, C]`` (dtype of ``v``), ``lse [H, T]`` (accumulation dtype) and ``alpha
        [E, H]`` (or ``[0, H]`` when not requested).
    """
    T, H, D = tgt.shape
    S, C = src.size(0), v.size(2)
    check_graph(graph, T, S, H, term)
    g = csr_tensors(graph)
    E, dev = g.num_edges, v.device
    acc = acc_dtype(tgt.dtype)
    out = torch.empty(T, H, C, dtype=v.dtype, device=dev)
    lse = torch.empty(H, T, dtype=acc, device=dev)
    alpha = torch.empty(E if return_attention else 0, H, dtype=v.dtype, device=dev)
    if T == 0 or H == 0:
        return out, lse, alpha
    tgt, src, v = tgt.contiguous(), src.contiguous(), v.contiguous()
    term = term.contiguous() if term is not None else None
    keep = keep_u8(keep_mask)
    plan, _, _ = plans(graph, split)
    prm = params(scale, slope, dropout, acc, dev)
    be, bh = blocks(H, D, C)
    bd, bc = pow2(D), pow2(C)
    NS = plan.num_slots
    ws_m, ws_l = ws(NS, H, dtype=acc, device=dev), ws(NS, H, dtype=acc, device=dev)
    ws_acc = ws(NS, H, C, dtype=acc, device=dev)
    term_arg = term if term is not None else dummy(dev)
    _attention_fwd_kernel[(plan.num_chunks, triton.cdiv(H, bh))](
        tgt, src, v, term_arg, keep if keep is not None else dummy(dev, torch.uint8), g.col,
        g.perm, prm, *plan.chunks(), out, lse, ws_m, ws_l, ws_acc,
        tgt.stride(0), tgt.stride(1), src.stride(0), src.stride(1), v.stride(0), v.stride(1),
        out.stride(0), out.stride(1), lse.stride(0), H, D, C,
        KIND=kind, HAS_TERM=term is not None, HAS_KEEP=keep is not None,
        BLOCK_E=be, BLOCK_H=bh, BLOCK_D=bd, BLOCK_C=bc)
    if plan.num_split:
        lse_merge_kernel[(plan.num_split, triton.cdiv(H, bh))](
            ws_m, ws_l, ws_acc, plan.split_row, plan.split_ptr, out, lse,
            out.stride(0), out.stride(1), lse.stride(0), H, C,
            HAS_ACC=True, BLOCK_H=bh, BLOCK_C=bc)
    if return_attention and E > 0:
        be_a, bh_a = blocks(H, D)
        _attention_alpha_kernel[(plan.num_chunks, triton.cdiv(H, bh_a))](
            tgt, src, term_arg, g.col, g.perm, prm, plan.chunk_row, plan.chunk_start,
            plan.chunk_end, lse, alpha,
            tgt.stride(0), tgt.stride(1), src.stride(0), src.stride(1), lse.stride(0), H, D,
            KIND=kind, HAS_TERM=term is not None, BLOCK_E=be_a, BLOCK_H=bh_a, BLOCK_D=bd)
    return out, lse, alpha
