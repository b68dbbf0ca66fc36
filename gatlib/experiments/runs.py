"""Training runs: one (config, seed) at a time, written atomically and resumable.

Layout of a run: ``<results>/<name>/<seed>/`` holds ``config.yaml`` (the resolved config),
``run.json`` (its hash, with the dataset's checksum and gatlib's version), ``log.jsonl`` (one
line per epoch), ``checkpoint.pt`` and ``checkpoint.prev.pt`` while the run is in progress, and
``metrics.json`` when it is done.

A run is identified by the hash in ``run.json``: the same config (after overrides), data and
gatlib version finds its finished metrics or resumes from its checkpoint; anything else is
refused with the keys that changed (``restart=True`` replaces the run). ``config.yaml`` and
``run.json`` are written only once the data loaded and the model was built. One process at a
time works in a run folder (an OS lock on ``<folder>/.lock``).
"""
from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from tqdm.auto import tqdm

from .. import __version__
from ..utils import FolderLock, UserError, atomic_write_json, atomic_write_text, read_jsonl
from .checkpoint import load_latest, save_checkpoint
from .config import config_diff, config_hash, validate_config

__all__ = ["run_seed", "run_config", "seed_everything", "run_identity", "RunConflict",
           "TrainingInterrupted"]


class RunConflict(UserError, RuntimeError):
    """A run folder holds a run of another config (or data, or gatlib version)."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; the message says where it stopped and how to resume."""


def _say(msg: str) -> None:
    tqdm.write(f"gatlib train: {msg}", file=sys.stderr)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _metric(name: str, logits: torch.Tensor, y: torch.Tensor) -> float:
    if y.numel() == 0:
        return float("nan")
    if name == "accuracy":
        return (logits.argmax(-1) == y).float().mean().item()
    if name == "roc_auc":
        return _roc_auc(torch.softmax(logits.float(), -1)[:, 1], y)
    raise ValueError(f"metric must be 'accuracy' or 'roc_auc', got {name!r}")


def _roc_auc(score: torch.Tensor, y: torch.Tensor) -> float:
    """Area under the ROC curve (ties get the average rank: the Mann-Whitney U statistic)."""
    y = y.bool()
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = torch.argsort(score)
    ranks = torch.empty_like(score, dtype=torch.float64)
    ranks[order] = torch.arange(1, score.numel() + 1, dtype=torch.float64)
    # Average the ranks of tied scores.
    uniq, inverse, counts = torch.unique(score, return_inverse=True, return_counts=True)
    if uniq.numel() < score.numel():
        sums = torch.zeros(uniq.numel(), dtype=torch.float64).index_add_(0, inverse, ranks)
        ranks = (sums / counts)[inverse]
    return ((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)).item()


# ------------------------------------------------------------------------------ node tasks

class _State:
    """What a run carries from epoch to epoch (and into a checkpoint)."""

    def __init__(self):
        self.epoch = 0
        self.best = {"val": -float("inf"), "val_loss": float("inf"), "test": float("nan"),
                     "epoch": -1}
        self.seen = {"val": -float("inf"), "val_loss": float("inf")}
        self.bad_epochs = 0
        self.train_time = 0.0


def _node_data(cfg: Dict[str, Any], seed: int):
    from ..data import load_dataset
    from ..pe import laplacian_pe, random_walk_pe
    data = load_dataset(cfg["dataset"])[0]
    if cfg["normalize_features"]:
        from torch_geometric.transforms import NormalizeFeatures
        data = NormalizeFeatures()(data)
    masks = []
    for key in ("train_mask", "val_mask", "test_mask"):
        m = getattr(data, key)
        if m.dim() == 2:                        # several public splits: seed picks one
            m = m[:, seed % m.size(1)]
        masks.append(m.bool())
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


# Density at or below which sparse_features="auto" stores node features as CSR.
SPARSE_DENSITY = 0.1


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


def _build_node_model(cfg, in_channels: int, num_classes: int):
    from ..nn import NodeClassifier
    m = cfg["model"]
    pe_dim = cfg["pe"]["dim"] if cfg["pe"]["type"] else 0
    return NodeClassifier(in_channels, m["hidden_channels"], num_classes,
                          num_layers=m["num_layers"], layer=m["layer"], heads=m["heads"],
                          dropout=m["dropout"], attn_dropout=m["attn_dropout"],
                          residual=m["residual"], norm=m["norm"], act=m["act"],
                          pe_dim=pe_dim, pe_channels=cfg["pe"]["channels"] if pe_dim else 0,
                          pe=cfg["pe"]["type"] or "lap",
                          value_dropout=m.get("value_dropout", 0.0))


