"""Graph structure: validation, the cached CSR view, builders, attention patterns, networkx interop."""
from .validate import check_edge_index, check_num_nodes, check_same_device, check_tensor
from .csr import GraphCSR, to_csr, clear_csr_cache
from .builders import path_graph, grid_graph, complete_graph
from .patterns import (global_tokens, random_edges, expander_edges, virtual_nodes, union,
                       bigbird, pattern_density)
from .loops import add_self_loops, remove_self_loops, contains_self_loops
from .convert import to_networkx, from_networkx

__all__ = [
    "check_edge_index", "check_num_nodes", "check_same_device", "check_tensor",
    "GraphCSR", "to_csr", "clear_csr_cache",
    "path_graph", "grid_graph", "complete_graph",
    "global_tokens", "random_edges", "expander_edges", "virtual_nodes", "union", "bigbird",
    "pattern_density",
    "add_self_loops", "remove_self_loops", "contains_self_loops",
    "to_networkx", "from_networkx",
]
