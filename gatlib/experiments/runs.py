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
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml
from tqdm.auto import tqdm

from .. import __version__
from ..utils import FolderLock, UserError, atomic_write_json, atomic_write_text
from . import supervised
from . import distributed
from .config import config_diff, config_hash, identity_config, validate_config
from .loop import TrainingInterrupted, seed_everything

__all__ = ["run_seed", "run_config", "seed_everything", "run_identity", "RunConflict",
           "TrainingInterrupted"]


class RunConflict(UserError, RuntimeError):
    """A run folder holds a run of another config (or data, or gatlib version)."""


def _say(msg: str) -> None:
    tqdm.write(f"gatlib train: {msg}", file=sys.stderr)


# --------------------------------------------------------------------------------- driver

def run_identity(cfg: Dict[str, Any], world_size: int = 1) -> Dict[str, Any]:
    """What identifies a run of ``cfg`` (a resolved config): the config (hashed without the
    sections that hold their defaults and postdate recorded runs,
    :func:`~.config.identity_config`), the sha256 of its dataset's raw files (None for a
    dataset outside the registry), gatlib's version and, for a run of ``world_size > 1``
    processes (``torchrun``), that number (its batches differ), with their hash
    (``config_hash``)."""
    from .. import data
    try:
        data_sum = data.dataset_checksum(cfg["dataset"])
    except ValueError:                      # not registered: loading it reports the error
        data_sum = None
    extra: Dict[str, Any] = {"dataset_sha256": data_sum, "gatlib": __version__}
    if world_size > 1:
        extra["world_size"] = world_size
    return {"config_hash": config_hash(identity_config(cfg), **extra), "config": cfg, **extra}


# What a run folder may hold besides its lock: removed by restart=True, and (the partial ones)
# when a folder holds no record of its config.
_RUN_FILES = ("metrics.json", "run.json", "config.yaml", "log.jsonl", "folds.json",
              "checkpoint.pt", "checkpoint.prev.pt")


def _stale_temporary(name: str) -> bool:
    """A temporary file of an atomic write of a run file (``.<file>.<random>.tmp``, e.g. of a
    checkpoint write killed half-way): never the live copy, safe to remove under the lock."""
    return name.endswith(".tmp") and any(name.startswith(f".{f}.") for f in _RUN_FILES)


def _clear(out: Path) -> None:
    for p in out.iterdir():
        if p.name in _RUN_FILES or p.name.endswith(".damaged") or _stale_temporary(p.name):
            p.unlink()


def _clear_temporary(out: Path) -> None:
    """Remove the stale temporary files a killed run left (the caller holds the lock)."""
    for p in out.iterdir():
        if _stale_temporary(p.name):
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
        diff = config_diff(identity_config(rec["config"]), identity_config(ident["config"]))
        if "config_hash" in rec:
            if rec.get("dataset_sha256") != ident["dataset_sha256"]:
                diff.append("dataset files (sha256): "
                            f"{str(rec.get('dataset_sha256'))[:12]} -> "
                            f"{str(ident['dataset_sha256'])[:12]}")
            if rec.get("gatlib") != ident["gatlib"]:
                diff.append(f"gatlib: {rec.get('gatlib')} -> {ident['gatlib']}")
            if rec.get("world_size", 1) != ident.get("world_size", 1):
                diff.append(f"processes (torchrun): {rec.get('world_size', 1)} -> "
                            f"{ident.get('world_size', 1)}")
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
        same = identity_config(rec["config"]) == identity_config(ident["config"])
        if same:
            _say(f"{out}: its config.yaml matches this config; recording its hash in run.json")
            atomic_write_json(out / "run.json", ident)
    if not same:
        raise RunConflict(_conflict(out, rec, ident))
    _clear_temporary(out)                  # resumed or finished: no one writes them now
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
    world_size, rank = distributed.world()
    ident = run_identity(cfg, world_size)
    out = Path(results) / cfg["name"] / str(seed)
    # The protocol picks the training (validate_config matched it to the task).
    train = getattr(supervised, supervised.PROTOCOLS[cfg["protocol"]])

    def ready() -> None:
        if _recorded(out) is None:
            atomic_write_text(out / "config.yaml", yaml.safe_dump(cfg, sort_keys=True))
            atomic_write_json(out / "run.json", ident)

    def finish(metrics: Dict[str, Any]) -> Dict[str, Any]:
        metrics.update({"seed": seed, "name": cfg["name"], "dataset": cfg["dataset"],
                        "metric": cfg["metric"], "config_hash": ident["config_hash"]})
        atomic_write_json(out / "metrics.json", metrics)
        for p in out.iterdir():
            if p.name in ("checkpoint.pt", "checkpoint.prev.pt", "folds.json") or \
                    p.name.endswith(".damaged"):
                p.unlink()
        return metrics

    if world_size == 1:
        with FolderLock(out, what="run"):
            done = _existing(out, ident, restart)
            if done is not None:
                return done
            return finish(train(cfg, seed, out, progress, ready))
    # Under torchrun: rank 0 holds the folder's lock and decides (finished, refused, or to
    # train); the others wait for its word, train beside it, and write nothing.
    if rank != 0:
        word = distributed.share(None)
        if word[0] == "error":
            raise word[1]
        if word[0] == "done":
            return word[1]
        train(cfg, seed, out, False, lambda: None)
        return distributed.share(None)
    lock = FolderLock(out, what="run")
    try:
        lock.acquire()
        done = _existing(out, ident, restart)
    except BaseException as exc:
        lock.release()
        distributed.share(("error", exc))
        raise
    try:
        distributed.share(("go", None) if done is None else ("done", done))
        if done is not None:
            return done
        metrics = finish(train(cfg, seed, out, progress, ready))
        return distributed.share(metrics)
    finally:
        lock.release()


def run_config(cfg: Dict[str, Any], seeds: List[int], results: Path, progress: bool = True,
               restart: bool = False) -> List[Dict[str, Any]]:
    """Run every seed of a config, one after the other, with an overall progress bar."""
    out = []
    for seed in tqdm(seeds, desc=cfg["name"], disable=not progress or len(seeds) == 1):
        out.append(run_seed(cfg, seed, results, progress, restart))
    return out
