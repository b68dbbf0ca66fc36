"""Shared ``@triton.jit`` pieces of the kernels: a program's chunk and head lanes (the tile
prologue), the score of a block of edges, loads and stores of per-edge and per-node tiles, and
the two merge kernels that combine the partial results of split rows.

Every program of the attention and softmax kernels runs over one chunk of a work list
(:mod:`gatlib.ops.triton.plan`): ``program_id(0)`` is the chunk, ``program_id(1)`` a block of
``BLOCK_H`` heads. A chunk of a split row (``slot >= 0``) writes a partial result into row
``slot`` of a workspace; a whole row (``slot == -1``) writes its result directly.
"""
from __future__ import annotations

import triton
import triton.language as tl

__all__ = ["heads", "chunk", "split_lanes", "chunk_lanes", "tile_lanes", "program", "lanes",
           "scalars", "edge_block", "edge_scores", "score", "dscore", "edge_tile", "gather",
           "node_tile", "load_lse", "finish_lse", "store_row", "lse_merge_kernel",
           "sum_merge_kernel"]


# --------------------------------------------------------------------------- the prologue

@triton.jit
def heads(H, BLOCK_H: tl.constexpr):
    """The program's head lanes ``offs_h [BH]`` and their mask."""
    offs_h = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    return offs_h, offs_h < H


@triton.jit
def chunk(chunk_row_ptr, chunk_start_ptr, chunk_end_ptr):
    """The program's chunk: its row and its edge range ``[start, end)``."""
    c = tl.program_id(0)
    return tl.load(chunk_row_ptr + c), tl.load(chunk_start_ptr + c), tl.load(chunk_end_ptr + c)


@triton.jit
def split_lanes(chunk_slot_ptr, offs_h, mask_h):
    """``(slot, whole, part)``: the chunk's workspace row, and per head lane whether it writes
    the result (a whole row) or a partial (a chunk of a split row). The scalar is broadcast
    first (the interpreter rejects scalar & block masks)."""
    slot = tl.load(chunk_slot_ptr + tl.program_id(0))
    whole = mask_h & ((offs_h * 0 + slot) < 0)
    part = mask_h & ((offs_h * 0 + slot) >= 0)
    return slot, whole, part


@triton.jit
def chunk_lanes(chunk_row_ptr, chunk_start_ptr, chunk_end_ptr, chunk_slot_ptr, offs_h, mask_h):
    """:func:`chunk` and :func:`split_lanes` together: ``(row, start, end, slot, whole, part)``."""
    row, start, end = chunk(chunk_row_ptr, chunk_start_ptr, chunk_end_ptr)
    slot, whole, part = split_lanes(chunk_slot_ptr, offs_h, mask_h)
    return row, start, end, slot, whole, part


@triton.jit
def tile_lanes(H, D, C, BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_C: tl.constexpr):
    """The lanes of a program over heads, score dims and value dims:
    ``(offs_h, mask_h, offs_d, mask_hd, offs_c, mask_hc)``."""
    offs_h, mask_h = heads(H, BLOCK_H)
    offs_d, mask_hd = lanes(D, mask_h, BLOCK_D)
    offs_c, mask_hc = lanes(C, mask_h, BLOCK_C)
    return offs_h, mask_h, offs_d, mask_hd, offs_c, mask_hc


