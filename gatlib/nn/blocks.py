"""Building blocks shared by the layers and models of :mod:`gatlib.nn`: activations and norms by
name (gatlib's own names, and PyG's through its resolvers)."""
from __future__ import annotations

import copy
from typing import Any, Dict, Optional

from torch import nn

__all__ = ["ACTIVATIONS", "NORMS", "make_act", "make_norm", "make_norm_module"]

#: Activations by name (the models' ``act`` argument).
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "elu": nn.ELU, "silu": nn.SiLU,
               "tanh": nn.Tanh}
#: gatlib's own norm names: BatchNorm1d, a per-node LayerNorm, none.
NORMS = ("batch", "layer", None)


def make_act(act, act_kwargs: Optional[Dict[str, Any]]) -> nn.Module:
    """The activation module, resolved as PyG does (a name, a module or a module class)."""
    kwargs = act_kwargs or {}
    if isinstance(act, nn.Module):
        return act
    if isinstance(act, type) and issubclass(act, nn.Module):
        return act(**kwargs)
    if not isinstance(act, str):
        raise ValueError(f"act must be a name ('relu', 'gelu', ...) or an nn.Module, got "
                         f"{type(act).__name__}")
    from torch_geometric.nn.resolver import activation_resolver
    try:
        module = activation_resolver(act, **kwargs)
    except ValueError as err:
        raise ValueError(f"act must name an activation of torch.nn ('relu', 'gelu', "
                         f"'leaky_relu', ...), got {act!r}") from err
    if not isinstance(module, nn.Module):           # PyG's 'swish' is a plain function
        raise ValueError(f"act={act!r} resolves to a function, not a module; pass "
                         f"act='silu' (the same function) or an nn.Module")
    return module


def make_norm_module(norm, channels: int, norm_kwargs: Optional[Dict[str, Any]]) -> nn.Module:
    """One norm: gatlib's old names, PyG's names (PyG's resolver), a module (copied), a class."""
    kwargs = norm_kwargs or {}
    if norm is None or norm in ("batch", "layer"):
        if kwargs and norm is None:
            raise ValueError("norm_kwargs given but norm is None")
        return make_norm(norm, channels, **kwargs)
    if isinstance(norm, nn.Module):
        return copy.deepcopy(norm)                  # one norm per block, never shared
    if isinstance(norm, type) and issubclass(norm, nn.Module):
        return norm(channels, **kwargs)
    if not isinstance(norm, str):
        raise ValueError(f"norm must be a name, an nn.Module or None, got {type(norm).__name__}")
    from torch_geometric.nn.resolver import normalization_resolver
    try:
        return normalization_resolver(norm, channels, **kwargs)
    except (ValueError, TypeError) as err:
        raise ValueError(f"norm must be one of PyG's 'batch_norm', 'layer_norm', 'graph_norm', "
                         f"'instance_norm', gatlib's 'batch' or 'layer', or None; got "
                         f"{norm!r} ({err})") from err


def make_norm(norm: Optional[str], channels: int, **kwargs: Any) -> nn.Module:
    """gatlib's own norms: ``'batch'`` (BatchNorm1d), ``'layer'`` (LayerNorm per node), None."""
    if norm == "batch":
        return nn.BatchNorm1d(channels, **kwargs)
    if norm == "layer":
        return nn.LayerNorm(channels, **kwargs)
    return nn.Identity()
