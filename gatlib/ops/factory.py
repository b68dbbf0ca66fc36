"""One definition of each public op, instantiated for every backend.

An op's arguments, its fake (meta) implementation, its backward's arguments and its autograd
are written here once (:data:`ATTENTION_OPS`, :data:`SOFTMAX_ARGS`); a backend supplies only
its kernels (:class:`~gatlib.ops.backend.Kernels`) and :func:`make_backend` registers them as
``torch.library`` custom ops ``gatlib::<prefix><op>`` and ``gatlib::<prefix><op>_backward``
(so they work under ``torch.compile`` and pass ``torch.library.opcheck``). A table whose
kernels have no backward (the reference) is plain differentiable PyTorch and is called as is.

The attention ops share one shape: tensors before the graph, ``Tensor[] graph``, then per-edge
tensors and numbers, and last ``bool return_attention``; outputs ``(out [T, H, C], lse [H, T],
alpha [E, H] or [0, H])``. Their backward takes ``(grad_out, grad_alpha, <tensors before the
graph>, lse, graph, <the rest but return_attention>)`` and returns one gradient per entry of
``grads`` (an empty tensor for an absent optional input).
"""
from __future__ import annotations

from typing import Callable, Dict, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch.utils._python_dispatch import is_in_torch_dispatch_mode

from .._checks import versions
from .backend import Backend, Kernels
from .graph_args import GRAPH_TENSORS, CSRTensors

__all__ = ["OpSpec", "ATTENTION_OPS", "SOFTMAX_ARGS", "make_backend", "acc_dtype"]

_GRAPH = "Tensor[] graph"


class OpSpec(NamedTuple):
    """An attention op: its argument schema (one entry per argument, ``"Tensor q"``) and the
    positions of the arguments that get a gradient, in the order its backward returns them."""

    args: Tuple[str, ...]
    grads: Tuple[int, ...]

    @property
    def graph_at(self) -> int:
        return self.args.index(_GRAPH)

    def schema(self) -> str:
        return "(" + ", ".join(self.args) + ") -> (Tensor, Tensor, Tensor)"

    def backward_schema(self) -> str:
        g = self.graph_at
        args = (("Tensor grad_out", "Tensor? grad_alpha") + self.args[:g] + ("Tensor lse",)
                + self.args[g:-1])
        return "(" + ", ".join(args) + ") -> (" + ", ".join(["Tensor"] * len(self.grads)) + ")"

    def is_tensor(self, i: int) -> bool:
        return self.args[i].startswith("Tensor")


_TAIL = ("Tensor? dropout_mask",)
ATTENTION_OPS: Dict[str, OpSpec] = {
    # Additive (GAT) score from per-node halves: leaky_relu(a_src[j] + a_dst[i] + edge_score).
    "gat_attention": OpSpec(("Tensor a_src", "Tensor a_dst", "Tensor v", _GRAPH,
                             "Tensor? edge_score") + _TAIL
                            + ("float negative_slope", "float dropout", "bool return_attention"),
                            (0, 1, 2, 4)),
    # Scaled dot product: scale * q_i . k_j + bias.
    "sparse_attention": OpSpec(("Tensor q", "Tensor k", "Tensor v", _GRAPH, "Tensor? bias")
                               + _TAIL + ("float scale", "float dropout",
                                          "bool return_attention"),
                               (0, 1, 2, 4)),
    # Given scores [E, H]: softmax over in-edges and weighted sum of v.
    "attend": OpSpec(("Tensor score", "Tensor v", _GRAPH) + _TAIL
                     + ("float dropout", "bool return_attention"), (0, 1)),
}
SOFTMAX_ARGS = ("(Tensor src, Tensor index, int num_nodes) -> Tensor",
                "(Tensor grad, Tensor out, Tensor index, int num_nodes) -> Tensor")


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of the statistics (log-sum-exp): fp32 for fp16/bf16 inputs."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


# ------------------------------------------------------------------- fake implementations

