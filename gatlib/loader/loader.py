"""``neighbor_loader``: PyG's ``NeighborLoader`` where PyG can sample, else PyG's ``NodeLoader``
with gatlib's :class:`~gatlib.loader.sampler.NeighborSampler`; the same batches either way."""
from __future__ import annotations

import numbers
from typing import Optional, Sequence

import torch
from torch import Tensor

from .sampler import NeighborSampler, check_num_neighbors, check_seeds

__all__ = ["neighbor_loader", "pyg_can_sample"]

_BACKENDS = ("auto", "gatlib", "pyg")


def pyg_can_sample() -> bool:
    """Whether PyG's own ``NeighborSampler`` can run here (``pyg-lib`` or ``torch-sparse`` is
    importable: the flags PyG's sampler itself checks)."""
    import torch_geometric.typing as t
    return bool(t.WITH_PYG_LIB or t.WITH_TORCH_SPARSE)


def neighbor_loader(data, num_neighbors: Sequence[int], batch_size: int,
                    input_nodes=None, shuffle: bool = False, replace: bool = False, *,
                    backend: str = "auto", seed: Optional[int] = None, **kwargs):
    """A mini-batch loader of sampled in-neighbourhoods of a PyG ``Data``.

    Each batch is a PyG ``Data``: its first ``batch.batch_size`` nodes are the seeds, ``n_id``
    / ``e_id`` map nodes and edges back to ``data``, the node and edge attributes are sliced by
    them, ``input_id`` are the seeds' positions in ``input_nodes``, and ``num_sampled_nodes`` /
    ``num_sampled_edges`` count nodes and edges hop by hop. A training step::

        for batch in neighbor_loader(data, [10, 10], 512, data.train_mask, shuffle=True):
            out = model(batch.x, batch.edge_index)[:batch.batch_size]
            loss = F.cross_entropy(out, batch.y[:batch.batch_size])

    or layer by layer on bipartite blocks (:func:`gatlib.loader.to_blocks`,
    :func:`gatlib.nn.inference.forward_blocks`).

    Args:
        data: a PyG ``Data`` with ``edge_index`` (row 0 source j, row 1 target i).
        num_neighbors (list of int): fanout per hop (layer), ``-1`` for all in-neighbours.
        batch_size (int): seeds per batch.
        input_nodes (Tensor, optional): the seeds, as node ids or a boolean mask; default all
            nodes.
        shuffle (bool, default False): shuffle the seeds every epoch.
        replace (bool, default False): sample with replacement.
        backend (str, default ``'auto'``): ``'pyg'`` for PyG's ``NeighborLoader`` (needs
            ``pyg-lib`` or ``torch-sparse``), ``'gatlib'`` for gatlib's sampler in PyG's
            ``NodeLoader``, ``'auto'`` for PyG's when it can sample and no ``seed`` is given,
            else gatlib's.
        seed (int, optional): makes the batches reproducible (gatlib's sampler only: PyG's
            draws from its own generator): seeds the sampler and, unless ``generator`` is
            passed, the order ``shuffle`` gives.
        **kwargs: more arguments of PyG's ``NodeLoader`` / ``DataLoader`` (``num_workers``,
            ``drop_last``, ``transform``, ``generator``, ...).

    Returns:
        PyG's ``NeighborLoader`` or ``NodeLoader`` (both ``torch.utils.data.DataLoader``).
    """
    from torch_geometric.data import Data
    from torch_geometric.loader import NeighborLoader, NodeLoader
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    if not isinstance(data, Data):
        raise TypeError(f"data must be a PyG Data (edge_index and node attributes), got "
                        f"{type(data).__name__}; for HeteroData use PyG's NeighborLoader")
    fanouts = check_num_neighbors(num_neighbors)
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    for name, flag in (("shuffle", shuffle), ("replace", replace)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be a bool, got {type(flag).__name__}")
    input_nodes = _check_input_nodes(input_nodes, data.num_nodes)
    if backend == "pyg" or (backend == "auto" and seed is None and pyg_can_sample()):
        if seed is not None:
            raise ValueError("seed applies to gatlib's sampler only; with backend='pyg' seed "
                             "torch (torch.manual_seed) or pass backend='gatlib'")
        if not pyg_can_sample():
            raise ImportError("backend='pyg' needs pyg-lib or torch-sparse (PyG's "
                              "NeighborSampler); use backend='gatlib' or 'auto'")
        return NeighborLoader(data, num_neighbors=fanouts, input_nodes=input_nodes,
                              replace=replace, batch_size=batch_size, shuffle=shuffle, **kwargs)
    sampler = NeighborSampler(data, fanouts, replace=replace, seed=seed)
    if seed is not None and shuffle and "generator" not in kwargs:
        kwargs["generator"] = torch.Generator().manual_seed(int(seed))
    return NodeLoader(data, sampler, input_nodes=input_nodes, batch_size=batch_size,
                      shuffle=shuffle, **kwargs)


def _check_input_nodes(input_nodes, num_nodes: int) -> Optional[Tensor]:
    """Node ids or a boolean mask over the ``num_nodes`` nodes, checked before any batch."""
    if input_nodes is None:
        return None
    if not isinstance(input_nodes, Tensor):
        raise TypeError(f"input_nodes must be a LongTensor of node ids or a BoolTensor mask "
                        f"(or None for all nodes), got {type(input_nodes).__name__}")
    if input_nodes.dtype == torch.bool:
        if input_nodes.dim() != 1 or input_nodes.numel() != num_nodes:
            raise ValueError(f"input_nodes as a mask must have one entry per node ({num_nodes}), "
                             f"got shape {tuple(input_nodes.shape)}")
        return input_nodes
    return check_seeds(input_nodes, num_nodes, "input_nodes")
