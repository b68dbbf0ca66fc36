"""PyG transforms that store positional encodings on a graph, for ``dataset.transform`` /
``pre_transform``. A ``Batch`` works too: its ``batch`` vector makes the encodings per graph."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from .laplacian import _check_positive_int, laplacian_pe
from .random_walk import random_walk_pe

__all__ = ["AddLaplacianPE", "AddRandomWalkPE"]


class AddLaplacianPE(BaseTransform):
    """Add Laplacian eigenvector encodings ``[N, k]`` to ``data[attr_name]``.

    See :func:`gatlib.pe.laplacian_pe` for the definition (non-trivial eigenvectors, one per
    column, zero padding, deterministic sign). The random sign flip used in training belongs to
    the encoder (:class:`gatlib.nn.encoders.LapPEEncoder`), not to the stored data.

    Args:
        k (int): number of eigenvectors, ``>= 1``.
        attr_name (str, default 'lap_pe'): attribute that receives the encodings.
        normalized (bool, default True): symmetric-normalised Laplacian instead of ``D - A``.

    Shapes:
        - data.edge_index: ``[2, E]``, data.batch (optional): ``[N]``
        - data[attr_name]: ``[N, K]``, float32
    """

    def __init__(self, k: int, attr_name: str = "lap_pe", normalized: bool = True) -> None:
        self.k = _check_positive_int(k, "k")
        self.attr_name = _check_attr_name(attr_name)
        self.normalized = bool(normalized)

    def forward(self, data: Data) -> Data:
        edge_index, num_nodes, batch = _graph_of(data, type(self).__name__)
        data[self.attr_name] = laplacian_pe(edge_index, num_nodes, self.k, batch=batch,
                                            normalized=self.normalized)
        return data

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(k={self.k}, attr_name={self.attr_name!r}, "
                f"normalized={self.normalized})")


class AddRandomWalkPE(BaseTransform):
    """Add random-walk structural encodings ``[N, steps]`` to ``data[attr_name]``.

    Column ``t - 1`` holds the probability that a random walk from the node is back after ``t``
    steps; see :func:`gatlib.pe.random_walk_pe`.

    Args:
        steps (int): number of walk lengths, ``>= 1``.
        attr_name (str, default 'rw_pe'): attribute that receives the encodings.

    Shapes:
        - data.edge_index: ``[2, E]``, data.batch (optional): ``[N]``
        - data[attr_name]: ``[N, steps]``, float32
    """

    def __init__(self, steps: int, attr_name: str = "rw_pe") -> None:
        self.steps = _check_positive_int(steps, "steps")
        self.attr_name = _check_attr_name(attr_name)

    def forward(self, data: Data) -> Data:
        edge_index, num_nodes, batch = _graph_of(data, type(self).__name__)
        data[self.attr_name] = random_walk_pe(edge_index, num_nodes, self.steps, batch=batch)
        return data

    def __repr__(self) -> str:
        return f"{type(self).__name__}(steps={self.steps}, attr_name={self.attr_name!r})"


def _graph_of(data, who: str):
    """``(edge_index, num_nodes, batch)`` of a homogeneous ``Data``/``Batch``."""
    if not isinstance(data, Data):
        raise TypeError(f"{who} expects a torch_geometric.data.Data (or Batch), got "
                        f"{type(data).__name__}; for HeteroData convert with to_homogeneous()")
    num_nodes = data.num_nodes
    if num_nodes is None:
        raise ValueError(f"{who} cannot tell the number of nodes of the graph; set "
                         f"data.num_nodes")
    edge_index: Optional[Tensor] = data.edge_index
    if edge_index is None:
        edge_index = torch.empty(2, 0, dtype=torch.long)
    batch = data.batch if "batch" in data else None
    return edge_index, num_nodes, batch


def _check_attr_name(attr_name) -> str:
    if not isinstance(attr_name, str) or not attr_name:
        raise ValueError(f"attr_name must be a non-empty str, got {attr_name!r}")
    return attr_name