def _attention_fake(spec: OpSpec) -> Callable:
    def fake(*args):
        graph, v = args[spec.graph_at], args[spec.graph_at - 1]
        T, H, C = graph[0].size(0) - 1, v.size(1), v.size(2)
        E = graph[1].size(0) if args[-1] else 0
        return (v.new_empty(T, H, C), args[0].new_empty(H, T, dtype=acc_dtype(args[0].dtype)),
                v.new_empty(E, H))
    return fake


def _backward_fake(spec: OpSpec) -> Callable:
    def fake(grad_out, grad_alpha, *args):
        inputs = _inputs_of_backward(spec, args)
        v = inputs[spec.graph_at - 1]
        return tuple(v.new_empty(0) if inputs[i] is None else torch.empty_like(inputs[i])
                     for i in spec.grads)
    return fake


def _inputs_of_backward(spec: OpSpec, args: Sequence) -> list:
    """The forward's arguments (``return_attention`` left out) from the backward's (``lse``
    removed)."""
    g = spec.graph_at
    return list(args[:g]) + list(args[g + 1:])


# ------------------------------------------------------------- the registered ops' checks

# Each tensor argument's shape in shape letters (T targets, S sources, E edges, H
# heads, C value and D key width), as the registered ops take them.
_SHAPES = {"a_src": "SH", "a_dst": "TH", "q": "THD", "k": "SHD", "v": "SHC", "score": "EH",
           "edge_score": "EH", "bias": "EH", "dropout_mask": "EH", "lse": "HT",
           "grad_out": "THC", "grad_alpha": "EH"}


def _names(args: Sequence[str]) -> list:
    return [a.split()[-1] for a in args]


def _check_graph(op: str, graph) -> Tuple[torch.device, Dict[str, int]]:
    """The graph argument: at least the seven CSR tensors, 1-D int64 on one device, with the
    lengths of one graph. Returns its device and sizes ``{T, S, E}``."""
    if not isinstance(graph, (list, tuple)) or len(graph) < GRAPH_TENSORS:
        raise TypeError(f"gatlib::{op}: graph must be the list of the seven CSR tensors of a "
                        f"GraphCSR (gatlib.ops.graph_args.graph_tensors(to_csr(edge_index)))")
    fields = graph[:GRAPH_TENSORS]
    device = fields[0].device if isinstance(fields[0], Tensor) else None
    for name, t in zip(CSRTensors._fields, fields):
        if not isinstance(t, Tensor) or t.dtype != torch.int64 or t.dim() != 1:
            got = (f"{t.dtype} {tuple(t.shape)}" if isinstance(t, Tensor)
                   else type(t).__name__)
            raise TypeError(f"gatlib::{op}: graph field {name} must be a 1-D int64 tensor, got "
                            f"{got}; build the graph with gatlib.graph.to_csr")
        if t.device != device:
            raise ValueError(f"gatlib::{op}: graph field {name} is on {t.device}, rowptr on "
                             f"{device}; keep the graph on one device")
    g = CSRTensors(*fields)
    if g.rowptr.numel() < 1 or g.rowptr_t.numel() < 1:
        raise ValueError(f"gatlib::{op}: graph fields rowptr and rowptr_t need at least one "
                         f"entry (number of nodes + 1)")
    E = g.col.numel()
    for name in ("row", "perm", "col_t", "perm_t"):
        if getattr(g, name).numel() != E:
            raise ValueError(f"gatlib::{op}: graph field {name} has "
                             f"{getattr(g, name).numel()} entries, col has {E} (one per edge)")
    return device, {"T": g.num_dst, "S": g.num_src, "E": E}


