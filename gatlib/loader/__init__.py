"""Mini-batches of big graphs: neighbour sampling over gatlib's CSR structure that plugs into
PyG's loaders (``NodeLoader``), PyG's own ``NeighborLoader`` where PyG can sample, and the
per-layer bipartite blocks of a sampled batch.

A training epoch on sampled neighbourhoods::

    from gatlib.loader import neighbor_loader, to_blocks
    loader = neighbor_loader(data, [10, 10], batch_size=512, input_nodes=data.train_mask,
                             shuffle=True)
    for batch in loader:
        out = model(batch.x, batch.edge_index)[:batch.batch_size]      # one subgraph, or
        # out = gatlib.nn.inference.forward_blocks(model, batch.x, to_blocks(batch))
        loss = F.cross_entropy(out, batch.y[:batch.batch_size])

Under DDP, each rank passes ``sampler=DistributedSampler(range(num_seeds), ...)`` (and no
``shuffle``) so the ranks share the seeds out; ``seed=`` makes a rank's batches reproducible.
Full-graph evaluation layer by layer: :func:`gatlib.nn.inference.layerwise_inference`.
"""
from .sampler import NeighborSampler, sample_neighbors
from .loader import neighbor_loader, pyg_can_sample
from .blocks import Block, to_blocks

__all__ = ["NeighborSampler", "sample_neighbors", "neighbor_loader", "pyg_can_sample", "Block",
           "to_blocks"]
