"""The native library's ABI, in one table: every C function gatlib calls, its arguments in the
C prototype's order with their C types, and for each array its element type and length.

The ctypes signatures are made from this table (:func:`declare`), and every call goes through
:func:`call`, which checks each tensor handed to C (dtype, device, contiguity, length) before
the C code sees its address. ``tests/native/test_abi.py`` parses the C prototypes, the score
kinds and the status codes from the sources and compares them with this module, so a
mismatch fails a test instead of corrupting memory.

This module imports nothing of gatlib and no torch at import time (the floor below the
graph); :func:`call` takes torch tensors.
"""
from __future__ import annotations

import ctypes
import enum
from typing import Callable, Dict, NamedTuple, Optional, Tuple

__all__ = ["ScoreKind", "STATUS", "CODES", "Arg", "FUNCTIONS", "REALS", "declare", "call",
           "check_status", "NativeIndexError"]


class ScoreKind(enum.IntEnum):
    """The score kinds of the attention kernels, shared by the C code (``KIND_*`` in
    ``gatlib_native.c``), the CPU backend and the Triton kernels (their ``KIND`` constexpr)."""

    GAT = 0        # leaky_relu(a_src[j] + a_dst[i] (+ edge score))
    DOT = 1        # scale * <q_i, k_j> (+ bias)
    ATTEND = 2     # given scores


# The kernels' status codes (``GATLIB_*`` in gatlib_native.c): 0, or the array that was broken.
STATUS: Dict[int, str] = {
    0: "ok",
    -1: "no memory",
    -2: "rowptr",
    -3: "col",
    -4: "perm",
    -5: "rowptr_t",
    -6: "col_t",
    -7: "perm_t",
    -8: "degree",
    -9: "frontier",
    -10: "capacity",
    -11: "threshold",
}

# The same, by what was broken: the code a check in Python reports as the kernel would.
CODES: Dict[str, int] = {what: code for code, what in STATUS.items()}

_WHAT = {
    "rowptr": "must rise from 0 to E (the number of edges), one entry per target + 1",
    "col": "has a source index outside [0, S)",
    "perm": "has an edge id outside [0, E)",
    "rowptr_t": "must rise from 0 to E, one entry per source + 1",
    "col_t": "has a target index outside [0, T)",
    "perm_t": "has an edge position outside [0, E)",
    "degree": "has a target with more in-edges than the largest degree passed (ld)",
    "frontier": "(the nodes a sampling hop expands) has a node id outside [0, N)",
    "capacity": "has more in-edges than were counted before the hop (it changed meanwhile)",
    "threshold": "(dropout's byte and 32-bit thresholds) is out of range",
}


class NativeIndexError(ValueError):
    """A native kernel found a broken index in the graph it was given (nothing was read or
    written out of bounds)."""


class Arg(NamedTuple):
    """One argument: its C name, its type (``int``, ``int64``, ``real``, or an array
    ``int64*``, ``real*``, ``uint8*``), and for an array its length as a function of the
    call's integer arguments and whether it may be NULL (None)."""

    name: str
    type: str
    length: Optional[Callable[[dict], int]] = None
    optional: bool = False


def _a(name: str, type: str, length=None, optional: bool = False) -> Arg:
    return Arg(name, type, length, optional)


def _n(*names: str) -> Callable[[dict], int]:
    """The length ``prod(a[name])``."""
    if len(names) == 1:
        (x,) = names
        return lambda a: a[x]
    if len(names) == 2:
        x, y = names
        return lambda a: a[x] * a[y]
    x, y, z = names
    return lambda a: a[x] * a[y] * a[z]


_I, _I64, _R = "int", "int64", "real"
_PI64, _PR, _PU8 = "int64*", "real*", "uint8*"
_E, _EH = _n("E"), _n("E", "H")


def _plus_one(name: str) -> Callable[[dict], int]:
    return lambda a: a[name] + 1


