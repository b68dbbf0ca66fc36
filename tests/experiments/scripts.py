"""The benchmark scripts (``experiments/benchmarks/<name>.py``, not a package) as modules."""
import importlib.util
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "experiments" / "benchmarks"


def load_benchmark(name: str):
    """A fresh module of ``experiments/benchmarks/<name>.py``."""
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCHMARKS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