def check_op_args(op: str, names: Sequence[str], values: Sequence) -> None:
    """What a registered op (``torch.ops.gatlib.<op>``, forward or backward) checks before its
    kernels run, so a direct caller gets a ValueError or TypeError naming the argument instead
    of a kernel reading out of bounds: the graph's seven tensors (:func:`_check_graph`), every
    tensor's device (the graph's), dtype and shape (:data:`_SHAPES`, sizes agreeing across
    arguments) and the dropout probability. The graph's consistency (each permutation one, the
    two orders one graph) is the ``GraphCSR``'s contract, checked where it is built; the native
    kernels check every index they read besides."""
    device, sizes = _check_graph(op, values[names.index("graph")])
    for name, x in zip(names, values):
        letters = _SHAPES.get(name)
        if letters is None or x is None:
            if name == "dropout" and not 0.0 <= x <= 1.0:
                raise ValueError(f"gatlib::{op}: dropout must be in [0, 1], got {x}")
            continue
        if not isinstance(x, Tensor):
            raise TypeError(f"gatlib::{op}: {name} must be a tensor, got {type(x).__name__}")
        if name == "grad_alpha" and x.numel() == 0:
            continue
        if x.device != device:
            raise ValueError(f"gatlib::{op}: {name} is on {x.device}, the graph on {device}; "
                             f"move them to one device")
        if name == "dropout_mask":
            if x.dtype not in (torch.bool, torch.uint8):
                raise TypeError(f"gatlib::{op}: dropout_mask must be bool or uint8, got "
                                f"{x.dtype}")
        elif not x.dtype.is_floating_point:
            raise TypeError(f"gatlib::{op}: {name} must be a floating tensor, got {x.dtype}")
        shape = tuple(x.shape)
        if len(shape) != len(letters):
            raise ValueError(f"gatlib::{op}: {name} must have shape [{', '.join(letters)}], "
                             f"got {list(shape)}")
        for letter, n in zip(letters, shape):
            if sizes.setdefault(letter, n) != n:
                raise ValueError(f"gatlib::{op}: {name} has shape {list(shape)}, but "
                                 f"{letter} = {sizes[letter]} (from the graph or an earlier "
                                 f"argument; shape [{', '.join(letters)}])")


def _checked(op: str, names: Sequence[str], fn: Callable) -> Callable:
    """``fn`` behind :func:`check_op_args` (the registered op's implementation)."""
    def run(*args):
        check_op_args(op, names, args)
        return fn(*args)
    return run


def _backward_names(spec: OpSpec) -> list:
    g = spec.graph_at
    return (["grad_out", "grad_alpha"] + _names(spec.args[:g]) + ["lse"]
            + _names(spec.args[g:-1]))


# -------------------------------------------------------------------------------- autograd

def _save(ctx, spec: OpSpec, inputs: Sequence, lse: Tensor, graph_saved: bool) -> None:
    """Keep what the backward needs: the tensors before the graph, ``lse``, the optional
    per-edge tensors (saved), the numbers (on ctx) and the graph (saved, or on ctx)."""
    g = spec.graph_at
    post = range(g + 1, len(spec.args) - 1)
    tensors = [inputs[i] for i in post if spec.is_tensor(i)]
    graph = list(inputs[g])
    ctx.save_for_backward(*inputs[:g], lse, *tensors, *(graph if graph_saved else ()))
    ctx.numbers = [inputs[i] for i in post if not spec.is_tensor(i)]
    ctx.counts = (g, len(tensors))
    if not graph_saved:                    # edits between the passes are checked by hand
        ctx.graph, ctx.graph_versions = graph, versions(graph)


def _backward_args(ctx, spec: OpSpec, grad_out, grad_alpha) -> Tuple[list, list]:
    """``(the backward op's arguments, the forward's inputs)`` from what :func:`_save` kept."""
    g, n_t = ctx.counts
    saved = ctx.saved_tensors
    pre, lse, tensors = list(saved[:g]), saved[g], list(saved[g + 1:g + 1 + n_t])
    graph = list(saved[g + 1 + n_t:]) or ctx.graph
    if not saved[g + 1 + n_t:] and versions(graph) != ctx.graph_versions:
        raise ValueError("a graph tensor was edited in place between the forward and the "
                         "backward pass of a gatlib attention op (GraphCSR fields are "
                         "read-only); build a new graph instead")
    numbers = list(ctx.numbers)
    post = [tensors.pop(0) if spec.is_tensor(i) else numbers.pop(0)
            for i in range(g + 1, len(spec.args) - 1)]
    if grad_alpha is not None and grad_alpha.numel() == 0:
        grad_alpha = None
    args = [grad_out, grad_alpha] + pre + [lse, graph] + post
    return args, pre + [graph] + post


