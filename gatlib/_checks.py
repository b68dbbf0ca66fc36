"""Generic argument checks, the ground floor of gatlib: they import nothing from gatlib, and
every floor above (graph, ops, nn, pe, data) checks its arguments with them, so bad input fails
with an error that names the argument and the fix instead of deep inside a kernel. The checks
specific to graphs (``check_edge_index``...) live in :mod:`gatlib.graph.validate`."""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

__all__ = [
    "ArgumentTypeError",
    "check_positive_int",
    "check_num_nodes",
    "check_real",
    "check_probability",
    "compiling",
    "require",
    "check_tensor",
    "check_same_device",
    "versions",
]


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type. Both a ``TypeError`` and a ``ValueError``: the checks it
    replaced raised one or the other, and callers catch either."""


def check_positive_int(value, name: str, minimum: int = 1, optional: bool = False):
    """Return ``value`` as an int, or raise naming ``name`` if it is not an integer
    ``>= minimum`` (``None`` passes through when ``optional``). numpy integers count as
    integers; bools do not."""
    if optional and value is None:
        return None
    what = f"an int >= {minimum}" + (" or None" if optional else "")
    if isinstance(value, bool) or not isinstance(value, (int, _np_integer())):
        raise ArgumentTypeError(f"{name} must be {what}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return int(value)


def _np_integer():
    try:
        import numpy as np
        return np.integer
    except ImportError:  # pragma: no cover
        return int


def check_probability(value, name: str) -> float:
    """Return ``value`` as a float, or raise naming ``name`` unless it lies in ``[0, 1)`` (a
    dropout probability)."""
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must lie in [0, 1), got {value}")
    return float(value)


def check_num_nodes(num_nodes, name: str = "num_nodes") -> int:
    """Return ``num_nodes`` as a Python int, or raise if it is not a non-negative integer."""
    if isinstance(num_nodes, Tensor):
        if num_nodes.numel() != 1 or num_nodes.dtype.is_floating_point:
            raise TypeError(f"{name} must be a non-negative int, got a tensor of shape "
                            f"{tuple(num_nodes.shape)} and dtype {num_nodes.dtype}")
        num_nodes = int(num_nodes.item())
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, (int, torch.SymInt)):
        raise TypeError(f"{name} must be a non-negative int, got {type(num_nodes).__name__}")
    if num_nodes < 0:
        raise ValueError(f"{name} must be a non-negative int, got {num_nodes}")
    return num_nodes


def check_real(value, name: str, positive: bool = False, finite: bool = True) -> float:
    """Return ``value`` as a float, or raise naming ``name`` if it is not a real number, is NaN,
    is infinite (when ``finite``), or is not ``> 0`` (when ``positive``). Plain comparisons
    only, so torch.compile traces it (with a guard) instead of breaking the graph."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise TypeError(f"{name} must be a number, got a tensor of shape "
                            f"{tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, torch.SymInt,
                                                         torch.SymFloat)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if value != value:
        raise ValueError(f"{name} must be a number, got nan")
    if finite and (value == math.inf or value == -math.inf):
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def compiling() -> bool:
    """True while torch.compile traces the caller (checks then avoid reading tensor values on the
    host, which would break the graph)."""
    return torch.compiler.is_compiling()


def require(cond: Tensor, message) -> None:
    """Raise ``ValueError(message)`` unless the boolean tensor ``cond`` holds; ``message`` is a
    string or a zero-argument function that builds it (only called on failure).

    Under ``torch.compile`` this becomes ``torch._assert_async`` (a graph op, no host sync and
    no graph break), which raises a ``RuntimeError`` when it fails; its message is then the
    string, or a generic one for a function (formatting a traced size would fix its value)."""
    if compiling():
        text = message if isinstance(message, str) else "gatlib input check failed"
        torch._assert_async(cond, text)
    elif not bool(cond):
        raise ValueError(message if isinstance(message, str) else message())


def check_tensor(x, name: str, dim: Optional[int] = None, floating: bool = True,
                 shape: Optional[tuple] = None) -> Tensor:
    """Check type, rank, dtype and (partial) shape of a tensor argument.

    ``shape`` may hold ``None`` for sizes that are not constrained.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if dim is not None and x.dim() != dim:
        want = "" if shape is None else " " + _fmt_shape(shape)
        raise ValueError(f"{name} must be {dim}-dimensional{want}, got shape {tuple(x.shape)}")
    if floating and not x.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}; "
                        f"convert it with {name}.float()")
    if shape is not None:
        for d, (got, want) in enumerate(zip(x.shape, shape)):
            if want is not None and got != want:
                raise ValueError(f"{name} must have shape {_fmt_shape(shape)}, got "
                                 f"{tuple(x.shape)} (size {got} != {want} in dim {d})")
    return x


def versions(tensors) -> tuple:
    """The tensors' version counters (bumped by every in-place edit through torch), to tell
    later whether one was edited; None for an inference tensor, which has none."""
    out = []
    for t in tensors:
        try:
            out.append(t._version)
        except RuntimeError:
            out.append(None)
    return tuple(out)


def check_same_device(**tensors: Optional[Tensor]) -> torch.device:
    """Raise a ValueError naming the arguments when the given tensors are on different devices."""
    devices = {name: t.device for name, t in tensors.items() if t is not None}
    if len(set(devices.values())) > 1:
        listing = ", ".join(f"{n} on {d}" for n, d in devices.items())
        raise ValueError(f"all tensors must be on the same device, got {listing}; move them "
                         f"with .to(device)")
    return next(iter(devices.values()))


def _fmt_shape(shape: tuple) -> str:
    return "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
