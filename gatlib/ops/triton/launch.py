"""Host-side helpers of the Triton wrappers: block sizes, small constant tensors, workspaces,
the device guard, and the graph-argument check."""
from __future__ import annotations

import contextlib
import functools
from typing import List, Optional, Tuple

import torch
import triton
from torch import Tensor

from ..graph_args import csr_tensors
from .plan import GRAPH_TENSORS, PLANNED_GRAPH_TENSORS, RowPlan
from .tiles import sum_merge_kernel

__all__ = ["acc_dtype", "interpreted", "pow2", "blocks", "TILE_BUDGET", "dummy",
           "on_input_device", "ws", "keep_u8", "params", "sum_merge", "check_graph"]


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """The accumulation dtype: fp32 for fp16/bf16/fp32, fp64 for fp64."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def interpreted() -> bool:
    """Whether the kernels were built for Triton's CPU interpreter (``TRITON_INTERPRET=1`` was
    set when this module was imported)."""
    return type(sum_merge_kernel).__name__ == "InterpretedFunction"


def pow2(n: int) -> int:
    return triton.next_power_of_2(max(int(n), 1))


# Elements of the gathered register tiles of one program (see :func:`blocks`). A module
# attribute read at every launch, so that a benchmark can sweep it (bench_gpu.py
# --tile-budgets); 2048 is the size checked for spills with ptxas for sm_90.
TILE_BUDGET = 2048


def blocks(H: int, *widths: int) -> Tuple[int, int]:
    """``(BLOCK_E, BLOCK_H)`` for kernels that gather, per edge and head, vectors of the given
    widths (e.g. ``D`` of k and ``C`` of v): the gathered register tiles ``[BLOCK_E, BLOCK_H,
    width]`` hold about :data:`TILE_BUDGET` (2048) elements together (16 per thread at 4
    warps, their 64-bit addresses as much again). Larger tiles spill in the backward kernels
    (checked with ptxas for sm_90). ``BLOCK_E`` is a power of two from 8 to
    ``TILE_BUDGET / 32`` (64)."""
    budget = int(TILE_BUDGET)
    total = sum(pow2(w) for w in widths if w > 1) or 1   # unit widths (GAT halves): scalars
    bh = min(pow2(H), max(1, 128 // max(pow2(w) for w in widths)))
    fit = max(1, budget // (bh * total))
    be = max(8, min(max(8, budget // 32), 1 << (fit.bit_length() - 1)))   # a power of two
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


def dummy(device, dtype=torch.float32) -> Tensor:
    """A stand-in for an absent optional tensor (never read: its HAS_* flag is off)."""
    return _constant((0,), dtype, device)


def on_input_device(fn):
    """Launch on the inputs' GPU, whatever the current device is."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        device = next(a.device for a in args if isinstance(a, Tensor))
        guard = torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()
        with guard:
            return fn(*args, **kwargs)
    return wrapper


def ws(rows: int, *shape, dtype, device) -> Tensor:
    return torch.empty(max(rows, 1), *shape, dtype=dtype, device=device)


def keep_u8(mask: Optional[Tensor]) -> Optional[Tensor]:
    if mask is None:
        return None
    return mask.contiguous().view(torch.uint8) if mask.dtype == torch.bool else (
        (mask != 0).contiguous().view(torch.uint8))


def params(scale: float, slope: float, dropout: float, dtype, device) -> Tensor:
    # Scalars travel in a tensor: kernel float arguments are fp32, which would round the fp64
    # path's scale and slope.
    keep_scale = 1.0 / (1.0 - dropout) if dropout > 0.0 else 1.0
    return _constant((float(scale), float(slope), keep_scale), dtype, device)


def sum_merge(ws: Tensor, plan: RowPlan, out: Tensor) -> None:
    """Sum the partial rows ``ws [NS, W]`` of split rows into ``out [N, W]`` (rows contiguous)."""
    if plan.num_split == 0:
        return
    W = ws[0].numel()
    if W == 0:
        return
    block_w = min(pow2(W), 1024)
    grid = (plan.num_split, triton.cdiv(W, block_w))
    sum_merge_kernel[grid](ws, plan.split_row, plan.split_ptr, out, out.stride(0), W,
                           BLOCK_W=block_w)


def check_graph(graph: List[Tensor], T: int, S: int, H: int, term: Optional[Tensor]) -> None:
    if len(graph) not in (GRAPH_TENSORS, PLANNED_GRAPH_TENSORS):
        raise ValueError(f"graph must be the {GRAPH_TENSORS} tensors of a GraphCSR "
                         f"(graph_tensors), optionally followed by its work lists "
                         f"(graph_plans), got {len(graph)} tensors")
    g = csr_tensors(graph)
    if g.num_dst != T or g.num_src != S:
        raise ValueError(f"graph has {g.num_dst} targets and {g.num_src} sources, the inputs {T} "
                         f"and {S}")
    if term is not None and tuple(term.shape) != (g.num_edges, H):
        raise ValueError(f"the per-edge term must have shape [E, H] = [{g.num_edges}, {H}], "
                         f"got {tuple(term.shape)}")