def _train_node(cfg: Dict[str, Any], seed: int, out: Path, progress: bool,
                ready: Callable[[], None]) -> Dict[str, Any]:
    device = torch.device(cfg["device"])
    data, (train_m, val_m, test_m), pe = _node_data(cfg, seed)
    num_classes = int(data.y.max()) + 1
    x, ei, y = data.x.to(device), data.edge_index.to(device), data.y.to(device)
    if cfg["model"]["layer"] != "dense":
        # One explicit CSR graph for the whole run: the model's per-forward conversion of a
        # raw edge_index (two sorts) is paid once here, and its self-loop graph is kept on it.
        from ..graph import to_csr
        ei = to_csr(ei, data.num_nodes)
    pe = pe.to(device) if pe is not None else None
    sparse = _use_sparse_features(cfg, x, pe)
    if sparse:
        x = x.to_sparse_csr()

    def fresh():
        seed_everything(seed)
        model = _build_node_model(cfg, data.num_features, num_classes).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg["optim"]["lr"],
                               weight_decay=cfg["optim"]["weight_decay"])
        return model, opt, _State()

    model, opt, state = fresh()
    ckpt_path, log_path = out / "checkpoint.pt", out / "log.jsonl"
    tried = []

    def use(ck):
        tried.append(1)
        if set(ck["state"]) != set(state.__dict__):
            raise KeyError(f"its run state has the keys {sorted(ck['state'])}")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optim"])
        state.__dict__.update(ck["state"])
        torch.set_rng_state(ck["rng"])
    if load_latest(ckpt_path, use, _say) is None and tried:
        model, opt, state = fresh()       # a rejected checkpoint may have loaded in part
    ready()                               # inputs are good: the run's config is written now
    _truncate_log(log_path, state.epoch)   # epochs after the checkpoint (or all) are re-run
    metric, patience = cfg["metric"], cfg["train"]["patience"]
    stop_on = cfg["train"]["stop_on"]
    saved_at = state.epoch
    bar = tqdm(range(state.epoch, cfg["train"]["epochs"]), desc=f"{cfg['name']} seed {seed}",
               disable=not progress, leave=False, initial=state.epoch,
               total=cfg["train"]["epochs"])
    try:
        for epoch in bar:
            t0 = time.perf_counter()
            model.train()
            opt.zero_grad()
            loss = F.cross_entropy(model(x, ei, pe=pe)[train_m], y[train_m])
            loss.backward()
            opt.step()
            state.train_time += time.perf_counter() - t0
            model.eval()
            with torch.no_grad():
                logits = model(x, ei, pe=pe)
            val_loss = F.cross_entropy(logits[val_m], y[val_m]).item()
            row = {"epoch": epoch, "train_loss": loss.item(), "val_loss": val_loss,
                   "train": _metric(metric, logits[train_m], y[train_m]),
                   "val": _metric(metric, logits[val_m], y[val_m]),
                   "test": _metric(metric, logits[test_m], y[test_m])}
            _append_log(log_path, row)
            # Early stopping as in the GAT paper's code: patience restarts when the validation
            # metric or the validation loss is at least as good as its best so far; the model
            # kept is the last one at least as good on both. With stop_on="val" (the authors'
            # rule for CiteSeer, PetarV-/GAT issue 14) only the validation metric counts: the
            # model kept is the last one at least as good on it.
            up, down = row["val"] >= state.seen["val"], val_loss <= state.seen["val_loss"]
            if stop_on == "val":
                down = up
            if up and down:
                state.best = {"val": row["val"], "val_loss": val_loss, "test": row["test"],
                              "epoch": epoch}
            if up or down:
                state.seen = {"val": max(row["val"], state.seen["val"]),
                              "val_loss": min(val_loss, state.seen["val_loss"])}
                state.bad_epochs = 0
            else:
                state.bad_epochs += 1
            state.epoch = epoch + 1
            bar.set_postfix(val=f"{row['val']:.3f}", best=f"{state.best['val']:.3f}")
            if state.bad_epochs >= patience:
                break
            if state.epoch % cfg["train"]["checkpoint_every"] == 0:
                save_checkpoint({"model": model.state_dict(), "optim": opt.state_dict(),
                                 "state": state.__dict__, "rng": torch.get_rng_state()},
                                ckpt_path)
                saved_at = state.epoch
    except KeyboardInterrupt:
        bar.close()
        since = (f"from epoch {saved_at}, its last checkpoint" if saved_at
                 else "from the start: no checkpoint yet")
        raise TrainingInterrupted(
            f"{cfg['name']} seed {seed} interrupted at epoch {state.epoch}; re-run the same "
            f"command to resume ({since})") from None
    bar.close()
    return {f"test_{metric}": state.best["test"], f"val_{metric}": state.best["val"],
            "best_epoch": state.best["epoch"], "epochs_run": state.epoch,
            "time_per_epoch_s": state.train_time / max(state.epoch, 1),
            "num_parameters": sum(p.numel() for p in model.parameters()),
            "sparse_features": sparse}


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


