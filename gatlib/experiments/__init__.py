"""The experiment harness: configs, resumable training runs, the dense-vs-sparse comparison,
summaries, plots and the benchmark helpers. Used by the ``gatlib`` command; installed with the
``experiments`` extra (``pip install 'gatlib[experiments]'``: pyyaml, matplotlib,
scikit-learn), which the core (``gatlib.graph``, ``ops``, ``pe``, ``nn``, ``data``) never needs.

The layout, one concern a module:

- ``config``: YAML configs, overrides, validation, hashes;
- ``loop``: the one training loop (:func:`~gatlib.experiments.loop.fit`) with its
  early-stopping policy (``EarlyStopping``) and epoch clock (``EpochClock``);
- ``protocols``: how a model meets its data, for one graph split by node masks
  (``NodeProtocol``), for sampled neighbourhoods of its training nodes (``NeighborProtocol``)
  and for mini-batches of graphs (``BatchProtocol``); ``metrics``: scores and losses;
  ``models``: the one model builder; ``distributed``: ``gatlib train`` under ``torchrun``
  (the process group, rank 0's word to the other ranks);
- ``runs`` (a config and seed in its run folder: identity, locks, resume) and ``supervised``
  (its node and graph training, picked by the config's ``protocol``), ``checkpoint``,
  ``summary`` (tables and learning curves);
- ``tasks`` (the comparison's tasks, in one place), ``compare`` (variants, budgets, cached
  runs), ``pool`` (its worker processes), ``report`` (its table and plots);
- ``bench``, ``bench_graphs``, ``bench_report``: what ``experiments/benchmarks/`` and
  ``gatlib demo`` (``demo``) time and print.

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
