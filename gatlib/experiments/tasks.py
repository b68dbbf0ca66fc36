"""The tasks of ``gatlib compare``, in one place: each a dataset prepared for the comparison
(splits, features, metric, epochs, the variants it runs), built by name.

``DEFAULT_TASKS`` is what ``gatlib compare`` runs without ``--tasks``; the command's help reads
it from here. This module imports no extra (the data are built on first use).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Sequence, Tuple

from torch import Tensor

from ..data.splits import random_split

__all__ = ["Task", "TASKS", "DEFAULT_TASKS", "TASK_DATASETS", "VARIANTS", "SEQUENCE_VARIANTS",
           "build_task", "missing_task_data"]

VARIANTS = ("sparse", "sparse+lap", "dense", "dense+lap", "gps", "gps+lap")
SEQUENCE_VARIANTS = ("sparse[window]", "sparse[dilated]", "sparse[global]", "sparse[bigbird]",
                     "dense", "gps")


# ------------------------------------------------------------------------------------- tasks

@dataclass
class Task:
    """A dataset prepared for the comparison.

    ``splits`` maps ``'train'``, ``'val'``, ``'test'`` to lists of graphs. A single-graph node
    task (Cora) has the same one graph in every split and selects nodes with the boolean
    ``<split>_mask`` attributes (``[N]``, or ``[N, S]`` with split ``seed % S``).
    """

    name: str
    level: str                                  # 'node' or 'graph'
    splits: Dict[str, List[Any]]
    num_features: int
    num_classes: int
    description: str
    metric: str = "accuracy"                    # or 'balanced_accuracy'
    masks: bool = False
    pool: str = "mean"
    epochs: int = 50
    batch_size: int = 64
    dropout: float = 0.1
    weight_decay: float = 0.0
    variants: Tuple[str, ...] = VARIANTS
    patterns: Dict[str, Callable[[int], Tensor]] = field(default_factory=dict)
    budget: int = 20_000                        # parameters per model


def _planetoid(name: str, quick: bool) -> Task:
    from torch_geometric.transforms import NormalizeFeatures

    from ..data import load_dataset
    ds = load_dataset(name)
    data = NormalizeFeatures()(ds[0])
    return Task(name.lower(), "node", {s: [data] for s in ("train", "val", "test")},
                data.num_features, int(ds.num_classes),
                f"{name}: one citation graph, {data.num_nodes:,} nodes, public split",
                masks=True, epochs=100 if quick else 200, dropout=0.5, weight_decay=5e-4,
                budget=100_000)


def _chameleon(quick: bool) -> Task:
    from ..data import load_dataset
    ds = load_dataset("chameleon")
    data = ds[0]
    return Task("chameleon", "node", {s: [data] for s in ("train", "val", "test")},
                data.num_features, int(ds.num_classes),
                f"chameleon: heterophilous Wikipedia graph, {data.num_nodes:,} nodes, "
                f"10 splits 60/20/20 (seed s uses split s mod 10)",
                masks=True, epochs=100 if quick else 200, dropout=0.5, weight_decay=5e-4,
                budget=100_000)


def _tu(name: str, quick: bool) -> Task:
    from ..data import load_dataset
    ds = load_dataset(name)
    graphs = [d for d in ds]
    if graphs[0].x is None:
        raise ValueError(f"{name} has no node features; pick a TU dataset that has them")
    graphs = [d.clone() for d in graphs]
    for d in graphs:
        d.x = d.x.float()
    return Task(name.lower(), "graph", random_split(graphs), graphs[0].num_features,
                int(ds.num_classes),
                f"{name}: {len(graphs)} graphs, one fixed 80/10/10 split",
                epochs=40 if quick else 100, batch_size=32)


def _sbm(kind: str, quick: bool) -> Task:
    from ..data import sbm_cluster, sbm_pattern
    n = 300 if quick else 1000
    graphs = (sbm_pattern if kind == "pattern" else sbm_cluster)(num_graphs=n, seed=0)
    num_classes = int(max(int(d.y.max()) for d in graphs)) + 1
    mean_nodes = sum(d.num_nodes for d in graphs) / len(graphs)
    return Task(kind, "node", random_split(graphs), graphs[0].num_features, num_classes,
                f"{kind.upper()}-style SBM (Dwivedi et al.): {n} graphs of about "
                f"{mean_nodes:.0f} nodes, balanced accuracy",
                metric="balanced_accuracy", epochs=30 if quick else 60, batch_size=32)


def _sequence(quick: bool) -> Task:
    from ..data.tasks import long_range_sequences
    from ..graph import path_graph
    from ..graph.patterns import bigbird, global_tokens, union
    length, window, layers = 64, 2, 3
    n = 600 if quick else 2000
    graphs = long_range_sequences(num_graphs=n, length=length, vocab=8, pattern="window",
                                  window=window, seed=0)
    patterns = {
        "window": lambda L: path_graph(L, window, self_loops=True),
        "dilated": lambda L: path_graph(L, window, dilation=8, self_loops=True),
        "global": lambda L: union(path_graph(L, window, self_loops=True),
                                  global_tokens(L, 1, self_loops=True)),
        "bigbird": lambda L: bigbird(L, window=window, num_global=1, num_random=3, seed=0),
    }
    return Task("sequence", "graph", random_split(graphs), graphs[0].num_features, 8,
                f"long-range sequences: {n} sequences of {length} tokens, label = the flagged "
                f"token at distance >= {length // 2} from the read-out token; "
                f"{layers} layers of window {window} reach {layers * window}",
                pool="first", epochs=30 if quick else 60, variants=SEQUENCE_VARIANTS,
                patterns=patterns)


def _digits(quick: bool) -> Task:
    from ..data.tasks import digits_graphs
    graphs, num_classes = digits_graphs(patch=1, radius=1, diagonal=True, coords=True)
    if quick:
        graphs = graphs[:900]
    return Task("digits", "graph", random_split(graphs), graphs[0].num_features, num_classes,
                f"scikit-learn digits: {len(graphs)} 8x8 images, pixels as nodes of a grid "
                f"graph (8-neighbourhood)", epochs=20 if quick else 50)


TASKS: Dict[str, Callable[[bool], Task]] = {
    "pattern": lambda q: _sbm("pattern", q),
    "cluster": lambda q: _sbm("cluster", q),
    "sequence": _sequence,
    "digits": _digits,
    "cora": lambda q: _planetoid("Cora", q),
    "citeseer": lambda q: _planetoid("CiteSeer", q),
    "chameleon": _chameleon,
    "mutag": lambda q: _tu("MUTAG", q),
    "proteins": lambda q: _tu("PROTEINS", q),
}
DEFAULT_TASKS = ("cluster", "sequence", "digits", "mutag")
# The registered dataset each task reads (the others are generated and need no files).
TASK_DATASETS = {"cora": "Cora", "citeseer": "CiteSeer", "chameleon": "chameleon",
                 "mutag": "MUTAG", "proteins": "PROTEINS"}


def missing_task_data(tasks: Sequence[str]) -> Dict[str, Dict[str, str]]:
    """``{task: {"dataset", "state", "message"}}`` for each task whose dataset cannot be loaded:
    ``state`` is ``"not found"`` (neither in the local root nor in a mirror) or ``"damaged"``
    (a file differs from the registry). Checking links a mirror's files into the local root
    and verifies their sha256 (once per file version), but builds nothing."""
    from .. import data
    from ..data import DatasetDamaged, DatasetNotFound
    out = {}
    for t in tasks:
        name = TASK_DATASETS.get(t)
        if name is None:
            continue
        try:
            data.check_dataset(name)
        except DatasetNotFound as exc:
            out[t] = {"dataset": name, "state": "not found", "message": str(exc)}
        except DatasetDamaged as exc:
            out[t] = {"dataset": name, "state": "damaged", "message": str(exc)}
    return out


def build_task(name: str, quick: bool = False, pe_dim: int = 8) -> Task:
    """Build task ``name`` (one of :data:`TASKS`) with Laplacian encodings ``pe`` on its graphs."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose from {', '.join(TASKS)}")
    task = TASKS[name](quick)
    _add_lap_pe(task, pe_dim)
    return task


def _add_lap_pe(task: Task, k: int) -> None:
    from ..pe import laplacian_pe
    seen: Dict[int, Tensor] = {}
    for graphs in task.splits.values():
        for d in graphs:
            if id(d) not in seen:
                seen[id(d)] = laplacian_pe(d.edge_index, d.num_nodes, k, per_component=True)
            d.pe = seen[id(d)]                                             # [N, K]
