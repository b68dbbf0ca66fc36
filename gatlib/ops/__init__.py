"""Attention operators over graphs. One public entry per op; the backend is chosen in
:mod:`gatlib.ops.dispatch` (override with ``GATLIB_BACKEND`` or :func:`use_backend`)."""
from . import reference
from .attention import gat_attention, sparse_attention
from .dense import dense_attention
from .dispatch import BackendError, available_backends, select, use_backend
from .softmax import segment_softmax

try:  # the GPU backend (Triton); gatlib works without it
    from . import triton as _triton  # noqa: F401
except ImportError:  # pragma: no cover
    pass

__all__ = [
    "segment_softmax", "sparse_attention", "gat_attention", "dense_attention",
    "use_backend", "available_backends", "select", "BackendError", "reference",
]
