"""Performer attention (Choromanski et al., 2021, "Rethinking Attention with Performers"): linear
attention with positive orthogonal random features (FAVOR+), over the nodes of each graph."""
from __future__ import annotations

import math
from typing import Callable, Optional, Union

import torch
from torch import Tensor, nn

from .._checks import check_positive_int, check_tensor

__all__ = ["PerformerAttention", "RedrawProjection", "orthogonal_random_features",
           "favor_features"]

#: PyG's constant added to the generalized (e.g. ReLU) kernel's features.
GENERALIZED_EPS = 1e-3


def orthogonal_random_features(num_features: int, dim: int, scaled: bool = True,
                               generator: Optional[torch.Generator] = None) -> Tensor:
    r"""A random projection ``W [m, d]`` whose rows are orthogonal within blocks of ``d``.

    Each block of ``d`` rows is a Haar-random orthogonal matrix (QR of a Gaussian matrix with the
    signs of ``R``'s diagonal folded in); the last block is cut to the ``m`` rows needed. With
    ``scaled=True`` row ``r`` is then multiplied by the norm of an independent ``N(0, I_d)``
    vector, so every row has the distribution ``N(0, I_d)`` while rows in a block stay
    orthogonal: the orthogonal random features of FAVOR+ (the estimator stays unbiased and its
    variance drops). ``scaled=False`` keeps unit-norm rows (PyG's ``PerformerAttention``).

    Args:
        num_features (int): ``m``, number of rows (random features), ``>= 1``.
        dim (int): ``d``, the head dimension, ``>= 1``.
        scaled (bool, default True): chi-distributed row norms (see above).
        generator (torch.Generator, optional): the random source; default the global one.

    Shapes:
        output ``[m, d]``, float32 on the CPU.
    """
    num_blocks = -(-num_features // dim)                            # ceil(m / d)
    g = torch.randn(num_blocks, dim, dim, generator=generator)      # [blocks, d, d]
    q, r = torch.linalg.qr(g)                                       # q orthogonal
    # Q diag(sign(R_ii)) is Haar-distributed; plain Q is not (its law follows LAPACK's sign
    # convention for R).
    q = q * torch.where(torch.diagonal(r, dim1=-2, dim2=-1) < 0, -1.0, 1.0)[:, None, :]
    w = q.transpose(-2, -1).reshape(num_blocks * dim, dim)[:num_features]   # [m, d]
    if scaled:
        norms = torch.randn(num_features, dim, generator=generator).norm(dim=1)   # [m] chi_d
        w = w * norms[:, None]
    return w


def favor_features(x: Tensor, projection: Tensor, is_query: bool,
                   mask: Optional[Tensor] = None) -> Tensor:
    r"""FAVOR+ positive random features of the softmax kernel, numerically stabilised.

    .. math::
        \phi(x) = \frac{1}{\sqrt m} \exp\!\big(W x - \tfrac12 \lVert x \rVert^2 - c\big),
        \qquad \mathbb{E}_W\big[\phi(q)^\top \phi(k)\big] \propto \exp(q^\top k)

    The constant ``c`` cancels in the attention normalisation: per query (row ``n``) for
    queries, per ``(graph, head)`` over all valid keys for keys. Masked keys get zero features.

    Args:
        x: queries or keys, already scaled by ``d^{-1/4}``.
        projection: ``W [m, d]``.
        is_query (bool): queries (per-row constant) or keys (one constant per graph and head).
        mask (BoolTensor [B, N], optional): valid nodes (keys only; ignored for queries).

    Shapes:
        x ``[B, H, N, d]``, projection ``[m, d]`` -> ``[B, H, N, m]``.
    """
    logits = x @ projection.t() - 0.5 * (x * x).sum(-1, keepdim=True)   # [B, H, N, m]
    if is_query:
        c = logits.detach().amax(dim=-1, keepdim=True)                  # [B, H, N, 1]
        return torch.exp(logits - c) / math.sqrt(projection.size(0))
    valid = None if mask is None else mask[:, None, :, None]             # [B, 1, N, 1]
    masked = logits.detach() if valid is None else logits.detach().masked_fill(~valid,
                                                                              -math.inf)
    c = masked.amax(dim=(-2, -1), keepdim=True)                         # [B, H, 1, 1]
    c = torch.where(torch.isfinite(c), c, torch.zeros_like(c))          # graph without nodes
    phi = torch.exp(logits - c) / math.sqrt(projection.size(0))         # [B, H, N, m]
    return phi if valid is None else phi * valid


class PerformerAttention(nn.Module):
    r"""Linear-time multi-head self-attention over the nodes of each graph (Performer, FAVOR+).

    With ``q_i, k_j, v_j`` the per-head projections of the nodes of one graph and ``\phi`` a
    random feature map,

    .. math::
        o_i = \frac{\phi(q_i)^\top \sum_j \phi(k_j) v_j^\top}
                   {\phi(q_i)^\top \sum_j \phi(k_j)}, \qquad
        \mathrm{out} = W_o \big\Vert_{h} o^h

    computed right to left in ``O(N m C)`` time per graph and head, never forming the
    ``N x N`` attention matrix. The sums run over the valid (unmasked) nodes of each graph only.

    ``kernel='softmax'`` (default, FAVOR+): ``\phi(x) = m^{-1/2} \exp(W x' - \lVert x' \rVert^2
    / 2)`` with ``x' = x / d^{1/4}`` and ``W`` positive orthogonal random features
    (:func:`orthogonal_random_features`), an unbiased estimate of softmax attention
    ``softmax(q k^T / sqrt(d)) v`` whose error shrinks as ``1/sqrt(m)``. ``kernel='relu'`` (or
    any callable ``f``): the generalized kernel of PyG's ``PerformerAttention``,
    ``\phi(x) = f(W x) + 10^{-3}`` with unit-norm orthogonal rows and no scaling of ``x``.

    Arguments follow PyG's ``torch_geometric.nn.attention.PerformerAttention``. One difference:
    padded nodes are excluded from the keys here, while PyG only zeroes their values (its
    normaliser still counts them, so a PyG graph's output depends on the largest graph of the
    batch). On batches of equal-size graphs the two agree.

    Args:
        channels (int): input and output features ``F``.
        heads (int, default 1): attention heads ``H``.
        head_channels (int, default 64): ``d``, features per head (PyG's default); None uses
            ``channels // heads``.
        kernel (str or callable, default ``'softmax'``): ``'softmax'`` (FAVOR+), ``'relu'``
            (PyG's default) or a callable applied to ``W x`` (generalized attention).
        qkv_bias (bool, default False): biases in the query, key and value maps.
        attn_out_bias (bool, default True): bias in the output map.
        dropout (float, default 0.0): dropout on the output.
        num_features (int, default None): ``m``, random features per head; None uses PyG's
            ``int(d * ln d)`` (at least 1).
        redraw_interval (int, default None): in training mode, draw a new ``W`` every this
            many forward calls (before the call); None never redraws by itself (call
            :meth:`redraw_projection_matrix`, or use :class:`RedrawProjection`).

    Shapes:
        x ``[B, N, F]``, mask ``[B, N]`` (True = a node, False = padding) -> ``[B, N, F]``;
        rows of padded nodes are not meaningful.
    """

    def __init__(self, channels: int, heads: int = 1, head_channels: Optional[int] = 64,
                 kernel: Union[str, Callable[[Tensor], Tensor]] = "softmax",
                 qkv_bias: bool = False, attn_out_bias: bool = True, dropout: float = 0.0, *,
                 num_features: Optional[int] = None,
                 redraw_interval: Optional[int] = None) -> None:
        super().__init__()
        for name, value in (("channels", channels), ("heads", heads)):
            check_positive_int(value, name)
        if head_channels is None:
            if channels % heads != 0:
                raise ValueError(f"channels ({channels}) must be divisible by heads ({heads}) "
                                 f"when head_channels is None; or pass head_channels")
            head_channels = channels // heads
        check_positive_int(head_channels, "head_channels")
        if num_features is None:
            num_features = max(1, int(head_channels * math.log(head_channels)))
        check_positive_int(num_features, "num_features")
        if redraw_interval is not None:
            check_positive_int(redraw_interval, "redraw_interval")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        if isinstance(kernel, str):
            if kernel not in ("softmax", "relu"):
                raise ValueError(f"kernel must be 'softmax' (FAVOR+), 'relu' (PyG's) or a "
                                 f"callable, got {kernel!r}")
            self.kernel_name = kernel
            self.kernel = nn.ReLU() if kernel == "relu" else None
        elif callable(kernel):
            self.kernel_name = "relu" if isinstance(kernel, nn.ReLU) else "generalized"
            self.kernel = kernel
        else:
            raise TypeError(f"kernel must be a str or a callable, got {type(kernel).__name__}")
        self.channels, self.heads, self.head_channels = channels, heads, head_channels
        self.num_features, self.redraw_interval = num_features, redraw_interval
        self.calls_since_redraw = 0
        inner = heads * head_channels
        self.q = nn.Linear(channels, inner, bias=qkv_bias)
        self.k = nn.Linear(channels, inner, bias=qkv_bias)
        self.v = nn.Linear(channels, inner, bias=qkv_bias)
        self.attn_out = nn.Linear(inner, channels, bias=attn_out_bias)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("projection_matrix", torch.empty(num_features, head_channels))
        self.reset_parameters()

    @property
    def softmax_kernel(self) -> bool:
        """True for FAVOR+'s softmax kernel, False for a generalized kernel."""
        return self.kernel is None

    def reset_parameters(self) -> None:
        for lin in (self.q, self.k, self.v, self.attn_out):
            lin.reset_parameters()
        self.redraw_projection_matrix()

    _reset_parameters = reset_parameters            # PyG's GPSConv calls this name

    @torch.no_grad()
    def redraw_projection_matrix(self, generator: Optional[torch.Generator] = None) -> None:
        """Draw a new random projection ``W [m, d]`` in place (shape and device kept)."""
        w = orthogonal_random_features(self.num_features, self.head_channels,
                                       scaled=self.softmax_kernel, generator=generator)
        self.projection_matrix.copy_(w)
        self.calls_since_redraw = 0

    def feature_map(self, x: Tensor, is_query: bool, mask: Optional[Tensor] = None) -> Tensor:
        """The random features ``phi`` of queries or keys ``[B, H, N, d] -> [B, H, N, m]``
        (keys at masked nodes are zero)."""
        w = self.projection_matrix.to(x.dtype)
        if self.softmax_kernel:
            return favor_features(x * self.head_channels ** -0.25, w, is_query, mask)
        phi = self.kernel(x @ w.t()) + GENERALIZED_EPS                   # [B, H, N, m]
        if not is_query and mask is not None:
            phi = phi * mask[:, None, :, None]
        return phi

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """Attend over the valid nodes of each graph of a dense batch.

        Args:
            x: node features of a dense batch (``torch_geometric.utils.to_dense_batch``).
            mask (BoolTensor, optional): True where a row of ``x`` is a node, False where it is
                padding; None means every row is a node.

        Shapes:
            x ``[B, N, F]``, mask ``[B, N]`` -> ``[B, N, F]``.
        """
        check_tensor(x, "x", dim=3, shape=(None, None, self.channels))
        B, N, _ = x.shape
        H, D = self.heads, self.head_channels
        if mask is not None:
            check_tensor(mask, "mask", dim=2, floating=False, shape=(B, N))
            if mask.dtype != torch.bool:
                raise TypeError(f"mask must be a bool tensor (True = node), got {mask.dtype}")
        if self.training and self.redraw_interval is not None:
            if self.calls_since_redraw >= self.redraw_interval:
                self.redraw_projection_matrix()
            self.calls_since_redraw += 1
        # Feature maps and sums in fp32 at least (exp of half-precision logits is too coarse).
        acc = torch.promote_types(x.dtype, torch.float32)
        q = self.q(x).view(B, N, H, D).transpose(1, 2).to(acc)           # [B, H, N, D]
        k = self.k(x).view(B, N, H, D).transpose(1, 2).to(acc)           # [B, H, N, D]
        v = self.v(x).view(B, N, H, D).transpose(1, 2).to(acc)           # [B, H, N, C]
        phi_q = self.feature_map(q, True)                                # [B, H, N, m]
        phi_k = self.feature_map(k, False, mask)                         # [B, H, N, m]
        kv = phi_k.transpose(-2, -1) @ v                                 # [B, H, m, C]
        z = phi_k.sum(dim=-2)                                            # [B, H, m]
        num = phi_q @ kv                                                 # [B, H, N, C]
        den = phi_q @ z.unsqueeze(-1)                                    # [B, H, N, 1]
        if mask is not None:
            # Padded queries (and graphs without nodes) would divide 0 by 0; their rows are
            # dropped by the caller, but a NaN there would poison the gradients.
            den = torch.where(mask[:, None, :, None], den, torch.ones_like(den))
        # A denominator that underflowed (features of extreme inputs) gives 0, never NaN.
        den = den.clamp(min=torch.finfo(acc).tiny)
        out = (num / den).transpose(1, 2).reshape(B, N, H * D)           # [B, N, H * C]
        out = self.attn_out(out.to(x.dtype))                             # [B, N, F]
        return self.dropout(out)

    @classmethod
    def from_pyg(cls, module) -> "PerformerAttention":
        """The gatlib layer computing the same function as a PyG ``PerformerAttention``:
        weights and projection matrix copied (on batches of equal-size graphs; see the class
        docstring for padding)."""
        try:
            from torch_geometric.nn.attention import PerformerAttention as PyGPerformer
        except ImportError as err:  # pragma: no cover
            raise ImportError("from_pyg needs torch_geometric") from err
        if not isinstance(module, PyGPerformer):
            raise TypeError(f"from_pyg expects a torch_geometric.nn.attention."
                            f"PerformerAttention, got {type(module).__name__}")
        layer = cls(module.q.in_features, module.heads, module.head_channels,
                    kernel=module.kernel, qkv_bias=module.q.bias is not None,
                    attn_out_bias=module.attn_out.bias is not None, dropout=module.dropout.p,
                    num_features=module.fast_attn.num_rows)
        layer = layer.to(module.q.weight.device, module.q.weight.dtype)
        with torch.no_grad():
            for name in ("q", "k", "v", "attn_out"):
                getattr(layer, name).load_state_dict(getattr(module, name).state_dict())
            layer.projection_matrix.copy_(module.fast_attn.projection_matrix)
        return layer.train(module.training)

    def __repr__(self) -> str:
        extra = f", redraw_interval={self.redraw_interval}" if self.redraw_interval else ""
        return (f"{type(self).__name__}({self.channels}, heads={self.heads}, "
                f"head_channels={self.head_channels}, kernel={self.kernel_name!r}, "
                f"num_features={self.num_features}{extra})")


class RedrawProjection:
    """Redraw the random features of every Performer module of a model every
    ``redraw_interval`` calls of :meth:`redraw_projections` in training mode (PyG's
    ``examples/graph_gps.py`` helper, for gatlib's and PyG's ``PerformerAttention``).

    Args:
        model (nn.Module): the model whose modules with ``redraw_projection_matrix`` are redrawn.
        redraw_interval (int, optional): calls between redraws; None never redraws.
    """

    def __init__(self, model: nn.Module, redraw_interval: Optional[int] = None) -> None:
        if redraw_interval is not None:
            check_positive_int(redraw_interval, "redraw_interval")
        self.model = model
        self.redraw_interval = redraw_interval
        self.num_last_redraw = 0

    def redraw_projections(self) -> None:
        """Count a call; on every ``redraw_interval + 1``-th one (PyG's count), redraw."""
        if not self.model.training or self.redraw_interval is None:
            return
        if self.num_last_redraw >= self.redraw_interval:
            for module in self.model.modules():
                if callable(getattr(module, "redraw_projection_matrix", None)):
                    module.redraw_projection_matrix()
            self.num_last_redraw = 0
            return
        self.num_last_redraw += 1
