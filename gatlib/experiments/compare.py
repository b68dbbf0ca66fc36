"""Dense versus sparse attention, compared fairly: ``gatlib compare``.

For each task the same model is trained with

- ``sparse``: dot-product attention over each node's neighbours (:class:`GraphTransformerConv`);
- ``dense``: the same dot-product attention over all nodes of the graph
  (:class:`DenseGraphAttention`), which sees no edge at all;
- ``gps``: the GPS hybrid (a local GAT branch plus dense global attention per layer),

each with and without Laplacian positional encodings (``+lap``). On the sequence task the sparse
model also runs over the attention patterns of efficient transformers: ``sparse[window]``,
``sparse[dilated]``, ``sparse[global]`` and ``sparse[bigbird]``.

Fairness, in three rules:

1. **One parameter budget.** Every variant of a task gets the width whose parameter count is
   nearest to the task's budget (20,000 parameters; 100,000 on the citation graphs, whose
   thousands of input features would otherwise leave a width of a few channels; ``budget``
   overrides both). The hybrid, having two branches per layer, gets a narrower width.
2. **One tuning budget.** Every variant tries the same learning rates on seed 0 and keeps the
   one with the best validation score; nothing else is tuned.
3. **One protocol.** Same layers, epochs, batch size, dropout, splits and seeds; the test score
   is read at the epoch of the best validation score.

Runs are written atomically to
``<results>/<task>/<variant>/<size>-width=<w>-epochs=<e>/lr=<lr>/seed=<s>.json`` with the hash
of everything that defines them (the task's settings, width, learning rate, seed, device, the
dataset's checksum and gatlib's version). A run file with the same hash is reused, so an
interrupted comparison resumes where it stopped; one with another hash is run again (and
replaced), saying why. Every task's dataset is checked before anything trains
(:func:`missing_task_data`), and one process at a time works in a results folder.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from .. import __version__
from ..data import DatasetDamaged, DatasetNotFound
from ..utils import FolderLock, PeakMemory, atomic_write_json, atomic_write_text
from .config import config_diff, config_hash
from .runs import seed_everything
from .summary import save_figure

__all__ = ["Task", "TASKS", "DEFAULT_TASKS", "TASK_DATASETS", "VARIANTS", "SEQUENCE_VARIANTS",
           "build_task", "missing_task_data", "parse_variant", "width_for_budget",
           "train_variant", "compare", "compare_table"]

VARIANTS = ("sparse", "sparse+lap", "dense", "dense+lap", "gps", "gps+lap")
SEQUENCE_VARIANTS = ("sparse[window]", "sparse[dilated]", "sparse[global]", "sparse[bigbird]",
                     "dense", "gps")
_LAYER = {"sparse": "transformer", "dense": "dense", "gps": "gps"}


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


def _graph_splits(graphs: List[Any], seed: int = 0, fractions=(0.8, 0.1, 0.1)
                  ) -> Dict[str, List[Any]]:
    """A fixed random split of a list of graphs (the data seed, not the model seed)."""
    perm = torch.randperm(len(graphs), generator=torch.Generator().manual_seed(seed)).tolist()
    n_train = int(round(fractions[0] * len(graphs)))
    n_val = int(round(fractions[1] * len(graphs)))
    pick = lambda idx: [graphs[i] for i in idx]   # noqa: E731
    return {"train": pick(perm[:n_train]), "val": pick(perm[n_train:n_train + n_val]),
            "test": pick(perm[n_train + n_val:])}


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
    return Task(name.lower(), "graph", _graph_splits(graphs), graphs[0].num_features,
                int(ds.num_classes),
                f"{name}: {len(graphs)} graphs, one fixed 80/10/10 split",
                epochs=40 if quick else 100, batch_size=32)


def _sbm(kind: str, quick: bool) -> Task:
    from ..data import sbm_cluster, sbm_pattern
    n = 300 if quick else 1000
    graphs = (sbm_pattern if kind == "pattern" else sbm_cluster)(num_graphs=n, seed=0)
    num_classes = int(max(int(d.y.max()) for d in graphs)) + 1
    mean_nodes = sum(d.num_nodes for d in graphs) / len(graphs)
    return Task(kind, "node", _graph_splits(graphs), graphs[0].num_features, num_classes,
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
    return Task("sequence", "graph", _graph_splits(graphs), graphs[0].num_features, 8,
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
    return Task("digits", "graph", _graph_splits(graphs), graphs[0].num_features, num_classes,
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


# ---------------------------------------------------------------------------------- variants

def parse_variant(name: str) -> Tuple[str, bool, Optional[str]]:
    """``'sparse[bigbird]+lap'`` -> ``('sparse', True, 'bigbird')``: kind, LapPE, pattern."""
    base, lap = (name[:-4], True) if name.endswith("+lap") else (name, False)
    pattern = None
    if base.endswith("]") and "[" in base:
        base, pattern = base[:-1].split("[", 1)
    if base not in _LAYER or (pattern is not None and base != "sparse"):
        raise ValueError(f"variant must be sparse, dense or gps, optionally sparse[<pattern>] "
                         f"and +lap (e.g. 'sparse[bigbird]+lap'), got {name!r}")
    return base, lap, pattern


def _build_model(task: Task, variant: str, width: int, heads: int = 4, num_layers: int = 3,
                 pe_dim: int = 8, pe_channels: int = 8) -> torch.nn.Module:
    from ..nn import GraphClassifier, NodeClassifier
    kind, lap, _ = parse_variant(variant)
    common = dict(num_layers=num_layers, layer=_LAYER[kind], heads=heads, dropout=task.dropout,
                  attn_dropout=0.0, residual=True, act="gelu",
                  pe_dim=pe_dim if lap else 0, pe_channels=pe_channels if lap else 0)
    if task.level == "node":
        # project_input: sparse, dense and hybrid models share one layout (input map, layers
        # of width W, output map) and differ only in what each layer attends over.
        return NodeClassifier(task.num_features, width // heads, task.num_classes,
                              norm="layer", project_input=True, **common)
    return GraphClassifier(task.num_features, width, task.num_classes, norm="batch",
                           pool=task.pool, **common)


def width_for_budget(task: Task, variant: str, budget: int, heads: int = 4,
                     max_width: int = 1024) -> Tuple[int, int]:
    """The width (a multiple of ``heads``) whose parameter count is nearest to ``budget``, and
    that count."""
    best = None
    for width in range(heads, max_width + 1, heads):
        n = sum(p.numel() for p in _build_model(task, variant, width, heads).parameters())
        if best is None or abs(n - budget) < abs(best[1] - budget):
            best = (width, n)
        if n > budget:
            break
    return best


# ---------------------------------------------------------------------------------- training

def _loss(task: Task, out: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
    """Cross-entropy; for the balanced-accuracy tasks (PATTERN, CLUSTER) weighted per batch by
    ``(n - n_c) / n`` for class ``c`` of ``n_c`` of the ``n`` nodes, as Dwivedi et al. weight it,
    so that a model cannot score by predicting the majority class."""
    if task.metric != "balanced_accuracy" or y.numel() == 0:
        return F.cross_entropy(out, y, reduction=reduction)
    counts = torch.bincount(y, minlength=task.num_classes).to(out.dtype)   # [classes]
    weight = (y.numel() - counts) / y.numel() * (counts > 0)                # [classes]
    return F.cross_entropy(out, y, weight=weight, reduction=reduction)


def _score(metric: str, pred: Tensor, y: Tensor, num_classes: int) -> float:
    if y.numel() == 0:
        return float("nan")
    if metric == "accuracy":
        return (pred == y).float().mean().item()
    # Balanced accuracy: the mean recall over the classes present (Dwivedi et al.'s metric for
    # PATTERN and CLUSTER, where chance is 1 / classes whatever the class sizes).
    hits = torch.zeros(num_classes).index_add_(0, y, (pred == y).float())
    counts = torch.bincount(y, minlength=num_classes).float()
    present = counts > 0
    return (hits[present] / counts[present]).mean().item()


class _Split:
    """Batches of one split, with the edges of the variant's pattern and the node mask."""

    def __init__(self, task: Task, split: str, variant: str, seed: int, shuffle: bool):
        from torch_geometric.loader import DataLoader
        _, _, pattern = parse_variant(variant)
        graphs = task.splits[split]
        if pattern is not None:
            if pattern not in task.patterns:
                raise ValueError(f"task {task.name!r} has no pattern {pattern!r}; it has "
                                 f"{sorted(task.patterns) or 'none'}")
            cache: Dict[int, Tensor] = {}
            graphs = [g.clone() for g in graphs]
            for g in graphs:
                if g.num_nodes not in cache:
                    cache[g.num_nodes] = task.patterns[pattern](g.num_nodes)
                g.edge_index = cache[g.num_nodes]
        self.mask_name = f"{split}_mask" if task.masks else None
        self.seed = seed
        self.batches = (graphs if task.masks else
                        DataLoader(graphs, batch_size=task.batch_size, shuffle=shuffle))

    def __iter__(self):
        for b in self.batches:
            mask = None
            if self.mask_name is not None:
                mask = getattr(b, self.mask_name)
                if mask.dim() == 2:
                    mask = mask[:, self.seed % mask.size(1)]
                mask = mask.bool()
            yield b, mask


