"""Backend choice, in one place.

The backends are the modules listed in :data:`BACKEND_MODULES`, in search order; each exposes a
:class:`~gatlib.ops.backend.Backend` called ``BACKEND`` (what it can run, and its table of
kernels). Adding a backend means one new module and one line here. :func:`select_backend` picks
the first backend that fits the call. A user forces one with the environment variable
``GATLIB_BACKEND`` or, within a block, with ``with gatlib.ops.use_backend("cpu"):``; a forced
backend that does not fit raises an error that lists why.
"""
from __future__ import annotations

import contextlib
import importlib
import os
from typing import Callable, Dict, Iterator, List, Optional

import torch

from .backend import Backend

__all__ = ["Backend", "BACKEND_MODULES", "register_backend", "available_backends",
           "get_backend", "select", "select_backend", "use_backend", "offered", "BackendError"]

# The backends, in the order select tries them: the GPU first, the reference (any device, the
# spec) last.
BACKEND_MODULES = (
    "gatlib.ops.triton",
    "gatlib.ops.cpu",
    "gatlib.ops.reference_backend",
)


class BackendError(ValueError):
    """A forced backend cannot run the call (the message lists why)."""


_BACKENDS: Dict[str, Backend] = {}
# Backends forced by use_backend, innermost last (a plain list, which torch.compile can trace).
_FORCED: List[Optional[str]] = []


def register_backend(backend: Backend, first: bool = False) -> None:
    """Add a backend to the search order (at the front with ``first=True``); one that is not in
    :data:`BACKEND_MODULES` (a plug-in, a test double)."""
    items = [(k, b) for k, b in _BACKENDS.items() if k != backend.name]
    items = [(backend.name, backend)] + items if first else items + [(backend.name, backend)]
    _BACKENDS.clear()
    _BACKENDS.update(items)


def available_backends() -> List[str]:
    """Backend names in the order :func:`select` tries them."""
    return list(_BACKENDS)


def get_backend(name: str) -> Backend:
    """The registered backend called ``name``."""
    if name not in _BACKENDS:
        raise BackendError(f"unknown gatlib backend {name!r}; choose one of "
                           f"{available_backends()}")
    return _BACKENDS[name]


def _forced() -> Optional[str]:
    name = (_FORCED[-1] if _FORCED else None) or os.environ.get("GATLIB_BACKEND") or None
    if name is not None and name not in _BACKENDS:
        raise BackendError(f"unknown gatlib backend {name!r} (from GATLIB_BACKEND or "
                           f"use_backend); choose one of {available_backends()}")
    return name


def select_backend(op: str, device: torch.device, dtype: torch.dtype,
                   head_dim: int = 0) -> Backend:
    """The backend that runs ``op`` for inputs on ``device`` of ``dtype``."""
    forced = _forced()
    if forced is not None:
        backend = _BACKENDS[forced]
        reasons = backend.why_not(op, device, dtype, head_dim, forced=True)
        if reasons:
            raise BackendError(f"backend {forced!r} was forced but cannot run {op} here: "
                               + "; ".join(reasons)
                               + ". Unset GATLIB_BACKEND or choose another backend.")
        return backend
    for backend in _BACKENDS.values():
        if not backend.why_not(op, device, dtype, head_dim):
            return backend
    raise BackendError(f"no gatlib backend can run {op} on {device} with {dtype}")


def offered(op: str, device: torch.device, dtype: torch.dtype) -> Optional[Callable]:
    """The callable of an op that only some backends offer (e.g. ``"gatv2_score"``, the CPU's
    native GATv2 score): the first backend that has it and runs on ``device`` and ``dtype`` (only
    the forced one when a backend is forced); None when none does, and the caller computes it
    another way."""
    forced = _forced()
    for backend in ([_BACKENDS[forced]] if forced is not None else _BACKENDS.values()):
        if op in backend.ops and not backend.why_not(op, device, dtype,
                                                     forced=forced is not None):
            return backend.call(op)
    return None


def select(op: str, device: torch.device, dtype: torch.dtype, head_dim: int = 0) -> str:
    """Name of the backend that runs ``op`` for inputs on ``device`` of ``dtype``."""
    return select_backend(op, device, dtype, head_dim).name


@contextlib.contextmanager
def use_backend(name: Optional[str]) -> Iterator[None]:
    """Force a backend inside a ``with`` block (``None`` restores automatic choice)."""
    if name is not None and name not in _BACKENDS:
        raise BackendError(f"unknown gatlib backend {name!r}; choose one of "
                           f"{available_backends()}")
    _FORCED.append(name)
    try:
        yield
    finally:
        _FORCED.pop()


for _module in BACKEND_MODULES:
    register_backend(importlib.import_module(_module).BACKEND)
