"""Triton kernels of the GPU backend, and the wrappers that validate, allocate and launch them.

Everything works on the CSR view of a graph (:class:`gatlib.graph.GraphCSR`): edges sorted by
target for the forward pass and the target side of the backward pass, sorted by source for the
source side of the backward pass.

**Work list.** One program handles one *chunk*: a run of at most ``SPLIT`` consecutive in-edges
of one node, for a block of ``BLOCK_H`` heads (grid ``(num_chunks, cdiv(H, BLOCK_H))``). A node
of ordinary degree is one chunk and its program writes the result directly. A node with more
than ``SPLIT`` edges (a hub with 100,000 in-edges next to many with one) is cut into several
chunks processed by separate programs, each writing a partial result into a small workspace
(one row per chunk of a split node, never per edge); a merge kernel then combines the partials
of each split node in a fixed order: a log-sum-exp merge of ``(max, sum, weighted sum)`` for
softmax statistics, a plain sum for gradients. The work lists of a graph (see :func:`row_plan`,
:func:`graph_plans`) are built once per graph and ``SPLIT`` and kept on the caller's
``GraphCSR`` (``GraphCSR.derived``), which passes them to the ops after its seven index tensors;
given only those seven, the ops build the work lists themselves.

**Forward.** Per chunk, the loop over its edges in blocks of ``BLOCK_E`` computes the scores on
the fly (``leaky_relu(a_src[j] + a_dst[i] + term)`` or ``scale q_i . k_j + term``), keeps a
running max ``m`` and sum ``l`` per head (the online softmax of FlashAttention) and accumulates
``acc += p v_j``; it writes ``out_i = acc / l`` (0 for a node without in-edges or only ``-inf``
scores, never NaN) and ``lse_i = m + log l`` (``-inf`` when empty). Nothing of size
``[E, H, C]`` or ``[E, H, D]`` exists at any point; the only per-edge output is the optional
``alpha [E, H]``, computed by a second pass once ``lse`` is final.

**Backward**, without atomics, recomputing the weights from ``lse``:

1. over targets: ``t_e = alpha_e * dL/dalpha_e`` with ``dL/dalpha_ij = dout_i . v_j`` (times the
   dropout factor, plus the gradient of the returned weights), stored per edge ``[E, H]``, and
   ``Dsum_i = sum_j t_ij``;
2. over targets again: ``g_s = t - alpha * Dsum_i`` (the softmax backward), ``g_pre`` through the
   LeakyReLU; per-target gradients (``grad_a_dst``, ``grad_q``) accumulate in registers and
   ``g_pre`` overwrites ``t`` (it is also the gradient of the per-edge score term);
3. over sources (``rowptr_t``, ``col_t`` and the caller's edge id of each source-sorted edge):
   ``grad_v_j = sum_i w_ij dout_i``, ``grad_a_src_j = sum_i g_pre_ij``,
   ``grad_k_j = scale sum_i g_s_ij q_i``, the weights ``w`` recomputed from ``lse``.

**Memory per edge:** the CSR indices (built once per graph), the caller edge id of each
source-sorted edge (``[E]`` int64, kept with the work lists), and in the backward one ``[E, H]``
buffer in the accumulation dtype (which is returned as the gradient of the per-edge term when
there is one).

**Determinism:** no kernel uses atomics; every sum runs in a fixed order inside one program, and
merges of split nodes run in chunk order. Results are therefore bitwise reproducible run to run
by construction, with or without ``torch.use_deterministic_algorithms(True)``.

**Numerics:** fp16/bf16 inputs are computed in fp32 and written back in the input dtype; fp32 in
fp32; fp64 in fp64. Per-edge tensors (score term, dropout mask, returned weights) are in the
caller's edge order and read through ``perm``, so no sorted copy of them is ever made.
"""
from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
import triton
import triton.language as tl
from torch import Tensor

__all__ = ["SPLIT", "RowPlan", "row_plan", "graph_plans", "attention_fwd", "attention_bwd",
           "segment_softmax_fwd", "segment_softmax_bwd", "interpreted"]

# Longest run of edges one program handles; longer rows are split across programs and merged.
# Tests lower it (monkeypatch) to force the split path on small graphs.
SPLIT = 1024

GAT, DOT = 0, 1   # the score kinds (constexpr KIND of the attention kernels)


# ------------------------------------------------------------------------------ jit helpers

@triton.jit
def _score(t_val, s_val, term, scale, slope, KIND: tl.constexpr):
    """Scores of a block of edges from the target half ``t_val`` and the source half ``s_val``
    (``[*, BH, BD]``, one of them broadcast over the edges). Returns ``(s, pre) [BE, BH]``:
    the score and, for GAT, the pre-activation (the LeakyReLU's input)."""
    if KIND == 0:
        # GAT: the halves are [N, H] tensors seen as [N, H, 1]; the sum over the unit axis
        # only drops it.
        pre = tl.sum(t_val + s_val, axis=2) + term
        # A -inf pre-activation (a masked edge) stays -inf for every slope (slope * -inf is
        # nan for a zero slope and +inf for a negative one).
        s = tl.where(pre > 0, pre, tl.where(pre == float("-inf"), pre, pre * slope))
    else:
        pre = tl.sum(t_val * s_val, axis=2) * scale + term
        s = pre
    return s, pre


@triton.jit
def _dscore(g_pre, other, scale, KIND: tl.constexpr):
    """Sum over a block of edges of ``g_pre * d pre / d half`` -> ``[BH, BD]``: ``d pre`` is 1 for
    GAT and ``scale * other`` (the other node's half) for the dot product."""
    if KIND == 0:
        out = tl.sum(g_pre, axis=0)[:, None]
    else:
        out = tl.sum(g_pre[:, :, None] * other, axis=0) * scale
    return out


