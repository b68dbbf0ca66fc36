"""Encoders that turn positional encodings (:mod:`gatlib.pe`) into node features."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from .._checks import check_positive_int, check_tensor
from ._dropout import dropout

__all__ = ["LapPEEncoder", "RWSEEncoder"]


class LapPEEncoder(nn.Module):
    r"""Laplacian eigenvector encodings to node features, with a random sign flip in training.

    .. math::
        s \sim \mathrm{Uniform}\{-1, +1\}^K \ (\text{training}), \qquad s = 1 \ (\text{eval}),
        \qquad \mathrm{out} = \mathrm{Dropout}(f(\mathrm{pe} \odot s)),

    where ``f(x) = W_2 ReLU(W_1 x + b_1) + b_2`` when ``hidden`` is set and ``f(x) = W x + b``
    otherwise.

    An eigenvector is only defined up to sign, so the model must not learn the sign that the
    preprocessing happened to pick: in training each forward draws fresh signs. Without
    ``batch`` there is one sign per column (eigenvector), shared by all graphs of the batch;
    with ``batch`` each graph draws its own signs, as in the usual implementations. Zero
    (padded) columns stay zero. In eval mode nothing is flipped and the output is
    deterministic.

    Args:
        k (int): number of eigenvectors ``K`` in the input, ``>= 1``.
        out_channels (int): output features, ``>= 1``.
        hidden (int, default None): hidden width of a two-layer MLP; ``None`` uses one linear
            layer.
        dropout (float, default 0.0): dropout probability on the output.

    Shapes:
        - pe: ``[N, K]``, batch (optional): ``[N]`` sorted or not, values in ``[0, N)``
        - output: ``[N, out_channels]``
    """

    def __init__(self, k: int, out_channels: int, hidden: Optional[int] = None,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.k = check_positive_int(k, "k")
        self.out_channels = check_positive_int(out_channels, "out_channels")
        self.hidden = None if hidden is None else check_positive_int(hidden, "hidden")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.dropout = float(dropout)
        if self.hidden is None:
            self.mlp = nn.Linear(self.k, self.out_channels)
        else:
            self.mlp = nn.Sequential(nn.Linear(self.k, self.hidden), nn.ReLU(),
                                     nn.Linear(self.hidden, self.out_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for layer in self.modules():
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()

    def forward(self, pe: Tensor, batch: Optional[Tensor] = None) -> Tensor:
        check_tensor(pe, "pe", dim=2, shape=(None, self.k))
        if self.training:
            if batch is None:
                flip = torch.randint(0, 2, (1, self.k), device=pe.device)        # [1, K]
            else:
                check_tensor(batch, "batch", dim=1, floating=False, shape=(pe.size(0),))
                # One row of signs per graph id; ids are < N, so N rows always suffice and
                # the number of graphs is never needed (no host sync under torch.compile).
                table = torch.randint(0, 2, (pe.size(0), self.k), device=pe.device)  # [N, K]
                flip = table[batch]                                              # [N, K]
            pe = pe * (1 - 2 * flip).to(pe.dtype)                               # [N, K]
        out = self.mlp(pe)                                                      # [N, out]
        return dropout(out, self.dropout, self.training)

    def __repr__(self) -> str:
        extra = "" if self.hidden is None else f", hidden={self.hidden}"
        extra += f", dropout={self.dropout}" if self.dropout > 0 else ""
        return f"{type(self).__name__}({self.k}, {self.out_channels}{extra})"


class RWSEEncoder(nn.Module):
    r"""Random-walk structural encodings to node features: batch norm, then a linear layer.

    .. math::
        \mathrm{out} = W \, \mathrm{BatchNorm}(\mathrm{rw}) + b

    The return probabilities differ in scale by orders of magnitude between steps and graphs,
    hence the normalisation before the projection.

    Args:
        steps (int): number of walk lengths in the input, ``>= 1``.
        out_channels (int): output features, ``>= 1``.

    Shapes:
        - rw: ``[N, steps]``
        - output: ``[N, out_channels]``
    """

    def __init__(self, steps: int, out_channels: int) -> None:
        super().__init__()
        self.steps = check_positive_int(steps, "steps")
        self.out_channels = check_positive_int(out_channels, "out_channels")
        self.norm = nn.BatchNorm1d(self.steps)
        self.lin = nn.Linear(self.steps, self.out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.norm.reset_parameters()
        self.lin.reset_parameters()

    def forward(self, rw: Tensor) -> Tensor:
        check_tensor(rw, "rw", dim=2, shape=(None, self.steps))
        return self.lin(self.norm(rw))                                          # [N, out]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.steps}, {self.out_channels})"