# The functions, by name (a "_f32"/"_f64" suffix is added to those of type "real"), with their
# return type and arguments in the C prototype's order.
FUNCTIONS: Dict[str, Tuple[str, bool, Tuple[Arg, ...]]] = {
    # (return type, per real type, arguments)
    "gatlib_native_version": (_I, False, ()),
    "gatlib_build_csr": (_I64, False, (
        _a("src", _PI64, _E), _a("dst", _PI64, _E), _a("E", _I64), _a("S", _I64),
        _a("T", _I64), _a("loops", _I), _a("L", _I64),
        _a("rowptr", _PI64, _plus_one("T")), _a("col", _PI64, lambda a: a["E"] + a["L"]),
        _a("row", _PI64, lambda a: a["E"] + a["L"]),
        _a("perm", _PI64, lambda a: a["E"] + a["L"]),
        _a("rowptr_t", _PI64, _plus_one("S")),
        _a("col_t", _PI64, lambda a: a["E"] + a["L"]),
        _a("perm_t", _PI64, lambda a: a["E"] + a["L"]),
        _a("keep", _PI64, _E),
        _a("cnt", _PI64, lambda a: (a["nthreads"] + 1) * (max(a["S"], a["T"]) + 1)),
        _a("pairs", _PI64, lambda a: 2 * (a["E"] + a["L"])), _a("nthreads", _I))),
    "gatlib_sample_hop": (_I64, False, (
        _a("rowptr", _PI64, _plus_one("N")), _a("col", _PI64, _E), _a("perm", _PI64, _E),
        _a("N", _I64), _a("E", _I64), _a("frontier", _PI64, _n("n")), _a("n", _I64),
        _a("k", _I64), _a("replace", _I), _a("seed", _I64), _a("begin", _I64),
        _a("local", _PI64, _n("N")), _a("count", _I64), _a("M", _I64),
        _a("src_local", _PI64, _n("M")), _a("tgt", _PI64, _n("M")),
        _a("edge", _PI64, _n("M")), _a("new_nodes", _PI64, _n("M")))),
    "gatlib_keep_bytes": (_I, False, (
        _a("n", _I64), _a("seed", _I64), _a("a", _I64), _a("b", _I64),
        _a("out", _PU8, _n("n")), _a("nthreads", _I))),
    "gatlib_keep_factor": (_I, True, (
        _a("n", _I64), _a("seed", _I64), _a("a", _I64), _a("b", _I64), _a("one", _R),
        _a("out", _PR, _n("n")), _a("nthreads", _I))),
    "gatlib_dropout": (_I, True, (
        _a("n", _I64), _a("seed", _I64), _a("a", _I64), _a("b", _I64), _a("one", _R),
        _a("x", _PR, _n("n")), _a("out", _PR, _n("n")), _a("nthreads", _I))),
    "attention_forward": (_I, True, (
        _a("kind", _I), _a("T", _I64), _a("S", _I64), _a("E", _I64), _a("H", _I64),
        _a("D", _I64), _a("C", _I64),
        _a("rowptr", _PI64, _plus_one("T")), _a("col", _PI64, _E), _a("perm", _PI64, _E),
        _a("q", _PR, _n("T", "H", "D"), True), _a("k", _PR, _n("S", "H", "D"), True),
        _a("v", _PR, _n("S", "H", "C")), _a("term", _PR, _EH, True),
        _a("mask", _PU8, _EH, True), _a("keep_scale", _R), _a("param", _R),
        _a("out", _PR, _n("T", "H", "C")), _a("lse_out", _PR, _n("H", "T")),
        _a("alpha_out", _PR, _EH, True),
        _a("scratch", _PR, lambda a: a["E"] * a["H"] + a["H"] * a["T"]),
        _a("nthreads", _I), _a("min_parallel", _I64))),
    "attention_backward": (_I, True, (
        _a("kind", _I), _a("T", _I64), _a("S", _I64), _a("E", _I64), _a("H", _I64),
        _a("D", _I64), _a("C", _I64),
        _a("rowptr", _PI64, _plus_one("T")), _a("col", _PI64, _E), _a("perm", _PI64, _E),
        _a("rowptr_t", _PI64, _plus_one("S")), _a("col_t", _PI64, _E),
        _a("perm_t", _PI64, _E),
        _a("q", _PR, _n("T", "H", "D"), True), _a("k", _PR, _n("S", "H", "D"), True),
        _a("v", _PR, _n("S", "H", "C")), _a("term", _PR, _EH, True),
        _a("mask", _PU8, _EH, True), _a("keep_scale", _R), _a("param", _R),
        _a("lse_in", _PR, _n("H", "T")), _a("grad_out", _PR, _n("T", "H", "C")),
        _a("grad_alpha", _PR, _EH, True),
        _a("grad_q", _PR, _n("T", "H", "D"), True), _a("grad_k", _PR, _n("S", "H", "D"), True),
        _a("grad_v", _PR, _n("S", "H", "C")), _a("grad_term", _PR, _EH, True),
        _a("scratch", _PR, lambda a: 2 * a["E"] * a["H"]), _a("ld", _I64),
        _a("nthreads", _I), _a("min_parallel", _I64))),
    "gatv2_score_forward": (_I, True, (
        _a("T", _I64), _a("S", _I64), _a("E", _I64), _a("H", _I64), _a("C", _I64),
        _a("rowptr", _PI64, _plus_one("T")), _a("col", _PI64, _E), _a("perm", _PI64, _E),
        _a("xs", _PR, _n("S", "H", "C")), _a("xd", _PR, _n("T", "H", "C")),
        _a("xe", _PR, _n("E", "H", "C"), True), _a("att", _PR, _n("H", "C")),
        _a("slope", _R), _a("score", _PR, _EH))),
    "gatv2_score_backward_targets": (_I, True, (
        _a("T", _I64), _a("S", _I64), _a("E", _I64), _a("H", _I64), _a("C", _I64),
        _a("rowptr", _PI64, _plus_one("T")), _a("col", _PI64, _E), _a("perm", _PI64, _E),
        _a("xs", _PR, _n("S", "H", "C")), _a("xd", _PR, _n("T", "H", "C")),
        _a("xe", _PR, _n("E", "H", "C"), True), _a("att", _PR, _n("H", "C")),
        _a("slope", _R), _a("g", _PR, _EH), _a("g_xd", _PR, _n("T", "H", "C")),
        _a("g_att", _PR, _n("H", "C")), _a("g_xe", _PR, _n("E", "H", "C"), True))),
    "gatv2_score_backward_sources": (_I, True, (
        _a("T", _I64), _a("S", _I64), _a("E", _I64), _a("H", _I64), _a("C", _I64),
        _a("rowptr_t", _PI64, _plus_one("S")), _a("col_t", _PI64, _E),
        _a("perm_t", _PI64, _E), _a("perm", _PI64, _E),
        _a("xs", _PR, _n("S", "H", "C")), _a("xd", _PR, _n("T", "H", "C")),
        _a("xe", _PR, _n("E", "H", "C"), True), _a("att", _PR, _n("H", "C")),
        _a("slope", _R), _a("g", _PR, _EH), _a("g_xs", _PR, _n("S", "H", "C")))),
}

