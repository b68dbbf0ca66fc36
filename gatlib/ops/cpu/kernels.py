"""CPU building blocks over the CSR view: per-head SpMM and SDDMM on torch's sparse CSR kernels
(MKL on x86), segment reductions over sorted edges, and the online-softmax statistics.

Nothing here builds a per-edge ``[E, H, C]`` or ``[E, H, D]`` tensor: the only per-edge tensors
are ``[E, H]`` scores and weights. All functions take and return tensors in the target-sorted
edge order of a ``GraphCSR`` unless they say otherwise.
"""
from __future__ import annotations

import warnings

import torch
from torch import Tensor

# torch warns once per process that sparse CSR support is "beta"; the kernels used here
# (CSR @ dense and sampled_addmm) are stable and tested against the reference.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")

__all__ = ["spmm", "sddmm", "segment_sum", "segment_max", "softmax_stats", "softmax_weights"]


def _csr(rowptr: Tensor, col: Tensor, values: Tensor, size) -> Tensor:
    # Invariants hold by construction (rowptr from bincount, col validated), so skip the check.
    return torch.sparse_csr_tensor(rowptr, col, values, size=size, check_invariants=False)


def spmm(rowptr: Tensor, col: Tensor, values: Tensor, x: Tensor, num_rows: int) -> Tensor:
    """``out[i, h] = sum_{e in row i} values[e, h] * x[col[e], h]``.

    Shapes: ``values [E, H]``, ``x [S, H, C]`` -> ``[num_rows, H, C]``.
    """
    S, H, C = x.shape
    if values.numel() == 0 or num_rows == 0 or C == 0:
        return x.new_zeros(num_rows, H, C)
    vals = values.t().contiguous()                                         # [H, E]
    xs = x.transpose(0, 1).contiguous()                                    # [H, S, C]
    outs = [_csr(rowptr, col, vals[h], (num_rows, S)) @ xs[h] for h in range(H)]
    return torch.stack(outs, dim=1)                                        # [T, H, C]


def sddmm(rowptr: Tensor, col: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``out[e, h] = <a[row(e), h], b[col[e], h]>`` for every edge of the CSR pattern.

    Shapes: ``a [T, H, D]``, ``b [S, H, D]`` -> ``[E, H]``.
    """
    T, H, D = a.shape
    S = b.size(0)
    E = col.numel()
    if E == 0 or D == 0:
        return a.new_zeros(E, H)
    if E > T * S:
        # sampled_addmm refuses a pattern with more entries than the dense matrix (possible
        # only for small multigraphs with duplicate edges): gather in bounded chunks instead.
        return _sddmm_gather(rowptr, col, a, b)
    at = a.transpose(0, 1).contiguous()                                    # [H, T, D]
    bt = b.permute(1, 2, 0).contiguous()                                   # [H, D, S]
    zeros = a.new_zeros(E)
    outs = [torch.sparse.sampled_addmm(_csr(rowptr, col, zeros, (T, S)), at[h], bt[h],
                                       beta=0.0).values() for h in range(H)]
    return torch.stack(outs, dim=1)                                        # [E, H]


def _sddmm_gather(rowptr: Tensor, col: Tensor, a: Tensor, b: Tensor,
                  chunk: int = 1 << 14) -> Tensor:
    row = torch.repeat_interleave(torch.arange(a.size(0), device=a.device), rowptr.diff())
    out = a.new_empty(col.numel(), a.size(1))                              # [E, H]
    for s in range(0, col.numel(), chunk):
        r, c = row[s:s + chunk], col[s:s + chunk]
        out[s:s + chunk] = (a[r] * b[c]).sum(-1)                           # [chunk, H]
    return out


def segment_sum(x: Tensor, rowptr: Tensor) -> Tensor:
    """Sum of sorted rows ``x [E, *]`` per segment -> ``[len(rowptr) - 1, *]`` (0 if empty)."""
    if x.size(0) == 0:
        return x.new_zeros((rowptr.numel() - 1,) + tuple(x.shape[1:]))
    return torch.segment_reduce(x, "sum", offsets=rowptr, axis=0)


def segment_max(x: Tensor, rowptr: Tensor) -> Tensor:
    """Max of sorted rows ``x [E, *]`` per segment -> ``[len(rowptr) - 1, *]`` (-inf if empty)."""
    if x.size(0) == 0:
        return x.new_full((rowptr.numel() - 1,) + tuple(x.shape[1:]), float("-inf"))
    return torch.segment_reduce(x, "max", offsets=rowptr, axis=0)


def softmax_stats(score: Tensor, rowptr: Tensor, row: Tensor) -> Tensor:
    """Per-target log-sum-exp of ``score [E, H]`` -> ``lse [T, H]``; ``-inf`` for a target with
    no in-edges or only ``-inf`` scores."""
    m = segment_max(score, rowptr)                                         # [T, H]
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    z = segment_sum(torch.exp(score - m[row]), rowptr)                     # [T, H]
    return m + torch.log(z)


def softmax_weights(score: Tensor, lse: Tensor, row: Tensor) -> Tensor:
    """``alpha = exp(score - lse[target])`` -> ``[E, H]``; exactly 0 where the target's mass is 0.

    This is how the backward pass recomputes the weights from the per-node statistics.
    """
    safe = torch.where(torch.isfinite(lse), lse, torch.full_like(lse, float("inf")))
    return torch.exp(score - safe[row])
