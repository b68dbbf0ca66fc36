"""Inputs, calls and gradients shared by the attention ops' tests."""
import torch

from gatlib.ops import gat_attention, sparse_attention, use_backend


def attention_inputs(op, ei, S, T, H=3, D=5, C=4, dtype=torch.float64, seed=1, with_term=True,
                     device="cpu"):
    """Leaf tensors of ``sparse_attention`` (``op="sparse"``) or ``gat_attention`` on the graph
    ``ei`` with ``S`` sources and ``T`` targets, as keyword arguments; the per-edge term is
    drawn first, then the node tensors in argument order."""
    g = torch.Generator().manual_seed(seed)
    E = ei.size(1)

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype).to(device).requires_grad_()
    term = r(E, H) if with_term else None
    if op == "sparse":
        return dict(q=r(T, H, D), k=r(S, H, D), v=r(S, H, C), edge_index=ei, bias=term)
    return dict(a_src=r(S, H), a_dst=r(T, H), v=r(S, H, C), edge_index=ei, edge_score=term)


def run_attention(op, backend, inputs, **kw):
    """``(out, alpha)`` of the op on ``backend``."""
    fn = sparse_attention if op == "sparse" else gat_attention
    with use_backend(backend):
        return fn(**inputs, return_attention=True, **kw)


def grads(inputs, outputs, seed=3):
    """Gradients of a random weighting of ``outputs`` with respect to the leaves (a list, or the
    tensors of a keyword dict that require grad)."""
    g = torch.Generator().manual_seed(seed)
    loss = sum((o * torch.randn(o.shape, generator=g, dtype=o.dtype).to(o.device)).sum()
               for o in outputs)
    if isinstance(inputs, dict):
        inputs = [t for t in inputs.values() if isinstance(t, torch.Tensor) and t.requires_grad]
    return torch.autograd.grad(loss, inputs, allow_unused=True)
