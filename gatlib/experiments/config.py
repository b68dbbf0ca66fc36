"""Experiment configs: YAML files with dotted ``key=value`` overrides, and seed lists.

Every key has a type in :data:`SCHEMA`; a config file's values and the overrides are checked
and converted against it when the config is loaded (``optim.lr=abc`` is an error that names
``optim.lr``, raised before any data is read), so that a resolved config has one spelling per
value and its hash (:func:`config_hash`) identifies a run.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple, Union

import yaml

from ..utils import UserError

__all__ = ["load_config", "apply_overrides", "validate_config", "parse_seeds", "config_hash",
           "config_diff", "flatten", "identity_config", "DEFAULTS", "SCHEMA", "ConfigError"]


class ConfigError(UserError, ValueError):
    """A config file, an override or a seed list that cannot be used; the message names the key
    and what it accepts."""


class ConfigNotFound(UserError, FileNotFoundError):
    """The config file does not exist."""

# Every key a config may set, with its default; a config or an override naming another key is
# an error (a typo must not silently train the default).
DEFAULTS: Dict[str, Any] = {
    "name": None,                 # run name; default: the config file's stem
    "dataset": None,              # a name of gatlib.data's registry
    "task": "node",               # node | graph
    # How the model is trained and scored (gatlib.experiments.supervised): planetoid (one
    # public node split) | splits (node split seed % S of S stored ones) | cv10 (10-fold graph
    # cross-validation); it must fit the task. Unset: planetoid for node tasks, cv10 for graph.
    "protocol": None,
    "metric": "accuracy",         # accuracy | roc_auc
    "normalize_features": False,  # row-normalise node features (the GAT paper's preprocessing)
    # Node tasks: hand the model sparse CSR features (true | false | auto: when at most 10% of
    # the entries are non-zero and there are no positional encodings). The same model in
    # distribution; dropout and the first projection then cost O(nnz), not O(N F).
    "sparse_features": "auto",
    "model": {
        "layer": "gat", "hidden_channels": 8, "heads": 8, "num_layers": 2, "dropout": 0.6,
        "attn_dropout": 0.6, "residual": False, "norm": None, "act": "elu", "pool": "mean",
        "value_dropout": 0.0,     # GAT only: dropout on the summed features (authors' code)
    },
    "pe": {"type": None, "dim": 8, "channels": 8},   # type: lap | rw | None
    "optim": {"lr": 0.005, "weight_decay": 5e-4},
    # stop_on (node tasks): what restarts the patience, "val_or_loss" (the GAT code's rule for
    # Cora) or "val" (the GAT authors' rule for CiteSeer: validation metric only).
    "train": {"epochs": 1000, "patience": 100, "batch_size": 64, "checkpoint_every": 25,
              "stop_on": "val_or_loss"},
    # Node tasks: how training batches are made. kind: full (one full-batch step per epoch) |
    # neighbor (mini-batches of sampled in-neighbourhoods of the training nodes, gatlib.loader:
    # fanouts per layer, batch_size seeds per process and step, sampled with replacement or
    # not); evaluation is then layer-wise over the whole graph (gatlib.nn.inference).
    # Required under torchrun (DDP). A config at these defaults hashes as before (runs.py).
    "loader": {"kind": "full", "fanouts": [10, 10], "batch_size": 512, "replace": False},
    # dataset: csbm builds a contextual stochastic block model graph from these parameters
    # (gatlib.data.synthetic.csbm) instead of loading a registered dataset; dataset:
    # mag_synthetic a heterogeneous graph of OGB-MAG's types whose papers are such a graph
    # (num_nodes papers; gatlib.experiments.hetero), trained with a to_hetero GAT.
    "synthetic": {"num_nodes": 1000, "num_classes": 2, "avg_degree": 5.0, "homophily": 0.8,
                  "feature_dim": 100, "mu": 2.0, "split": [0.6, 0.2, 0.2], "seed": 0},
    "device": "cpu",
    "published": None,            # the published figure this run is compared with (text)
    "reference": None,            # where that figure comes from
}


# The type of every key: ("float", low, "exclusive" | "inclusive"), ("prob",) (a dropout rate in
# [0, 1)), ("int", low), ("bool",), ("choice", allowed values), ("device",), ("str",) (a name)
# and ("text",) (free text or null: the published figure and its reference).
SCHEMA: Dict[str, Tuple] = {
    "name": ("str",),
    "dataset": ("str",),
    "task": ("choice", ("node", "graph")),
    "protocol": ("choice", (None, "planetoid", "splits", "cv10")),
    "metric": ("choice", ("accuracy", "roc_auc")),
    "normalize_features": ("bool",),
    "sparse_features": ("choice", (True, False, "auto")),
    "model.layer": ("choice", ("gat", "gatv2", "transformer", "dense", "gps")),
    "model.hidden_channels": ("int", 1),
    "model.heads": ("int", 1),
    "model.num_layers": ("int", 1),
    "model.dropout": ("prob",),
    "model.attn_dropout": ("prob",),
    "model.residual": ("bool",),
    "model.norm": ("choice", (None, "batch", "layer")),
    "model.act": ("choice", ("relu", "gelu", "elu", "silu", "tanh")),
    "model.pool": ("choice", ("mean", "sum", "max", "first")),
    "model.value_dropout": ("prob",),
    "pe.type": ("choice", (None, "lap", "rw")),
    "pe.dim": ("int", 1),
    "pe.channels": ("int", 1),
    "optim.lr": ("float", 0.0, "exclusive"),
    "optim.weight_decay": ("float", 0.0, "inclusive"),
    "train.epochs": ("int", 1),
    "train.patience": ("int", 1),
    "train.batch_size": ("int", 1),
    "train.checkpoint_every": ("int", 1),
    "train.stop_on": ("choice", ("val_or_loss", "val")),
    "loader.kind": ("choice", ("full", "neighbor")),
    "loader.fanouts": ("ints", -1),
    "loader.batch_size": ("int", 1),
    "loader.replace": ("bool",),
    "synthetic.num_nodes": ("int", 1),
    "synthetic.num_classes": ("int", 1),
    "synthetic.avg_degree": ("float", 0.0, "inclusive"),
    "synthetic.homophily": ("prob1",),
    "synthetic.feature_dim": ("int", 1),
    "synthetic.mu": ("float", 0.0, "inclusive"),
    "synthetic.split": ("floats", 0.0),
    "synthetic.seed": ("int", 0),
    "device": ("device",),
    "published": ("text",),
    "reference": ("text",),
}

_NULLS = ("null", "none", "~", "")


def flatten(cfg: Dict[str, Any], where: str = "") -> Dict[str, Any]:
    """``{"model": {"heads": 8}}`` -> ``{"model.heads": 8}``."""
    out: Dict[str, Any] = {}
    for key, value in cfg.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{where}{key}."))
        else:
            out[f"{where}{key}"] = value
    return out


def _show(value: Any) -> str:
    return "null" if value is None else repr(value)


def _coerce(key: str, value: Any, origin: str) -> Any:
    """``value`` as the type of ``key`` (a string from an override is parsed for it), or a
    :class:`ConfigError` naming the key, what it accepts and where the value came from."""
    kind = SCHEMA[key]
    text = value.strip() if isinstance(value, str) else None

    def bad(want: str):
        return ConfigError(f"config key {key} must be {want}, got {_show(value)} ({origin})")

    if kind[0] in ("ints", "floats"):
        ints = kind[0] == "ints"
        want = ("a non-empty list of whole numbers >= 1 or -1 (all neighbours), e.g. [10, 5] "
                "(10,5 in an override)" if ints else
                f"a non-empty list of numbers >= {kind[1]:g}, e.g. [0.6, 0.2, 0.2]")
        items = [t for t in text.strip("[]").split(",") if t.strip()] if text is not None \
            else value
        if not isinstance(items, (list, tuple)) or not items:
            raise bad(want)
        out_list: List[Any] = []
        for item in items:
            item = item.strip() if isinstance(item, str) else item
            if isinstance(item, bool):
                raise bad(want)
            try:
                v = (int(item) if isinstance(item, int) or str(item).lstrip("+-").isdigit()
                     else None) if ints else float(item)
            except (TypeError, ValueError):
                v = None
            if v is None or (not ints and not math.isfinite(v)) or v < kind[1] \
                    or (ints and v == 0):
                raise bad(want)
            out_list.append(v)
        return out_list
    if kind[0] == "prob1":
        if isinstance(value, bool):
            raise bad("a probability in [0, 1]")
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise bad("a probability in [0, 1]") from None
        if not 0.0 <= x <= 1.0:
            raise bad("a probability in [0, 1]")
        return x
    if kind[0] in ("float", "prob"):
        if isinstance(value, bool):
            raise bad("a number")
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise bad("a number (e.g. " + ("0.01" if kind[0] == "float" else "0.5") + ")") from None
        if not math.isfinite(x):
            raise bad("a finite number")
        if kind[0] == "prob" and not 0.0 <= x < 1.0:
            raise bad("a probability in [0, 1)")
        if kind[0] == "float" and (x < kind[1] or (kind[2] == "exclusive" and x == kind[1])):
            raise bad(f"a number {'>' if kind[2] == 'exclusive' else '>='} {kind[1]:g}")
        return x
    if kind[0] == "int":
        if isinstance(value, bool):
            raise bad(f"a whole number >= {kind[1]}")
        if isinstance(value, int):
            n = value
        elif text is not None and text.lstrip("+-").isdigit():
            n = int(text)
        else:
            raise bad(f"a whole number >= {kind[1]}")
        if n < kind[1]:
            raise bad(f"a whole number >= {kind[1]}")
        return n
    if kind[0] == "bool":
        if isinstance(value, bool):
            return value
        if text is not None and text.lower() in ("true", "false", "yes", "no"):
            return text.lower() in ("true", "yes")
        raise bad("true or false")
    if kind[0] == "choice":
        allowed = kind[1]
        if text is not None:
            low = text.lower()
            if None in allowed and low in _NULLS:
                return None
            if True in allowed and low in ("true", "false"):
                return low == "true"
            if text in allowed:
                return text
        elif value in allowed and (not isinstance(value, (bool, int)) or
                                   any(v is value for v in allowed)):
            return value
        raise bad("one of " + ", ".join(_show(v) if v is None or isinstance(v, bool) else v
                                        for v in allowed))
    if kind[0] == "device":
        import torch
        try:
            return str(torch.device(str(value)))
        except (RuntimeError, ValueError):
            raise bad("a torch device such as cpu, cuda or cuda:1") from None
    if kind[0] == "text":
        if value is None or (text is not None and text.lower() in ("null", "none", "~")):
            return None
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value) if not isinstance(value, str) else value
        raise bad("text")
    # "str"
    if value is None:
        return None
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise bad("text")


def _set(cfg: Dict[str, Any], key: str, value: Any) -> None:
    node = cfg
    parts = key.split(".")
    for p in parts[:-1]:
        node = node[p]
    node[parts[-1]] = value


def _check_key(key: str, where: str) -> None:
    if key in SCHEMA:
        return
    parts = key.split(".")
    level = DEFAULTS
    for i, p in enumerate(parts):
        path = ".".join(parts[:i + 1])
        if not isinstance(level, dict) or p not in level:
            known = sorted(level) if isinstance(level, dict) else []
            raise ConfigError(f"unknown config key {path!r} ({where}); known keys at this "
                              f"level: {known}")
        level = level[p]
    raise ConfigError(f"config key {key!r} is a group, not a value ({where}): set one of its "
                      f"keys, e.g. {key}.{next(iter(level))}=...")


def _merge(base: dict, new: dict, origin: str, where: str = "") -> dict:
    """``new`` (a config file's mapping) over ``base``, every value checked against
    :data:`SCHEMA`."""
    out = copy.deepcopy(base)
    for key, value in new.items():
        path = f"{where}{key}"
        if not isinstance(key, str) or key not in base:
            raise ConfigError(f"unknown config key {path!r} ({origin}); known keys at this "
                              f"level: {sorted(base)}")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"config key {path!r} must be a mapping ({origin}), got "
                                  f"{value!r}")
            out[key] = _merge(base[key], value, origin, path + ".")
        else:
            out[key] = _coerce(path, value, origin)
    return out


def load_config(path: Union[str, Path], overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """Read a YAML config, fill in defaults and apply ``key=value`` overrides; every value is
    checked and converted against :data:`SCHEMA`.

    Raises:
        ConfigError: an unknown key, a value of the wrong type or range (the message names the
            key and what it accepts), a config without a dataset.
        ConfigNotFound: ``path`` does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigNotFound(f"config file {path} not found (configs live in "
                             "experiments/configs/)")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config {path} is not valid YAML{where}: "
                          f"{getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path} must be a YAML mapping of keys to values")
    cfg = _merge(DEFAULTS, raw, f"in {path.name}")
    cfg = apply_overrides(cfg, overrides)
    if cfg["name"] is None:
        cfg["name"] = path.stem
    if not cfg["dataset"]:
        raise ConfigError(f"config {path} must name a dataset (dataset: Cora, for example)")
    return validate_config(cfg)


