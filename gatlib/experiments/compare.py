"""Dense versus sparse attention, compared fairly: ``gatlib compare``.

For each task the same model is trained with

- ``sparse``: dot-product attention over each node's neighbours (:class:`GraphTransformerConv`);
- ``dense``: the same dot-product attention over all nodes of the graph
  (:class:`DenseGraphAttention`), which sees no edge at all;
- ``gps``: the GPS hybrid (a local GAT branch plus dense global attention per layer);
- ``linear``: kernelised linear attention over all nodes of the graph
  (:class:`LinearGraphAttention`), global like ``dense`` at a cost linear in the nodes;
- ``sparse[exphormer]``: Exphormer-style sparse attention over the graph plus a random
  4-regular expander plus a virtual node (:func:`gatlib.graph.exphormer`), each edge's origin
  an edge feature (the score is the graph transformer's, not Exphormer's edge-gated product),

each with and without Laplacian positional encodings (``+lap``). On the sequence task the sparse
model also runs over the attention patterns of efficient transformers: ``sparse[window]``,
``sparse[dilated]``, ``sparse[global]`` and ``sparse[bigbird]``.

Sizes (``size``): ``"small"`` (the default of ``gatlib compare``), ``"full"``, and on PATTERN
and CLUSTER ``"medium"`` and ``"paper"``, the paper's generator parameters and model (see
:data:`PRESETS`).

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
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from .. import __version__
from ..data import DatasetNotFound
from ..data.splits import split_mask
from ..utils import FolderLock, atomic_write_json
from .config import config_diff, config_hash
from .loop import EarlyStopping, EpochClock, fit, seed_everything
from .metrics import accuracy, balanced_accuracy, balanced_cross_entropy
from .models import build_model
from .pool import start_pool, stop_pool
from .protocols import BatchProtocol, NodeProtocol
from .report import compare_table, plot_compare, write_report  # noqa: F401 (re-exported)
from .tasks import (DEFAULT_TASKS, PRESETS, SEQUENCE_VARIANTS, SIZES, TASK_DATASETS, TASKS,
                    VARIANTS, Preset, Task, build_task, missing_task_data)

__all__ = ["Task", "TASKS", "DEFAULT_TASKS", "TASK_DATASETS", "VARIANTS", "SEQUENCE_VARIANTS",
           "PRESETS", "Preset", "SIZES", "build_task", "missing_task_data", "parse_variant", "width_for_budget",
           "train_variant", "make_protocol", "compare", "compare_table", "write_report"]

_LAYER = {"sparse": "transformer", "dense": "dense", "gps": "gps", "linear": "linear"}
# Patterns that transform each graph (its edges, and nodes they add) rather than replace it.
GRAPH_PATTERNS = ("exphormer",)
_EXPHORMER = {"degree": 4, "num_virtual": 1}


# ---------------------------------------------------------------------------------- variants

def parse_variant(name: str) -> Tuple[str, bool, Optional[str]]:
    """``'sparse[bigbird]+lap'`` -> ``('sparse', True, 'bigbird')``: kind, LapPE, pattern."""
    base, lap = (name[:-4], True) if name.endswith("+lap") else (name, False)
    pattern = None
    if base.endswith("]") and "[" in base:
        base, pattern = base[:-1].split("[", 1)
    if base not in _LAYER or (pattern is not None and base != "sparse"):
        raise ValueError(f"variant must be sparse, dense, gps or linear, optionally "
                         f"sparse[<pattern>] and +lap (e.g. 'sparse[exphormer]+lap'), got "
                         f"{name!r}")
    return base, lap, pattern


def _build_model(task: Task, variant: str, width: int) -> torch.nn.Module:
    kind, lap, pattern = parse_variant(variant)
    # project_input (node models): sparse, dense and hybrid models share one layout (input
    # map, layers of width W, output map) and differ only in what each layer attends over.
    node, heads = task.level == "node", task.heads
    exphormer = pattern == "exphormer"
    norm = task.norm or ("layer" if node else "batch")
    return build_model(task.level, task.num_features + exphormer,
                       width // heads if node else width, task.num_classes,
                       layer=_LAYER[kind], num_layers=task.num_layers, heads=heads,
                       dropout=task.dropout, attn_dropout=0.0, residual=True, norm=norm,
                       act="gelu", pool=task.pool, pe="lap" if lap else None,
                       pe_dim=task.pe_dim, pe_channels=task.pe_channels, project_input=node,
                       edge_dim=3 if exphormer else None)


def width_for_budget(task: Task, variant: str, budget: int,
                     max_width: int = 1024) -> Tuple[int, int]:
    """The width (a multiple of the task's heads) whose parameter count is nearest to
    ``budget``, and that count."""
    best, heads = None, task.heads
    for width in range(heads, max_width + 1, heads):
        n = sum(p.numel() for p in _build_model(task, variant, width).parameters())
        if best is None or abs(n - budget) < abs(best[1] - budget):
            best = (width, n)
        if n > budget:
            break
    return best


# ---------------------------------------------------------------------------------- training

def _loss(task: Task, out: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
    """Cross-entropy; for the balanced-accuracy tasks (PATTERN, CLUSTER) class-weighted per
    batch (:func:`~gatlib.experiments.metrics.balanced_cross_entropy`)."""
    if task.metric != "balanced_accuracy":
        return F.cross_entropy(out, y, reduction=reduction)
    return balanced_cross_entropy(out, y, task.num_classes, reduction)


def _score(metric: str, pred: Tensor, y: Tensor, num_classes: int) -> float:
    """Accuracy, or balanced accuracy (the mean recall over the classes present)."""
    if metric == "accuracy":
        return accuracy(pred, y)
    return balanced_accuracy(pred, y, num_classes)


def _graphs(task: Task, split: str, pattern: Optional[str]) -> List[Any]:
    """A split's graphs, with the edges of the variant's attention pattern when it has one."""
    graphs = task.splits[split]
    if pattern is None:
        return graphs
    if pattern in GRAPH_PATTERNS:
        if task.masks:
            raise ValueError(f"pattern {pattern!r} adds nodes to each graph, which the node "
                             f"masks of task {task.name!r} do not cover; use it on a task of "
                             f"many graphs (pattern, cluster, sequence, digits, mutag, ...)")
        offset = {"train": 0, "val": 1, "test": 2}[split] << 32
        return [_exphormer_graph(g, offset + i, task.level == "node")
                for i, g in enumerate(graphs)]
    if pattern not in task.patterns:
        raise ValueError(f"task {task.name!r} has no pattern {pattern!r}; it has "
                         f"{sorted(task.patterns) or 'none'}")
    cache: Dict[int, Tensor] = {}
    graphs = [g.clone() for g in graphs]
    for g in graphs:
        if g.num_nodes not in cache:
            cache[g.num_nodes] = task.patterns[pattern](g.num_nodes)
        g.edge_index = cache[g.num_nodes]
    return graphs


def _exphormer_graph(g: Any, seed: int, node_level: bool) -> Any:
    """Graph ``g`` as Exphormer attends over it (:func:`gatlib.graph.exphormer`): its edges, an
    expander drawn with ``seed`` (the data's, fixed per graph) and virtual nodes appended as
    the last nodes. The virtual nodes get a feature of their own (one extra column, 1 on them
    and 0 on real nodes), zero positional encodings and, on node tasks, ``target_mask``
    ``False`` (predicted, never scored)."""
    from torch_geometric.data import Data

    from ..graph import exphormer
    n, k = g.num_nodes, _EXPHORMER["num_virtual"]
    edge_index, edge_type = exphormer(g.edge_index, n, seed=seed, **_EXPHORMER)
    x = g.x.float()
    x = torch.cat([torch.cat([x, x.new_zeros(n, 1)], 1),
                   torch.cat([x.new_zeros(k, x.size(1)), x.new_ones(k, 1)], 1)])  # [N+k, F+1]
    out = Data(x=x, edge_index=edge_index, edge_attr=edge_type, num_nodes=n + k)
    if getattr(g, "pe", None) is not None:
        out.pe = torch.cat([g.pe, g.pe.new_zeros(k, g.pe.size(1))])               # [N+k, K]
    if node_level:
        out.y = torch.cat([g.y.view(-1), g.y.new_zeros(k)])                      # [N+k]
        out.target_mask = torch.arange(n + k) < n                                # [N+k]
    else:
        out.y = g.y
    return out


def make_protocol(task: Task, variant: str, seed: int, device: Any = "cpu"):
    """How a variant meets a task's data: a :class:`NodeProtocol` for a single graph split by
    masks (split ``seed % S`` of ``S`` stored ones), else a :class:`BatchProtocol` over the
    splits' graphs (the training set shuffled)."""
    score = lambda out, y: _score(task.metric, out.argmax(-1).cpu(), y.cpu(),  # noqa: E731
                                  task.num_classes)
    loss = lambda out, y, reduction="mean": _loss(task, out, y, reduction)     # noqa: E731
    _, _, pattern = parse_variant(variant)
    if task.masks:
        data = _graphs(task, "train", pattern)[0].to(device)
        masks = {s: split_mask(getattr(data, f"{s}_mask"), seed) for s in ("train", "val", "test")}
        return NodeProtocol(data.x, data.edge_index, data.y.view(-1), masks,
                            getattr(data, "pe", None), loss, score,
                            eval_loss=lambda out, y: loss(out, y, "sum").item() / max(y.numel(), 1))
    from torch_geometric.loader import DataLoader
    loaders = {s: DataLoader(_graphs(task, s, pattern), batch_size=task.batch_size,
                             shuffle=(s == "train")) for s in ("train", "val", "test")}
    return BatchProtocol(loaders, device, loss, score, train_loss="sum")


def train_variant(task: Task, variant: str, width: int, lr: float, seed: int,
                  device: str = "cpu", progress: bool = False) -> Dict[str, Any]:
    """Train one (variant, width, learning rate, seed) and return its metrics.

    All epochs run, or with the task's ``patience`` until that many epochs pass without a
    better validation score (early stopping); the test score is read at the epoch of the best
    validation score (ties go to the lower validation loss). ``time_per_epoch_s`` counts
    training steps only (median wall time of the epochs after the first); ``cpu_per_epoch_s``
    is the same median in process CPU time, which other processes on the machine do not
    inflate (with one thread, as in ``compare``'s workers, it is the epoch's own work);
    ``load_avg`` is the largest 1-minute load average seen at an epoch's end.
    ``peak_memory_bytes`` is the peak memory that the first training epoch adds (see
    :class:`PeakMemory`).
    """
    start = time.perf_counter()
    seed_everything(seed)
    model = _build_model(task, variant, width).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=task.weight_decay)
    protocol = make_protocol(task, variant, seed, device)
    stopper = EarlyStopping("best_val", patience=task.patience)
    clock, curve = EpochClock(device, peak=True), []
    bar = tqdm(range(task.epochs), desc=f"{task.name} {variant} lr={lr:g} seed {seed}",
               leave=False, disable=not progress)

    def log(epoch: int, train_loss: float, s: Dict[str, Any]) -> None:
        curve.append({"epoch": epoch, "train_loss": train_loss, "val": s["val"][0],
                      "test": s["test"][0]})
        bar.set_postfix(val=f"{s['val'][0]:.3f}")
    fit(model, opt, protocol, stopper, bar, clock=clock, splits=("val", "test"), log=log)
    bar.close()
    best = stopper.best
    # The first epoch pays one-off costs (CSR views, caches, allocator warm-up): leave it out.
    steady, steady_cpu = clock.times[1:] or clock.times, clock.cpu[1:] or clock.cpu
    return {"task": task.name, "variant": variant, "width": width, "lr": lr, "seed": seed,
            "params": sum(p.numel() for p in model.parameters()), "metric": task.metric,
            "val": best["val"], "test": best["test"], "best_epoch": best["epoch"],
            "epochs": task.epochs, "epochs_run": len(clock.times),
            "time_per_epoch_s": float(np.median(steady)),
            "cpu_per_epoch_s": float(np.median(steady_cpu)), "load_avg": clock.load,
            "peak_memory_bytes": clock.peak_bytes, "device": str(device),
            "wall_s": time.perf_counter() - start, "curve": curve}


# ---------------------------------------------------------------------------------- driver

def run_identity(task: Task, size: str, variant: str, width: int, lr: float, seed: int,
                 device: str) -> Dict[str, Any]:
    """What defines one run of the comparison, and its hash (``run_hash``)."""
    from .. import data
    name = TASK_DATASETS.get(task.name)
    run = {"task": task.name, "size": "quick" if size == "small" else size,
           "epochs": task.epochs,
           "batch_size": task.batch_size, "dropout": task.dropout,
           "weight_decay": task.weight_decay, "metric": task.metric, "variant": variant,
           "width": width, "lr": float(lr), "seed": seed, "device": str(device),
           **({"patience": task.patience, "layers": task.num_layers, "heads": task.heads,
               "pe_dim": task.pe_dim, "pe_channels": task.pe_channels, "norm": task.norm}
              if size in ("medium", "paper") else {}),
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
_WORKER_TASKS: Dict[Tuple[str, str, int], Task] = {}


def _worker_run(name: str, size: str, epochs: int, variant: str, width: int, lr: float,
                seed: int, device: str, path: str, ident: Dict[str, Any]) -> Dict[str, Any]:
    """One run in a worker process (tasks hold lambdas, so the worker builds its own)."""
    key = (name, size, epochs)
    if key not in _WORKER_TASKS:
        task = build_task(name, size=size)
        task.epochs = epochs
        _WORKER_TASKS[key] = task
    task = _WORKER_TASKS[key]
    return _run_cached(Path(path), ident,
                       lambda: train_variant(task, variant, width, lr, seed, device))


def compare(tasks: Sequence[str] = DEFAULT_TASKS, variants: Optional[Sequence[str]] = None,
            seeds: Sequence[int] = (0, 1, 2), budget: Optional[int] = None,
            lrs: Sequence[float] = (1e-3, 3e-3), results: Path = Path("results/compare"),
            device: str = "cpu", quick: Optional[bool] = None, progress: bool = True,
            epochs: Optional[int] = None, jobs: int = 1, size: str = "full"
            ) -> List[Dict[str, Any]]:
    """Run the comparison and return one summary row per (task, variant).

    ``variants=None`` uses each task's own list (:data:`VARIANTS`, or
    :data:`SEQUENCE_VARIANTS` for the sequence task). Learning rates are tried on
    ``seeds[0]``; the best on validation is then run on every seed. ``jobs > 1`` trains that
    many runs at once in worker processes of one thread each (CPU only); results are the same
    as with ``jobs=1``, run by run. ``size`` is one of :data:`SIZES` (``quick=True`` is the
    older spelling of ``size="small"``, ``quick=False`` of ``"full"``).
    """
    results = Path(results)
    if quick is not None:
        size = "small" if quick else "full"
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
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
            pool = start_pool(jobs) if jobs > 1 else None
            rows = []
            for name in tasks:
                rows += _compare_task(name, variants, seeds, budget, lrs, results, device,
                                      size, progress, epochs, pool)
            return rows
        except KeyboardInterrupt:
            if pool is not None:                 # stop the workers now, not after their run
                stop_pool(pool)
                pool = None
            raise
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)


def _compare_task(name, variants, seeds, budget, lrs, results, device, size, progress, epochs,
                  pool) -> List[Dict[str, Any]]:
    task = build_task(name, size=size)            # its data were checked by compare()
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
                f"{'quick' if size == 'small' else size}-width={sizes[v][0]}-"
                f"epochs={task.epochs}" /
                f"lr={lr:g}" / f"seed={seed}.json")

    def run_all(todo: List[Tuple[str, float, int]], desc: str) -> Dict[Tuple, Dict[str, Any]]:
        bar = tqdm(total=len(todo), desc=desc, disable=not progress)
        out = {}
        ident = {(v, lr, seed): run_identity(task, size, v, sizes[v][0], lr, seed, device)
                 for v, lr, seed in todo}
        if pool is None:
            for v, lr, seed in todo:
                out[(v, lr, seed)] = _run_cached(
                    path(v, lr, seed), ident[(v, lr, seed)],
                    lambda: train_variant(task, v, sizes[v][0], lr, seed, device, progress))
                bar.update()
                bar.set_postfix(last=f"{v} {out[(v, lr, seed)]['test'] * 100:.1f}")
        else:
            futures = {pool.submit(_worker_run, name, size, task.epochs, v, sizes[v][0], lr,
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
            "epochs": task.epochs, "device": device, "layers": task.num_layers,
            "heads": task.heads, "norm": task.norm, "patience": task.patience})
    return rows


