"""Backend choice, in one place.

The backends are the modules listed in :data:`BACKEND_MODULES`, in search order; each exposes a
:class:`~gatlib.ops.backend.Backend` called ``BACKEND`` (what it can run, and its table of
kernels). Adding a backend means one new module and one line here. :func:`select_backend` picks
the first backend that fits the call and, for a backend with a self-check (Triton), whose
kernels passed it on this device model and dtype (:mod:`gatlib.ops.selfcheck`); a family that
failed goes to the next backend, with one warning line. A user forces one with the environment
variable ``GATLIB_BACKEND`` or, within a block, with ``with gatlib.ops.use_backend("cpu"):``
(a forced backend is not self-checked); a forced backend that does not fit, or a call no
backend fits, raises an error that lists every reason. :func:`backend_report` (``gatlib
doctor``) prints what runs where and why.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import sys
import warnings
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch

from .._checks import compiling
from .backend import Backend

__all__ = ["Backend", "BACKEND_MODULES", "register_backend", "available_backends",
           "get_backend", "select", "select_backend", "use_backend", "offered", "BackendError",
           "self_check", "backend_report", "diagnose"]

# The backends, in the order select tries them: the GPU first, the reference (any device, the
# spec) last.
BACKEND_MODULES = (
    "gatlib.ops.triton",
    "gatlib.ops.cpu",
    "gatlib.ops.reference_backend",
)


class BackendError(ValueError):
    """A forced backend cannot run the call, or no backend can (the message lists why)."""


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
    failed = None
    for backend in _BACKENDS.values():
        if backend.why_not(op, device, dtype, head_dim):
            continue
        if backend.self_check is not None:
            reason = backend.self_check(op, device, dtype)
            if reason:
                failed = failed or (backend.name, reason)
                continue
        if failed is not None:
            _warn_fallback(failed, backend.name, op, device, dtype)
        return backend
    raise BackendError(f"no gatlib backend can run {op} on {device} with {dtype}: "
                       + "; ".join(f"{name}: {'; '.join(why)}" for name, why
                                   in _all_reasons(op, device, dtype, head_dim)))


def _all_reasons(op: str, device: torch.device, dtype: torch.dtype,
                 head_dim: int) -> List[Tuple[str, List[str]]]:
    """Every backend's reasons not to run the call (its self-check's included)."""
    out = []
    for backend in _BACKENDS.values():
        why = backend.why_not(op, device, dtype, head_dim)
        if not why and backend.self_check is not None:
            why = [r for r in [backend.self_check(op, device, dtype)] if r]
        out.append((backend.name, why))
    return out


_WARNED: set = set()


def _warn_fallback(failed: Tuple[str, str], chosen: str, op: str, device: torch.device,
                   dtype: torch.dtype) -> None:
    """One warning line per backend, op, device and dtype whose self-check failed."""
    if compiling():
        return
    key = (failed[0], op, device.type, device.index, dtype)
    if key in _WARNED:
        return
    _WARNED.add(key)
    what = failed[1].replace("self-check failed: ", "", 1)
    warnings.warn(f"gatlib: the {failed[0]} kernels of {op} ({dtype}) on {device} failed their "
                  f"self-check ({what}); gatlib runs {op} on the {chosen} backend instead. "
                  f"Please report this as a gatlib issue with the output of `gatlib doctor` "
                  f"(GATLIB_BACKEND={failed[0]} forces the kernels).", RuntimeWarning,
                  stacklevel=4)


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


# ----------------------------------------------------------------------------- diagnosis

_REPORT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _default_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _as_device(device) -> torch.device:
    device = _default_device() if device is None else torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def self_check(device=None, dtypes: Sequence[torch.dtype] = (torch.float32,),
               ops: Optional[Sequence[str]] = None) -> Dict[Tuple[str, str, torch.dtype], str]:
    """Run (or read) the self-checks that automatic choice would ask for ``ops`` (default: all
    with a self-check) x ``dtypes`` on ``device`` (default: the current GPU, else the CPU), now
    and in eager mode, e.g. before ``torch.compile`` traces a model (the check never runs
    while it traces). Returns ``{(backend, op, dtype): ""}`` for a pass, else the reason."""
    from .selfcheck import FAMILIES
    device = _as_device(device)
    out = {}
    for backend in _BACKENDS.values():
        if backend.self_check is None:
            continue
        for dtype in dtypes:
            for op in (ops or FAMILIES):
                if not backend.why_not(op, device, dtype):
                    out[(backend.name, op, dtype)] = backend.self_check(op, device, dtype)
    return out


def _verdict_note(backend: Backend, op: str, device: torch.device, dtype: torch.dtype) -> str:
    rec = backend.self_check.known(op, device, dtype) if hasattr(backend.self_check,
                                                                 "known") else None
    if rec is None:
        return ""
    where = ("checked now" if rec.source == "checked now" else f"verdict read from {rec.source}")
    return f"({where}, {rec.verdict.seconds:.1f} s)"


def diagnose(device=None, dtypes: Optional[Sequence[torch.dtype]] = None,
             check: bool = True) -> Tuple[str, int]:
    """``(report, failed)``: the text of :func:`backend_report` and the number of self-checks
    that failed."""
    from .. import __version__
    from .selfcheck import FAMILIES, describe_device
    device = _as_device(device)
    dtypes = tuple(dtypes or _REPORT_DTYPES)
    try:
        import triton
        triton_version = triton.__version__
    except ImportError:
        triton_version = "not installed"
    lines = [f"gatlib {__version__}, torch {torch.__version__}, triton {triton_version}; "
             f"device {device}: {describe_device(device)}"]
    from .. import native
    lines.append(f"native CPU library: {native.status()}")
    lines.append("backends, in the order automatic choice tries them:")
    for backend in _BACKENDS.values():
        missing = backend.available()
        note = missing or "available"
        folder = getattr(backend.self_check, "folder", None)
        if backend.self_check is not None and not missing:
            note += "; self-checked before automatic use" + (
                f", verdicts in {folder()}" if folder is not None else "")
        lines.append(f"  {backend.name:<10} {note}")
    forced = (_FORCED[-1] if _FORCED else None) or os.environ.get("GATLIB_BACKEND") or None
    lines.append(f"forced backend: {forced} (GATLIB_BACKEND or use_backend; the self-check is "
                 f"skipped)" if forced else "forced backend: none (automatic choice)")
    lines.append(f"{'op':<17} {'dtype':<9} {'runs on':<10} why (and why not the backends "
                 f"before it, [n]: see below)")
    failed, notes = 0, {}
    ops = list(FAMILIES) + [op for b in _BACKENDS.values() for op in sorted(b.ops)
                            if op not in FAMILIES]
    for dtype in dtypes:
        for op in dict.fromkeys(ops):
            passed_over, chosen, note = [], None, ""
            for backend in _BACKENDS.values():
                if forced is not None and backend.name != forced:
                    continue
                why = backend.why_not(op, device, dtype, forced=forced is not None)
                if not why and backend.self_check is not None and forced is None:
                    known = getattr(backend.self_check, "known", lambda *a: None)
                    if check or known(op, device, dtype) is not None:
                        reason = backend.self_check(op, device, dtype)
                        if reason:
                            failed += reason.startswith("self-check failed")
                            why = [reason + " " + _verdict_note(backend, op, device, dtype)]
                        else:
                            note = "self-check passed " + _verdict_note(backend, op, device,
                                                                         dtype)
                    else:
                        note = "self-check pending (runs on first use)"
                if why:
                    text = "; ".join(why)
                    passed_over.append(f"{backend.name} [{notes.setdefault(text, len(notes) + 1)}]")
                    continue
                chosen = backend.name
                break
            if forced is not None and chosen is not None:
                note = "forced (not self-checked)"
            name = str(dtype).replace("torch.", "")
            why_text = ", ".join(([note] if note else []) + (
                [f"not {', '.join(passed_over)}"] if passed_over else [])) or "first that fits"
            lines.append(f"{op:<17} {name:<9} {chosen or 'NONE':<10} {why_text}")
    lines += [f"[{i}] {text}" for text, i in notes.items()]
    return "\n".join(lines), failed


def backend_report(device=None, dtypes: Optional[Sequence[torch.dtype]] = None,
                   check: bool = True, file=sys.stdout) -> str:
    """Print (to ``file``; None: only return) which backend runs each op and dtype on
    ``device`` (default: the current GPU, else the CPU) and why the backends before it do
    not: their unmet requirements and the self-checks' verdicts (run now where none is known
    yet, unless ``check=False``). ``dtypes`` default: float32, bfloat16, float16."""
    text, _ = diagnose(device, dtypes, check)
    if file is not None:
        print(text, file=file)
    return text


for _module in BACKEND_MODULES:
    register_backend(importlib.import_module(_module).BACKEND)
