"""The reference backend: the pure-PyTorch specification (:mod:`gatlib.ops.reference`) as a
table with the same arguments as every other backend's kernels. Its kernels have no backward
(PyTorch's autograd differentiates them) and no registered ops; it runs on any device and is
last in the search order."""
from __future__ import annotations

from .backend import FLOATS, Kernels
from .factory import make_backend
from .graph_args import caller_edge_index
from . import reference as ref

__all__ = ["BACKEND"]


def _no_lse(v):
    # The reference keeps no statistics for a backward pass of its own.
    return v.new_empty(0)


def _gat(a_src, a_dst, v, graph, edge_score, dropout_mask, negative_slope, dropout,
         return_attention):
    out, alpha = ref.gat_attention_ref(a_src, a_dst, v, caller_edge_index(graph), edge_score,
                                       negative_slope, dropout_mask, dropout)
    return out, _no_lse(v), alpha


def _dot(q, k, v, graph, bias, dropout_mask, scale, dropout, return_attention):
    out, alpha = ref.sparse_attention_ref(q, k, v, caller_edge_index(graph), bias, scale,
                                          dropout_mask, dropout)
    return out, _no_lse(v), alpha


def _attend(score, v, graph, dropout_mask, dropout, return_attention):
    num_dst = graph[0].numel() - 1
    out, alpha = ref.attend_ref(score, v, caller_edge_index(graph), num_dst, dropout_mask,
                                dropout)
    return out, _no_lse(v), alpha


KERNELS = {
    "gat_attention": Kernels(_gat),
    "sparse_attention": Kernels(_dot),
    "attend": Kernels(_attend),
    "segment_softmax": Kernels(ref.segment_softmax_ref),
}

BACKEND = make_backend("reference", KERNELS, devices=None, dtypes=FLOATS)
