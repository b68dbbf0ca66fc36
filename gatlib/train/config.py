"""Experiment configs: YAML files with dotted ``key=value`` overrides, and seed lists."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict, List, Sequence, Union

import yaml

__all__ = ["load_config", "apply_overrides", "parse_seeds", "DEFAULTS"]

# Every key a config may set, with its default; a config or an override naming another key is
# an error (a typo must not silently train the default).
DEFAULTS: Dict[str, Any] = {
    "name": None,                 # run name; default: the config file's stem
    "dataset": None,              # a name of gatlib.data's registry
    "task": "node",               # node | graph
    "protocol": "planetoid",      # planetoid | splits | cv10
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
    "device": "cpu",
    "published": None,            # the published figure this run is compared with (text)
    "reference": None,            # where that figure comes from
}


def _merge(base: dict, new: dict, where: str = "") -> dict:
    out = copy.deepcopy(base)
    for key, value in new.items():
        path = f"{where}{key}"
        if key not in base:
            raise ValueError(f"unknown config key {path!r}; known keys at this level: "
                             f"{sorted(base)}")
        if isinstance(base[key], dict) and isinstance(value, dict):
            out[key] = _merge(base[key], value, path + ".")
        elif isinstance(base[key], dict):
            raise ValueError(f"config key {path!r} must be a mapping, got {value!r}")
        else:
            out[key] = value
    return out


def load_config(path: Union[str, Path], overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """Read a YAML config, fill in defaults and apply ``key=value`` overrides."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} not found")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"config {path} must be a YAML mapping")
    cfg = _merge(DEFAULTS, raw)
    cfg = apply_overrides(cfg, overrides)
    if cfg["name"] is None:
        cfg["name"] = path.stem
    if not cfg["dataset"]:
        raise ValueError(f"config {path} must name a dataset")
    return cfg


def apply_overrides(cfg: Dict[str, Any], overrides: Sequence[str]) -> Dict[str, Any]:
    """``["model.heads=4", "optim.lr=0.01"]`` -> a new config (values parsed as YAML)."""
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value (e.g. model.heads=4)")
        key, value = item.split("=", 1)
        node = {}
        cur = node
        parts = key.strip().split(".")
        for p in parts[:-1]:
            cur[p] = {}
            cur = cur[p]
        cur[parts[-1]] = yaml.safe_load(value)
        cfg = _merge(cfg, node)
    return cfg


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
            raise ValueError(f"--seeds must look like 0-9 or 0,3,5, got {text!r}") from None
    if not seeds:
        raise ValueError(f"--seeds gave no seed: {text!r}")
    return sorted(set(seeds))
