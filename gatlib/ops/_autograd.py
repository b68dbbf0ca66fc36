"""Autograd registration shared by the backends' attention ops (``gatlib/ops/cpu``,
``gatlib/ops/triton``): every backend's ops take the same arguments and return the same
outputs, so one helper registers the backward of each."""
from __future__ import annotations

__all__ = ["register_attention_autograd", "register_softmax_autograd"]


def register_attention_autograd(op, backward_op) -> None:
    """Autograd for an attention op with inputs ``(x1, x2, v, graph, edge_term, dropout_mask,
    param, dropout, return_attention)`` and outputs ``(out, lse, alpha)``: save the inputs and
    the log-sum-exp, and call the registered backward op, which recomputes everything else."""

    def setup(ctx, inputs, output):
        x1, x2, v, graph, term, mask, param, dropout, _ = inputs
        ctx.save_for_backward(x1, x2, v, output[1], term, mask, *graph)
        ctx.param, ctx.dropout = param, dropout

    def backward(ctx, grad_out, _grad_lse, grad_alpha):
        x1, x2, v, lse, term, mask, *graph = ctx.saved_tensors
        if grad_alpha is not None and grad_alpha.numel() == 0:
            grad_alpha = None
        g1, g2, g_v, g_term = backward_op(grad_out, grad_alpha, x1, x2, v, lse, graph, term,
                                          mask, ctx.param, ctx.dropout)
        return (g1, g2, g_v, [None] * len(graph), g_term if term is not None else None, None,
                None, None, None)

    op.register_autograd(backward, setup_context=setup)


def register_softmax_autograd(op, backward_op) -> None:
    """Autograd for a segment softmax op ``(src, index, num_nodes) -> out``: save the output
    and the index; the backward op computes ``out * (grad - segment_sum(grad * out))``."""

    def setup(ctx, inputs, output):
        ctx.save_for_backward(output, inputs[1])
        ctx.num_nodes = inputs[2]

    def backward(ctx, grad):
        out, index = ctx.saved_tensors
        return backward_op(grad, out, index, ctx.num_nodes), None, None

    op.register_autograd(backward, setup_context=setup)
