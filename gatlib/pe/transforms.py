"""PyG transforms that store positional encodings on a graph, for ``dataset.transform`` /
``pre_transform``. They take PyG's arguments (``AddLaplacianEigenvectorPE``,
``AddRandomWalkPE``) and give PyG's numbers by default; a ``Batch`` works too: its ``batch``
vector makes the encodings per graph."""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from .._checks import check_positive_int
from .laplacian import _check_eigsh_kwargs, laplacian_pe
from .random_walk import _walk_length, random_walk_pe

__all__ = ["AddLaplacianPE", "AddLaplacianEigenvectorPE", "AddRandomWalkPE"]


class AddLaplacianPE(BaseTransform):
    """Add Laplacian eigenvector encodings ``[N, k]`` to ``data[attr_name]`` (or to ``data.x``).

    PyG's ``AddLaplacianEigenvectorPE`` with the same arguments: the eigenvectors of the ``k``
    smallest eigenvalues of the symmetric-normalised Laplacian after the first (trivial) one;
    see :func:`gatlib.pe.laplacian_pe` for the definition and for how the two differ: gatlib
    fixes each column's sign (PyG flips it at random; the random flip used in training belongs
    to the encoder, :class:`gatlib.nn.encoders.LapPEEncoder`), zero-pads graphs with ``n <= k``
    nodes (where PyG fails), picks a deterministic basis of a repeated eigenvalue's eigenspace
    and computes a ``Batch`` per graph. Outputs are float32.

    Args:
        k (int): number of eigenvectors, ``>= 1``.
        attr_name (str or None, default 'laplacian_eigenvector_pe'): attribute that receives
            the encodings; None concatenates them to ``data.x`` (cast to its dtype) as PyG does.
        is_undirected (bool, default False): PyG's hint that the graph is undirected. gatlib
            always reads the graph as undirected (symmetrised), which is the same for an
            undirected graph, so the flag changes nothing.
        normalized (bool, default True, keyword): symmetric-normalised Laplacian instead of
            ``D - A`` (gatlib's option).
        per_component (bool, default False, keyword): skip every connected component's trivial
            eigenvector (gatlib's variant) instead of only the graph's first one (PyG's).
        **kwargs: options of the sparse eigensolver (``tol``, ``maxiter``, ``ncv``), as PyG's
            kwargs for ``eigsh``.

    Shapes:
        - data.edge_index: ``[2, E]``, data.batch (optional): ``[N]``
        - data[attr_name]: ``[N, K]``, float32 (or data.x: ``[N, F + K]``)
    """

    def __init__(self, k: int, attr_name: Optional[str] = "laplacian_eigenvector_pe",
                 is_undirected: bool = False, *, normalized: bool = True,
                 per_component: bool = False, **kwargs: Any) -> None:
        self.k = check_positive_int(k, "k")
        self.attr_name = _check_attr_name(attr_name)
        self.is_undirected = bool(is_undirected)
        self.normalized = bool(normalized)
        self.per_component = bool(per_component)
        self.kwargs = _check_eigsh_kwargs(kwargs)

    def forward(self, data: Data) -> Data:
        edge_index, num_nodes, batch = _graph_of(data, type(self).__name__)
        pe = laplacian_pe(edge_index, num_nodes, self.k, batch=batch,
                          normalized=self.normalized, per_component=self.per_component,
                          eigsh_kwargs=self.kwargs)                       # [N, K]
        return _store(data, pe, self.attr_name)


#: PyG's name of the same transform.
AddLaplacianEigenvectorPE = AddLaplacianPE


class AddRandomWalkPE(BaseTransform):
    """Add random-walk structural encodings ``[N, walk_length]`` to ``data[attr_name]``.

    PyG's ``AddRandomWalkPE`` with the same arguments and numbers: column ``t - 1`` holds the
    probability that a random walk from the node is back after ``t`` steps, the walk following
    the edges as given, self-loops included; see :func:`gatlib.pe.random_walk_pe`.

    Args:
        walk_length (int): number of walk lengths, ``>= 1`` (``steps=`` is accepted as the old
            gatlib name).
        attr_name (str or None, default 'random_walk_pe'): attribute that receives the
            encodings; None concatenates them to ``data.x`` (cast to its dtype) as PyG does.
        simple (bool, default False, keyword): walk on the undirected simple graph (symmetrised,
            no self-loops or duplicates), gatlib's earlier reading.
        steps (int, keyword): alias of ``walk_length``.

    Shapes:
        - data.edge_index: ``[2, E]``, data.batch (optional): ``[N]``
        - data[attr_name]: ``[N, walk_length]``, float32 (or data.x: ``[N, F + walk_length]``)
    """

    def __init__(self, walk_length: Optional[int] = None,
                 attr_name: Optional[str] = "random_walk_pe", *, simple: bool = False,
                 steps: Optional[int] = None) -> None:
        self.walk_length = _walk_length(walk_length, steps)
        self.attr_name = _check_attr_name(attr_name)
        self.simple = bool(simple)

    @property
    def steps(self) -> int:
        """The old gatlib name of :attr:`walk_length`."""
        return self.walk_length

    def forward(self, data: Data) -> Data:
        edge_index, num_nodes, batch = _graph_of(data, type(self).__name__)
        pe = random_walk_pe(edge_index, num_nodes, self.walk_length, batch=batch,
                            simple=self.simple)                          # [N, T]
        return _store(data, pe, self.attr_name)



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


def _store(data: Data, value: Tensor, attr_name: Optional[str]) -> Data:
    """``data[attr_name] = value``, or with ``attr_name=None`` append ``value`` to ``data.x``
    (a 1-D ``x`` becomes a column; ``value`` takes ``x``'s device and dtype), as PyG does."""
    if attr_name is not None:
        data[attr_name] = value
        return data
    x = data.x
    if x is None:
        data.x = value
    else:
        x = x.view(-1, 1) if x.dim() == 1 else x                            # [N, F]
        data.x = torch.cat([x, value.to(x.device, x.dtype)], dim=-1)        # [N, F + K]
    return data


def _check_attr_name(attr_name) -> Optional[str]:
    if attr_name is None:
        return None
    if not isinstance(attr_name, str) or not attr_name:
        raise ValueError(f"attr_name must be a non-empty str, or None to append the encodings "
                         f"to data.x, got {attr_name!r}")
    return attr_name