def apply_overrides(cfg: Dict[str, Any], overrides: Sequence[str]) -> Dict[str, Any]:
    """``["model.heads=4", "optim.lr=0.01"]`` -> a new config, each value parsed as the type of
    its key (:data:`SCHEMA`)."""
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value "
                              "(e.g. model.heads=4)")
        key, text = item.split("=", 1)
        key = key.strip()
        _check_key(key, f"override {item}")
        _set(cfg, key, _coerce(key, text, f"override {item}"))
    return cfg


def validate_config(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """Check a resolved config (every key of :data:`SCHEMA` present, each value of its type);
    returns it with values converted (e.g. ``lr: 1`` -> ``1.0``), so that equal configs hash
    equally."""
    flat = flatten(cfg)
    for key in flat:
        _check_key(key, "in the config")
    missing = sorted(set(SCHEMA) - set(flat))
    if missing:
        raise ConfigError(f"config lacks the keys {missing}; load it with load_config, which "
                          "fills in the defaults")
    out = copy.deepcopy(cfg)
    for key, value in flat.items():
        _set(out, key, _coerce(key, value, "in the config"))
    name = out["name"]
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise ConfigError(f"config key name must be a folder name (no '/'), got {name!r}")
    if not out["dataset"]:
        raise ConfigError("config key dataset must name a dataset (e.g. Cora)")
    if out["protocol"] is None:
        out["protocol"] = "cv10" if out["task"] == "graph" else "planetoid"
    if (out["protocol"] == "cv10") != (out["task"] == "graph"):
        raise ConfigError(f"config key protocol={out['protocol']} does not fit "
                          f"task={out['task']}: node tasks use planetoid or splits, graph "
                          f"tasks cv10")
    if out["loader"]["kind"] == "neighbor":
        if out["task"] != "node":
            raise ConfigError("loader.kind=neighbor samples node neighbourhoods: it is for node "
                              f"tasks, not task={out['task']} (graph tasks batch whole graphs, "
                              "train.batch_size)")
        if out["model"]["layer"] not in ("gat", "gatv2", "transformer"):
            raise ConfigError(f"loader.kind=neighbor needs message-passing layers (gat, gatv2, "
                              f"transformer); model.layer={out['model']['layer']} attends over "
                              f"whole graphs")
        if len(out["loader"]["fanouts"]) != out["model"]["num_layers"]:
            raise ConfigError(f"loader.fanouts must give one fanout per layer "
                              f"(model.num_layers={out['model']['num_layers']}), got "
                              f"{out['loader']['fanouts']}")
    if out["dataset"] == "mag_synthetic":
        bad = [f"{k}={v}" for k, v in (("task", out["task"]), ("model.layer",
               out["model"]["layer"]), ("loader.kind", out["loader"]["kind"]),
               ("pe.type", out["pe"]["type"])) if v not in (
               {"task": ("node",), "model.layer": ("gat", "gatv2", "transformer"),
                "loader.kind": ("full",), "pe.type": (None,)}[k])]
        if bad:
            raise ConfigError(f"dataset=mag_synthetic (a heterogeneous graph, trained with a "
                              f"to_hetero model of message-passing layers, full batch) needs "
                              f"task=node, model.layer gat, gatv2 or transformer, "
                              f"loader.kind=full and no pe; got {', '.join(bad)}")
    if out["dataset"] in ("csbm", "mag_synthetic") and len(out["synthetic"]["split"]) != 3:
        raise ConfigError(f"synthetic.split must be three fractions (train, val, test), got "
                          f"{out['synthetic']['split']}")
    if out["sparse_features"] is True and out["pe"]["type"] is not None:
        raise ConfigError("sparse_features=true cannot be combined with positional encodings "
                          "(pe.type); set sparse_features=auto or false")
    return out


# Sections added after runs were recorded: at their defaults they are left out of a run's
# identity (runs.run_identity), so that every config written before them keeps its hash.
LATER_SECTIONS = ("loader", "synthetic")


def identity_config(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """``cfg`` without the :data:`LATER_SECTIONS` that hold their defaults: what identifies a
    run (a config that sets none of them hashes as it did before they existed)."""
    return {k: v for k, v in cfg.items() if not (k in LATER_SECTIONS and v == DEFAULTS[k])}


def config_hash(cfg: Dict[str, Any], **extra: Any) -> str:
    """The sha256 of a resolved config (and of ``extra``, e.g. the dataset's checksum and
    gatlib's version), over a canonical JSON text: equal inputs, equal hash."""
    text = json.dumps({"config": cfg, **extra}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def config_diff(old: Dict[str, Any], new: Dict[str, Any]) -> List[str]:
    """``["model.heads: 8 -> 4", ...]``: the keys whose values differ."""
    a, b = flatten(old), flatten(new)
    return [f"{k}: {_show(a.get(k))} -> {_show(b.get(k))}" for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k) or (k in a) != (k in b)]


def parse_seeds(text: str) -> List[int]:
    """``"0-9"`` -> 0..9; ``"0,3,5"`` -> [0, 3, 5]; ``"4"`` -> [4]."""
    seeds: List[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(p) for p in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise ConfigError(f"--seeds must look like 0-9 or 0,3,5, got {text!r}") from None
    if not seeds:
        raise ConfigError(f"--seeds gave no seed: {text!r}")
    return sorted(set(seeds))