# --------------------------------------------------------------------- attention: forward

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
    BLOCK_E: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    ACC = lse_ptr.dtype.element_ty
    c = tl.program_id(0)
    offs_h = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    offs_d = tl.arange(0, BLOCK_D)
    offs_c = tl.arange(0, BLOCK_C)
    mask_h = offs_h < H
    mask_hd = mask_h[:, None] & (offs_d < D)[None, :]
    mask_hc = mask_h[:, None] & (offs_c < C)[None, :]
    scale = tl.load(params_ptr)
    slope = tl.load(params_ptr + 1)
    keep_scale = tl.load(params_ptr + 2)
    i = tl.load(chunk_row_ptr + c)
    start = tl.load(chunk_start_ptr + c)
    end = tl.load(chunk_end_ptr + c)
    slot = tl.load(chunk_slot_ptr + c)
    # Whole row (write the result) or chunk of a split row (write a partial), per head lane;
    # the scalar is broadcast first (the interpreter rejects scalar & block masks).
    whole = mask_h & ((offs_h * 0 + slot) < 0)
    part = mask_h & ((offs_h * 0 + slot) >= 0)
    # The target's half of the score, loaded once: [1, BH, BD].
    t_val = tl.load(tgt_ptr + i * stride_tn + offs_h[:, None] * stride_th + offs_d[None, :],
                    mask=mask_hd, other=0.0).to(ACC)[None, :, :]
    m = tl.full([BLOCK_H], float("-inf"), dtype=ACC)       # running max
    l = tl.zeros([BLOCK_H], dtype=ACC)                     # running sum of exp(s - m)
    acc = tl.zeros([BLOCK_H, BLOCK_C], dtype=ACC)          # running sum of p * v
    for e0 in range(start, end, BLOCK_E):
        offs_e = e0 + tl.arange(0, BLOCK_E)
        mask_e = offs_e < end
        mask_eh = mask_e[:, None] & mask_h[None, :]
        j = tl.load(col_ptr + offs_e, mask=mask_e, other=0)
        eid = tl.load(perm_ptr + offs_e, mask=mask_e, other=0)
        s_val = tl.load(src_ptr + j[:, None, None] * stride_sn + offs_h[None, :, None] * stride_sh
                        + offs_d[None, None, :], mask=mask_e[:, None, None] & mask_hd[None, :, :],
                        other=0.0).to(ACC)                                    # [BE, BH, BD]
        if HAS_TERM:
            term = tl.load(term_ptr + eid[:, None] * H + offs_h[None, :], mask=mask_eh,
                           other=0.0).to(ACC)                                 # [BE, BH]
        else:
            term = 0.0
        s, pre = _score(t_val, s_val, term, scale, slope, KIND)
        s = tl.where(mask_eh, s, float("-inf"))
        # Online softmax; a max of -inf (nothing seen yet, or masked) is shifted by 0 instead.
        m_new = tl.maximum(m, tl.max(s, axis=0))
        m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
        corr = tl.exp(m - m_use)
        p = tl.exp(s - m_use[None, :])                                        # [BE, BH]
        l = l * corr + tl.sum(p, axis=0)
        if HAS_KEEP:
            keep = tl.load(keep_ptr + eid[:, None] * H + offs_h[None, :], mask=mask_eh, other=0)
            p = tl.where(keep != 0, p * keep_scale, 0.0)
        vv = tl.load(v_ptr + j[:, None, None] * stride_vn + offs_h[None, :, None] * stride_vh
                     + offs_c[None, None, :], mask=mask_e[:, None, None] & mask_hc[None, :, :],
                     other=0.0).to(ACC)                                       # [BE, BH, BC]
        acc = acc * corr[:, None] + tl.sum(p[:, :, None] * vv, axis=0)
        m = m_new
    ok = l > 0
    l_safe = tl.where(ok, l, 1.0)
    out = tl.where(ok[:, None], acc / l_safe[:, None], 0.0)
    lse = tl.where(ok, m + tl.log(l_safe), float("-inf"))
    tl.store(out_ptr + i * stride_on + offs_h[:, None] * stride_oh + offs_c[None, :],
             out.to(out_ptr.dtype.element_ty), mask=mask_hc & whole[:, None])
    tl.store(lse_ptr + offs_h * stride_lh + i, lse, mask=whole)
    # A chunk of a split row leaves its partial statistics for the merge kernel.
    tl.store(ws_m_ptr + slot * H + offs_h, m, mask=part)
    tl.store(ws_l_ptr + slot * H + offs_h, l, mask=part)
    tl.store(ws_acc_ptr + slot * H * C + offs_h[:, None] * C + offs_c[None, :], acc,
             mask=mask_hc & part[:, None])


@triton.jit
def _lse_merge_kernel(
    ws_m_ptr, ws_l_ptr,     # [NS, H] partial max and sum of each chunk
    ws_acc_ptr,             # [NS, H, C] partial weighted sums (read when HAS_ACC)
    split_row_ptr,          # [R] the split rows
    split_ptr_ptr,          # [R + 1] offsets of each split row's chunks in the workspace
    out_ptr,                # [T, H, C] output (written when HAS_ACC)
    lse_ptr,                # [H, T] log-sum-exp
    stride_on, stride_oh,   # out strides
    stride_lh,              # lse stride of the head
    H, C,
    HAS_ACC: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_C: tl.constexpr,
):
    ACC = lse_ptr.dtype.element_ty
    r = tl.program_id(0)
    offs_h = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    offs_c = tl.arange(0, BLOCK_C)
    mask_h = offs_h < H
    mask_hc = mask_h[:, None] & (offs_c < C)[None, :]
    i = tl.load(split_row_ptr + r)
    s0 = tl.load(split_ptr_ptr + r)
    s1 = tl.load(split_ptr_ptr + r + 1)
    m = tl.full([BLOCK_H], float("-inf"), dtype=ACC)
    l = tl.zeros([BLOCK_H], dtype=ACC)
    acc = tl.zeros([BLOCK_H, BLOCK_C], dtype=ACC)
    # Chunks merge in their order: the result does not depend on scheduling.
    for s in range(s0, s1):
        m_s = tl.load(ws_m_ptr + s * H + offs_h, mask=mask_h, other=float("-inf"))
        l_s = tl.load(ws_l_ptr + s * H + offs_h, mask=mask_h, other=0.0)
        m_new = tl.maximum(m, m_s)
        m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
        a = tl.exp(m - m_use)
        b = tl.exp(m_s - m_use)
        l = l * a + l_s * b
        if HAS_ACC:
            acc_s = tl.load(ws_acc_ptr + s * H * C + offs_h[:, None] * C + offs_c[None, :],
                            mask=mask_hc, other=0.0)
            acc = acc * a[:, None] + acc_s * b[:, None]
        m = m_new
    ok = l > 0
    l_safe = tl.where(ok, l, 1.0)
    tl.store(lse_ptr + offs_h * stride_lh + i, tl.where(ok, m + tl.log(l_safe), float("-inf")),
             mask=mask_h)
    if HAS_ACC:
        out = tl.where(ok[:, None], acc / l_safe[:, None], 0.0)
        tl.store(out_ptr + i * stride_on + offs_h[:, None] * stride_oh + offs_c[None, :],
                 out.to(out_ptr.dtype.element_ty), mask=mask_hc)


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
    c = tl.program_id(0)
    offs_h = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    offs_d = tl.arange(0, BLOCK_D)
    mask_h = offs_h < H
    mask_hd = mask_h[:, None] & (offs_d < D)[None, :]
    scale = tl.load(params_ptr)
    slope = tl.load(params_ptr + 1)
    i = tl.load(chunk_row_ptr + c)
    start = tl.load(chunk_start_ptr + c)
    end = tl.load(chunk_end_ptr + c)
    t_val = tl.load(tgt_ptr + i * stride_tn + offs_h[:, None] * stride_th + offs_d[None, :],
                    mask=mask_hd, other=0.0).to(ACC)[None, :, :]
    lse = tl.load(lse_ptr + offs_h * stride_lh + i, mask=mask_h, other=float("inf"))
    lse = tl.where(lse == float("-inf"), float("inf"), lse)   # an empty row: every weight is 0
    for e0 in range(start, end, BLOCK_E):
        offs_e = e0 + tl.arange(0, BLOCK_E)
        mask_e = offs_e < end
        mask_eh = mask_e[:, None] & mask_h[None, :]
        j = tl.load(col_ptr + offs_e, mask=mask_e, other=0)
        eid = tl.load(perm_ptr + offs_e, mask=mask_e, other=0)
        s_val = tl.load(src_ptr + j[:, None, None] * stride_sn + offs_h[None, :, None] * stride_sh
                        + offs_d[None, None, :], mask=mask_e[:, None, None] & mask_hd[None, :, :],
                        other=0.0).to(ACC)
        if HAS_TERM:
            term = tl.load(term_ptr + eid[:, None] * H + offs_h[None, :], mask=mask_eh,
                           other=0.0).to(ACC)
        else:
            term = 0.0
        s, pre = _score(t_val, s_val, term, scale, slope, KIND)
        alpha = tl.exp(s - lse[None, :])                                      # [BE, BH]
        tl.store(alpha_ptr + eid[:, None] * H + offs_h[None, :],
                 alpha.to(alpha_ptr.dtype.element_ty), mask=mask_eh)


