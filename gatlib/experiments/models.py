"""The one model builder of the experiments: a node or graph classifier from gatlib's ready
models, from a config (``gatlib train``) or from a comparison variant (``gatlib compare``)."""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch

__all__ = ["build_model", "model_from_config"]


def build_model(level: str, in_channels: int, hidden_channels: int, num_classes: int, *,
                layer: str, num_layers: int, heads: int, dropout: float, attn_dropout: float,
                residual: bool, norm: Optional[str], act: str, pool: str = "mean",
                pe: Optional[str] = None, pe_dim: int = 0, pe_channels: int = 0,
                project_input: bool = False, value_dropout: float = 0.0,
                edge_dim: Optional[int] = None) -> torch.nn.Module:
    """A :class:`~gatlib.nn.NodeClassifier` (``level="node"``) or
    :class:`~gatlib.nn.GraphClassifier` (``"graph"``, read out by ``pool``).

    Args:
        level: ``"node"`` or ``"graph"``.
        in_channels, hidden_channels, num_classes: the widths (``hidden_channels`` per head
            for a node model, in all for a graph model, as the two classes read it).
        layer, num_layers, heads, dropout, attn_dropout, residual, norm, act: the layers.
        pool (default "mean"): a graph model's read-out.
        pe (default None: none): ``"lap"`` or ``"rw"``; with ``pe_dim`` and ``pe_channels``
            (default 0) the positional encoder.
        project_input, value_dropout (default False, 0.0): node models only.
        edge_dim (default None): edge feature size, for layers that read edge features.
    """
    from ..nn import GraphClassifier, NodeClassifier
    common = dict(num_layers=num_layers, layer=layer, heads=heads, dropout=dropout,
                  attn_dropout=attn_dropout, residual=residual, norm=norm, act=act,
                  pe_dim=pe_dim if pe else 0, pe_channels=pe_channels if pe else 0,
                  pe=pe or "lap", edge_dim=edge_dim)
    if level == "node":
        return NodeClassifier(in_channels, hidden_channels, num_classes,
                              project_input=project_input, value_dropout=value_dropout, **common)
    if level == "graph":
        return GraphClassifier(in_channels, hidden_channels, num_classes, pool=pool, **common)
    raise ValueError(f"level must be 'node' or 'graph', got {level!r}")


def model_from_config(cfg: Dict[str, Any], in_channels: int, num_classes: int
                      ) -> torch.nn.Module:
    """The model a resolved config describes (its ``task``, ``model`` and ``pe`` sections)."""
    m, pe = cfg["model"], cfg["pe"]
    extra = {"value_dropout": m.get("value_dropout", 0.0)} if cfg["task"] == "node" else {}
    return build_model(cfg["task"], in_channels, m["hidden_channels"], num_classes,
                       layer=m["layer"], num_layers=m["num_layers"], heads=m["heads"],
                       dropout=m["dropout"], attn_dropout=m["attn_dropout"],
                       residual=m["residual"], norm=m["norm"], act=m["act"], pool=m["pool"],
                       pe=pe["type"], pe_dim=pe["dim"], pe_channels=pe["channels"], **extra)
