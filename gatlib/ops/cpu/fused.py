"""The fused CPU attention kernels (``gatlib/native/attention.h``), used by the CPU backend on
graphs up to :data:`NATIVE_MAX_ENTRIES` edge-head pairs where the native library is built
(:mod:`gatlib.native`).

On a batch of small graphs torch's kernels cost more in fixed per-call overhead than in
arithmetic (a layer's forward and backward is some 40 calls of 20-300 us each on a few thousand
edges). The fused kernels do each op in a few passes over the graph's CSR view: every edge's
scores less its row's shift, their exponentials in one vectorised loop, then per target the
weights and the weighted sum of the values; in the backward pass the recomputed weights and
every gradient, scattered to the sources as they are found. They read the CSR tensors as they
are (no head-folded graph is built), keep only ``[E, H]`` scratch (never ``[E, H, C]``), return
nothing per edge but the weights when asked for, and compute in fp32 or fp64 (fp16/bf16 inputs
in fp32, as everywhere on the CPU). The results equal torch's kernels up to rounding; the tests
run the CPU backend both ways against the reference.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from ... import native as _native
from ...native import abi
from ...native.abi import ScoreKind

__all__ = ["fits", "handles", "REAL_SUFFIX", "forward", "backward", "NATIVE_MAX_ENTRIES",
           "ScoreKind", "call"]

# The size rule: the fused kernels run on one thread, torch's kernels on all of them; above this
# many edge-head pairs (E * H) torch's kernels run. Measured on this project's 2-core machine,
# forward+backward of gat_attention, torch's kernels on 2 threads: 1.2M pairs (256 CLUSTER
# graphs, 4 heads; experiments/results/small_graphs_cpu.md) the fused kernels several times
# faster; 16.8M pairs (100,000 nodes, 2,000,000 edges and loops, 8 heads x 16) 732 ms and 946 MiB
# peak resident set against 858 ms and 1,411 MiB. On a machine with many cores torch's kernels
# scale and these do not, hence a cap rather than none.
NATIVE_MAX_ENTRIES = 1 << 25

# With torch.get_num_threads() > 1, a call with at least this many edge-head pairs splits its
# targets (and sources) over that many threads of the OpenMP team torch uses.
PARALLEL_MIN_ENTRIES = 1 << 13

# The native functions' name suffix per floating dtype they take.
REAL_SUFFIX = {torch.float32: "_f32", torch.float64: "_f64"}
_COMPUTED = {torch.float16: torch.float32, torch.bfloat16: torch.float32}


def fits(num_entries: int) -> bool:
    """The size rule: the native library is loaded and ``num_entries`` (E * H) is at most
    :data:`NATIVE_MAX_ENTRIES`."""
    return num_entries <= NATIVE_MAX_ENTRIES and _native.available()


def handles(num_entries: int, *tensors: Optional[Tensor]) -> bool:
    """The size-and-type rule: :func:`fits`, and every floating tensor given has one dtype,
    fp32 or fp64 (after the fp32 upcast of fp16/bf16)."""
    dtypes = {_COMPUTED.get(t.dtype, t.dtype) for t in tensors
              if t is not None and t.dtype.is_floating_point}
    if len(dtypes) != 1 or next(iter(dtypes)) not in REAL_SUFFIX:
        return False
    return fits(num_entries)


def call(name: str, dtype: torch.dtype, **args) -> int:
    """The native function ``name`` for ``dtype`` (fp32/fp64) with keyword arguments, through
    the ABI table's checks (:func:`gatlib.native.abi.call`: every tensor's dtype, device,
    contiguity and length; a broken graph index raises a ValueError naming the array). The
    caller holds the tensors for the call's duration."""
    return abi.call(_native.library(), name, REAL_SUFFIX[dtype], **args)


def _mask_bytes(mask: Optional[Tensor]) -> Optional[Tensor]:
    if mask is None:
        return None
    if mask.dtype == torch.bool:
        return mask.contiguous().view(torch.uint8)
    return (mask != 0).contiguous().view(torch.uint8)


def _c(t: Optional[Tensor]) -> Optional[Tensor]:
    return None if t is None else t.contiguous()


def _keep_scale(dropout: float) -> float:
    return 1.0 / (1.0 - dropout) if dropout < 1.0 else 0.0