# -------------------------------------------------------------------- attention: backward

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
    BLOCK_E: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    ACC = lse_ptr.dtype.element_ty
    c = tl.program_id(0)
    offs_h = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    offs_d = tl.arange(0, BLOCK_D)
    offs_c = tl.arange(0, BLOCK_C)
    mask_h = offs_h < H
    mask_hd = mask_h[:, None] & (offs_d < D)[None, :]
    mask_hc = mask_h[:, None] & (offs_c < C)[None, :]
    scale = tl.load(params_ptr)
    slope = tl.load(params_ptr + 1)
    keep_scale = tl.load(params_ptr + 2)
    i = tl.load(chunk_row_ptr + c)
    start = tl.load(chunk_start_ptr + c)
    end = tl.load(chunk_end_ptr + c)
    slot = tl.load(chunk_slot_ptr + c)
    # Whole row (write the result) or chunk of a split row (write a partial), per head lane;
    # the scalar is broadcast first (the interpreter rejects scalar & block masks).
    whole = mask_h & ((offs_h * 0 + slot) < 0)
    part = mask_h & ((offs_h * 0 + slot) >= 0)
    t_val = tl.load(tgt_ptr + i * stride_tn + offs_h[:, None] * stride_th + offs_d[None, :],
                    mask=mask_hd, other=0.0).to(ACC)[None, :, :]
    do = tl.load(dout_ptr + i * stride_dn + offs_h[:, None] * stride_dh + offs_c[None, :],
                 mask=mask_hc, other=0.0).to(ACC)                             # [BH, BC]
    lse = tl.load(lse_ptr + offs_h * stride_lh + i, mask=mask_h, other=float("inf"))
    lse = tl.where(lse == float("-inf"), float("inf"), lse)
    dsum = tl.zeros([BLOCK_H], dtype=ACC)
    for e0 in range(start, end, BLOCK_E):
        offs_e = e0 + tl.arange(0, BLOCK_E)
        mask_e = offs_e < end
        mask_eh = mask_e[:, None] & mask_h[None, :]
        j = tl.load(col_ptr + offs_e, mask=mask_e, other=0)
        eid = tl.load(perm_ptr + offs_e, mask=mask_e, other=0)
        s_val = tl.load(src_ptr + j[:, None, None] * stride_sn + offs_h[None, :, None] * stride_sh
                        + offs_d[None, None, :], mask=mask_e[:, None, None] & mask_hd[None, :, :],
                        other=0.0).to(ACC)
        if HAS_TERM:
            term = tl.load(term_ptr + eid[:, None] * H + offs_h[None, :], mask=mask_eh,
                           other=0.0).to(ACC)
        else:
            term = 0.0
        s, pre = _score(t_val, s_val, term, scale, slope, KIND)
        alpha = tl.where(mask_eh, tl.exp(s - lse[None, :]), 0.0)              # [BE, BH]
        vv = tl.load(v_ptr + j[:, None, None] * stride_vn + offs_h[None, :, None] * stride_vh
                     + offs_c[None, None, :], mask=mask_e[:, None, None] & mask_hc[None, :, :],
                     other=0.0).to(ACC)                                       # [BE, BH, BC]
        g = tl.sum(do[None, :, :] * vv, axis=2)                               # dL/dw [BE, BH]
        if HAS_KEEP:
            keep = tl.load(keep_ptr + eid[:, None] * H + offs_h[None, :], mask=mask_eh, other=0)
            g = tl.where(keep != 0, g * keep_scale, 0.0)
        if HAS_GALPHA:
            g += tl.load(galpha_ptr + eid[:, None] * H + offs_h[None, :], mask=mask_eh,
                         other=0.0).to(ACC)
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
    c = tl.program_id(0)
    offs_h = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    offs_d = tl.arange(0, BLOCK_D)
    mask_h = offs_h < H
    mask_hd = mask_h[:, None] & (offs_d < D)[None, :]
    scale = tl.load(params_ptr)
    slope = tl.load(params_ptr + 1)
    i = tl.load(chunk_row_ptr + c)
    start = tl.load(chunk_start_ptr + c)
    end = tl.load(chunk_end_ptr + c)
    slot = tl.load(chunk_slot_ptr + c)
    # Whole row (write the result) or chunk of a split row (write a partial), per head lane;
    # the scalar is broadcast first (the interpreter rejects scalar & block masks).
    whole = mask_h & ((offs_h * 0 + slot) < 0)
    part = mask_h & ((offs_h * 0 + slot) >= 0)
    t_val = tl.load(tgt_ptr + i * stride_tn + offs_h[:, None] * stride_th + offs_d[None, :],
                    mask=mask_hd, other=0.0).to(ACC)[None, :, :]
    lse = tl.load(lse_ptr + offs_h * stride_lh + i, mask=mask_h, other=float("inf"))
    lse = tl.where(lse == float("-inf"), float("inf"), lse)
    dsum = tl.load(dsum_ptr + i * H + offs_h, mask=mask_h, other=0.0)
    grad = tl.zeros([BLOCK_H, BLOCK_D], dtype=ACC)
    for e0 in range(start, end, BLOCK_E):
        offs_e = e0 + tl.arange(0, BLOCK_E)
        mask_e = offs_e < end
        mask_eh = mask_e[:, None] & mask_h[None, :]
        j = tl.load(col_ptr + offs_e, mask=mask_e, other=0)
        eid = tl.load(perm_ptr + offs_e, mask=mask_e, other=0)
        s_val = tl.load(src_ptr + j[:, None, None] * stride_sn + offs_h[None, :, None] * stride_sh
                        + offs_d[None, None, :], mask=mask_e[:, None, None] & mask_hd[None, :, :],
                        other=0.0).to(ACC)
        if HAS_TERM:
            term = tl.load(term_ptr + eid[:, None] * H + offs_h[None, :], mask=mask_eh,
                           other=0.0).to(ACC)
        else:
            term = 0.0
        s, pre = _score(t_val, s_val, term, scale, slope, KIND)
        alpha = tl.exp(s - lse[None, :])
        t = tl.load(g_ptr + eid[:, None] * H + offs_h[None, :], mask=mask_eh, other=0.0)
        g = t - alpha * dsum[None, :]                                         # dL/ds [BE, BH]
        if KIND == 0:
            # LeakyReLU'(x) = 1 for x > 0, the slope otherwise (as torch's own backward).
            g = tl.where(pre > 0, g, g * slope)
        g = tl.where(mask_eh, g, 0.0)
        tl.store(g_ptr + eid[:, None] * H + offs_h[None, :], g, mask=mask_eh)
        grad += _dscore(g, s_val, scale, KIND)
    tl.store(grad_tgt_ptr + i * stride_gn + offs_h[:, None] * stride_gh + offs_d[None, :],
             grad.to(grad_tgt_ptr.dtype.element_ty), mask=mask_hd & whole[:, None])
    tl.store(ws_ptr + slot * H * D + offs_h[:, None] * D + offs_d[None, :], grad,
             mask=mask_hd & part[:, None])


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
    BLOCK_E: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    ACC = lse_ptr.dtype.element_ty
    c = tl.program_id(0)
    offs_h = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    offs_d = tl.arange(0, BLOCK_D)
    offs_c = tl.arange(0, BLOCK_C)
    mask_h = offs_h < H
    mask_hd = mask_h[:, None] & (offs_d < D)[None, :]
    mask_hc = mask_h[:, None] & (offs_c < C)[None, :]
    scale = tl.load(params_ptr)
    slope = tl.load(params_ptr + 1)
    keep_scale = tl.load(params_ptr + 2)
    j = tl.load(chunk_row_ptr + c)
    start = tl.load(chunk_start_ptr + c)
    end = tl.load(chunk_end_ptr + c)
    slot = tl.load(chunk_slot_ptr + c)
    # Whole row (write the result) or chunk of a split row (write a partial), per head lane;
    # the scalar is broadcast first (the interpreter rejects scalar & block masks).
    whole = mask_h & ((offs_h * 0 + slot) < 0)
    part = mask_h & ((offs_h * 0 + slot) >= 0)
    # The source's half of the score, loaded once: [1, BH, BD].
    s_val = tl.load(src_ptr + j * stride_sn + offs_h[:, None] * stride_sh + offs_d[None, :],
                    mask=mask_hd, other=0.0).to(ACC)[None, :, :]
    grad_s = tl.zeros([BLOCK_H, BLOCK_D], dtype=ACC)
    grad_v = tl.zeros([BLOCK_H, BLOCK_C], dtype=ACC)
    for e0 in range(start, end, BLOCK_E):
        offs_e = e0 + tl.arange(0, BLOCK_E)
        mask_e = offs_e < end
        mask_eh = mask_e[:, None] & mask_h[None, :]
        i = tl.load(col_t_ptr + offs_e, mask=mask_e, other=0)
        eid = tl.load(eid_t_ptr + offs_e, mask=mask_e, other=0)
        t_val = tl.load(tgt_ptr + i[:, None, None] * stride_tn + offs_h[None, :, None] * stride_th
                        + offs_d[None, None, :], mask=mask_e[:, None, None] & mask_hd[None, :, :],
                        other=0.0).to(ACC)                                    # [BE, BH, BD]
        if HAS_TERM:
            term = tl.load(term_ptr + eid[:, None] * H + offs_h[None, :], mask=mask_eh,
                           other=0.0).to(ACC)
        else:
            term = 0.0
        s, pre = _score(t_val, s_val, term, scale, slope, KIND)
        lse = tl.load(lse_ptr + offs_h[None, :] * stride_lh + i[:, None], mask=mask_eh,
                      other=float("inf"))
        lse = tl.where(lse == float("-inf"), float("inf"), lse)
        w = tl.where(mask_eh, tl.exp(s - lse), 0.0)                           # [BE, BH]
        if HAS_KEEP:
            keep = tl.load(keep_ptr + eid[:, None] * H + offs_h[None, :], mask=mask_eh, other=0)
            w = tl.where(keep != 0, w * keep_scale, 0.0)
        do = tl.load(dout_ptr + i[:, None, None] * stride_dn + offs_h[None, :, None] * stride_dh
                     + offs_c[None, None, :], mask=mask_e[:, None, None] & mask_hc[None, :, :],
                     other=0.0).to(ACC)                                       # [BE, BH, BC]
        grad_v += tl.sum(w[:, :, None] * do, axis=0)
        g = tl.load(g_ptr + eid[:, None] * H + offs_h[None, :], mask=mask_eh, other=0.0)
        grad_s += _dscore(g, t_val, scale, KIND)
    tl.store(grad_src_ptr + j * stride_gsn + offs_h[:, None] * stride_gsh + offs_d[None, :],
             grad_s.to(grad_src_ptr.dtype.element_ty), mask=mask_hd & whole[:, None])
    tl.store(grad_v_ptr + j * stride_gvn + offs_h[:, None] * stride_gvh + offs_c[None, :],
             grad_v.to(grad_v_ptr.dtype.element_ty), mask=mask_hc & whole[:, None])
    tl.store(ws_s_ptr + slot * H * D + offs_h[:, None] * D + offs_d[None, :], grad_s,
             mask=mask_hd & part[:, None])
    tl.store(ws_v_ptr + slot * H * C + offs_h[:, None] * C + offs_c[None, :], grad_v,
             mask=mask_hc & part[:, None])