def _forward(model, b, device) -> Tensor:
    b = b.to(device)
    batch = getattr(b, "batch", None)
    pe = b.pe if getattr(model, "pe_encoder", None) is not None else None
    return model(b.x, b.edge_index, batch, pe=pe)


@torch.no_grad()
def _evaluate(model, splits: Sequence[_Split], task: Task, device
              ) -> List[Tuple[float, float]]:
    """``(score, mean loss)`` of each split. On a masked node task (one graph, split by masks)
    the graph goes through the model once for all splits."""
    model.eval()
    shared: Dict[int, Tensor] = {}
    scores = []
    for split in splits:
        preds, ys, loss, n = [], [], 0.0, 0
        for b, mask in split:
            y = b.y.view(-1).to(device)
            if mask is None:
                out = _forward(model, b, device)
            else:
                if id(b) not in shared:
                    shared[id(b)] = _forward(model, b, device)
                m = mask.to(device)
                out, y = shared[id(b)][m], y[m]
            loss += _loss(task, out, y, reduction="sum").item()
            n += y.numel()
            preds.append(out.argmax(-1).cpu())
            ys.append(y.cpu())
        scores.append((_score(task.metric, torch.cat(preds), torch.cat(ys), task.num_classes),
                       loss / max(n, 1)))
    return scores