def forward(kind: ScoreKind, g, q: Optional[Tensor], k: Optional[Tensor], v: Tensor,
            term: Optional[Tensor], mask: Optional[Tensor], dropout: float, param: float,
            return_attention: bool) -> Tuple[Tensor, Tensor, Tensor]:
    """One op's forward pass: ``(out [T, H, C], lse [H, T], alpha [E, H] or [0, H])``.

    ``g``: the graph's :class:`~gatlib.ops.graph_args.CSRTensors`; ``q``/``k``: the queries and
    keys ``[T, H, D]``/``[S, H, D]`` (DOT), the target and source halves ``a_dst [T, H]``/
    ``a_src [S, H]`` (GAT), or None (ATTEND); ``term``: the caller-order ``[E, H]`` scores
    (ATTEND), bias (DOT) or edge score (GAT); ``param``: the scale (DOT) or negative slope
    (GAT)."""
    T, H, C = g.rowptr.numel() - 1, v.size(1), v.size(2)
    S, E = v.size(0), g.col.numel()
    D = q.size(2) if kind == ScoreKind.DOT else 1
    q, k, v, term, mask = _c(q), _c(k), _c(v), _c(term), _mask_bytes(mask)
    out = v.new_empty(T, H, C)
    lse = v.new_empty(H, T)
    alpha = v.new_empty(E, H) if return_attention else None
    call("attention_forward", v.dtype, kind=kind, T=T, S=S, E=E, H=H, D=D, C=C,
         rowptr=g.rowptr, col=g.col, perm=g.perm, q=q, k=k, v=v, term=term, mask=mask,
         keep_scale=_keep_scale(dropout), param=param, out=out, lse_out=lse, alpha_out=alpha,
         scratch=v.new_empty(E * H + H * T), nthreads=torch.get_num_threads(),
         min_parallel=PARALLEL_MIN_ENTRIES)
    return out, lse, (v.new_empty(0, H) if alpha is None else alpha)


def backward(kind: ScoreKind, g, q: Optional[Tensor], k: Optional[Tensor], v: Tensor,
             term: Optional[Tensor], mask: Optional[Tensor], dropout: float, param: float,
             lse: Tensor, grad_out: Tensor, grad_alpha: Optional[Tensor]
             ) -> Tuple[Optional[Tensor], Optional[Tensor], Tensor, Optional[Tensor]]:
    """One op's backward pass: ``(grad_q, grad_k, grad_v, grad_term)``, shaped as the inputs
    (None for an absent ``q``/``k``; ``grad_term [E, H]`` is the gradient of the given scores for
    ATTEND, of ``term`` otherwise, None without a term): a pass over targets, then one over
    sources (the source-sorted order), each writing its rows whole (no zero-fill, no
    scatter)."""
    T, H, C = g.rowptr.numel() - 1, v.size(1), v.size(2)
    S, E = v.size(0), g.col.numel()
    D = q.size(2) if kind == ScoreKind.DOT else 1
    q, k, v, term, mask = _c(q), _c(k), _c(v), _c(term), _mask_bytes(mask)
    grad_q = None if q is None else torch.empty_like(q)      # every row written by the kernels
    grad_k = None if k is None else torch.empty_like(k)
    grad_v = torch.empty_like(v)
    grad_term = None if term is None else v.new_empty(E, H)
    deg = int(g.rowptr.diff().max()) if T > 0 else 0
    call("attention_backward", v.dtype, kind=kind, T=T, S=S, E=E, H=H, D=D, C=C,
         rowptr=g.rowptr, col=g.col, perm=g.perm, rowptr_t=g.rowptr_t, col_t=g.col_t,
         perm_t=g.perm_t, q=q, k=k, v=v, term=term, mask=mask,
         keep_scale=_keep_scale(dropout), param=param, lse_in=_c(lse),
         grad_out=_c(grad_out), grad_alpha=_c(grad_alpha), grad_q=grad_q, grad_k=grad_k,
         grad_v=grad_v, grad_term=grad_term, scratch=v.new_empty(2 * E * H), ld=max(deg, 0),
         nthreads=torch.get_num_threads(), min_parallel=PARALLEL_MIN_ENTRIES)
    return grad_q, grad_k, grad_v, grad_term