@triton.jit
def _sum_merge_kernel(
    ws_ptr,                 # [NS, W] partial sums, one row per chunk of a split row
    split_row_ptr,          # [R] the split rows
    split_ptr_ptr,          # [R + 1] offsets of each split row's chunks in the workspace
    out_ptr,                # [N, W] rows of the result (row stride stride_on, contiguous in W)
    stride_on,
    W,
    BLOCK_W: tl.constexpr,
):
    r = tl.program_id(0)
    offs_w = tl.program_id(1) * BLOCK_W + tl.arange(0, BLOCK_W)
    mask_w = offs_w < W
    i = tl.load(split_row_ptr + r)
    s0 = tl.load(split_ptr_ptr + r)
    s1 = tl.load(split_ptr_ptr + r + 1)
    acc = tl.zeros([BLOCK_W], dtype=ws_ptr.dtype.element_ty)
    for s in range(s0, s1):   # in chunk order: deterministic
        acc += tl.load(ws_ptr + s * W + offs_w, mask=mask_w, other=0.0)
    tl.store(out_ptr + i * stride_on + offs_w, acc.to(out_ptr.dtype.element_ty), mask=mask_w)


# ------------------------------------------------------------------------ segment softmax

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
    c = tl.program_id(0)
    offs_h = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    mask_h = offs_h < H
    i = tl.load(chunk_row_ptr + c)
    start = tl.load(chunk_start_ptr + c)
    end = tl.load(chunk_end_ptr + c)
    slot = tl.load(chunk_slot_ptr + c)
    # Whole row (write the result) or chunk of a split row (write a partial), per head lane;
    # the scalar is broadcast first (the interpreter rejects scalar & block masks).
    whole = mask_h & ((offs_h * 0 + slot) < 0)
    part = mask_h & ((offs_h * 0 + slot) >= 0)
    m = tl.full([BLOCK_H], float("-inf"), dtype=ACC)
    l = tl.zeros([BLOCK_H], dtype=ACC)
    for e0 in range(start, end, BLOCK_E):
        offs_e = e0 + tl.arange(0, BLOCK_E)
        mask_e = offs_e < end
        mask_eh = mask_e[:, None] & mask_h[None, :]
        eid = tl.load(perm_ptr + offs_e, mask=mask_e, other=0)
        x = tl.load(src_ptr + eid[:, None] * H + offs_h[None, :], mask=mask_eh,
                    other=float("-inf")).to(ACC)                              # [BE, BH]
        m_new = tl.maximum(m, tl.max(x, axis=0))
        m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
        l = l * tl.exp(m - m_use) + tl.sum(tl.exp(x - m_use[None, :]), axis=0)
        m = m_new
    ok = l > 0
    lse = tl.where(ok, m + tl.log(tl.where(ok, l, 1.0)), float("-inf"))
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
    c = tl.program_id(0)
    offs_h = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    mask_h = offs_h < H
    i = tl.load(chunk_row_ptr + c)
    start = tl.load(chunk_start_ptr + c)
    end = tl.load(chunk_end_ptr + c)
    lse = tl.load(lse_ptr + offs_h * stride_lh + i, mask=mask_h, other=float("inf"))
    lse = tl.where(lse == float("-inf"), float("inf"), lse)   # all -inf: zeros, not NaN
    for e0 in range(start, end, BLOCK_E):
        offs_e = e0 + tl.arange(0, BLOCK_E)
        mask_e = offs_e < end
        mask_eh = mask_e[:, None] & mask_h[None, :]
        eid = tl.load(perm_ptr + offs_e, mask=mask_e, other=0)
        x = tl.load(src_ptr + eid[:, None] * H + offs_h[None, :], mask=mask_eh,
                    other=float("-inf")).to(ACC)
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
    c = tl.program_id(0)
    offs_h = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    mask_h = offs_h < H
    i = tl.load(chunk_row_ptr + c)
    start = tl.load(chunk_start_ptr + c)
    end = tl.load(chunk_end_ptr + c)
    slot = tl.load(chunk_slot_ptr + c)
    # Whole row (write the result) or chunk of a split row (write a partial), per head lane;
    # the scalar is broadcast first (the interpreter rejects scalar & block masks).
    whole = mask_h & ((offs_h * 0 + slot) < 0)
    part = mask_h & ((offs_h * 0 + slot) >= 0)
    dot = tl.zeros([BLOCK_H], dtype=ACC)
    for e0 in range(start, end, BLOCK_E):
        offs_e = e0 + tl.arange(0, BLOCK_E)
        mask_e = offs_e < end
        mask_eh = mask_e[:, None] & mask_h[None, :]
        eid = tl.load(perm_ptr + offs_e, mask=mask_e, other=0)
        g = tl.load(grad_ptr + eid[:, None] * H + offs_h[None, :], mask=mask_eh, other=0.0)
        y = tl.load(y_ptr + eid[:, None] * H + offs_h[None, :], mask=mask_eh, other=0.0)
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
    c = tl.program_id(0)
    offs_h = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    mask_h = offs_h < H
    i = tl.load(chunk_row_ptr + c)
    start = tl.load(chunk_start_ptr + c)
    end = tl.load(chunk_end_ptr + c)
    dot = tl.load(dot_ptr + i * H + offs_h, mask=mask_h, other=0.0)
    for e0 in range(start, end, BLOCK_E):
        offs_e = e0 + tl.arange(0, BLOCK_E)
        mask_e = offs_e < end
        mask_eh = mask_e[:, None] & mask_h[None, :]
        eid = tl.load(perm_ptr + offs_e, mask=mask_e, other=0)
        g = tl.load(grad_ptr + eid[:, None] * H + offs_h[None, :], mask=mask_eh, other=0.0)
        y = tl.load(y_ptr + eid[:, None] * H + offs_h[None, :], mask=mask_eh, other=0.0)
        dx = y.to(ACC) * (g.to(ACC) - dot[None, :])
        tl.store(out_ptr + eid[:, None] * H + offs_h[None, :], dx.to(out_ptr.dtype.element_ty),
                 mask=mask_eh)


