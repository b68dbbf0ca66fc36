"""Heterogeneous node classification for ``gatlib train`` (``dataset: mag_synthetic``): a
synthetic graph with the node and edge types of OGB-MAG, and a GAT made heterogeneous with
PyG's ``to_hetero``, one gatlib layer per edge type.

The graph (:func:`synthetic_mag`): papers drawn from a contextual SBM
(:func:`gatlib.data.csbm`: features, classes, citations, train/val/test masks), authors who
write papers, institutions the authors are affiliated with, and fields of study the papers
have as topics, every relation and its reverse (``rev_*``), as PyG's OGB-MAG example builds
it with ``ToUndirected``. Authors and fields have a class of their own, shared with their
papers with probability ``homophily``; authors' and institutions' features are the means of
their papers' and authors' features, fields' are random (OGB-MAG gives features to papers
only). The task: the papers' classes.
"""
from __future__ import annotations

from typing import Any, Dict, Sequence, Tuple

import torch
from torch import Tensor, nn

__all__ = ["synthetic_mag", "HeteroNodeClassifier", "TARGET"]

# The node type whose classes are predicted.
TARGET = "paper"


def _links(count: int, per_item: Tuple[int, int], owner_class: Tensor, pool_class: Tensor,
           homophily: float, g: torch.Generator) -> Tensor:
    """``[2, M]`` pairs (pool item, owner): each of ``count`` owners links to ``per_item``
    (inclusive range) items of the pool, each one of the owner's class with probability
    ``homophily`` (when the class has any), else uniform over the pool."""
    lo, hi = per_item
    k = torch.randint(lo, hi + 1, (count,), generator=g)                   # [count]
    owner = torch.repeat_interleave(torch.arange(count), k)                # [M]
    P = pool_class.numel()
    item = torch.randint(0, P, (owner.numel(),), generator=g)              # [M] uniform
    same = torch.rand(owner.numel(), generator=g) < homophily
    # One of the pool items of the owner's class: sort the pool by class, draw an offset.
    order = torch.argsort(pool_class, stable=True)
    C = int(max(int(pool_class.max()), int(owner_class.max()))) + 1
    sizes = torch.bincount(pool_class, minlength=C)
    starts = torch.cumsum(sizes, 0) - sizes
    c = owner_class[owner]                                                 # [M]
    has = sizes[c] > 0
    offset = (torch.rand(owner.numel(), generator=g) * sizes[c].clamp(min=1)).long()
    pick = order[(starts[c] + offset).clamp(max=P - 1)]
    item = torch.where(same & has, pick, item)
    return torch.stack([item, owner]).unique(dim=1)                        # no duplicates


def _mean_of(src_x: Tensor, edge_index: Tensor, num_dst: int) -> Tensor:
    """Each target's mean of its sources' features (zero without sources)."""
    s, d = edge_index
    out = src_x.new_zeros(num_dst, src_x.size(1)).index_add_(0, d, src_x[s])
    deg = torch.bincount(d, minlength=num_dst).clamp(min=1).unsqueeze(-1)
    return out / deg


