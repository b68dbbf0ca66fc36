"""The CPU backend: torch sparse CSR kernels (MKL on x86) over the cached CSR view, registered as
``torch.library`` custom ops (``gatlib::*``)."""
from . import ops  # noqa: F401  (registers the custom ops)