# ------------------------------------------------------------------------- the work list

@dataclass(frozen=True)
class RowPlan:
    """The chunks of a CSR row pointer: which programs process which edges.

    Attributes (``NC`` chunks, ``R`` split rows, ``NS`` chunks of split rows):
        chunk_row, chunk_start, chunk_end: ``[NC]`` row and edge range of each chunk.
        chunk_slot: ``[NC]`` workspace row of a chunk of a split row, ``-1`` for a whole row.
        split_row: ``[R]`` rows with more than ``split`` edges.
        split_ptr: ``[R + 1]`` offsets of each split row's chunks in the workspace.
        slot_row: ``[NS]`` row of each workspace slot (its length sizes the workspaces, with no
            read of a device value).
    """

    chunk_row: Tensor
    chunk_start: Tensor
    chunk_end: Tensor
    chunk_slot: Tensor
    split_row: Tensor
    split_ptr: Tensor
    slot_row: Tensor

    @property
    def num_chunks(self) -> int:
        return self.chunk_row.numel()

    @property
    def num_slots(self) -> int:
        return self.slot_row.numel()

    @property
    def num_split(self) -> int:
        return self.split_row.numel()

    def chunks(self) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.chunk_row, self.chunk_start, self.chunk_end, self.chunk_slot

    def tensors(self) -> List[Tensor]:
        """The plan as a list of tensors (how it travels through a registered op)."""
        return [self.chunk_row, self.chunk_start, self.chunk_end, self.chunk_slot,
                self.split_row, self.split_ptr, self.slot_row]


