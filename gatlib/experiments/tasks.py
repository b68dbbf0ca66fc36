"""The tasks of ``gatlib compare``, in one place: each a dataset prepared for the comparison
(splits, features, metric, epochs, the variants it runs), built by name.

``DEFAULT_TASKS`` is what ``gatlib compare`` runs without ``--tasks``; the command's help reads
it from here. This module imports no extra (the data are built on first use).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from torch import Tensor

from ..data.splits import random_split

__all__ = ["Task", "TASKS", "DEFAULT_TASKS", "TASK_DATASETS", "VARIANTS", "SEQUENCE_VARIANTS",
           "MEDIUM_VARIANTS", "SIZES", "Preset", "PRESETS", "PAPER_SBM", "PAPER_SBM_STATS",
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
    num_layers: int = 3                         # attention layers
    heads: int = 4
    pe_dim: int = 8                             # Laplacian eigenvectors per node
    pe_channels: int = 8                        # their encoded width
    norm: Optional[str] = None                  # None: layer norm (node tasks), batch (graph)
    patience: Optional[int] = None              # early stopping on validation; None: all epochs


def _planetoid(name: str, size: str) -> Task:
    quick = size == "small"
    from torch_geometric.transforms import NormalizeFeatures

    from ..data import load_dataset
    ds = load_dataset(name)
    data = NormalizeFeatures()(ds[0])
    return Task(name.lower(), "node", {s: [data] for s in ("train", "val", "test")},
                data.num_features, int(ds.num_classes),
                f"{name}: one citation graph, {data.num_nodes:,} nodes, public split",
                masks=True, epochs=100 if quick else 200, dropout=0.5, weight_decay=5e-4,
                budget=100_000)


def _chameleon(size: str) -> Task:
    quick = size == "small"
    from ..data import load_dataset
    ds = load_dataset("chameleon")
    data = ds[0]
    return Task("chameleon", "node", {s: [data] for s in ("train", "val", "test")},
                data.num_features, int(ds.num_classes),
                f"chameleon: heterophilous Wikipedia graph, {data.num_nodes:,} nodes, "
                f"10 splits 60/20/20 (seed s uses split s mod 10)",
                masks=True, epochs=100 if quick else 200, dropout=0.5, weight_decay=5e-4,
                budget=100_000)


def _tu(name: str, size: str) -> Task:
    quick = size == "small"
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


# The paper's generator settings (Dwivedi et al., "Benchmarking Graph Neural Networks", 2020,
# and the authors' released generator): community sizes drawn from 5-34 nodes (NumPy's
# exclusive upper bound 35), PATTERN with q = 0.2 and a 20-node pattern. Their datasets average
# 117.47 nodes / 4,749.15 edges (PATTERN) and 117.20 / 4,301.72 (CLUSTER), counting both
# directions; the generators below match them within 1.5% (tests/data/test_synthetic.py).
PAPER_SBM = {"pattern": dict(community_size=(5, 34), p=0.5, q=0.2, pattern_size=20,
                             p_pattern=0.5, q_pattern=0.5, num_patterns=100, vocab_size=3),
             "cluster": dict(cluster_size=(5, 34), p=0.55, q=0.25)}
PAPER_SBM_STATS = {"pattern": (117.47, 4749.15), "cluster": (117.20, 4301.72)}
# The Laplacian encoding sizes of the graph transformer paper's configs (Dwivedi & Bresson).
PAPER_PE_DIM = {"pattern": 2, "cluster": 10}
# Graphs per split of the paper-parameter sizes: (train, val, test).
SBM_SPLITS = {"medium": {"pattern": (1000, 250, 250), "cluster": (1000, 250, 250)},
              "paper": {"pattern": (10000, 2000, 2000), "cluster": (10000, 1000, 1000)}}


def _sbm(kind: str, size: str) -> Task:
    from ..data import sbm_cluster, sbm_pattern
    make = sbm_pattern if kind == "pattern" else sbm_cluster
    if size in SBM_SPLITS:
        # The paper's parameters and its model: graph-transformer depth, batch norm, its
        # encoding size, early stopping on validation.
        n_train, n_val, n_test = SBM_SPLITS[size][kind]
        graphs = make(num_graphs=n_train + n_val + n_test, seed=0, **PAPER_SBM[kind])
        # Split by index, as the paper's files are: PATTERN's train, val and test graphs
        # share the 100 patterns (graph i has pattern i mod 100).
        splits = {"train": graphs[:n_train], "val": graphs[n_train:n_train + n_val],
                  "test": graphs[n_train + n_val:]}
        medium = size == "medium"
        extra = dict(epochs=30 if medium else 1000, patience=8 if medium else 25,
                     norm="batch", num_layers=4 if medium else 10, heads=4 if medium else 8,
                     pe_dim=PAPER_PE_DIM[kind], pe_channels=32, dropout=0.0,
                     budget=70_000 if medium else 500_000)
        what = f"{n_train:,} / {n_val:,} / {n_test:,} train / val / test graphs, the paper's"
    else:
        n = 300 if size == "small" else 1000
        graphs = make(num_graphs=n, seed=0)
        splits, extra = random_split(graphs), dict(epochs=30 if size == "small" else 60)
        what = f"{n} graphs, half the paper's community sizes,"
    num_classes = int(max(int(d.y.max()) for d in graphs)) + 1
    mean_nodes = sum(d.num_nodes for d in graphs) / len(graphs)
    return Task(kind, "node", splits, graphs[0].num_features, num_classes,
                f"{kind.upper()}-style SBM (Dwivedi et al.): {what} about {mean_nodes:.0f} "
                f"nodes a graph, balanced accuracy",
                metric="balanced_accuracy", batch_size=32, **extra)


def _sequence(size: str) -> Task:
    quick = size == "small"
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


def _digits(size: str) -> Task:
    quick = size == "small"
    from ..data.tasks import digits_graphs
    graphs, num_classes = digits_graphs(patch=1, radius=1, diagonal=True, coords=True)
    if quick:
        graphs = graphs[:900]
    return Task("digits", "graph", random_split(graphs), graphs[0].num_features, num_classes,
                f"scikit-learn digits: {len(graphs)} 8x8 images, pixels as nodes of a grid "
                f"graph (8-neighbourhood)", epochs=20 if quick else 50)


TASKS: Dict[str, Callable[[bool], Task]] = {
    "pattern": lambda size: _sbm("pattern", size),
    "cluster": lambda size: _sbm("cluster", size),
    "sequence": _sequence,
    "digits": _digits,
    "cora": lambda size: _planetoid("Cora", size),
    "citeseer": lambda size: _planetoid("CiteSeer", size),
    "chameleon": _chameleon,
    "mutag": lambda size: _tu("MUTAG", size),
    "proteins": lambda size: _tu("PROTEINS", size),
}
DEFAULT_TASKS = ("cluster", "sequence", "digits", "mutag")
# The registered dataset each task reads (the others are generated and need no files).
TASK_DATASETS = {"cora": "Cora", "citeseer": "CiteSeer", "chameleon": "chameleon",
                 "mutag": "MUTAG", "proteins": "PROTEINS"}


SIZES = ("small", "full", "medium", "paper")
MEDIUM_VARIANTS = ("sparse+lap", "dense+lap", "gps+lap", "sparse[exphormer]+lap", "linear+lap")


@dataclass(frozen=True)
class Preset:
    """A named comparison: its data size and the tasks, variants, seeds and learning rates it
    runs unless the command names others."""

    name: str
    size: str
    tasks: Tuple[str, ...]
    variants: Optional[Tuple[str, ...]]         # None: each task's own list
    seeds: str
    lrs: Tuple[float, ...]
    about: str


PRESETS: Dict[str, Preset] = {p.name: p for p in (
    Preset("small", "small", DEFAULT_TASKS, None, "0-1", (3e-3,),
           "small data, few epochs: about 14 minutes on two CPU cores"),
    Preset("full", "full", DEFAULT_TASKS, None, "0-1", (3e-3,),
           "more graphs and epochs than small (the same generators)"),
    Preset("medium", "medium", ("pattern", "cluster"), MEDIUM_VARIANTS, "0-2", (3e-3,),
           "PATTERN and CLUSTER with the paper's generator parameters, 1,000 training graphs, "
           "4 graph-transformer layers with batch norm, early stopping: the dense-versus-"
           "sparse gap, about 67 minutes on two shared CPU cores"),
    Preset("paper", "paper", ("pattern", "cluster"), MEDIUM_VARIANTS, "0-3", (5e-4,),
           "the paper's sizes: 10,000 training graphs, 10 layers, 500k parameters (a GPU job)"),
)}


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


def build_task(name: str, size: str = "full", pe_dim: Optional[int] = None,
               quick: Optional[bool] = None) -> Task:
    """Build task ``name`` (one of :data:`TASKS`) at ``size`` (one of :data:`SIZES`; tasks
    other than PATTERN and CLUSTER read ``"medium"`` and ``"paper"`` as ``"full"``) with
    Laplacian encodings ``pe`` (``pe_dim`` per node, default the task's) on its graphs.
    ``quick=True`` is the older spelling of ``size="small"``."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose from {', '.join(TASKS)}")
    if quick is not None:
        size = "small" if quick else "full"
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    if name not in ("pattern", "cluster") and size in SBM_SPLITS:
        size = "full"
    task = TASKS[name](size)
    if pe_dim is not None:
        task.pe_dim = int(pe_dim)
    _add_lap_pe(task, task.pe_dim)
    return task


def _add_lap_pe(task: Task, k: int) -> None:
    from ..pe import laplacian_pe
    seen: Dict[int, Tensor] = {}
    for graphs in task.splits.values():
        for d in graphs:
            if id(d) not in seen:
                seen[id(d)] = laplacian_pe(d.edge_index, d.num_nodes, k, per_component=True)
            d.pe = seen[id(d)]                                             # [N, K]