def _input_grads(spec: OpSpec, inputs: Sequence, grads: Sequence) -> list:
    """One entry per forward argument: the gradient, or None (no gradient, or no input)."""
    out = [None] * len(spec.args)
    for i, grad in zip(spec.grads, grads):
        out[i] = grad if inputs[i] is not None else None
    return out


def _register_autograd(spec: OpSpec, op, backward_op) -> None:
    def setup(ctx, inputs, output):
        _save(ctx, spec, inputs, output[1], graph_saved=True)

    def backward(ctx, grad_out, _grad_lse, grad_alpha):
        args, inputs = _backward_args(ctx, spec, grad_out, grad_alpha)
        grads = _input_grads(spec, inputs, backward_op(*args))
        grads[spec.graph_at] = [None] * len(inputs[spec.graph_at])   # the inputs' structure
        return tuple(grads)

    op.register_autograd(backward, setup_context=setup)


class _Eager(torch.autograd.Function):
    """An attention op's forward and backward kernels as one autograd node, without the
    dispatcher: the same outputs and gradients as the registered op, about 0.2 ms less per
    layer (the registered op's tensor-list argument costs a pytree walk per call)."""

    @staticmethod
    def forward(ctx, spec, kernels, *inputs):
        out, lse, alpha = kernels.forward(*inputs)
        _save(ctx, spec, inputs, lse, graph_saved=False)
        ctx.spec, ctx.kernels, ctx.out_shape = spec, kernels, out.shape
        ctx.mark_non_differentiable(lse)
        ctx.set_materialize_grads(False)
        return out, lse, alpha

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out, _grad_lse, grad_alpha):
        if grad_out is None:                   # only the weights were used
            grad_out = ctx.saved_tensors[ctx.counts[0] - 1].new_zeros(ctx.out_shape)
        args, inputs = _backward_args(ctx, ctx.spec, grad_out, grad_alpha)
        grads = ctx.kernels.backward(*args)
        return (None, None, *_input_grads(ctx.spec, inputs, grads))


def _plain(args: Sequence) -> bool:
    for a in args:
        if isinstance(a, list):
            if not _plain(a):
                return False
        elif a is not None and isinstance(a, Tensor) and type(a) is not Tensor:
            return False
    return True


def _eager_or_registered(spec: OpSpec, kernels: Kernels, registered) -> Callable:
    def call(*args):
        if (torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active()
                or is_in_torch_dispatch_mode() or not _plain(args)):
            return registered(*args)
        return _Eager.apply(spec, kernels, *args)
    return call


# --------------------------------------------------------------------------------- factory

def _define(name: str, schema: str, fn: Callable, fake: Callable, device_types):
    op = torch.library.custom_op(f"gatlib::{name}", fn, mutates_args=(),
                                 device_types=device_types, schema=schema)
    op.register_fake(fake)
    return op


def _define_attention(prefix: str, op: str, kernels: Kernels, device_types, eager: bool):
    spec = ATTENTION_OPS[op]
    fwd = _define(prefix + op, spec.schema(), _checked(op, _names(spec.args), kernels.forward),
                  _attention_fake(spec), device_types)
    _define(prefix + op + "_backward", spec.backward_schema(),
            _checked(op + "_backward", _backward_names(spec), kernels.backward),
            _backward_fake(spec), device_types)
    backward_op = getattr(torch.ops.gatlib, prefix + op + "_backward")
    _register_autograd(spec, fwd, backward_op)
    registered = getattr(torch.ops.gatlib, prefix + op)
    return _eager_or_registered(spec, kernels, registered) if eager else registered