# ----------------------------------------------------------------------------- graph tasks

def _stratified_folds(y: torch.Tensor, k: int, seed: int) -> List[torch.Tensor]:
    """``k`` disjoint test folds, each with about the same class proportions."""
    g = torch.Generator().manual_seed(seed)
    folds: List[List[int]] = [[] for _ in range(k)]
    offset = 0
    for c in torch.unique(y):
        idx = (y == c).nonzero().view(-1)
        idx = idx[torch.randperm(idx.numel(), generator=g)]
        for i, node in enumerate(idx.tolist()):
            folds[(i + offset) % k].append(node)
        offset += idx.numel()
    return [torch.tensor(sorted(f), dtype=torch.long) for f in folds]


MAX_DEGREE_FEATURE = 64


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
    from ..data import load_dataset
    from ..pe import AddLaplacianPE, AddRandomWalkPE
    ds = load_dataset(cfg["dataset"])
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


def _train_graph(cfg: Dict[str, Any], seed: int, out: Path, progress: bool,
                 ready: Callable[[], None]) -> Dict[str, Any]:
    from torch_geometric.loader import DataLoader

    from ..nn import GraphClassifier
    device = torch.device(cfg["device"])
    data_list, num_classes = _graph_dataset(cfg)
    y = torch.tensor([int(d.y) for d in data_list])
    folds = _stratified_folds(y, 10, seed)
    done_path, log_path = out / "folds.json", out / "log.jsonl"
    done = _read_folds(done_path)
    ready()                                                # inputs are good: config written
    _truncate_log(log_path, len(done), key="fold")         # an unfinished fold is re-run
    m, tr = cfg["model"], cfg["train"]
    pe_dim = cfg["pe"]["dim"] if cfg["pe"]["type"] else 0
    bar = tqdm(range(len(done), 10), desc=f"{cfg['name']} seed {seed}", disable=not progress,
               leave=False, initial=len(done), total=10)
    train_time, epochs_total = 0.0, 0
    where = {"fold": len(done), "epoch": 0}
    try:
        for k in bar:
            where["fold"], where["epoch"] = k, 0
            seed_everything(seed * 100 + k)
            test_idx = folds[k]
            rest = torch.cat([f for j, f in enumerate(folds) if j != k])
            # A stratified tenth of the training folds is the validation set for early stopping.
            inner = _stratified_folds(y[rest], 10, seed * 100 + k)
            val_idx = rest[inner[0]]
            train_idx = rest[torch.cat(inner[1:])]
            loaders = [DataLoader([data_list[i] for i in idx.tolist()],
                                  batch_size=tr["batch_size"], shuffle=(j == 0))
                       for j, idx in enumerate((train_idx, val_idx, test_idx))]
            model = GraphClassifier(data_list[0].num_features, m["hidden_channels"],
                                    num_classes, num_layers=m["num_layers"], layer=m["layer"],
                                    heads=m["heads"], dropout=m["dropout"],
                                    attn_dropout=m["attn_dropout"], residual=m["residual"],
                                    norm=m["norm"], act=m["act"], pool=m["pool"], pe_dim=pe_dim,
                                    pe_channels=cfg["pe"]["channels"] if pe_dim else 0,
                                    pe=cfg["pe"]["type"] or "lap").to(device)
            opt = torch.optim.Adam(model.parameters(), lr=cfg["optim"]["lr"],
                                   weight_decay=cfg["optim"]["weight_decay"])
            best = {"val": -1.0, "val_loss": float("inf"), "test": 0.0, "epoch": -1}
            bad = 0
            for epoch in range(tr["epochs"]):
                where["epoch"] = epoch
                t0 = time.perf_counter()
                model.train()
                # Sum the loss on the device and read it once per epoch: a .item() per batch
                # would make the host wait for the GPU at every step.
                loss_sum, seen = torch.zeros((), dtype=torch.float64, device=device), 0
                for batch in loaders[0]:
                    batch = batch.to(device)
                    opt.zero_grad()
                    out_ = model(batch.x.float(), batch.edge_index, batch.batch,
                                 pe=getattr(batch, "pe", None) if pe_dim else None)
                    loss = F.cross_entropy(out_, batch.y)
                    loss.backward()
                    opt.step()
                    loss_sum += loss.detach().double() * batch.y.numel()
                    seen += batch.y.numel()
                train_loss = loss_sum.item() / max(seen, 1)  # also waits for the last step
                train_time += time.perf_counter() - t0
                epochs_total += 1
                val_acc, val_loss = _evaluate(model, loaders[1], device, pe_dim)
                _append_log(log_path, {"fold": k, "epoch": epoch,
                                       "train_loss": train_loss, "val": val_acc,
                                       "val_loss": val_loss})
                if val_acc > best["val"] or (val_acc == best["val"]
                                             and val_loss < best["val_loss"]):
                    test_acc, _ = _evaluate(model, loaders[2], device, pe_dim)
                    best = {"val": val_acc, "val_loss": val_loss, "test": test_acc,
                            "epoch": epoch}
                    bad = 0
                else:
                    bad += 1
                    if bad >= tr["patience"]:
                        break
            done.append(best)
            atomic_write_json(done_path, done)
            bar.set_postfix(fold_acc=f"{best['test']:.3f}")
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
            "time_per_epoch_s": train_time / max(epochs_total, 1)}