def train_variant(task: Task, variant: str, width: int, lr: float, seed: int,
                  device: str = "cpu", progress: bool = False) -> Dict[str, Any]:
    """Train one (variant, width, learning rate, seed) and return its metrics.

    The test score is read at the epoch of the best validation score (ties go to the lower
    validation loss). ``time_per_epoch_s`` counts training steps only (median wall time of the
    epochs after the first); ``cpu_per_epoch_s`` is the same median in process CPU time, which
    other processes on the machine do not inflate (with one thread, as in ``compare``'s
    workers, it is the epoch's own work); ``load_avg`` is the largest 1-minute load average
    seen at an epoch's end. ``peak_memory_bytes`` is the peak memory that the first training
    epoch adds (see :class:`PeakMemory`).
    """
    start = time.perf_counter()
    seed_everything(seed)
    model = _build_model(task, variant, width).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=task.weight_decay)
    train = _Split(task, "train", variant, seed, shuffle=True)
    val = _Split(task, "val", variant, seed, shuffle=False)
    test = _Split(task, "test", variant, seed, shuffle=False)
    best = {"val": -math.inf, "val_loss": math.inf, "test": float("nan"), "epoch": -1}
    times, cpu, curve, peak, load = [], [], [], None, 0.0
    bar = tqdm(range(task.epochs), desc=f"{task.name} {variant} lr={lr:g} seed {seed}",
               leave=False, disable=not progress)
    for epoch in bar:
        model.train()
        mem = PeakMemory(device) if epoch == 0 else None
        t0, c0 = time.perf_counter(), time.process_time()
        if mem is not None:
            mem.__enter__()
        total = torch.zeros((), dtype=torch.float64, device=device)  # read once per epoch
        for b, mask in train:
            opt.zero_grad()
            out = _forward(model, b, device)
            y = b.y.view(-1).to(device)
            if mask is not None:
                out, y = out[mask.to(device)], y[mask.to(device)]
            loss = _loss(task, out, y)
            loss.backward()
            opt.step()
            total += loss.detach().double()
        total = total.item()  # also waits for the last step before the clock stops
        if mem is not None:
            mem.__exit__(None, None, None)
            peak = mem.bytes
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        load = max(load, os.getloadavg()[0])
        (val_score, val_loss), (test_score, _) = _evaluate(model, (val, test), task, device)
        curve.append({"epoch": epoch, "train_loss": total, "val": val_score, "test": test_score})
        if val_score > best["val"] or (val_score == best["val"] and val_loss < best["val_loss"]):
            best = {"val": val_score, "val_loss": val_loss, "test": test_score, "epoch": epoch}
        bar.set_postfix(val=f"{val_score:.3f}")
    bar.close()
    # The first epoch pays one-off costs (CSR views, caches, allocator warm-up): leave it out.
    steady, steady_cpu = times[1:] or times, cpu[1:] or cpu
    return {"task": task.name, "variant": variant, "width": width, "lr": lr, "seed": seed,
            "params": sum(p.numel() for p in model.parameters()), "metric": task.metric,
            "val": best["val"], "test": best["test"], "best_epoch": best["epoch"],
            "epochs": task.epochs, "time_per_epoch_s": float(np.median(steady)),
            "cpu_per_epoch_s": float(np.median(steady_cpu)), "load_avg": load,
            "peak_memory_bytes": peak, "device": str(device),
            "wall_s": time.perf_counter() - start, "curve": curve}


