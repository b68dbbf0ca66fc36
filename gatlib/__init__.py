"""gatlib: attention on graphs for PyTorch."""
__version__ = "0.1.0"

from . import graph, ops  # noqa: E402

__all__ = ["graph", "ops", "__version__"]