def synthetic_mag(num_papers: int = 1000, num_classes: int = 4, avg_degree: float = 5.0,
                  homophily: float = 0.8, feature_dim: int = 32, mu: float = 2.0,
                  split: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0):
    """A ``HeteroData`` with OGB-MAG's types: ``paper`` (``x``, ``y``, masks), ``author``,
    ``institution``, ``field_of_study``; relations ``(paper, cites, paper)``, ``(author,
    writes, paper)``, ``(author, affiliated_with, institution)``, ``(paper, has_topic,
    field_of_study)`` and their reverses ``rev_writes``, ``rev_affiliated_with``,
    ``rev_has_topic`` (``cites`` is already undirected).

    Sizes: ``num_papers`` papers, half as many authors (1-3 per paper), one institution per 20
    papers (one per author), four fields per class (1-2 per paper). The papers' graph, features
    and masks are :func:`gatlib.data.csbm` (``num_classes``, ``avg_degree``, ``homophily``,
    ``feature_dim``, ``mu``, ``split``, ``seed``)."""
    from torch_geometric.data import HeteroData

    from ..data import csbm
    papers = csbm(num_papers, num_classes, avg_degree, homophily, feature_dim=feature_dim,
                  mu=mu, split=tuple(split), seed=seed)
    g = torch.Generator().manual_seed(int(seed) + 1)
    A = max(num_papers // 2, 1)
    I = max(num_papers // 20, 1)
    Fs = 4 * num_classes
    author_class = torch.randint(0, num_classes, (A,), generator=g)        # [A]
    field_class = torch.arange(Fs) % num_classes                           # [Fs]
    writes = _links(num_papers, (1, 3), papers.y, author_class, homophily, g)  # author->paper
    topics = _links(num_papers, (1, 2), papers.y, field_class, homophily, g)   # field->paper
    affiliated = torch.stack([torch.arange(A), torch.randint(0, I, (A,), generator=g)])
    data = HeteroData()
    data["paper"].x, data["paper"].y = papers.x, papers.y
    for s in ("train", "val", "test"):
        data["paper"][f"{s}_mask"] = getattr(papers, f"{s}_mask")
    data["author"].x = _mean_of(papers.x, writes.flip(0), A)               # [A, F]
    data["institution"].x = _mean_of(data["author"].x, affiliated, I)      # [I, F]
    data["field_of_study"].x = torch.randn(Fs, feature_dim, generator=g)   # [Fs, F]
    data["paper", "cites", "paper"].edge_index = papers.edge_index
    data["author", "writes", "paper"].edge_index = writes
    data["author", "affiliated_with", "institution"].edge_index = affiliated
    data["paper", "has_topic", "field_of_study"].edge_index = topics.flip(0)
    data["paper", "rev_writes", "author"].edge_index = writes.flip(0)
    data["institution", "rev_affiliated_with", "author"].edge_index = affiliated.flip(0)
    data["field_of_study", "rev_has_topic", "paper"].edge_index = topics
    return data


class _Homogeneous(nn.Module):
    """The model ``to_hetero`` copies per type: ``num_layers`` attention layers with lazy
    bipartite inputs ``(-1, -1)`` (no self-loops: sources and targets may be of two types),
    each beside a lazy linear skip, activation and dropout between them."""

    def __init__(self, layer: str, hidden: int, out: int, heads: int, num_layers: int,
                 dropout: float, attn_dropout: float, act: str):
        super().__init__()
        from torch_geometric.nn import Linear

        from ..nn import GATConv, GATv2Conv, GraphTransformerConv
        cls = {"gat": GATConv, "gatv2": GATv2Conv, "transformer": GraphTransformerConv}[layer]
        kw = {} if layer == "transformer" else {"add_self_loops": False}
        self.num_layers = num_layers
        # Modules, not functions: to_hetero traces the model once, and a functional dropout's
        # training flag would be baked in as it was then.
        self.drop = nn.Dropout(dropout)
        self.act = {"relu": nn.ReLU(), "gelu": nn.GELU(), "elu": nn.ELU(), "silu": nn.SiLU(),
                    "tanh": nn.Tanh()}[act]
        for i in range(num_layers):
            last = i == num_layers - 1
            width, h = (out, 1) if last else (hidden, heads)
            setattr(self, f"conv{i}", cls((-1, -1), width, heads=h, dropout=attn_dropout,
                                          **kw))
            setattr(self, f"skip{i}", Linear(-1, width * h))

    def forward(self, x: Tensor, edge_index) -> Tensor:
        for i in range(self.num_layers):
            x = self.drop(x)
            x = getattr(self, f"conv{i}")(x, edge_index) + getattr(self, f"skip{i}")(x)
            if i < self.num_layers - 1:
                x = self.act(x)
        return x


class HeteroNodeClassifier(nn.Module):
    """A GAT made heterogeneous by ``to_hetero`` (per destination type, the edge types' outputs
    summed), predicting the classes of the ``target`` type; its lazy shapes are fixed by one
    forward pass over the example inputs.

    Forward ``(x_dict, edge_index_dict, pe=None)`` -> logits of the target nodes ``[N_t, C]``
    (``edge_index_dict``'s values in any form gatlib's layers take, e.g. ``GraphCSR``)."""

    def __init__(self, metadata, x_dict: Dict[str, Tensor], edge_index_dict: Dict[Any, Any],
                 num_classes: int, layer: str = "gat", hidden_channels: int = 8, heads: int = 8,
                 num_layers: int = 2, dropout: float = 0.0, attn_dropout: float = 0.0,
                 act: str = "elu", target: str = TARGET):
        super().__init__()
        from torch_geometric.nn import to_hetero
        base = _Homogeneous(layer, hidden_channels, num_classes, heads, num_layers, dropout,
                            attn_dropout, act)
        self.net = to_hetero(base, metadata, aggr="sum")
        self.target = target
        with torch.no_grad():
            self.net(x_dict, edge_index_dict)

    def forward(self, x_dict, edge_index_dict, pe=None) -> Tensor:
        return self.net(x_dict, edge_index_dict)[self.target]