# ---------------------------------------------------------------------------------- driver

def run_identity(task: Task, quick: bool, variant: str, width: int, lr: float, seed: int,
                 device: str) -> Dict[str, Any]:
    """What defines one run of the comparison, and its hash (``run_hash``)."""
    from .. import data
    name = TASK_DATASETS.get(task.name)
    run = {"task": task.name, "size": "quick" if quick else "full", "epochs": task.epochs,
           "batch_size": task.batch_size, "dropout": task.dropout,
           "weight_decay": task.weight_decay, "metric": task.metric, "variant": variant,
           "width": width, "lr": float(lr), "seed": seed, "device": str(device),
           "dataset_sha256": data.dataset_checksum(name) if name else None,
           "gatlib": __version__}
    return {"run_hash": config_hash(run), "run": run}


def _run_cached(path: Path, ident: Dict[str, Any], fn: Callable[[], Dict[str, Any]],
                say: Callable[[str], None] = None) -> Dict[str, Any]:
    """The run stored at ``path`` when it records the hash of ``ident``; else ``fn()``, stored
    there with its identity (replacing a run of other settings, which ``say`` reports)."""
    if path.exists():
        try:
            rec = json.loads(path.read_text())
        except ValueError:
            rec = None
        if isinstance(rec, dict) and rec.get("run_hash") == ident["run_hash"]:
            return rec
        why = ("it is damaged" if rec is None else
               "it records no settings (an older gatlib)" if "run" not in rec else
               "its settings differ: " + "; ".join(config_diff(rec["run"], ident["run"])))
        (say or _say)(f"running {path} again: {why}")
    out = {**fn(), **ident}
    atomic_write_json(path, out)
    return out


def _say(msg: str) -> None:
    tqdm.write(f"gatlib compare: {msg}", file=sys.stderr)


# A worker process keeps the tasks it has built (a task's data are built once per worker).
_WORKER_TASKS: Dict[Tuple[str, bool, int], Task] = {}


def _worker_init() -> None:
    import threading
    # One thread per worker: workers, not threads, share the cores.
    torch.set_num_threads(1)
    # tqdm's default lock is a multiprocessing semaphore; a worker stopped by Ctrl-C would
    # leave it behind (and a warning about it). Workers draw no bars: a thread lock will do.
    tqdm.set_lock(threading.RLock())


def _noop() -> None:
    return None


def _start_pool(jobs: int):
    """``jobs`` worker processes, started now with Ctrl-C ignored (a worker inherits that from
    birth, even while it imports): Ctrl-C is the parent's to handle, and it stops the workers,
    so the user sees one line, not a traceback from each worker."""
    import multiprocessing as mp
    import signal
    import threading
    from concurrent.futures import ProcessPoolExecutor
    pool = ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"),
                               initializer=_worker_init)
    if threading.current_thread() is not threading.main_thread():
        return pool
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for _ in range(jobs):
            pool.submit(_noop)            # each submit starts a worker while none is idle
    finally:
        signal.signal(signal.SIGINT, old)
    return pool


