"""Attention operators over graphs. One public entry per op; the backend is chosen in
:mod:`gatlib.ops.dispatch` (override with ``GATLIB_BACKEND`` or :func:`use_backend`)."""
from . import reference
from .attention import attend, gat_attention, sparse_attention
from .dense import dense_attention
from .dispatch import (BackendError, available_backends, backend_report, select, self_check,
                       use_backend)
from .softmax import segment_softmax

__all__ = [
    "segment_softmax", "sparse_attention", "gat_attention", "attend", "dense_attention",
    "use_backend", "available_backends", "select", "BackendError", "reference",
    "backend_report", "self_check",
]
