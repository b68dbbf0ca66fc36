"""Sparse attention layers: GATConv, GATv2Conv and GraphTransformerConv on the gatlib operators.

Each is a drop-in for its PyG namesake: same constructor arguments (``in_channels=-1`` for lazy
initialisation included), parameter names and maths (``from_pyg`` copies a trained PyG layer),
and PyG's ``forward(x, edge_index, edge_attr=None, size=None, return_attention_weights=None)``
with every adjacency PyG takes (:mod:`gatlib.graph.adjacency`). They are computed without the
per-edge ``[E, H, C]`` tensor wherever the layer's maths allows it.

The graph structure a layer derives (the CSR view, the graph with self-loops) is kept on a
``GraphCSR`` the caller holds (``gatlib.graph.to_csr``) and built on every call from a plain
``edge_index``; nothing is cached anywhere else. One module per layer (:mod:`.gat`,
:mod:`.gatv2`, :mod:`.transformer`), their base class and shared pieces in :mod:`.conv_common`.
The base class is PyG's ``MessagePassing``: PyG's explainers, ``to_hetero``, ``summary`` and
``Sequential`` take them as they take PyG's layers (PyG's ``propagate`` runs only in explain
mode or under a message hook; every other call runs on the fused operators).
"""
from .gat import GATConv
from .gatv2 import GATv2Conv
from .transformer import GraphTransformerConv, TransformerConv

__all__ = ["GATConv", "GATv2Conv", "GraphTransformerConv", "TransformerConv"]