@triton.jit
def program(own_ptr, stride_n, stride_h, chunk_row_ptr, chunk_start_ptr, chunk_end_ptr,
            chunk_slot_ptr, params_ptr, H, D, C, BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr,
            BLOCK_C: tl.constexpr):
    """The tile prologue of the attention kernels: the lanes (:func:`tile_lanes`), the chunk
    (:func:`chunk_lanes`), the scalars, and the program's own half of the score (row ``row`` of
    ``own [N, H, D]``, loaded once as ``[1, BH, BD]`` in the accumulation dtype, that of
    ``params``)."""
    offs_h, mask_h, offs_d, mask_hd, offs_c, mask_hc = tile_lanes(H, D, C, BLOCK_H, BLOCK_D,
                                                                  BLOCK_C)
    row, start, end, slot, whole, part = chunk_lanes(chunk_row_ptr, chunk_start_ptr,
                                                     chunk_end_ptr, chunk_slot_ptr, offs_h,
                                                     mask_h)
    scale, slope, keep_scale = scalars(params_ptr)
    own = node_tile(own_ptr, row, stride_n, stride_h, offs_h, offs_d, mask_hd)
    own = own.to(params_ptr.dtype.element_ty)[None, :, :]                 # [1, BH, BD]
    return (offs_h, mask_h, offs_d, mask_hd, offs_c, mask_hc, row, start, end, slot, whole,
            part, scale, slope, keep_scale, own)


@triton.jit
def lanes(n, mask_h, BLOCK: tl.constexpr):
    """Feature lanes ``offs [BLOCK]`` of a width ``n`` and the ``[BH, BLOCK]`` mask."""
    offs = tl.arange(0, BLOCK)
    return offs, mask_h[:, None] & (offs < n)[None, :]


@triton.jit
def scalars(params_ptr):
    """``(scale, negative slope, 1 / (1 - p))``, kept in a tensor in the accumulation dtype
    (kernel float arguments are fp32, which would round the fp64 path's values)."""
    return tl.load(params_ptr), tl.load(params_ptr + 1), tl.load(params_ptr + 2)


# ------------------------------------------------------------------------------ the edges

@triton.jit
def edge_block(e0, end, mask_h, idx_ptr, eid_ptr, BLOCK_E: tl.constexpr):
    """A block of ``BLOCK_E`` sorted edges from ``e0``: ``(mask_e [BE], mask_eh [BE, BH], the
    other node of each edge, its caller's edge id)``."""
    offs_e = e0 + tl.arange(0, BLOCK_E)
    mask_e = offs_e < end
    mask_eh = mask_e[:, None] & mask_h[None, :]
    j = tl.load(idx_ptr + offs_e, mask=mask_e, other=0)
    eid = tl.load(eid_ptr + offs_e, mask=mask_e, other=0)
    return mask_e, mask_eh, j, eid


@triton.jit
def edge_tile(ptr, eid, offs_h, mask_eh, H, other):
    """``[BE, BH]`` of a per-edge ``[E, H]`` tensor in the caller's order."""
    return tl.load(ptr + eid[:, None] * H + offs_h[None, :], mask=mask_eh, other=other)


@triton.jit
def gather(ptr, idx, stride_n, stride_h, offs_h, offs_x, mask_e, mask_hx):
    """``[BE, BH, BX]``: the rows ``idx`` of a node tensor ``[N, H, X]`` (last dim contiguous)."""
    return tl.load(ptr + idx[:, None, None] * stride_n + offs_h[None, :, None] * stride_h
                   + offs_x[None, None, :], mask=mask_e[:, None, None] & mask_hx[None, :, :],
                   other=0.0)


@triton.jit
def node_tile(ptr, node, stride_n, stride_h, offs_h, offs_x, mask_hx):
    """``[BH, BX]``: row ``node`` of a node tensor ``[N, H, X]`` (last dim contiguous)."""
    return tl.load(ptr + node * stride_n + offs_h[:, None] * stride_h + offs_x[None, :],
                   mask=mask_hx, other=0.0)