PLAN_TENSORS = 7            # tensors of one RowPlan
GRAPH_TENSORS = 7           # tensors of a GraphCSR (graph_tensors)
PLANNED_GRAPH_TENSORS = GRAPH_TENSORS + 2 * PLAN_TENSORS + 1


def row_plan(rowptr: Tensor, split: Optional[int] = None) -> RowPlan:
    """The work list of ``rowptr [R + 1]``: every row is one chunk, except rows with more than
    ``split`` edges (default :data:`SPLIT`), cut into chunks of at most ``split`` edges. An empty
    row is one empty chunk (its program writes the zero output). Built anew on every call: a
    graph's plans are kept on its ``GraphCSR`` (see :func:`graph_plans`)."""
    split = int(SPLIT if split is None else split)
    if split < 1:
        raise ValueError(f"split must be a positive number of edges, got {split}")
    dev = rowptr.device
    R = rowptr.numel() - 1
    deg = rowptr[1:] - rowptr[:-1]                                         # [R]
    n = torch.clamp(torch.div(deg + split - 1, split, rounding_mode="floor"), min=1)  # [R]
    ends = torch.cumsum(n, 0)                                              # [R]
    NC = int(ends[-1]) if R > 0 else 0
    row = torch.repeat_interleave(torch.arange(R, device=dev), n, output_size=NC)  # [NC]
    k = torch.arange(NC, device=dev) - (ends - n)[row]                     # chunk within row
    start = rowptr[row] + k * split                                        # [NC]
    end = torch.minimum(start + split, rowptr[row + 1])                    # [NC]
    is_part = (n > 1)[row]                                                 # [NC]
    slot = torch.where(is_part, torch.cumsum(is_part.long(), 0) - 1,
                       torch.full_like(row, -1))                           # [NC]
    split_row = torch.nonzero(n > 1).flatten()                             # [R']
    split_ptr = torch.zeros(split_row.numel() + 1, dtype=torch.long, device=dev)
    torch.cumsum(n[split_row], 0, out=split_ptr[1:])
    slot_row = row[is_part]                                                # [NS]
    return RowPlan(row, start, end, slot, split_row, split_ptr, slot_row)


def graph_plans(graph: List[Tensor], split: Optional[int] = None) -> List[Tensor]:
    """The work lists of a graph (its tensors from ``graph_tensors``), as the tensors the ops
    take after the graph's seven: the plan over targets, the plan over sources, and the caller
    edge id of each source-sorted edge ``perm[perm_t]``."""
    perm, perm_t = graph[3], graph[6]
    return (row_plan(graph[0], split).tensors() + row_plan(graph[4], split).tensors()
            + [perm[perm_t]])


def _plans(graph: List[Tensor], split: Optional[int], source_side: bool = False):
    """``(target plan, source plan or None, eid_t or None)`` from a planned graph list, or built
    here from the seven graph tensors."""
    if len(graph) == PLANNED_GRAPH_TENSORS:
        g = GRAPH_TENSORS
        plan = RowPlan(*graph[g:g + PLAN_TENSORS])
        plan_t = RowPlan(*graph[g + PLAN_TENSORS:g + 2 * PLAN_TENSORS])
        return plan, plan_t, graph[-1]
    plan = row_plan(graph[0], split)
    if not source_side:
        return plan, None, None
    return plan, row_plan(graph[4], split), graph[3][graph[6]]


def _segments(index: Tensor, num_nodes: int) -> Tuple[Tensor, Tensor]:
    """``(rowptr [N + 1], perm [E])`` of an unsorted segment index (built on every call)."""
    perm = torch.argsort(index, stable=True)                               # [E]
    # searchsorted, not bincount: deterministic on every device.
    rowptr = torch.searchsorted(index[perm], torch.arange(num_nodes + 1, device=index.device,
                                                          dtype=index.dtype))  # [N + 1]
    return rowptr, perm


# ----------------------------------------------------------------------------- launching

def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """The accumulation dtype: fp32 for fp16/bf16/fp32, fp64 for fp64."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def interpreted() -> bool:
    """Whether the kernels were built for Triton's CPU interpreter (``TRITON_INTERPRET=1`` was
    set when this module was imported)."""
    return type(_attention_fwd_kernel).__name__ == "InterpretedFunction"


def _pow2(n: int) -> int:
    return triton.next_power_of_2(max(int(n), 1))


def _blocks(H: int, *widths: int) -> Tuple[int, int]:
    """``(BLOCK_E, BLOCK_H)`` for kernels that gather, per edge and head, vectors of the given
    widths (e.g. ``D`` of k and ``C`` of v): the gathered register tiles ``[BLOCK_E, BLOCK_H,
    width]`` hold about 2048 elements together (16 per thread at 4 warps, their 64-bit
    addresses as much again). Larger tiles spill in the backward kernels (checked with ptxas
    for sm_90)."""
    total = sum(_pow2(w) for w in widths if w > 1) or 1   # unit widths (GAT halves): scalars
    bh = min(_pow2(H), max(1, 128 // max(_pow2(w) for w in widths)))
    fit = max(1, 2048 // (bh * total))
    be = max(8, min(64, 1 << (fit.bit_length() - 1)))       # a power of two in [8, 64]
    return be, bh


# Small constant tensors, made once per device (no host-to-device copy per call, and none
# inside a CUDA-graph capture after the first call).
_CONSTANTS: dict = {}


def _constant(values: tuple, dtype, device) -> Tensor:
    key = (values, dtype, str(device))
    hit = _CONSTANTS.get(key)
    if hit is None:
        if len(_CONSTANTS) > 256:
            _CONSTANTS.clear()
        hit = _CONSTANTS[key] = torch.tensor(values, dtype=dtype, device=device)
    return hit


def _dummy(device, dtype=torch.float32) -> Tensor:
    """A stand-in for an absent optional tensor (never read: its HAS_* flag is off)."""
    return _constant((0,), dtype, device)


def _on_input_device(fn):
    """Launch on the inputs' GPU, whatever the current device is."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        device = next(a.device for a in args if isinstance(a, Tensor))
        guard = torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()
        with guard:
            return fn(*args, **kwargs)
    return wrapper


def _ws(rows: int, *shape, dtype, device) -> Tensor:
    return torch.empty(max(rows, 1), *shape, dtype=dtype, device=device)


def _keep_u8(mask: Optional[Tensor]) -> Optional[Tensor]:
    if mask is None:
        return None
    return mask.contiguous().view(torch.uint8) if mask.dtype == torch.bool else (
        (mask != 0).contiguous().view(torch.uint8))