@torch.no_grad()
def _evaluate(model, loader, device, pe_dim):
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=device)
    loss = torch.zeros((), dtype=torch.float64, device=device)
    total = 0
    for batch in loader:
        batch = batch.to(device)
        out = model(batch.x.float(), batch.edge_index, batch.batch,
                    pe=getattr(batch, "pe", None) if pe_dim else None)
        loss += F.cross_entropy(out, batch.y, reduction="sum").double()
        correct += (out.argmax(-1) == batch.y).sum()
        total += batch.y.numel()
    return correct.item() / max(total, 1), loss.item() / max(total, 1)


# --------------------------------------------------------------------------------- driver

def run_identity(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """What identifies a run of ``cfg`` (a resolved config): the config, the sha256 of its
    dataset's raw files (None for a dataset outside the registry) and gatlib's version, with
    their hash (``config_hash``)."""
    from .. import data
    try:
        data_sum = data.dataset_checksum(cfg["dataset"])
    except ValueError:                      # not registered: loading it reports the error
        data_sum = None
    ident = {"config": cfg, "dataset_sha256": data_sum, "gatlib": __version__}
    return {"config_hash": config_hash(cfg, dataset_sha256=data_sum, gatlib=__version__),
            **ident}


# What a run folder may hold besides its lock: removed by restart=True, and (the partial ones)
# when a folder holds no record of its config.
_RUN_FILES = ("metrics.json", "run.json", "config.yaml", "log.jsonl", "folds.json",
              "checkpoint.pt", "checkpoint.prev.pt")


def _clear(out: Path) -> None:
    for p in out.iterdir():
        if p.name in _RUN_FILES or p.name.endswith(".damaged") or (
                p.name.startswith(".checkpoint.pt.") and p.name.endswith(".tmp")):
            p.unlink()


def _recorded(out: Path) -> Optional[Dict[str, Any]]:
    """The identity a run folder records: ``run.json``, else (a run of a gatlib that wrote no
    hash) its ``config.yaml`` as ``{"config": ...}``; None when it records none."""
    try:
        rec = json.loads((out / "run.json").read_text())
        if isinstance(rec, dict) and "config_hash" in rec and "config" in rec:
            return rec
    except (OSError, ValueError):
        pass
    try:
        old = yaml.safe_load((out / "config.yaml").read_text())
        if isinstance(old, dict):
            return {"config": old}
    except (OSError, yaml.YAMLError):
        pass
    return None


def _conflict(out: Path, rec: Optional[Dict[str, Any]], ident: Dict[str, Any]) -> str:
    """Why the run in ``out`` is not this one, and how to proceed (two lines)."""
    if rec is None:
        what = "results whose config it does not record"
    else:
        diff = config_diff(rec["config"], ident["config"])
        if "config_hash" in rec:
            if rec.get("dataset_sha256") != ident["dataset_sha256"]:
                diff.append("dataset files (sha256): "
                            f"{str(rec.get('dataset_sha256'))[:12]} -> "
                            f"{str(ident['dataset_sha256'])[:12]}")
            if rec.get("gatlib") != ident["gatlib"]:
                diff.append(f"gatlib: {rec.get('gatlib')} -> {ident['gatlib']}")
        else:
            diff.append("(written by a gatlib that recorded no config hash)")
        what = "a run of another config: " + "; ".join(diff)
    name = ident["config"]["name"]
    return (f"{out} holds {what}.\nTo keep both, add name={name}-2 (or use another --results "
            f"folder); to replace it, add --restart.")


def _existing(out: Path, ident: Dict[str, Any], restart: bool) -> Optional[Dict[str, Any]]:
    """The finished metrics of this very run, or None when it is to be (re)started or resumed;
    raises :class:`RunConflict` when ``out`` holds another run."""
    if restart:
        if any(p.name in _RUN_FILES for p in out.iterdir()):
            _say(f"--restart: starting {out} afresh (its previous results are deleted)")
        _clear(out)
        return None
    rec = _recorded(out)
    metrics_path = out / "metrics.json"
    if rec is None:
        if metrics_path.exists():
            raise RunConflict(_conflict(out, None, ident))
        _clear(out)                        # partial files of a run that never got going
        return None
    if "config_hash" in rec:
        same = rec["config_hash"] == ident["config_hash"]
    else:                                  # written before runs recorded their hash
        same = rec["config"] == ident["config"]
        if same:
            _say(f"{out}: its config.yaml matches this config; recording its hash in run.json")
            atomic_write_json(out / "run.json", ident)
    if not same:
        raise RunConflict(_conflict(out, rec, ident))
    if metrics_path.exists():
        try:
            return json.loads(metrics_path.read_text())
        except ValueError:
            _say(f"{metrics_path} is damaged; running the seed again")
            os.replace(metrics_path, metrics_path.with_name("metrics.json.damaged"))
    return None


def run_seed(cfg: Dict[str, Any], seed: int, results: Path, progress: bool = True,
             restart: bool = False) -> Dict[str, Any]:
    """Run one seed of a config, or return its metrics if this very run (same config hash, see
    :func:`run_identity`) already finished, or resume it from its checkpoint.

    Args:
        cfg: a resolved config (:func:`gatlib.experiments.load_config`).
        seed: the seed; the run folder is ``<results>/<name>/<seed>``.
        results: the results folder.
        progress (default True): tqdm bars.
        restart (default False): delete what the run folder holds and run afresh.

    Raises:
        RunConflict: the folder holds a run of another config (the message lists the keys that
            changed and how to proceed).
        FolderLocked: another process works in the folder.
        ConfigError, DatasetNotFound, DatasetDamaged: bad config or data (nothing written).
        TrainingInterrupted: Ctrl-C (a KeyboardInterrupt saying where to resume from).
    """
    cfg = validate_config(cfg)
    ident = run_identity(cfg)
    out = Path(results) / cfg["name"] / str(seed)
    with FolderLock(out, what="run"):
        done = _existing(out, ident, restart)
        if done is not None:
            return done

        def ready() -> None:
            if _recorded(out) is None:
                atomic_write_text(out / "config.yaml", yaml.safe_dump(cfg, sort_keys=True))
                atomic_write_json(out / "run.json", ident)
        train = _train_node if cfg["task"] == "node" else _train_graph
        metrics = train(cfg, seed, out, progress, ready)
        metrics.update({"seed": seed, "name": cfg["name"], "dataset": cfg["dataset"],
                        "metric": cfg["metric"], "config_hash": ident["config_hash"]})
        atomic_write_json(out / "metrics.json", metrics)
        for p in out.iterdir():
            if p.name in ("checkpoint.pt", "checkpoint.prev.pt", "folds.json") or \
                    p.name.endswith(".damaged"):
                p.unlink()
        return metrics


def run_config(cfg: Dict[str, Any], seeds: List[int], results: Path, progress: bool = True,
               restart: bool = False) -> List[Dict[str, Any]]:
    """Run every seed of a config, one after the other, with an overall progress bar."""
    out = []
    for seed in tqdm(seeds, desc=cfg["name"], disable=not progress or len(seeds) == 1):
        out.append(run_seed(cfg, seed, results, progress, restart))
    return out
