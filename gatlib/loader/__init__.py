"""Mini-batches of big graphs: neighbour sampling over gatlib's CSR structure that plugs into
PyG's loaders (``NodeLoader``), PyG's own ``NeighborLoader`` where PyG can sample, and the
per-layer bipartite blocks of a sampled batch."""
from .sampler import NeighborSampler, sample_neighbors
from .loader import neighbor_loader, pyg_can_sample
from .blocks import Block, to_blocks

__all__ = ["NeighborSampler", "sample_neighbors", "neighbor_loader", "pyg_can_sample", "Block",
           "to_blocks"]