def _params(scale: float, slope: float, dropout: float, dtype, device) -> Tensor:
    # Scalars travel in a tensor: kernel float arguments are fp32, which would round the fp64
    # path's scale and slope.
    keep_scale = 1.0 / (1.0 - dropout) if dropout > 0.0 else 1.0
    return _constant((float(scale), float(slope), keep_scale), dtype, device)


def _sum_merge(ws: Tensor, plan: RowPlan, out: Tensor) -> None:
    """Sum the partial rows ``ws [NS, W]`` of split rows into ``out [N, W]`` (rows contiguous)."""
    if plan.num_split == 0:
        return
    W = ws[0].numel()
    if W == 0:
        return
    block_w = min(_pow2(W), 1024)
    grid = (plan.num_split, triton.cdiv(W, block_w))
    _sum_merge_kernel[grid](ws, plan.split_row, plan.split_ptr, out, out.stride(0), W,
                            BLOCK_W=block_w)


def _check_graph(graph: List[Tensor], T: int, S: int, H: int, term: Optional[Tensor]) -> None:
    if len(graph) not in (GRAPH_TENSORS, PLANNED_GRAPH_TENSORS):
        raise ValueError(f"graph must be the {GRAPH_TENSORS} tensors of a GraphCSR "
                         f"(graph_tensors), optionally followed by its work lists "
                         f"(graph_plans), got {len(graph)} tensors")
    if graph[0].numel() != T + 1 or graph[4].numel() != S + 1:
        raise ValueError(f"graph has {graph[0].numel() - 1} targets and {graph[4].numel() - 1} "
                         f"sources, the inputs {T} and {S}")
    if term is not None and tuple(term.shape) != (graph[1].numel(), H):
        raise ValueError(f"the per-edge term must have shape [E, H] = [{graph[1].numel()}, {H}], "
                         f"got {tuple(term.shape)}")


