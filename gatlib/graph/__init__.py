"""Graph structure: validation, the CSR view (gatlib's explicit graph structure), every adjacency
form PyG accepts, builders, attention patterns, networkx interop."""
from .validate import check_edge_index, check_num_nodes, check_same_device, check_tensor
from .csr import GraphCSR
from .adjacency import Adjacency, as_adjacency, to_csr
from .builders import path_graph, grid_graph, complete_graph
from .patterns import (global_tokens, random_edges, expander_edges, exphormer, virtual_nodes,
                       union, bigbird, pattern_density)
from .loops import add_self_loops, remove_self_loops, contains_self_loops
from .convert import to_networkx, from_networkx

__all__ = [
    "check_edge_index", "check_num_nodes", "check_same_device", "check_tensor",
    "GraphCSR", "to_csr", "Adjacency", "as_adjacency",
    "path_graph", "grid_graph", "complete_graph",
    "global_tokens", "random_edges", "expander_edges", "exphormer", "virtual_nodes", "union",
    "bigbird", "pattern_density",
    "add_self_loops", "remove_self_loops", "contains_self_loops",
    "to_networkx", "from_networkx",
]
