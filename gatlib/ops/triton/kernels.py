"""Triton kernels of the GPU backend, and the wrappers that validate, allocate and launch them:
one module per concern, gathered here.

- :mod:`.plan`: the work lists (chunks of rows, split rows), kept on the ``GraphCSR``;
- :mod:`.tiles`: the shared ``@triton.jit`` pieces (the tile prologue, the score block, loads
  and stores) and the merge kernels;
- :mod:`.attention_fwd`, :mod:`.attention_bwd`: the fused attention kernels;
- :mod:`.softmax`: segment softmax;
- :mod:`.launch`: block sizes and host-side helpers.

Everything works on the CSR view of a graph (:class:`gatlib.graph.GraphCSR`): edges sorted by
target for the forward pass and the target side of the backward pass, sorted by source for the
source side of the backward pass.

**Work list.** One program handles one *chunk*: a run of at most ``SPLIT`` (:data:`.plan.SPLIT`)
consecutive in-edges of one node, for a block of ``BLOCK_H`` heads (grid ``(num_chunks, cdiv(H,
BLOCK_H))``). A node of ordinary degree is one chunk and its program writes the result directly.
A node with more than ``SPLIT`` edges (a hub with 100,000 in-edges next to many with one) is cut
into several chunks processed by separate programs, each writing a partial result into a small
workspace (one row per chunk of a split node, never per edge); a merge kernel then combines the
partials of each split node in a fixed order: a log-sum-exp merge of ``(max, sum, weighted
sum)`` for softmax statistics, a plain sum for gradients. The work lists of a graph (see
:func:`row_plan`, :func:`graph_plans`) are built once per graph and ``SPLIT`` and kept on the
caller's ``GraphCSR`` (``GraphCSR.derived``), which passes them to the ops after its seven index
tensors; given only those seven, the ops build the work lists themselves.

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

from .attention_bwd import attention_bwd
from .attention_fwd import DOT, GAT, attention_fwd
from .launch import acc_dtype, interpreted
from .plan import (GRAPH_TENSORS, PLAN_TENSORS, PLANNED_GRAPH_TENSORS, RowPlan, graph_plans,
                   row_plan)
from .softmax import segment_softmax_bwd, segment_softmax_fwd

__all__ = ["RowPlan", "row_plan", "graph_plans", "attention_fwd", "attention_bwd",
           "segment_softmax_fwd", "segment_softmax_bwd", "interpreted", "acc_dtype", "GAT",
           "DOT", "GRAPH_TENSORS", "PLAN_TENSORS", "PLANNED_GRAPH_TENSORS"]
