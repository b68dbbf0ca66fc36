"""The experiment harness: configs, resumable training runs, the dense-vs-sparse comparison,
summaries, plots and the benchmark helpers. Used by the ``gatlib`` command; installed with the
``experiments`` extra (``pip install 'gatlib[experiments]'``: pyyaml, matplotlib,
scikit-learn), which the core (``gatlib.graph``, ``ops``, ``pe``, ``nn``, ``data``) never needs.

The layout, one concern a module:

- ``config``: YAML configs, overrides, validation, hashes;
- ``loop``: the one training loop (:func:`fit`) with its early-stopping policy
  (:class:`EarlyStopping`) and epoch clock;
- ``protocols``: how batches are made, the loss computed and a model evaluated, for one graph
  split by node masks (:class:`NodeProtocol`) and for batches of graphs
  (:class:`BatchProtocol`); the metrics;
- ``models``: the one model builder; ``tasks``: the comparison's tasks;
- ``runs`` (one config and seed, resumable) and ``supervised`` (its node and graph training),
  ``compare`` and ``report`` (the comparison and its table and plots), ``summary``;
- ``bench`` and ``demo``: what ``experiments/benchmarks/`` and ``gatlib demo`` time.

Names are imported on first use, so that ``gatlib.experiments.tasks`` (the task names the
command's help shows) loads without the extra.
"""
from importlib import import_module
from typing import Any

_NAMES = {
    "config": ("ConfigError", "apply_overrides", "config_hash", "load_config", "parse_seeds",
               "validate_config"),
    "runs": ("RunConflict", "TrainingInterrupted", "run_config", "run_identity", "run_seed"),
    "summary": ("collect", "summarize"),
}
_WHERE = {name: module for module, names in _NAMES.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
