"""Benchmark steps over real graphs, for ``experiments/benchmarks/sparse_features.py`` (a
training epoch of the GAT paper's model on Cora or CiteSeer, dense or CSR features, against
the same model from PyG's layers) and ``dense_batches.py`` (dense attention over a batch of
graphs of mixed sizes, against padding every graph to the largest). Like
:mod:`gatlib.experiments.bench`'s, each step builds its inputs from a seed and returns a
zero-argument callable.
"""
from __future__ import annotations

from typing import Callable, List, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..ops import dense_attention
from .bench import _attention_step, attention_inputs

__all__ = ["PLANETOID_IMPLS", "planetoid_model", "planetoid_epoch_step", "DENSE_BATCH_IMPLS",
           "graph_batch_sizes", "padded_dense_attention", "dense_batch_step"]


# ------------------------------------------------- a training epoch on Cora / CiteSeer (features)

# gatlib's NodeClassifier with dense or sparse CSR features, and the same two-layer model built
# from PyG's layers (dense features, the peer).
PLANETOID_IMPLS = ("gatlib-dense", "gatlib-csr", "pyg")


def planetoid_model(impl: str, dataset: str, layer: str = "gat", seed: int = 0):
    """``(model, x, data)`` for one epoch of the GAT paper's model on a Planetoid graph:
    row-normalised features, 2 layers, 8 heads x 8, dropout 0.6; ``x`` dense or CSR."""
    from torch_geometric.transforms import NormalizeFeatures

    from ..data import load_dataset
    from ..nn import NodeClassifier
    if impl not in PLANETOID_IMPLS:
        raise ValueError(f"impl must be one of {PLANETOID_IMPLS}, got {impl!r}")
    data = NormalizeFeatures()(load_dataset(dataset)[0])
    classes = int(data.y.max()) + 1
    torch.manual_seed(seed)
    if impl == "pyg":
        # The same model from PyG's layers (its GAT class drops no input features, so it is
        # not the paper's model): dropout -> conv -> ELU -> dropout -> conv.
        from torch_geometric.nn import GATConv, GATv2Conv, TransformerConv
        conv = {"gat": GATConv, "gatv2": GATv2Conv, "transformer": TransformerConv}[layer]

        class _TwoLayers(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv1 = conv(data.num_features, 8, heads=8, dropout=0.6)
                self.conv2 = conv(64, classes, heads=1, concat=False, dropout=0.6)

            def forward(self, x, edge_index):
                x = F.elu(self.conv1(F.dropout(x, 0.6, self.training), edge_index))
                return self.conv2(F.dropout(x, 0.6, self.training), edge_index)
        model = _TwoLayers()
        return model, data.x, data
    model = NodeClassifier(data.num_features, 8, classes, layer=layer)
    x = data.x.to_sparse_csr() if impl == "gatlib-csr" else data.x
    return model, x, data


def planetoid_epoch_step(impl: str, dataset: str, layer: str = "gat",
                         seed: int = 0) -> Callable[[], None]:
    """One epoch as ``gatlib train`` runs it: a training step (forward, backward, Adam) on the
    training nodes, then an evaluation forward pass over all nodes."""
    model, x, data = planetoid_model(impl, dataset, layer, seed)
    opt = torch.optim.Adam(model.parameters(), lr=0.005, weight_decay=5e-4)
    ei, y, mask = data.edge_index, data.y, data.train_mask

    def step():
        model.train()
        opt.zero_grad()
        F.cross_entropy(model(x, ei)[mask], y[mask]).backward()
        opt.step()
        model.eval()
        with torch.no_grad():
            model(x, ei)
    step.model = model                  # for tests: the model the step trains
    return step


# ------------------------------------------- dense attention over a batch of graphs of mixed sizes

# gatlib's dense_attention (each size group padded to its own largest graph) against padding
# every graph to the largest of the batch, as PyG's GPSConv does (to_dense_batch, then attention
# with a key-padding mask), with the same SDPA kernel underneath.
DENSE_BATCH_IMPLS = ("gatlib", "padded")


def graph_batch_sizes(dataset: str, batch_size: int, seed: int = 0) -> List[int]:
    """Node counts of ``batch_size`` graphs of a TU dataset drawn at random (as one shuffled
    training batch would be)."""
    from ..data import load_dataset
    ds = load_dataset(dataset)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds), generator=g)[:batch_size]
    return [int(ds[int(i)].num_nodes) for i in idx]


def padded_dense_attention(q: Tensor, k: Tensor, v: Tensor, batch: Tensor) -> Tensor:
    """Every graph padded to the largest of the batch (``torch_geometric.utils.to_dense_batch``),
    one SDPA call with a key-padding mask, and the real rows taken back."""
    from torch_geometric.utils import to_dense_batch
    N, H = q.size(0), q.size(1)
    dense = [to_dense_batch(x.reshape(N, -1), batch) for x in (q, k, v)]
    keep = dense[0][1]                                                     # [B, L]
    B, L = keep.shape
    qp, kp, vp = (x.view(B, L, H, -1).transpose(1, 2) for x, _ in dense)   # [B, H, L, *]
    out = F.scaled_dot_product_attention(qp, kp, vp, attn_mask=keep.view(B, 1, 1, L))
    return out.transpose(1, 2)[keep]                                       # [N, H, C]


def dense_batch_step(impl: str, sizes: Sequence[int], heads: int = 4, dim: int = 16,
                     seed: int = 0, device: str = "cpu") -> Callable[[], None]:
    """Forward plus backward of dense attention over one batch of graphs of the given sizes."""
    if impl not in DENSE_BATCH_IMPLS:
        raise ValueError(f"impl must be one of {DENSE_BATCH_IMPLS}, got {impl!r}")
    counts = torch.tensor(list(sizes), dtype=torch.long)
    batch = torch.repeat_interleave(torch.arange(counts.numel()), counts).to(device)
    attend = dense_attention if impl == "gatlib" else padded_dense_attention
    return _attention_step(lambda q, k, v: attend(q, k, v, batch),
                           *attention_inputs(int(counts.sum()), heads, dim, seed, device))
