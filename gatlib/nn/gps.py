"""The GPS layer (Rampasek et al., 2022): local message passing and global attention side by
side, summed, then a feed-forward block. PyG's ``GPSConv`` arguments and maths."""
from __future__ import annotations

import copy
import inspect
import re
from typing import Any, Dict, Optional, Union

from torch import Tensor, nn

from .._checks import check_tensor
from ._dropout import Dropout
from .blocks import make_act, make_norm_module
from .dense import DenseGraphAttention
from .performer import PerformerAttention

__all__ = ["GPSLayer", "GPSConv"]

_ATTN_TYPES = ("multihead", "performer")
# Keyword arguments of torch.nn.MultiheadAttention that DenseGraphAttention has.
_MULTIHEAD_KWARGS = ("dropout", "bias")
_MISSING: Any = object()


class GPSLayer(nn.Module):
    r"""One GraphGPS layer: a local message-passing branch and a global attention branch, each
    with dropout, residual and norm, summed and followed by a residual feed-forward block.

    .. math::
        h^{L} &= \mathrm{Norm}_1\big(x + \mathrm{Dropout}(\mathrm{MPNN}(x, A, \dots))\big) \\
        h^{G} &= \mathrm{Norm}_2\big(x + \mathrm{Dropout}(\mathrm{Attn}(x, b))\big) \\
        h &= h^{L} + h^{G} \\
        \mathrm{out} &= \mathrm{Norm}_3\big(h + \mathrm{Dropout}(W_2\,
            \mathrm{Dropout}(\sigma(W_1 h)))\big)

    with ``Attn`` self-attention over all nodes of each graph, ``W_1 : c -> 2c``,
    ``W_2 : 2c -> c``, and a separate norm for each of the three blocks. Without a local module
    ``h = h^G``. This is PyG's ``GPSConv`` (same arguments, same maths; :meth:`from_pyg` copies
    one), with ``attn_type='multihead'`` run as :class:`DenseGraphAttention` (exact softmax
    attention, no padding to the largest graph) and ``attn_type='performer'`` as
    :class:`PerformerAttention` (FAVOR+ linear attention on the dense batch).

    Args:
        channels (int): node features ``F`` in and out; divisible by ``heads``.
        conv (nn.Module or None): the local branch, called as ``conv(x, edge_index, **kwargs)``
            with the keyword arguments given to :meth:`forward`; it must map ``[N, F]`` to
            ``[N, F]``. None drops the local branch. ``local=`` is accepted as its old name.
            The constructor resets it (``reset_parameters``), as gatlib always did; PyG's
            ``GPSConv`` leaves it as passed (:meth:`from_pyg` keeps it too, and so does
            :class:`GPSConv`, this layer under PyG's name).
        heads (int, default 1): attention heads.
        dropout (float, default 0.0): dropout after each branch and in the feed-forward block.
        act (str or nn.Module, default ``'relu'``): activation of the feed-forward block,
            resolved as PyG does (``'relu'``, ``'gelu'``, ``'leaky_relu'``, ...).
        act_kwargs (dict, default None): arguments of the activation.
        norm (str, nn.Module or None, default ``'batch_norm'``): PyG's names, resolved as PyG
            does: ``'batch_norm'`` (BatchNorm over all nodes of the batch), ``'layer_norm'``
            (PyG's graph-wise ``LayerNorm``: each graph normalised over its nodes and
            features), ``'graph_norm'``, ``'instance_norm'``; or gatlib's ``'batch'``
            (``BatchNorm1d``) and ``'layer'`` (``LayerNorm`` per node); or None.
        norm_kwargs (dict, default None): arguments of the norm.
        attn_type (str, default ``'multihead'``): ``'multihead'`` or ``'performer'``.
        attn_kwargs (dict, default None): arguments of the attention: ``dropout`` (on the
            attention weights) and ``bias`` for ``'multihead'``; those of
            :class:`PerformerAttention` (``head_channels``, ``kernel``, ``qkv_bias``,
            ``attn_out_bias``, ``dropout``, ``num_features``, ``redraw_interval``) for
            ``'performer'``.
        attn_dropout (float, default 0.0, keyword): the old name of ``attn_kwargs['dropout']``
            for ``'multihead'``.

    Shapes:
        x ``[N, F]``, edge_index ``[2, E]``, batch ``[N]``, edge_attr ``[E, *]`` -> ``[N, F]``.

    The global branch (``'multihead'``) takes an attention bias and returns its weights:
    ``forward(..., attn_bias=..., return_attention_weights=True)`` (see :meth:`forward`).
    """
    # gatlib's layer resets the local branch it is given; PyG's GPSConv (below) does not.
    _RESET_CONV = True

    def __init__(self, channels: int, conv: Optional[nn.Module] = _MISSING, heads: int = 1,
                 dropout: float = 0.0, act: Union[str, nn.Module] = "relu",
                 act_kwargs: Optional[Dict[str, Any]] = None,
                 norm: Union[str, nn.Module, None] = "batch_norm",
                 norm_kwargs: Optional[Dict[str, Any]] = None, attn_type: str = "multihead",
                 attn_kwargs: Optional[Dict[str, Any]] = None, *,
                 local: Optional[nn.Module] = _MISSING, attn_dropout: float = 0.0) -> None:
        super().__init__()
        if conv is not _MISSING and local is not _MISSING:
            raise TypeError("pass the local branch as conv (PyG's name) or local (the old "
                            "name), not both")
        if conv is _MISSING and local is _MISSING:
            raise TypeError("GPSLayer needs its local branch: conv=<message passing module>, "
                            "or conv=None for attention only")
        conv = local if conv is _MISSING else conv
        if conv is not None and not isinstance(conv, nn.Module):
            raise TypeError(f"conv (local) must be an nn.Module or None, got "
                            f"{type(conv).__name__}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.channels, self.heads, self.dropout = channels, heads, float(dropout)
        self.attn_type = attn_type
        self.attn = _make_attention(channels, heads, attn_type, attn_kwargs, attn_dropout)
        self.norm = _name_of(norm, _snake) if norm is not None else None
        self.act_name = _name_of(act, str.lower)
        self.local = conv
        self.dropout_local = Dropout(dropout)
        self.dropout_attn = Dropout(dropout)
        self.norm_local = make_norm_module(norm, channels, norm_kwargs)
        self.norm_attn = make_norm_module(norm, channels, norm_kwargs)
        self.ff = nn.Sequential(
            nn.Linear(channels, 2 * channels), make_act(act, act_kwargs), Dropout(dropout),
            nn.Linear(2 * channels, channels), Dropout(dropout))
        self.norm_ff = make_norm_module(norm, channels, norm_kwargs)
        self._reset(self._RESET_CONV)

    @property
    def conv(self) -> Optional[nn.Module]:
        """The local branch (PyG's name; stored as ``local``)."""
        return self.local

    @property
    def norm_with_batch(self) -> bool:
        """Whether the norms take the batch vector (graph-wise norms), as PyG decides it."""
        return "batch" in inspect.signature(self.norm_local.forward).parameters

    def reset_parameters(self) -> None:
        self._reset(True)

    def _reset(self, conv: bool) -> None:
        """Reset every parameter, those of the local branch when ``conv``."""
        self.attn.reset_parameters()
        if conv and self.local is not None and hasattr(self.local, "reset_parameters"):
            self.local.reset_parameters()
        for module in (self.norm_local, self.norm_attn, self.norm_ff, self.ff[0], self.ff[3]):
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()                 # BatchNorm: running stats too

    def forward(self, x: Tensor, edge_index, batch: Optional[Tensor] = None,
                edge_attr: Optional[Tensor] = None, *, attn_bias: Optional[Tensor] = None,
                return_attention_weights: bool = False, **kwargs: Any):
        """Run the local and global branches, sum them, apply the feed-forward block.

        Args:
            x: node features.
            edge_index: the graph, for the local branch (any adjacency it accepts).
            batch (LongTensor, optional): sorted graph id of each node; None means one graph.
            edge_attr (Tensor, optional): edge features, passed to the local branch as
                ``edge_attr=`` when given (a keyword, as PyG; also accepted in fourth place).
            attn_bias (Tensor, optional, keyword): additive bias of the global attention's
                scores (``'multihead'`` only), in any form :class:`DenseGraphAttention` takes:
                ``[N, N]`` or ``[H, N, N]`` over the batch's nodes, or per graph, padded,
                ``[B, H, L, L]`` / ``[B, 1, L, L]`` (Graphormer's spatial or edge encodings);
                ``-inf`` masks a pair.
            return_attention_weights (bool, default False, keyword): also return the global
                attention's weights (``'multihead'`` only), ``[B, H, L, L]`` per graph, ``L``
                the largest graph's node count, zero past each graph's nodes.
            **kwargs: further keyword arguments of the local branch (e.g. ``edge_weight``).

        Shapes:
            x ``[N, F]``, edge_index ``[2, E]``, batch ``[N]`` -> ``[N, F]``, or
            ``([N, F], [B, H, L, L])`` with ``return_attention_weights``.
        """
        check_tensor(x, "x", dim=2, shape=(None, self.channels))
        if edge_attr is not None:
            kwargs["edge_attr"] = edge_attr
        h_local = None
        if self.local is not None:
            h_local = self.local(x, edge_index, **kwargs)                  # [N, F]
            if h_local.shape != x.shape:
                raise ValueError(f"the local module must return [N, F] = {tuple(x.shape)}, got "
                                 f"{tuple(h_local.shape)}")
            h_local = self._norm(self.norm_local, x + self.dropout_local(h_local), batch)
        h_attn = self._attend(x, batch, attn_bias, return_attention_weights)
        h_attn, weights = h_attn if return_attention_weights else (h_attn, None)
        h = self._norm(self.norm_attn, x + self.dropout_attn(h_attn), batch)
        if h_local is not None:
            h = h_local + h                                                # [N, F]
        out = self._norm(self.norm_ff, h + self.ff(h), batch)              # [N, F]
        return (out, weights) if return_attention_weights else out

    def _attend(self, x: Tensor, batch: Optional[Tensor], attn_bias: Optional[Tensor] = None,
                return_attention_weights: bool = False):
        """The global branch: attention over all nodes of each graph, ``[N, F] -> [N, F]``
        (and its weights ``[B, H, L, L]`` when asked for)."""
        if self.attn_type == "multihead":
            return self.attn(x, batch, attn_bias=attn_bias,
                             return_attention_weights=return_attention_weights)
        if attn_bias is not None or return_attention_weights:
            raise ValueError("attn_bias and return_attention_weights need attn_type="
                             "'multihead': the Performer never forms the attention weights")
        from torch_geometric.utils import to_dense_batch
        dense, mask = to_dense_batch(x, batch)                             # [B, N_max, F]
        return self.attn(dense, mask)[mask]                                # [N, F]

    def _norm(self, norm: nn.Module, h: Tensor, batch: Optional[Tensor]) -> Tensor:
        return norm(h, batch=batch) if self.norm_with_batch else norm(h)

    @classmethod
    def from_pyg(cls, module, conv: Optional[nn.Module] = None) -> "GPSLayer":
        """The gatlib layer computing the same function as a PyG ``GPSConv``, weights copied.

        Args:
            module: a ``torch_geometric.nn.GPSConv``.
            conv (nn.Module, optional): the local branch to use; default a deep copy of
                ``module.conv`` (PyG's own layer, so the local branch is PyG's exactly). Pass a
                converted layer (e.g. ``gatlib.nn.GATConv.from_pyg(module.conv)``) to run it
                on gatlib's kernels.
        """
        from torch_geometric.nn import GPSConv
        if not isinstance(module, GPSConv):
            raise TypeError(f"from_pyg expects a torch_geometric.nn.GPSConv, got "
                            f"{type(module).__name__}")
        local = copy.deepcopy(module.conv) if conv is None else conv
        if module.attn_type == "multihead":
            mha = module.attn
            if (mha.bias_k is not None or mha.add_zero_attn
                    or not mha._qkv_same_embed_dim):
                raise ValueError("from_pyg supports torch.nn.MultiheadAttention without "
                                 "add_bias_kv, add_zero_attn, kdim and vdim")
            attn_kwargs = {"dropout": mha.dropout, "bias": mha.in_proj_bias is not None}
        else:
            attn_kwargs = None
        layer = cls(module.channels, None, heads=module.heads, dropout=module.dropout,
                    norm=None, attn_type=module.attn_type, attn_kwargs=attn_kwargs)
        layer.local = local                             # after __init__, which would reset it
        # The activation and norms are PyG's modules, copied as they are.
        layer.ff[1] = copy.deepcopy(module.mlp[1])
        layer.act_name = _name_of(module.mlp[1], str.lower)
        for ours, theirs in (("norm_local", module.norm1), ("norm_attn", module.norm2),
                             ("norm_ff", module.norm3)):
            setattr(layer, ours, nn.Identity() if theirs is None else copy.deepcopy(theirs))
        layer.norm = None if module.norm1 is None else _name_of(module.norm1, _snake)
        layer.ff.load_state_dict(module.mlp.state_dict())
        if module.attn_type == "multihead":
            _copy_multihead(layer.attn, module.attn)
        else:
            layer.attn = PerformerAttention.from_pyg(module.attn)
        weight = module.mlp[0].weight
        return layer.to(weight.device, weight.dtype).train(module.training)

    def __repr__(self) -> str:
        # PyG's GPSConv form, so code and tests written against PyG's repr keep working.
        return (f"{self.__class__.__name__}({self.channels}, conv={self.local}, "
                f"heads={self.heads}, attn_type={self.attn_type})")


class GPSConv(GPSLayer):
    """:class:`GPSLayer` under PyG's name (``torch_geometric.nn.GPSConv``): the same layer, whose
    repr reads ``GPSConv(16, conv=..., heads=4, attn_type=multihead)`` as PyG's, and which, as
    PyG's, keeps the local branch ``conv`` as it is passed (``reset_parameters`` resets it)."""
    _RESET_CONV = False


def _make_attention(channels: int, heads: int, attn_type: str,
                    attn_kwargs: Optional[Dict[str, Any]], attn_dropout: float) -> nn.Module:
    kwargs = dict(attn_kwargs or {})
    if attn_type == "multihead":
        bad = sorted(set(kwargs) - set(_MULTIHEAD_KWARGS))
        if bad:
            raise ValueError(f"attn_kwargs {bad} are not supported with attn_type='multihead' "
                             f"(it takes {list(_MULTIHEAD_KWARGS)})")
        if "dropout" in kwargs and attn_dropout and kwargs["dropout"] != attn_dropout:
            raise ValueError(f"attn_dropout={attn_dropout} and attn_kwargs['dropout']="
                             f"{kwargs['dropout']} disagree; pass one of them")
        dropout = kwargs.get("dropout", attn_dropout)
        # DenseGraphAttention checks channels, heads and dropout.
        return DenseGraphAttention(channels, heads, dropout=dropout,
                                   bias=bool(kwargs.get("bias", True)))
    if attn_type == "performer":
        if attn_dropout:
            raise ValueError("attn_dropout applies to attention weights, which the Performer "
                             "never forms; pass attn_kwargs={'dropout': p} (dropout on its "
                             "output, as PyG)")
        if channels % heads != 0:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        return PerformerAttention(channels, heads, **kwargs)
    raise ValueError(f"attn_type must be one of {list(_ATTN_TYPES)}, got {attn_type!r}")


def _copy_multihead(dense: DenseGraphAttention, mha: nn.MultiheadAttention) -> None:
    """Copy ``torch.nn.MultiheadAttention``'s packed projections into DenseGraphAttention."""
    C = dense.channels
    for i, lin in enumerate((dense.lin_q, dense.lin_k, dense.lin_v)):
        lin.weight.data.copy_(mha.in_proj_weight.data[i * C:(i + 1) * C])   # [C, C]
        if lin.bias is not None:
            lin.bias.data.copy_(mha.in_proj_bias.data[i * C:(i + 1) * C])    # [C]
    dense.lin_out.weight.data.copy_(mha.out_proj.weight.data)
    if dense.lin_out.bias is not None:
        dense.lin_out.bias.data.copy_(mha.out_proj.bias.data)


def _name_of(obj, style) -> str:
    """A readable name of a str, an nn.Module or a module class (for the repr)."""
    if isinstance(obj, str):
        return obj
    cls = obj if isinstance(obj, type) else type(obj)
    return style(cls.__name__)


def _snake(name: str) -> str:
    """``'BatchNorm'`` -> ``'batch_norm'``, ``'GraphNorm'`` -> ``'graph_norm'``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()