def _stop_pool(pool) -> None:
    """Stop the workers at once (their unfinished runs are lost; finished ones are on disk)."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.join(5)
    # The pool sees its workers gone, fails what was pending and frees its queues.
    pool.shutdown(wait=True, cancel_futures=True)


def _worker_run(name: str, quick: bool, epochs: int, variant: str, width: int, lr: float,
                seed: int, device: str, path: str, ident: Dict[str, Any]) -> Dict[str, Any]:
    """One run in a worker process (tasks hold lambdas, so the worker builds its own)."""
    key = (name, quick, epochs)
    if key not in _WORKER_TASKS:
        task = build_task(name, quick=quick)
        task.epochs = epochs
        _WORKER_TASKS[key] = task
    task = _WORKER_TASKS[key]
    return _run_cached(Path(path), ident,
                       lambda: train_variant(task, variant, width, lr, seed, device))


def compare(tasks: Sequence[str] = DEFAULT_TASKS, variants: Optional[Sequence[str]] = None,
            seeds: Sequence[int] = (0, 1, 2), budget: Optional[int] = None,
            lrs: Sequence[float] = (1e-3, 3e-3), results: Path = Path("results/compare"),
            device: str = "cpu", quick: bool = False, progress: bool = True,
            epochs: Optional[int] = None, jobs: int = 1) -> List[Dict[str, Any]]:
    """Run the comparison and return one summary row per (task, variant).

    ``variants=None`` uses each task's own list (:data:`VARIANTS`, or
    :data:`SEQUENCE_VARIANTS` for the sequence task). Learning rates are tried on
    ``seeds[0]``; the best on validation is then run on every seed. ``jobs > 1`` trains that
    many runs at once in worker processes of one thread each (CPU only); results are the same
    as with ``jobs=1``, run by run.
    """
    results = Path(results)
    if not seeds:
        raise ValueError("seeds must name at least one seed, e.g. 0-2")
    if not lrs:
        raise ValueError("lrs must hold at least one learning rate, e.g. 1e-3,3e-3")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an int >= 1 (parallel runs), got {jobs!r}")
    if jobs > 1 and str(device).startswith("cuda"):
        raise ValueError("jobs > 1 runs on the CPU only; use jobs=1 with device='cuda'")
    for name in tasks:
        if name not in TASKS:
            raise ValueError(f"unknown task {name!r}; choose from {', '.join(TASKS)}")
    missing = missing_task_data(tasks)
    if missing:
        raise DatasetNotFound(
            "dataset(s) not available for " + ", ".join(
                f"{t} ({m['dataset']}, {m['state']})" for t, m in missing.items())
            + f"; nothing was trained. {next(iter(missing.values()))['message']}")
    pool = None
    with FolderLock(results, what="comparison"):
        try:
            pool = _start_pool(jobs) if jobs > 1 else None
            rows = []
            for name in tasks:
                rows += _compare_task(name, variants, seeds, budget, lrs, results, device,
                                      quick, progress, epochs, pool)
            return rows
        except KeyboardInterrupt:
            if pool is not None:                 # stop the workers now, not after their run
                _stop_pool(pool)
                pool = None
            raise
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)


def _compare_task(name, variants, seeds, budget, lrs, results, device, quick, progress, epochs,
                  pool) -> List[Dict[str, Any]]:
    task = build_task(name, quick=quick)          # its data were checked by compare()
    if epochs is not None:
        task.epochs = int(epochs)
    names = list(variants) if variants is not None else list(task.variants)
    for v in names:
        parse_variant(v)
    sizes = {v: width_for_budget(task, v, budget or task.budget) for v in names}

    def path(v, lr, seed) -> Path:
        # The folder names what changes a run, so a cached run is only reused for the same
        # data size, width and epochs.
        return (results / task.name / v /
                f"{'quick' if quick else 'full'}-width={sizes[v][0]}-epochs={task.epochs}" /
                f"lr={lr:g}" / f"seed={seed}.json")

    def run_all(todo: List[Tuple[str, float, int]], desc: str) -> Dict[Tuple, Dict[str, Any]]:
        bar = tqdm(total=len(todo), desc=desc, disable=not progress)
        out = {}
        ident = {(v, lr, seed): run_identity(task, quick, v, sizes[v][0], lr, seed, device)
                 for v, lr, seed in todo}
        if pool is None:
            for v, lr, seed in todo:
                out[(v, lr, seed)] = _run_cached(
                    path(v, lr, seed), ident[(v, lr, seed)],
                    lambda: train_variant(task, v, sizes[v][0], lr, seed, device, progress))
                bar.update()
                bar.set_postfix(last=f"{v} {out[(v, lr, seed)]['test'] * 100:.1f}")
        else:
            futures = {pool.submit(_worker_run, name, quick, task.epochs, v, sizes[v][0], lr,
                                   seed, device, str(path(v, lr, seed)), ident[(v, lr, seed)]):
                       (v, lr, seed) for v, lr, seed in todo}
            from concurrent.futures import as_completed
            for fut in as_completed(futures):
                out[futures[fut]] = fut.result()
                bar.update()
        bar.close()
        return out

    trials = run_all([(v, lr, seeds[0]) for v in names for lr in lrs],
                     f"{name}: learning rates")
    chosen = {v: max(lrs, key=lambda r: (trials[(v, r, seeds[0])]["val"], -r)) for v in names}
    later = run_all([(v, chosen[v], s) for v in names for s in seeds[1:]], f"{name}: seeds")
    rows = []
    for v in names:
        lr = chosen[v]
        runs = [trials[(v, lr, seeds[0])]] + [later[(v, lr, s)] for s in seeds[1:]]
        tests = np.array([r["test"] for r in runs], dtype=float) * 100
        peaks = [r["peak_memory_bytes"] for r in runs if r["peak_memory_bytes"] is not None]
        rows.append({
            "task": task.name, "description": task.description, "variant": v,
            "metric": task.metric, "params": sizes[v][1], "budget": budget or task.budget,
            "width": sizes[v][0], "lr": lr,
            "test_mean": float(tests.mean()),
            "test_std": float(tests.std(ddof=1)) if tests.size > 1 else 0.0,
            "seeds": len(runs),
            "val_mean": float(np.mean([r["val"] for r in runs]) * 100),
            "time_per_epoch_s": float(np.median([r["time_per_epoch_s"] for r in runs])),
            # Runs cached before CPU time and load were recorded lack them.
            "cpu_per_epoch_s": float(np.median([r.get("cpu_per_epoch_s", math.nan)
                                                for r in runs])),
            "load_avg": max((r.get("load_avg", math.nan) for r in runs), default=math.nan),
            "peak_memory_bytes": float(np.median(peaks)) if peaks else None,
            "epochs": task.epochs, "device": device})
    return rows


# ---------------------------------------------------------------------------------- report

def _mib(b: Optional[float]) -> str:
    return "n/a" if b is None else f"{b / 2**20:,.1f}"


def compare_table(rows: List[Dict[str, Any]], settings: str = "",
                  skipped: Optional[Dict[str, str]] = None) -> str:
    """The appendix-style Markdown report: accuracy table (best per task in bold, then a row per
    skipped task with the reason), cost table, and the settings that produced them."""
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    by = {(r["task"], r["variant"]): r for r in rows}
    out = ["**Test score (%) at the best validation epoch, mean ± std over seeds.**", "",
           "| task | metric | " + " | ".join(variants) + " |",
           "|---|---|" + "---:|" * len(variants)]
    for t in tasks:
        cells = [by.get((t, v)) for v in variants]
        best = max((c["test_mean"] for c in cells if c), default=None)
        txt = []
        for c in cells:
            if c is None:
                txt.append("")
                continue
            s = f"{c['test_mean']:.1f} ± {c['test_std']:.1f}"
            txt.append(f"**{s}**" if c["test_mean"] == best else s)
        metric = next(c["metric"] for c in cells if c).replace("_", " ")
        out.append(f"| {t} | {metric} | " + " | ".join(txt) + " |")
    for t, why in (skipped or {}).items():
        out.append(f"| {t} | skipped: {why} |" + " |" * len(variants))
    out += ["", "**Cost: training time per epoch (ms, wall and process CPU time) / peak memory "
            "of a training epoch (MiB); parameters; chosen learning rate; the largest 1-minute "
            "load average seen during the runs.**", "",
            "| task | variant | params | width | lr | ms / epoch | CPU ms / epoch | peak MiB "
            "| load avg |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for t in tasks:
        for v in variants:
            c = by.get((t, v))
            if c is None:
                continue
            cpu_ms, load = c.get("cpu_per_epoch_s", math.nan) * 1000, c.get("load_avg", math.nan)
            out.append(f"| {t} | {v} | {c['params']:,} | {c['width']} | {c['lr']:g} | "
                       f"{c['time_per_epoch_s'] * 1000:,.1f} | {cpu_ms:,.1f} | "
                       f"{_mib(c['peak_memory_bytes'])} | {load:.1f} |")
    out += ["", "Tasks:", ""]
    for t in tasks:
        desc = next(r["description"] for r in rows if r["task"] == t)
        out.append(f"- **{t}**: {desc}.")
    for t, why in (skipped or {}).items():
        out.append(f"- **{t}**: not run, {why}.")
    if settings:
        out += ["", settings]
    return "\n".join(out) + "\n"


def plot_compare(rows: List[Dict[str, Any]], out_dir: Path) -> List[Path]:
    """Two figures: test score per task and variant (bars with std), and score against
    training time per epoch and peak memory (one panel per task)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    colors = {v: plt.cm.tab10(i % 10) for i, v in enumerate(variants)}
    by = {(r["task"], r["variant"]): r for r in rows}
    paths = []

    fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks) + 1, 3.6), squeeze=False)
    for ax, t in zip(axes[0], tasks):
        vs = [v for v in variants if (t, v) in by]
        means = [by[(t, v)]["test_mean"] for v in vs]
        stds = [by[(t, v)]["test_std"] for v in vs]
        ax.bar(range(len(vs)), means, yerr=stds, color=[colors[v] for v in vs], capsize=3)
        ax.set_xticks(range(len(vs)), vs, rotation=50, ha="right", fontsize=8)
        lo = max(0.0, min(m - s for m, s in zip(means, stds)) - 10)
        ax.set_ylim(lo, min(100.0, max(m + s for m, s in zip(means, stds)) + 5))
        ax.set_title(t)
        ax.set_ylabel(f"test {by[(t, vs[0])]['metric'].replace('_', ' ')} (%)")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Dense vs sparse attention: test score (mean ± std over seeds)")
    fig.tight_layout()
    paths.append(_save(fig, out_dir / "compare_accuracy.png"))
    plt.close(fig)

    fig, axes = plt.subplots(2, len(tasks), figsize=(3.2 * len(tasks) + 1, 6.2), squeeze=False)
    for j, t in enumerate(tasks):
        for i, (key, label, scale) in enumerate((("time_per_epoch_s", "ms / epoch", 1000),
                                                 ("peak_memory_bytes", "peak MiB", 2**-20))):
            ax = axes[i][j]
            for v in variants:
                c = by.get((t, v))
                if c is None or c[key] is None:
                    continue
                ax.errorbar(c[key] * scale, c["test_mean"], yerr=c["test_std"], fmt="o",
                            color=colors[v], label=v, capsize=2)
            xs = [by[(t, v)][key] * scale for v in variants
                  if (t, v) in by and by[(t, v)][key] is not None]
            if xs and min(xs) > 0 and max(xs) / min(xs) >= 10:
                # Costs spanning decades: a log axis, plain numbers, minor ticks unlabelled.
                ax.set_xscale("log")
                ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.3g}"))
                ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel(label)
            ax.set_ylabel("test score (%)")
            ax.set_title(t)
            ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes.flat:
        h, lab = ax.get_legend_handles_labels()
        for hh, ll in zip(h, lab):
            if ll not in labels:
                handles.append(hh)
                labels.append(ll)
    # As many legend columns as fit the figure's width; rows of legend below the panels.
    ncol = max(1, min(len(labels), 2 * len(tasks)))
    rows_needed = -(-len(labels) // ncol)
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=8)
    fig.suptitle("Score against cost (up and left is better)")
    fig.tight_layout(rect=(0, 0.035 * rows_needed + 0.02, 1, 1))
    paths.append(_save(fig, out_dir / "compare_cost.png"))
    plt.close(fig)
    return paths


def _save(fig, path: Path) -> Path:
    return save_figure(fig, path, dpi=120)


def write_report(rows: List[Dict[str, Any]], out_dir: Path, settings: str,
                 skipped: Optional[Dict[str, str]] = None) -> str:
    """Write ``compare.md``, ``compare.json`` and the plots under ``out_dir``; return the
    Markdown. ``skipped`` (``{task: reason}``) adds a row per task that was not run."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = compare_table(rows, settings, skipped)
    atomic_write_json(out_dir / "compare.json", rows)
    atomic_write_text(out_dir / "compare.md", text)
    plot_compare(rows, out_dir)
    return text
