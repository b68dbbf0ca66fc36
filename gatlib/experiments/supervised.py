"""``gatlib train``'s training of one (config, seed) in its run folder, by the config's
``protocol``:

- ``planetoid`` and ``splits`` (node tasks): one graph split by node masks (the public split,
  or split ``seed % S`` of ``S`` stored ones), trained full-batch with the GAT paper's early
  stopping (``train.stop_on``), checkpointed every ``train.checkpoint_every`` epochs and
  resumed exactly (the random state is in the checkpoint);
- ``cv10`` (graph tasks): stratified 10-fold cross-validation (a stratified tenth of the
  training folds for early stopping), each finished fold recorded, an unfinished one re-run;
  under ``torchrun`` each rank trains on its share of a fold's training graphs (DDP) and rank
  0 evaluates and records.

Both go through the one loop (:func:`gatlib.experiments.loop.fit`) with a protocol
(:mod:`gatlib.experiments.protocols`) and the one model builder
(:func:`gatlib.experiments.models.model_from_config`). The run folder itself (identity,
locks, ``metrics.json``) is :mod:`gatlib.experiments.runs`'s.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data.splits import split_mask, stratified_folds
from ..utils import atomic_write_json, atomic_write_text, read_jsonl
from .checkpoint import load_latest, save_checkpoint
from .loop import EarlyStopping, EpochClock, TrainingInterrupted, fit, seed_everything
from .metrics import fraction_correct, logits_metric
from .models import model_from_config
from . import distributed, hetero
from .protocols import BatchProtocol, NeighborProtocol, NodeProtocol

__all__ = ["train_node", "train_graph", "PROTOCOLS"]

# Density at or below which sparse_features="auto" stores node features as CSR.
SPARSE_DENSITY = 0.1
MAX_DEGREE_FEATURE = 64


def _say(msg: str) -> None:
    tqdm.write(f"gatlib train: {msg}", file=sys.stderr)


def _metric(name: str, logits: torch.Tensor, y: torch.Tensor) -> float:
    return logits_metric(name, logits, y)


def _append_log(log_path: Path, row: Dict[str, Any]) -> None:
    """One line of the per-epoch log (JSON Lines)."""
    with open(log_path, "a") as f:
        f.write(json.dumps(row) + "\n")


def _truncate_log(log_path: Path, upto: int, key: str = "epoch") -> None:
    """Keep the log lines whose ``key`` (the epoch, or a graph run's fold) is below ``upto``:
    those a checkpoint or a finished fold covers (the rest are re-run)."""
    if not log_path.exists():
        return
    rows = [r for r in read_jsonl(log_path) if r[key] < upto]
    atomic_write_text(log_path, "".join(json.dumps(r) + "\n" for r in rows))


# ------------------------------------------------------------------------------ node tasks

def synthetic_graph(cfg: Dict[str, Any]):
    """The graph of a config with ``dataset: csbm``: :func:`gatlib.data.csbm` of its
    ``synthetic`` section (the same graph for every run seed; ``synthetic.seed`` draws it)."""
    from ..data import csbm
    s = cfg["synthetic"]
    return csbm(s["num_nodes"], s["num_classes"], s["avg_degree"], s["homophily"],
                feature_dim=s["feature_dim"], mu=s["mu"], split=tuple(s["split"]),
                seed=s["seed"])


def synthetic_hetero_graph(cfg: Dict[str, Any]):
    """The graph of a config with ``dataset: mag_synthetic``: :func:`.hetero.synthetic_mag` of
    its ``synthetic`` section (``num_nodes`` papers)."""
    s = cfg["synthetic"]
    return hetero.synthetic_mag(s["num_nodes"], s["num_classes"], s["avg_degree"],
                                s["homophily"], feature_dim=s["feature_dim"], mu=s["mu"],
                                split=tuple(s["split"]), seed=s["seed"])


def _is_hetero(data) -> bool:
    from torch_geometric.data import HeteroData
    return isinstance(data, HeteroData)


def _node_data(cfg: Dict[str, Any], seed: int):
    from .. import data as gdata
    from ..pe import laplacian_pe, random_walk_pe
    if cfg["dataset"] == "csbm":
        data = synthetic_graph(cfg)
    elif cfg["dataset"] == "mag_synthetic":
        data = synthetic_hetero_graph(cfg)
    else:
        data = gdata.load_dataset(cfg["dataset"])[0]
    if cfg["normalize_features"]:
        from torch_geometric.transforms import NormalizeFeatures
        data = NormalizeFeatures()(data)
    labelled = data[hetero.TARGET] if _is_hetero(data) else data
    masks = [split_mask(getattr(labelled, f"{s}_mask"), seed) for s in ("train", "val", "test")]
    pe = None
    # gatlib's own readings (per-component eigenvectors, walks on the simple graph), which the
    # recorded results used; PyG's are the functions' defaults.
    if cfg["pe"]["type"] == "lap":
        pe = laplacian_pe(data.edge_index, data.num_nodes, cfg["pe"]["dim"],
                          per_component=True)
    elif cfg["pe"]["type"] == "rw":
        pe = random_walk_pe(data.edge_index, data.num_nodes, cfg["pe"]["dim"], simple=True)
    elif cfg["pe"]["type"] is not None:
        raise ValueError(f"pe.type must be lap, rw or null, got {cfg['pe']['type']!r}")
    return data, masks, pe


def _use_sparse_features(cfg: Dict[str, Any], x: torch.Tensor, pe) -> bool:
    """Whether a node run hands the model CSR features (config key ``sparse_features``)."""
    setting = cfg.get("sparse_features", "auto")
    if setting not in (True, False, "auto"):       # validate_config has checked both already
        raise ValueError(f"sparse_features must be true, false or auto, got {setting!r}")
    if setting is True and pe is not None:
        raise ValueError("sparse_features=true cannot be combined with positional encodings "
                         "(pe.type); set sparse_features=auto or false")
    if setting == "auto":
        if pe is not None or x.numel() == 0:
            return False
        return bool((x != 0).sum().item() <= SPARSE_DENSITY * x.numel())
    return bool(setting)


def _build_node_model(cfg: Dict[str, Any], in_channels: int, num_classes: int):
    return model_from_config(cfg, in_channels, num_classes)


def train_node(cfg: Dict[str, Any], seed: int, out: Path, progress: bool,
               ready: Callable[[], None]) -> Dict[str, Any]:
    """Train a node task (protocol ``planetoid`` or ``splits``) in run folder ``out``,
    resuming from its checkpoint; ``ready()`` is called once the data and model are good.

    Under ``torchrun`` (a process group of ``world_size > 1``) only ``loader.kind: neighbor``
    trains (each rank its share of the training nodes); rank 0 alone reads and writes the run
    folder, and the others take its checkpoint and its scores."""
    world_size, rank = distributed.world()
    sampled = cfg["loader"]["kind"] == "neighbor"
    distributed.check_config(cfg, world_size)
    main = rank == 0
    device = torch.device(cfg["device"])
    data, masks, pe = _node_data(cfg, seed)
    het = _is_hetero(data)
    if het:
        # Dicts per node and edge type; each edge type's CSR graph built once for the run.
        from ..graph import to_csr
        num_classes = int(data[hetero.TARGET].y.max()) + 1
        x = {k: v.to(device) for k, v in data.x_dict.items()}
        ei = {et: to_csr(v.to(device), data[et[0]].num_nodes, data[et[2]].num_nodes)
              for et, v in data.edge_index_dict.items()}
        y = data[hetero.TARGET].y.to(device)
    else:
        num_classes = int(data.y.max()) + 1
        x, ei, y = data.x.to(device), data.edge_index.to(device), data.y.to(device)
        if cfg["model"]["layer"] != "dense":
            # One explicit CSR graph for the whole run: the model's per-forward conversion of
            # a raw edge_index (two sorts) is paid once here, its self-loop graph kept on it.
            from ..graph import to_csr
            ei = to_csr(ei, data.num_nodes)
    pe = pe.to(device) if pe is not None else None
    # Sampled batches slice rows of dense features (the loader's node attributes).
    sparse = False if sampled or het else _use_sparse_features(cfg, x, pe)
    if sparse:
        x = x.to_sparse_csr()
    metric, tr = cfg["metric"], cfg["train"]
    dev_masks = dict(zip(("train", "val", "test"), (m.to(device) for m in masks)))
    score = lambda logits, t: _metric(metric, logits, t)                  # noqa: E731
    eval_loss = lambda logits, t: F.cross_entropy(logits, t).item()       # noqa: E731
    if sampled:
        from torch_geometric.data import Data
        ld = cfg["loader"]
        sample_data = Data(x=data.x, y=data.y, edge_index=data.edge_index,
                           num_nodes=data.num_nodes)
        if pe is not None:
            sample_data.pe = pe.cpu()
        protocol: Any = NeighborProtocol(
            sample_data, x, ei, y, dev_masks, pe, fanouts=ld["fanouts"],
            batch_size=ld["batch_size"], replace=ld["replace"], seed=seed, loss=F.cross_entropy,
            score=score, eval_loss=eval_loss, device=device, world_size=world_size, rank=rank)
    else:
        protocol = NodeProtocol(x, ei, y, dev_masks, pe, loss=F.cross_entropy, score=score,
                                eval_loss=eval_loss)
    rule = "val" if tr["stop_on"] == "val" else "val_or_loss"

    def fresh():
        seed_everything(seed)
        if het:
            m = cfg["model"]
            model = hetero.HeteroNodeClassifier(
                data.metadata(), x, ei, num_classes, layer=m["layer"],
                hidden_channels=m["hidden_channels"], heads=m["heads"],
                num_layers=m["num_layers"], dropout=m["dropout"],
                attn_dropout=m["attn_dropout"], act=m["act"]).to(device)
        else:
            model = _build_node_model(cfg, data.num_features, num_classes).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg["optim"]["lr"],
                               weight_decay=cfg["optim"]["weight_decay"])
        return model, opt, EarlyStopping(rule, tr["patience"]), {"epoch": 0, "train_time": 0.0}

    model, opt, stopper, state = fresh()
    ckpt_path, log_path = out / "checkpoint.pt", out / "log.jsonl"
    keys = set(state) | set(stopper.state_dict())
    tried = []

    def use(ck):
        tried.append(1)
        if set(ck["state"]) != keys:
            raise KeyError(f"its run state has the keys {sorted(ck['state'])}")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optim"])
        stopper.load_state_dict(ck["state"])
        state.update({k: ck["state"][k] for k in state})
        torch.set_rng_state(ck["rng"])
    found = None
    if main:
        found = load_latest(ckpt_path, use, _say)
        if found is None and tried:
            model, opt, stopper, state = fresh()   # a rejected checkpoint may have loaded in part
    if world_size > 1:
        # The other ranks resume from the checkpoint rank 0 accepted (or start afresh).
        ck = distributed.share(found[1] if found is not None else None)
        if not main and ck is not None:
            use(ck)
    if sampled:
        protocol.wrap(model, ddp=world_size > 1)
    if main:
        ready()                                    # inputs are good: the run's config is written
        _truncate_log(log_path, state["epoch"])    # epochs after the checkpoint (or all) re-run
    start_time, clock = state["train_time"], EpochClock(device)
    saved_at = state["epoch"]
    bar = tqdm(range(state["epoch"], tr["epochs"]), desc=f"{cfg['name']} seed {seed}",
               disable=not (progress and main), leave=False, initial=state["epoch"],
               total=tr["epochs"])

    def epochs() -> Iterator[int]:
        for epoch in bar:
            protocol.epoch = epoch                 # NeighborProtocol seeds its epoch from it
            yield epoch

    def log(epoch: int, train_loss: float, s: Dict[str, Any]) -> None:
        if main:
            _append_log(log_path, {"epoch": epoch, "train_loss": train_loss,
                                   "val_loss": s["val"][1], "train": s["train"][0],
                                   "val": s["val"][0], "test": s["test"][0]})
        state["epoch"], state["train_time"] = epoch + 1, start_time + sum(clock.times)
        bar.set_postfix(val=f"{s['val'][0]:.3f}", best=f"{stopper.best['val']:.3f}")

    def after(epoch: int) -> None:
        nonlocal saved_at
        if main and state["epoch"] % tr["checkpoint_every"] == 0:
            save_checkpoint({"model": model.state_dict(), "optim": opt.state_dict(),
                             "state": {**state, **stopper.state_dict()},
                             "rng": torch.get_rng_state()}, ckpt_path)
            saved_at = state["epoch"]
    try:
        fit(model, opt, protocol, stopper, epochs(), clock=clock,
            splits=("train", "val", "test"), log=log, after=after)
    except KeyboardInterrupt:
        bar.close()
        since = (f"from epoch {saved_at}, its last checkpoint" if saved_at
                 else "from the start: no checkpoint yet")
        raise TrainingInterrupted(
            f"{cfg['name']} seed {seed} interrupted at epoch {state['epoch']}; re-run the same "
            f"command to resume ({since})") from None
    bar.close()
    best = stopper.best
    extra: Dict[str, Any] = {}
    if sampled:
        extra = {"loader": "neighbor", "world_size": world_size,
                 "global_batch_size": cfg["loader"]["batch_size"] * world_size}
    return {f"test_{metric}": best["test"], f"val_{metric}": best["val"],
            "best_epoch": best["epoch"], "epochs_run": state["epoch"],
            "time_per_epoch_s": state["train_time"] / max(state["epoch"], 1),
            "num_parameters": sum(p.numel() for p in model.parameters()),
            "sparse_features": sparse, **extra}


# ----------------------------------------------------------------------------- graph tasks

def _in_degree(data) -> torch.Tensor:
    return torch.bincount(data.edge_index[1], minlength=data.num_nodes)


class _OneHotDegree:
    """Node features for graphs that have none (IMDB-BINARY): the one-hot in-degree, with every
    degree of ``cap`` or more in the last slot. PyG's ``OneHotDegree`` has no such cap and fails
    on a degree above its ``max_degree``; IMDB-BINARY has degrees up to 135."""

    def __init__(self, cap: int) -> None:
        self.cap = cap

    def __call__(self, data):
        data.x = F.one_hot(_in_degree(data).clamp(max=self.cap), self.cap + 1).float()
        return data


def _graph_dataset(cfg):
    from .. import data as gdata
    from ..pe import AddLaplacianPE, AddRandomWalkPE
    ds = gdata.load_dataset(cfg["dataset"])
    transforms = []
    if ds[0].x is None:
        max_deg = int(max(int(_in_degree(d).max()) if d.num_nodes else 0 for d in ds))
        transforms.append(_OneHotDegree(min(max_deg, MAX_DEGREE_FEATURE)))
    if cfg["pe"]["type"] == "lap":
        transforms.append(AddLaplacianPE(cfg["pe"]["dim"], attr_name="pe", per_component=True))
    elif cfg["pe"]["type"] == "rw":
        transforms.append(AddRandomWalkPE(cfg["pe"]["dim"], attr_name="pe", simple=True))
    if transforms:
        from torch_geometric.transforms import Compose
        data_list = [Compose(transforms)(d.clone()) for d in ds]
        return data_list, int(ds.num_classes)
    return list(ds), int(ds.num_classes)


def _read_folds(done_path: Path) -> List[Dict[str, Any]]:
    """The finished folds of a graph run; a damaged ``folds.json`` restarts the folds, saying
    so (it is written atomically, so only an outside change can damage it)."""
    if not done_path.exists():
        return []
    try:
        done = json.loads(done_path.read_text())
        if isinstance(done, list) and all(isinstance(f, dict) and {"val", "test", "epoch"}
                                          <= set(f) for f in done) and len(done) <= 10:
            return done
    except ValueError:
        pass
    _say(f"{done_path} is damaged; the cross-validation starts again from fold 0")
    os.replace(done_path, done_path.with_name(done_path.name + ".damaged"))
    return []


def _fold_loaders(data_list, y: torch.Tensor, folds: List[torch.Tensor], k: int, seed: int,
                  batch_size: int, world_size: int = 1, rank: int = 0) -> Dict[str, Any]:
    """Fold ``k``'s loaders: the fold is the test set, a stratified tenth of the others the
    validation set for early stopping, the rest the training set (shuffled; with
    ``world_size > 1``, this rank's share of it through a ``DistributedSampler``, whose
    ``set_epoch`` reshuffles)."""
    from torch.utils.data.distributed import DistributedSampler
    from torch_geometric.loader import DataLoader
    test_idx = folds[k]
    rest = torch.cat([f for j, f in enumerate(folds) if j != k])
    inner = stratified_folds(y[rest], 10, seed * 100 + k)
    parts = {"train": rest[torch.cat(inner[1:])], "val": rest[inner[0]], "test": test_idx}
    out = {}
    for name, idx in parts.items():
        graphs = [data_list[i] for i in idx.tolist()]
        if name == "train" and world_size > 1:
            share = DistributedSampler(graphs, num_replicas=world_size, rank=rank, shuffle=True,
                                       seed=seed * 100 + k)
            out[name] = DataLoader(graphs, batch_size=batch_size, sampler=share)
        else:
            out[name] = DataLoader(graphs, batch_size=batch_size, shuffle=(name == "train"))
    return out


def _ddp(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` in ``DistributedDataParallel`` (this rank's GPU on CUDA)."""
    from torch.nn.parallel import DistributedDataParallel
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return DistributedDataParallel(model, device_ids=[index])
    return DistributedDataParallel(model)


class _RankZeroEval:
    """A protocol under torchrun: training through the DDP model on every rank (the mean
    training loss over the ranks), evaluation of the plain model on rank 0 alone, its scores
    shared with every rank (one early-stopping decision)."""

    def __init__(self, inner: Any, model: torch.nn.Module) -> None:
        self.inner, self.model = inner, model

    def train_epoch(self, model: torch.nn.Module, opt: torch.optim.Optimizer) -> float:
        return distributed.all_mean(self.inner.train_epoch(model, opt), 1)

    def evaluate(self, model: torch.nn.Module, splits) -> Dict[str, Any]:
        mine = self.inner.evaluate(self.model, splits) if distributed.is_main() else None
        return distributed.share(mine)


def train_graph(cfg: Dict[str, Any], seed: int, out: Path, progress: bool,
                ready: Callable[[], None]) -> Dict[str, Any]:
    """Cross-validate a graph task (protocol ``cv10``) in run folder ``out``, keeping the
    finished folds; ``ready()`` is called once the data are good."""
    world_size, rank = distributed.world()
    main = rank == 0
    device = torch.device(cfg["device"])
    data_list, num_classes = _graph_dataset(cfg)
    y = torch.tensor([int(d.y) for d in data_list])
    folds = stratified_folds(y, 10, seed)
    done_path, log_path = out / "folds.json", out / "log.jsonl"
    done = _read_folds(done_path) if main else []
    if main:
        ready()                                            # inputs are good: config written
        _truncate_log(log_path, len(done), key="fold")     # an unfinished fold is re-run
    done = distributed.share(done)                         # torchrun: rank 0's record
    tr = cfg["train"]
    bar = tqdm(range(len(done), 10), desc=f"{cfg['name']} seed {seed}",
               disable=not (progress and main), leave=False, initial=len(done), total=10)
    clock = EpochClock(device)
    where = {"fold": len(done), "epoch": 0}

    order: List[Any] = [None]          # torchrun: the training graphs' DistributedSampler

    def counted(epochs) -> Iterator[int]:
        for epoch in epochs:
            where["epoch"] = epoch
            if order[0] is not None:
                order[0].set_epoch(epoch)
            yield epoch
    try:
        for k in bar:
            where["fold"], where["epoch"] = k, 0
            seed_everything(seed * 100 + k)
            loaders = _fold_loaders(data_list, y, folds, k, seed, tr["batch_size"],
                                    world_size, rank)
            order[0] = getattr(loaders["train"], "sampler", None) if world_size > 1 else None
            model = model_from_config(cfg, data_list[0].num_features, num_classes).to(device)
            opt = torch.optim.Adam(model.parameters(), lr=cfg["optim"]["lr"],
                                   weight_decay=cfg["optim"]["weight_decay"])
            protocol: Any = BatchProtocol(
                loaders, device, loss=F.cross_entropy,
                score=lambda logits, t: fraction_correct(logits.argmax(-1), t))
            trained: torch.nn.Module = model
            if world_size > 1:
                torch.manual_seed(seed * 100 + k + 7919 * rank)    # each rank its dropout
                trained = _ddp(model, device)
                protocol = _RankZeroEval(protocol, model)
            stopper = EarlyStopping("best_val", tr["patience"], best={
                "val": -1.0, "val_loss": float("inf"), "test": 0.0, "epoch": -1})

            def log(epoch: int, train_loss: float, s: Dict[str, Any], k=k) -> None:
                if main:
                    _append_log(log_path, {"fold": k, "epoch": epoch, "train_loss": train_loss,
                                           "val": s["val"][0], "val_loss": s["val"][1]})
            fit(trained, opt, protocol, stopper, counted(range(tr["epochs"])), clock=clock,
                splits=("val",), log=log)
            done.append(stopper.best)
            if main:
                atomic_write_json(done_path, done)
            bar.set_postfix(fold_acc=f"{stopper.best['test']:.3f}")
    except KeyboardInterrupt:
        bar.close()
        raise TrainingInterrupted(
            f"{cfg['name']} seed {seed} interrupted at epoch {where['epoch']} of fold "
            f"{where['fold']}; re-run the same command to resume (from the start of fold "
            f"{len(done)}; finished folds are kept)") from None
    bar.close()
    accs = [f["test"] for f in done]
    return {"test_accuracy": float(np.mean(accs)), "test_accuracy_folds": accs,
            "best_epoch_folds": [int(f["epoch"]) for f in done],
            "val_accuracy": float(np.mean([f["val"] for f in done])),
            "time_per_epoch_s": sum(clock.times) / max(len(clock.times), 1)}


# The training of each config ``protocol`` (validate_config checks it against ``task``).
PROTOCOLS = {"planetoid": "train_node", "splits": "train_node", "cv10": "train_graph"}
