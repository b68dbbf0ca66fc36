"""gatlib: attention on graphs for PyTorch."""
__version__ = "0.1.0"

from . import graph, ops, pe, nn  # noqa: E402

__all__ = ["graph", "ops", "pe", "nn", "__version__"]
