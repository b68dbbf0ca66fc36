"""The work lists of the Triton kernels: which program processes which edges.

One program handles one *chunk*: a run of at most :data:`SPLIT` consecutive edges of one row (the
in-edges of a target, or the out-edges of a source), for a block of heads. A row of ordinary
degree is one chunk whose program writes the result directly; a longer row (a hub) is cut into
several chunks that write partial results into a workspace, one row per chunk, which a merge
kernel combines in chunk order. A graph's work lists are built once per graph and ``SPLIT`` and
kept on its ``GraphCSR`` (see :func:`graph_plans`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from ..graph_args import GRAPH_TENSORS, csr_tensors, extras

__all__ = ["SPLIT", "RowPlan", "row_plan", "graph_plans", "plans", "segments",
           "PLAN_TENSORS", "GRAPH_TENSORS", "PLANNED_GRAPH_TENSORS"]

# Longest run of edges one program handles; longer rows are split across programs and merged.
# Tests lower it (monkeypatch) to force the split path on small graphs.
SPLIT = 1024


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
    g = csr_tensors(graph)
    return (row_plan(g.rowptr, split).tensors() + row_plan(g.rowptr_t, split).tensors()
            + [g.perm[g.perm_t]])


def plans(graph: List[Tensor], split: Optional[int], source_side: bool = False):
    """``(target plan, source plan or None, eid_t or None)`` from a planned graph list, or built
    here from the seven graph tensors."""
    if len(graph) == PLANNED_GRAPH_TENSORS:
        x = extras(graph)
        return RowPlan(*x[:PLAN_TENSORS]), RowPlan(*x[PLAN_TENSORS:2 * PLAN_TENSORS]), x[-1]
    g = csr_tensors(graph)
    plan = row_plan(g.rowptr, split)
    if not source_side:
        return plan, None, None
    return plan, row_plan(g.rowptr_t, split), g.perm[g.perm_t]


def segments(index: Tensor, num_nodes: int) -> Tuple[Tensor, Tensor]:
    """``(rowptr [N + 1], perm [E])`` of an unsorted segment index (built on every call)."""
    perm = torch.argsort(index, stable=True)                               # [E]
    # searchsorted, not bincount: deterministic on every device.
    rowptr = torch.searchsorted(index[perm], torch.arange(num_nodes + 1, device=index.device,
                                                          dtype=index.dtype))  # [N + 1]
    return rowptr, perm
