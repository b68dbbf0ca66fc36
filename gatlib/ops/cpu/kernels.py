"""CPU building blocks over the CSR view: per-head SpMM and SDDMM on torch's sparse CSR kernels
(MKL on x86), segment reductions over sorted edges, and the online-softmax statistics.

Nothing here builds a per-edge ``[E, H, C]`` or ``[E, H, D]`` tensor: the only per-edge tensors
are ``[E, H]`` scores and weights. All functions take and return tensors in the target-sorted
edge order of a ``GraphCSR`` unless they say otherwise.
"""
from __future__ import annotations

import warnings
from typing import Optional

import torch
from torch import Tensor

# torch warns once per process that sparse CSR support is "beta"; the kernels used here
# (CSR @ dense and sampled_addmm) are stable and tested against the reference.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")

__all__ = ["spmm", "sddmm", "segment_sum", "segment_max", "expand", "softmax_stats",
           "softmax_weights_"]

# Layout: per-edge tensors are head-major ``[H, E]`` in the target-sorted order, so that each
# head's values are one contiguous row (what the CSR kernels take) and segment reductions run
# along the last axis. Where a per-edge temporary is no longer needed, ops work in place:
# on the CPU a fresh 64 MB tensor costs more in page faults than the arithmetic on it.


def _csr(rowptr: Tensor, col: Tensor, values: Tensor, size) -> Tensor:
    # Invariants hold by construction (rowptr from bincount, col validated), so skip the check.
    return torch.sparse_csr_tensor(rowptr, col, values, size=size, check_invariants=False)


def spmm(rowptr: Tensor, col: Tensor, values: Tensor, x: Tensor, num_rows: int) -> Tensor:
    """``out[i, h] = sum_{e in row i} values[h, e] * x[col[e], h]``.

    Shapes: ``values [H, E]``, ``x [S, H, C]`` -> ``[num_rows, H, C]``.
    """
    S, H, C = x.shape
    if values.numel() == 0 or num_rows == 0 or C == 0:
        return x.new_zeros(num_rows, H, C)
    xs = x.transpose(0, 1).contiguous()                                    # [H, S, C]
    vals = values.contiguous()                                             # [H, E]
    # The op computes in fp32 by design: an autocast region around the layer must not cast
    # these products down (the MKL kernels have no fp16/bf16 path anyway).
    with torch.autocast(x.device.type, enabled=False):
        outs = [_csr(rowptr, col, vals[h], (num_rows, S)) @ xs[h] for h in range(H)]
    return torch.stack(outs, dim=1)                                        # [T, H, C]


def sddmm(rowptr: Tensor, col: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``out[h, e] = <a[row(e), h], b[col[e], h]>`` for every edge of the CSR pattern.

    Shapes: ``a [T, H, D]``, ``b [S, H, D]`` -> ``[H, E]``.
    """
    T, H, D = a.shape
    S = b.size(0)
    E = col.numel()
    if E == 0 or D == 0:
        return a.new_zeros(H, E)
    if E > T * S:
        # sampled_addmm refuses a pattern with more entries than the dense matrix (possible
        # only for small multigraphs with duplicate edges): gather in bounded chunks instead.
        return _sddmm_gather(rowptr, col, a, b)
    at = a.transpose(0, 1).contiguous()                                    # [H, T, D]
    bt = b.permute(1, 2, 0).contiguous()                                   # [H, D, S]
    zeros = a.new_zeros(E)
    with torch.autocast(a.device.type, enabled=False):
        outs = [torch.sparse.sampled_addmm(_csr(rowptr, col, zeros, (T, S)), at[h], bt[h],
                                           beta=0.0).values() for h in range(H)]
    return torch.stack(outs, dim=0)                                        # [H, E]


def _sddmm_gather(rowptr: Tensor, col: Tensor, a: Tensor, b: Tensor,
                  chunk: int = 1 << 14) -> Tensor:
    row = torch.repeat_interleave(torch.arange(a.size(0), device=a.device), rowptr.diff())
    out = a.new_empty(a.size(1), col.numel())                              # [H, E]
    for s in range(0, col.numel(), chunk):
        r, c = row[s:s + chunk], col[s:s + chunk]
        out[:, s:s + chunk] = (a[r] * b[c]).sum(-1).t()                    # [H, chunk]
    return out


def segment_sum(x: Tensor, rowptr: Tensor) -> Tensor:
    """Sum of ``x [H, E]`` over each segment of sorted edges -> ``[H, T]`` (0 if empty)."""
    if x.size(1) == 0:
        return x.new_zeros(x.size(0), rowptr.numel() - 1)
    return torch.segment_reduce(x, "sum", offsets=rowptr.expand(x.size(0), -1), axis=1)


def segment_max(x: Tensor, rowptr: Tensor) -> Tensor:
    """Max of ``x [H, E]`` over each segment -> ``[H, T]`` (-inf if empty)."""
    if x.size(1) == 0:
        return x.new_full((x.size(0), rowptr.numel() - 1), float("-inf"))
    return torch.segment_reduce(x, "max", offsets=rowptr.expand(x.size(0), -1), axis=1)


def expand(x: Tensor, row: Tensor, out: Optional[Tensor] = None) -> Tensor:
    """Per-node ``x [H, T]`` repeated onto the edges: ``[H, E]`` with ``out[:, e] = x[:, row[e]]``.

    Pass a scratch ``out [H, E]`` to reuse its memory (see the layout note above).
    """
    return torch.index_select(x.contiguous(), 1, row, out=out)


def softmax_stats(score: Tensor, rowptr: Tensor, row: Tensor, buf: Tensor) -> Tensor:
    """Per-target log-sum-exp of ``score [H, E]`` -> ``lse [H, T]``; ``-inf`` for a target with
    no in-edges or only ``-inf`` scores. ``buf [H, E]`` is scratch."""
    m = segment_max(score, rowptr)                                         # [H, T]
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    p = torch.sub(score, expand(m, row, out=buf), out=buf).exp_()         # [H, E]
    return m.add_(segment_sum(p, rowptr).log_())


def softmax_weights_(score: Tensor, lse: Tensor, row: Tensor, buf: Tensor) -> Tensor:
    """In place: ``score <- exp(score - lse[target])`` -> ``alpha [H, E]``; exactly 0 where the
    target's mass is 0. This is how the backward pass recomputes the weights. ``buf`` is
    scratch."""
    safe = torch.where(torch.isfinite(lse), lse, torch.full_like(lse, float("inf")))
    return score.sub_(expand(safe, row, out=buf)).exp_()
