"""Experiments: configs, resumable training runs, summaries. Used by the ``gatlib`` command."""
from .config import apply_overrides, load_config, parse_seeds
from .run import run_config, run_seed
from .summarize import collect, summarize

__all__ = ["load_config", "apply_overrides", "parse_seeds", "run_seed", "run_config",
           "collect", "summarize"]
