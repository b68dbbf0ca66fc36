"""The GPS layer (Rampasek et al., 2022): local message passing and global attention side by
side, summed, then a feed-forward block."""
from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from ..graph.validate import check_tensor
from ._dropout import Dropout
from .dense import DenseGraphAttention

__all__ = ["GPSLayer"]

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "elu": nn.ELU, "silu": nn.SiLU,
                "tanh": nn.Tanh}
_NORMS = ("batch", "layer", None)


class GPSLayer(nn.Module):
    r"""One GraphGPS layer: a local message-passing branch and a global attention branch, each
    with dropout, residual and norm, summed and followed by a residual feed-forward block.

    .. math::
        h^{L} &= \mathrm{Norm}\big(x + \mathrm{Dropout}(\mathrm{MPNN}(x, A, e))\big) \\
        h^{G} &= \mathrm{Norm}\big(x + \mathrm{Dropout}(\mathrm{Attn}(x, b))\big) \\
        h &= h^{L} + h^{G} \\
        \mathrm{out} &= \mathrm{Norm}\big(h + \mathrm{Dropout}(W_2\,
            \mathrm{Dropout}(\sigma(W_1 h)))\big)

    with ``Attn`` a :class:`DenseGraphAttention` over all nodes of each graph, ``W_1 : c -> 2c``,
    ``W_2 : 2c -> c``, and a separate norm for each of the three blocks. Without a local module
    ``h = h^G``.

    Args:
        channels (int): node features ``F`` in and out; divisible by ``heads``.
        local (nn.Module, optional): the local branch, called as ``local(x, edge_index)``, or
            ``local(x, edge_index, edge_attr)`` when ``edge_attr`` is given; it must map
            ``[N, F]`` to ``[N, F]``. None drops the local branch.
        heads (int, default 1): attention heads.
        dropout (float, default 0.0): dropout after each branch and in the feed-forward block.
        attn_dropout (float, default 0.0): dropout on the attention weights.
        norm (str or None, default ``'batch'``): ``'batch'`` (BatchNorm1d over all nodes of the
            batch), ``'layer'`` (LayerNorm per node) or None (no norm).
        act (str, default ``'relu'``): activation of the feed-forward block, one of
            ``'relu'``, ``'gelu'``, ``'elu'``, ``'silu'``, ``'tanh'``.

    Shapes:
        x ``[N, F]``, edge_index ``[2, E]``, batch ``[N]``, edge_attr ``[E, *]`` -> ``[N, F]``.
    """

    def __init__(self, channels: int, local: Optional[nn.Module], heads: int = 1,
                 dropout: float = 0.0, attn_dropout: float = 0.0, norm: Optional[str] = "batch",
                 act: str = "relu") -> None:
        super().__init__()
        if local is not None and not isinstance(local, nn.Module):
            raise TypeError(f"local must be an nn.Module or None, got {type(local).__name__}")
        if norm not in _NORMS:
            raise ValueError(f"norm must be one of 'batch', 'layer' or None, got {norm!r}")
        if act not in _ACTIVATIONS:
            raise ValueError(f"act must be one of {sorted(_ACTIVATIONS)}, got {act!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        # DenseGraphAttention checks channels, heads and attn_dropout.
        self.attn = DenseGraphAttention(channels, heads, dropout=attn_dropout)
        self.channels, self.heads = channels, heads
        self.norm, self.act_name = norm, act
        self.local = local
        self.dropout_local = Dropout(dropout)
        self.dropout_attn = Dropout(dropout)
        self.norm_local = _make_norm(norm, channels)
        self.norm_attn = _make_norm(norm, channels)
        self.ff = nn.Sequential(
            nn.Linear(channels, 2 * channels), _ACTIVATIONS[act](), Dropout(dropout),
            nn.Linear(2 * channels, channels), Dropout(dropout))
        self.norm_ff = _make_norm(norm, channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.attn.reset_parameters()
        if self.local is not None and hasattr(self.local, "reset_parameters"):
            self.local.reset_parameters()
        for module in (self.norm_local, self.norm_attn, self.norm_ff, self.ff[0], self.ff[3]):
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()                 # BatchNorm: running stats too

    def forward(self, x: Tensor, edge_index: Tensor, batch: Optional[Tensor] = None,
                edge_attr: Optional[Tensor] = None) -> Tensor:
        """Run the local and global branches, sum them, apply the feed-forward block.

        Args:
            x: node features.
            edge_index: ``[2, E]`` (row 0 source j, row 1 target i), for the local branch.
            batch (LongTensor, optional): sorted graph id of each node; None means one graph.
            edge_attr (Tensor, optional): edge features, passed to the local branch only when
                given.

        Shapes:
            x ``[N, F]``, edge_index ``[2, E]``, batch ``[N]`` -> ``[N, F]``.
        """
        check_tensor(x, "x", dim=2, shape=(None, self.channels))
        h_global = self.dropout_attn(self.attn(x, batch))                  # [N, F]
        h = self.norm_attn(x + h_global)                                   # [N, F]
        if self.local is not None:
            if edge_attr is None:
                h_local = self.local(x, edge_index)                        # [N, F]
            else:
                h_local = self.local(x, edge_index, edge_attr)             # [N, F]
            if h_local.shape != x.shape:
                raise ValueError(f"the local module must return [N, F] = {tuple(x.shape)}, got "
                                 f"{tuple(h_local.shape)}")
            h = h + self.norm_local(x + self.dropout_local(h_local))      # [N, F]
        return self.norm_ff(h + self.ff(h))                                # [N, F]

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v, default in (
            ("norm", self.norm, "batch"), ("act", self.act_name, "relu")) if v != default)
        return (f"{self.__class__.__name__}({self.channels}, local={self.local!r}, "
                f"heads={self.heads}{extra})")


def _make_norm(norm: Optional[str], channels: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm1d(channels)
    if norm == "layer":
        return nn.LayerNorm(channels)
    return nn.Identity()