def _check_softmax(src, index, num_nodes, *rest) -> None:
    """The registered segment softmax's checks: ``index`` a 1-D int64 tensor on ``src``'s
    device with one entry per row of ``src``, each in ``[0, num_nodes)``."""
    if not isinstance(index, Tensor) or index.dtype != torch.int64 or index.dim() != 1:
        raise TypeError("gatlib::segment_softmax: index must be a 1-D int64 tensor")
    if index.device != src.device or index.numel() != src.size(0):
        raise ValueError(f"gatlib::segment_softmax: index must have one entry per row of src "
                         f"({src.size(0)}) on {src.device}, got {index.numel()} on "
                         f"{index.device}")
    if num_nodes < 0 or (index.numel() and not (index.min() >= 0 and index.max() < num_nodes)):
        raise ValueError(f"gatlib::segment_softmax: index must lie in [0, num_nodes = "
                         f"{num_nodes})")


def _define_softmax(prefix: str, kernels: Kernels, device_types):
    name = prefix + "segment_softmax"

    def forward(src, index, num_nodes):
        _check_softmax(src, index, num_nodes)
        return kernels.forward(src, index, num_nodes)

    def backward_kernel(grad, out, index, num_nodes):
        _check_softmax(out, index, num_nodes)
        return kernels.backward(grad, out, index, num_nodes)

    op = _define(name, SOFTMAX_ARGS[0], forward,
                 lambda src, index, num_nodes: torch.empty_like(src), device_types)
    _define(name + "_backward", SOFTMAX_ARGS[1], backward_kernel,
            lambda grad, out, index, num_nodes: torch.empty_like(grad), device_types)
    backward_op = getattr(torch.ops.gatlib, name + "_backward")

    def setup(ctx, inputs, output):
        ctx.save_for_backward(output, inputs[1])
        ctx.num_nodes = inputs[2]

    def backward(ctx, grad):
        out, index = ctx.saved_tensors
        return backward_op(grad, out, index, ctx.num_nodes), None, None

    op.register_autograd(backward, setup_context=setup)
    return getattr(torch.ops.gatlib, name)


def make_backend(name: str, kernels: Dict[str, Kernels], op_prefix: Optional[str] = None,
                 device_types=None, eager: bool = False,
                 extra_calls: Optional[Dict[str, Callable]] = None,
                 **capabilities) -> Backend:
    """A :class:`Backend` from its table of kernels.

    Args:
        name: the backend's name.
        kernels: ``{op: Kernels(forward, backward)}`` for ops of :data:`ATTENTION_OPS` and
            ``"segment_softmax"``. Kernels without a backward are called as they are (plain
            differentiable PyTorch); the others are registered as custom ops.
        op_prefix: prefix of the registered names (``"triton_"`` gives
            ``gatlib::triton_gat_attention``); default ``name + "_"``.
        device_types: the registered ops' device types (None: any).
        eager: in plain eager mode, run the attention kernels under one autograd node instead
            of the dispatcher (same results; the registered op runs under torch.compile,
            dispatch modes, functorch transforms and tensor subclasses).
        extra_calls: ops of this backend alone, called as they are (not registered; e.g. the
            CPU's ``gatv2_score``); callers find them with :func:`gatlib.ops.dispatch.offered`.
        capabilities: the other fields of :class:`Backend` (devices, dtypes, ...).
    """
    prefix = f"{name}_" if op_prefix is None else op_prefix
    calls: Dict[str, Callable] = {}
    for op, k in kernels.items():
        if k.backward is None:
            calls[op] = k.forward
        elif op == "segment_softmax":
            calls[op] = _define_softmax(prefix, k, device_types)
        else:
            calls[op] = _define_attention(prefix, op, k, device_types, eager)
    calls.update(extra_calls or {})
    return Backend(name, calls=calls, kernels=dict(kernels), **capabilities)