@_on_input_device
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
            work lists (:func:`graph_plans`, built with the same ``split``).
        term: ``[E, H]`` per-edge score term in the caller's order, or None.
        keep_mask: ``[E, H]`` bool dropout keep mask in the caller's order, or None.
        scale, slope, dropout: dot-product scale, LeakyReLU slope, dropout probability.
        return_attention: also compute ``alpha [E, H]`` in the caller's order.
        split: longest run of edges per program (default :data:`SPLIT`).

    Returns:
        ``out [T, H, C]`` (dtype of ``v``), ``lse [H, T]`` (accumulation dtype) and ``alpha
        [E, H]`` (or ``[0, H]`` when not requested).
    """
    T, H, D = tgt.shape
    S, C = src.size(0), v.size(2)
    _check_graph(graph, T, S, H, term)
    col, perm = graph[1], graph[3]
    E, dev = col.numel(), v.device
    acc = acc_dtype(tgt.dtype)
    out = torch.empty(T, H, C, dtype=v.dtype, device=dev)
    lse = torch.empty(H, T, dtype=acc, device=dev)
    alpha = torch.empty(E if return_attention else 0, H, dtype=v.dtype, device=dev)
    if T == 0 or H == 0:
        return out, lse, alpha
    tgt, src, v = tgt.contiguous(), src.contiguous(), v.contiguous()
    term = term.contiguous() if term is not None else None
    keep = _keep_u8(keep_mask)
    plan, _, _ = _plans(graph, split)
    params = _params(scale, slope, dropout, acc, dev)
    be, bh = _blocks(H, D, C)
    bd, bc = _pow2(D), _pow2(C)
    NS = plan.num_slots
    ws_m, ws_l = _ws(NS, H, dtype=acc, device=dev), _ws(NS, H, dtype=acc, device=dev)
    ws_acc = _ws(NS, H, C, dtype=acc, device=dev)
    grid = (plan.num_chunks, triton.cdiv(H, bh))
    _attention_fwd_kernel[grid](
        tgt, src, v, term if term is not None else _dummy(dev),
        keep if keep is not None else _dummy(dev, torch.uint8), col, perm, params,
        *plan.chunks(), out, lse, ws_m, ws_l, ws_acc,
        tgt.stride(0), tgt.stride(1), src.stride(0), src.stride(1), v.stride(0), v.stride(1),
        out.stride(0), out.stride(1), lse.stride(0), H, D, C,
        KIND=kind, HAS_TERM=term is not None, HAS_KEEP=keep is not None,
        BLOCK_E=be, BLOCK_H=bh, BLOCK_D=bd, BLOCK_C=bc)
    if plan.num_split:
        _lse_merge_kernel[(plan.num_split, triton.cdiv(H, bh))](
            ws_m, ws_l, ws_acc, plan.split_row, plan.split_ptr, out, lse,
            out.stride(0), out.stride(1), lse.stride(0), H, C,
            HAS_ACC=True, BLOCK_H=bh, BLOCK_C=bc)
    if return_attention and E > 0:
        be_a, bh_a = _blocks(H, D)
        _attention_alpha_kernel[(plan.num_chunks, triton.cdiv(H, bh_a))](
            tgt, src, term if term is not None else _dummy(dev), col, perm, params,
            plan.chunk_row, plan.chunk_start, plan.chunk_end, lse, alpha,
            tgt.stride(0), tgt.stride(1), src.stride(0), src.stride(1), lse.stride(0), H, D,
            KIND=kind, HAS_TERM=term is not None, BLOCK_E=be_a, BLOCK_H=bh_a, BLOCK_D=bd)
    return out, lse, alpha


@_on_input_device
def attention_bwd(kind: int, grad_out: Tensor, grad_alpha: Optional[Tensor], tgt: Tensor,
                  src: Tensor, v: Tensor, lse: Tensor, graph: List[Tensor],
                  term: Optional[Tensor], keep_mask: Optional[Tensor], scale: float,
                  slope: float, dropout: float, split: Optional[int] = None
                  ) -> Tuple[Tensor, Tensor, Tensor, Optional[Tensor]]:
    """Backward of :func:`attention_fwd` from the saved ``lse [H, T]``.

    Returns ``(grad_tgt [T, H, D], grad_src [S, H, D], grad_v [S, H, C], grad_term)``, each in
    its input's dtype; ``grad_term`` is ``[E, H]`` in the caller's order (in the accumulation
    dtype, for the caller to cast), or None without a term.
    """
    T, H, D = tgt.shape
    S, C = src.size(0), v.size(2)
    _check_graph(graph, T, S, H, term)
    col, perm, col_t = graph[1], graph[3], graph[5]
    E, dev = col.numel(), v.device
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
    keep = _keep_u8(keep_mask)
    params = _params(scale, slope, dropout, acc, dev)
    be, bh = _blocks(H, D, C)
    bd, bc = _pow2(D), _pow2(C)
    dummy, hg = _dummy(dev), triton.cdiv(H, bh)
    term_arg = term if term is not None else dummy
    keep_arg = keep if keep is not None else _dummy(dev, torch.uint8)
    flags = dict(KIND=kind, HAS_TERM=term is not None)

    # 1. Over targets: t = alpha * dL/dalpha per edge, Dsum per target.
    plan, plan_t, eid_t = _plans(graph, split, source_side=True)
    NS = plan.num_slots
    dsum = torch.empty(T, H, dtype=acc, device=dev)
    ws = _ws(NS, H, dtype=acc, device=dev)
    _attention_bwd_dsum_kernel[(plan.num_chunks, hg)](
        tgt, src, v, term_arg, keep_arg, grad_alpha if grad_alpha is not None else dummy,
        grad_out, col, perm, params, *plan.chunks(), lse, g, dsum, ws,
        tgt.stride(0), tgt.stride(1), src.stride(0), src.stride(1), v.stride(0), v.stride(1),
        grad_out.stride(0), grad_out.stride(1), lse.stride(0), H, D, C,
        HAS_KEEP=keep is not None, HAS_GALPHA=grad_alpha is not None,
        BLOCK_E=be, BLOCK_H=bh, BLOCK_D=bd, BLOCK_C=bc, **flags)
    _sum_merge(ws, plan, dsum)
    # 2. Over targets: dL/dpre per edge (into g), gradient of the target half.
    be_d, bh_d = _blocks(H, D)
    ws = _ws(NS, H, D, dtype=acc, device=dev)
    _attention_bwd_dst_kernel[(plan.num_chunks, triton.cdiv(H, bh_d))](
        tgt, src, term_arg, col, perm, params, *plan.chunks(), lse, dsum, g, grad_tgt, ws,
        tgt.stride(0), tgt.stride(1), src.stride(0), src.stride(1), lse.stride(0),
        grad_tgt.stride(0), grad_tgt.stride(1), H, D,
        BLOCK_E=be_d, BLOCK_H=bh_d, BLOCK_D=bd, **flags)
    _sum_merge(ws, plan, grad_tgt)
    # 3. Over sources: gradients of the source half and of the values.
    if S > 0:
        NS_t = plan_t.num_slots
        ws_s = _ws(NS_t, H, D, dtype=acc, device=dev)
        ws_v = _ws(NS_t, H, C, dtype=acc, device=dev)
        _attention_bwd_src_kernel[(plan_t.num_chunks, hg)](
            tgt, src, grad_out, term_arg, keep_arg, g, col_t, eid_t, params, *plan_t.chunks(),
            lse, grad_src, grad_v, ws_s, ws_v,
            tgt.stride(0), tgt.stride(1), src.stride(0), src.stride(1),
            grad_out.stride(0), grad_out.stride(1), lse.stride(0),
            grad_src.stride(0), grad_src.stride(1), grad_v.stride(0), grad_v.stride(1), H, D, C,
            HAS_KEEP=keep is not None, BLOCK_E=be, BLOCK_H=bh, BLOCK_D=bd, BLOCK_C=bc,
            **flags)
        _sum_merge(ws_s, plan_t, grad_src)
        _sum_merge(ws_v, plan_t, grad_v)
    return grad_tgt, grad_src, grad_v, (g if term is not None else None)


def _flat(x: Tensor) -> Tensor:
    tail = 1
    for d in x.shape[1:]:
        tail *= d
    return x.reshape(x.size(0), tail)                                      # [E, H]


@_on_input_device
def segment_softmax_fwd(src: Tensor, index: Tensor, num_nodes: int,
                        split: Optional[int] = None) -> Tensor:
    """Softmax of ``src [E, *]`` over the entries sharing a segment ``index [E]`` (unsorted).
    A segment whose scores are all ``-inf`` gets zeros."""
    x = _flat(src).contiguous()                                            # [E, H]
    E, H = x.shape
    out = torch.empty_like(x)
    if E == 0 or H == 0:
        return out.view(src.shape)
    rowptr, perm = _segments(index, num_nodes)
    plan = row_plan(rowptr, split)
    acc = acc_dtype(src.dtype)
    lse = torch.empty(H, num_nodes, dtype=acc, device=src.device)
    ws_m = _ws(plan.num_slots, H, dtype=acc, device=src.device)
    ws_l = _ws(plan.num_slots, H, dtype=acc, device=src.device)
    bh = min(_pow2(H), 64)
    be = max(16, min(128, 2048 // bh))
    grid = (plan.num_chunks, triton.cdiv(H, bh))
    _segment_softmax_fwd_kernel[grid](x, perm, *plan.chunks(), lse, ws_m, ws_l, lse.stride(0),
                                      H, BLOCK_E=be, BLOCK_H=bh)
    if plan.num_split:
        _lse_merge_kernel[(plan.num_split, triton.cdiv(H, bh))](
            ws_m, ws_l, ws_m, plan.split_row, plan.split_ptr, lse, lse, 0, 0, lse.stride(0),
            H, 0, HAS_ACC=False, BLOCK_H=bh, BLOCK_C=1)
    _segment_softmax_out_kernel[grid](x, perm, plan.chunk_row, plan.chunk_start,
                                      plan.chunk_end, lse, out, lse.stride(0), H,
                                      BLOCK_E=be, BLOCK_H=bh)
    return out.view(src.shape)


@_on_input_device
def segment_softmax_bwd(grad: Tensor, out: Tensor, index: Tensor, num_nodes: int,
                        split: Optional[int] = None) -> Tensor:
    """Gradient of :func:`segment_softmax_fwd`: ``y * (g - sum_segment(g * y))``."""
    g, y = _flat(grad).contiguous(), _flat(out).contiguous()               # [E, H]
    E, H = y.shape
    dx = torch.empty(E, H, dtype=grad.dtype, device=grad.device)
    if E == 0 or H == 0:
        return dx.view(out.shape)
    rowptr, perm = _segments(index, num_nodes)
    plan = row_plan(rowptr, split)
    acc = acc_dtype(out.dtype)
    dot = torch.empty(num_nodes, H, dtype=acc, device=grad.device)
    ws = _ws(plan.num_slots, H, dtype=acc, device=grad.device)
    bh = min(_pow2(H), 64)
    be = max(16, min(128, 2048 // bh))
    grid = (plan.num_chunks, triton.cdiv(H, bh))
    _segment_softmax_bwd_dot_kernel[grid](g, y, perm, *plan.chunks(), dot, ws, H,
                                          BLOCK_E=be, BLOCK_H=bh)
    _sum_merge(ws, plan, dot)
    _segment_softmax_bwd_kernel[grid](g, y, perm, plan.chunk_row, plan.chunk_start,
                                      plan.chunk_end, dot, dx, H, BLOCK_E=be, BLOCK_H=bh)
    return dx.view(out.shape)