# The real types: name suffix, ctypes type (the torch dtype is looked up at call time).
REALS = {"_f32": ctypes.c_float, "_f64": ctypes.c_double}
_SCALARS = {_I: ctypes.c_int, _I64: ctypes.c_int64}


def _ctype(type_: str, real):
    if type_.endswith("*"):
        return ctypes.c_void_p
    return real if type_ == _R else _SCALARS[type_]


def declare(lib) -> None:
    """Set every function's ctypes ``argtypes`` and ``restype`` from :data:`FUNCTIONS`."""
    for name, (ret, per_real, args) in FUNCTIONS.items():
        for suffix, real in (REALS.items() if per_real else [("", None)]):
            fn = getattr(lib, name + suffix)
            fn.argtypes = [_ctype(a.type, real) for a in args]
            fn.restype = _SCALARS[ret]


_PLANS: Dict[tuple, tuple] = {}


def _plan(lib, name: str, suffix: str) -> tuple:
    """``(C function, return type, per-argument (name, dtype or None for a scalar, length,
    optional))`` of one function and real type, made once per library."""
    key = (lib, name, suffix)                 # holds the library: its functions stay valid
    plan = _PLANS.get(key)
    if plan is None:
        import torch
        dtypes = {_PI64: torch.int64, _PU8: torch.uint8,
                  _PR: {"_f32": torch.float32, "_f64": torch.float64}.get(suffix)}
        ret, _, args = FUNCTIONS[name]
        plan = _PLANS[key] = (getattr(lib, name + suffix), ret, tuple(
            (a.name, dtypes.get(a.type), a.length, a.optional) for a in args))
    return plan


def _bad(fn: str, arg: str, want, n: int, t) -> TypeError:
    got = (type(t).__name__ if not hasattr(t, "dtype")
           else f"{t.dtype} {tuple(t.shape)} on {t.device}"
                f"{'' if t.is_contiguous() else ', not contiguous'}")
    return TypeError(f"gatlib native call {fn}: argument {arg} must be a contiguous "
                     f"{want} CPU tensor of {n} elements, got {got}")


def call(lib, name: str, suffix: str = "", **kwargs) -> int:
    """Call ``name + suffix`` of ``lib`` with the keyword arguments of its table entry; every
    array (a torch tensor, or None where the entry is optional) is checked for dtype, device
    (CPU), contiguity and exact length first (TypeError naming the argument). Returns the C
    function's result; a negative status of a kernel (type ``int``) raises
    :class:`NativeIndexError` (a broken graph array) or :class:`MemoryError`."""
    fn, ret, args = _plan(lib, name, suffix)
    values = []
    for arg, want, length, optional in args:
        x = kwargs[arg]
        if length is not None:
            if x is None:
                if not optional:
                    raise TypeError(f"gatlib native call {name}: argument {arg} is required")
            else:
                n = length(kwargs)
                if (getattr(x, "dtype", None) is not want or not x.is_cpu
                        or not x.is_contiguous() or x.numel() != n):
                    raise _bad(name + suffix, arg, want, n, x)
                x = x.data_ptr()
        values.append(x)
    res = fn(*values)
    if ret == _I and res < 0 and name != "gatlib_native_version":
        check_status(name, res)
    return res


def check_status(name: str, status: int) -> None:
    """Raise for a kernel's negative status: MemoryError, or :class:`NativeIndexError` naming
    the graph array that was broken."""
    what = STATUS.get(status, f"unknown status {status}")
    if what == "no memory":
        raise MemoryError(f"gatlib's native CPU kernels ({name}) could not allocate their "
                          f"scratch; free memory or run with GATLIB_NATIVE=0")
    raise NativeIndexError(
        f"gatlib native kernel {name}: the graph's {what} {_WHAT.get(what, '')}; the graph "
        f"tensors were changed or built by hand: build the graph with "
        f"gatlib.graph.to_csr(edge_index, num_nodes) and do not edit its fields")
