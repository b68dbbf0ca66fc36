"""Experiments: configs, resumable training runs, summaries. Used by the ``gatlib`` command."""
from .config import (ConfigError, apply_overrides, config_hash, load_config, parse_seeds,
                     validate_config)
from .run import RunConflict, TrainingInterrupted, run_config, run_identity, run_seed
from .summarize import collect, summarize

__all__ = ["load_config", "apply_overrides", "validate_config", "parse_seeds", "config_hash",
           "ConfigError", "run_seed", "run_config", "run_identity", "RunConflict",
           "TrainingInterrupted", "collect", "summarize"]
