"""Validation of graph inputs: every public entry point checks its arguments here, so bad input
fails with an error that names the argument and the fix instead of deep inside a kernel."""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

__all__ = [
    "check_positive_int",
    "check_real",
    "check_edge_index",
    "check_index_range",
    "require",
    "check_num_nodes",
    "check_same_device",
    "check_tensor",
]


def check_positive_int(value, name: str) -> int:
    """Return ``value``, or raise if it is not an integer ``>= 1`` (naming ``name``)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= 1, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value}")
    return value


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


def check_index_range(index: Tensor, bound, name: str, hint: str = "") -> None:
    """Raise a ValueError naming ``name`` unless every entry of ``index`` lies in ``[0, bound)``.

    O(E) and cheap next to any attention over the edges; under ``torch.compile`` the check is a
    graph op (see :func:`require`), whose message leaves out the bound (formatting a traced
    size would fix its value)."""
    if index.numel() == 0:
        return
    if compiling():
        torch._assert_async(((index >= 0) & (index < bound)).all(),
                            f"{name} holds a node index out of range{hint}")
        return
    lo, hi = int(index.min()), int(index.max())
    if lo < 0:
        raise ValueError(f"{name} contains a negative node index ({lo}); node indices must lie in "
                         f"[0, {bound}){hint}")
    if hi >= bound:
        raise ValueError(f"{name} contains node index {hi} but there are only {bound} "
                         f"nodes{hint}")


def check_edge_index(edge_index: Tensor, num_nodes: Optional[int] = None,
                     name: str = "edge_index", num_dst_nodes: Optional[int] = None) -> int:
    """Check that ``edge_index`` is a ``LongTensor [2, E]`` with entries in range.

    Under ``torch.compile`` the range check is a graph op (no graph break), so ``num_nodes``
    must then be given.

    Args:
        edge_index: the graph, row 0 = source j, row 1 = target i.
        num_nodes: number of (source) nodes; inferred as ``max + 1`` when None.
        name: the argument name used in error messages.
        num_dst_nodes: number of target nodes for bipartite graphs (default ``num_nodes``).

    Returns:
        ``num_nodes`` as an int (inferred when it was None).
    """
    if not isinstance(edge_index, Tensor):
        raise TypeError(f"{name} must be a torch.LongTensor of shape [2, E], "
                        f"got {type(edge_index).__name__}")
    if edge_index.layout != torch.strided:
        raise TypeError(f"{name} must be a dense LongTensor [2, E] here, got a sparse tensor "
                        f"(layout {edge_index.layout}); the attention ops and layers take a sparse "
                        f"adjacency directly, elsewhere convert it with "
                        f"torch_geometric.utils.to_edge_index(adj.t())")
    if edge_index.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{name} must have an integer dtype (torch.long), got {edge_index.dtype}; "
                        f"convert it with {name}.long()")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"{name} must have shape [2, E] (row 0 = source, row 1 = target), got "
                         f"{tuple(edge_index.shape)}; if it is [E, 2], pass {name}.t()")
    E = edge_index.size(1)
    if num_nodes is None:
        num_nodes = int(edge_index.max()) + 1 if E > 0 else 0
    num_nodes = check_num_nodes(num_nodes)
    n_dst = num_nodes if num_dst_nodes is None else check_num_nodes(num_dst_nodes,
                                                                    "num_dst_nodes")
    if E > 0 and compiling():
        check_index_range(edge_index[0], num_nodes, f"{name}[0] (sources)")
        check_index_range(edge_index[1], n_dst, f"{name}[1] (targets)")
    elif E > 0:
        lo = int(edge_index.min())
        if lo < 0:
            raise ValueError(f"{name} contains a negative node index ({lo}); node indices must "
                             f"lie in [0, num_nodes)")
        hi_src, hi_dst = (int(m) for m in edge_index.max(dim=1).values)
        if hi_src >= num_nodes:
            raise ValueError(f"{name}[0] (sources) contains node index {hi_src} but num_nodes is "
                             f"{num_nodes}; pass the right num_nodes or fix the edges")
        if hi_dst >= n_dst:
            raise ValueError(f"{name}[1] (targets) contains node index {hi_dst} but the graph has "
                             f"{n_dst} target nodes; pass the right num_nodes or fix the edges")
    return num_nodes


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