@triton.jit
def score(t_val, s_val, term, scale, slope, KIND: tl.constexpr):
    """Scores of a block of edges from the target half ``t_val`` and the source half ``s_val``
    (``[*, BH, BD]``, one of them broadcast over the edges; symmetric in the two). Returns
    ``(s, pre) [BE, BH]``: the score and, for GAT, the pre-activation (the LeakyReLU's input)."""
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
def edge_scores(own, other_ptr, j, eid, mask_e, mask_eh, stride_n, stride_h, offs_h, offs_d,
                mask_hd, term_ptr, H, scale, slope, KIND: tl.constexpr, HAS_TERM: tl.constexpr):
    """The score block: the other node's half of each edge (``[BE, BH, BD]``, gathered from
    ``other_ptr`` at ``j``), the per-edge term, and ``score(own, other, term)``. Returns
    ``(other, s, pre)``; everything in the dtype of ``own`` (the program's half ``[1, BH, BD]``,
    in the accumulation dtype)."""
    other = gather(other_ptr, j, stride_n, stride_h, offs_h, offs_d, mask_e,
                   mask_hd).to(own.dtype)                                  # [BE, BH, BD]
    if HAS_TERM:
        term = edge_tile(term_ptr, eid, offs_h, mask_eh, H, 0.0).to(own.dtype)  # [BE, BH]
    else:
        term = 0.0
    s, pre = score(own, other, term, scale, slope, KIND)
    return other, s, pre


@triton.jit
def dscore(g_pre, other, scale, KIND: tl.constexpr):
    """Sum over a block of edges of ``g_pre * d pre / d half`` -> ``[BH, BD]``: ``d pre`` is 1 for
    GAT and ``scale * other`` (the other node's half) for the dot product."""
    if KIND == 0:
        out = tl.sum(g_pre, axis=0)[:, None]
    else:
        out = tl.sum(g_pre[:, :, None] * other, axis=0) * scale
    return out


@triton.jit
def load_lse(lse_ptr, offset, mask):
    """The log-sum-exp at ``offset``, with ``-inf`` (a row of no mass) read as ``+inf`` so that
    every recomputed weight ``exp(s - lse)`` of that row is 0."""
    lse = tl.load(lse_ptr + offset, mask=mask, other=float("inf"))
    return tl.where(lse == float("-inf"), float("inf"), lse)


@triton.jit
def finish_lse(m, l):
    """``(ok, l_safe, lse)`` of a running max ``m`` and sum ``l``: a row without mass (no edges,
    or only ``-inf`` scores) gets ``lse = -inf`` and, through ``ok``, a zero output."""
    ok = l > 0
    l_safe = tl.where(ok, l, 1.0)
    return ok, l_safe, tl.where(ok, m + tl.log(l_safe), float("-inf"))


@triton.jit
def store_row(out_ptr, node, stride_n, stride_h, ws_ptr, slot, H, W, offs_h, offs_x, mask_hx,
              whole, part, val):
    """Store a program's ``[BH, BX]`` result: into row ``node`` of ``out [N, H, X]`` for a whole
    row, else into workspace row ``slot`` of ``ws [NS, H, W]`` (accumulation dtype)."""
    tl.store(out_ptr + node * stride_n + offs_h[:, None] * stride_h + offs_x[None, :],
             val.to(out_ptr.dtype.element_ty), mask=mask_hx & whole[:, None])
    tl.store(ws_ptr + slot * H * W + offs_h[:, None] * W + offs_x[None, :], val,
             mask=mask_hx & part[:, None])


# ------------------------------------------------------------------------------- merging

@triton.jit
def lse_merge_kernel(
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
    offs_h, mask_h = heads(H, BLOCK_H)
    offs_c, mask_hc = lanes(C, mask_h, BLOCK_C)
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
    ok, l_safe, lse = finish_lse(m, l)
    tl.store(lse_ptr + offs_h * stride_lh + i, lse, mask=mask_h)
    if HAS_ACC:
        out = tl.where(ok[:, None], acc / l_safe[:, None], 0.0)
        tl.store(out_ptr + i * stride_on + offs_h[:, None] * stride_oh + offs_c[None, :],
                 out.to(out_ptr.dtype.element_ty), mask=mask_hc)


@triton.jit
def sum_merge_kernel(
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
