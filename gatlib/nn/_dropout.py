"""Dropout for the layers and models: ``F.dropout``'s distribution (each element kept with
probability ``1 - p``, independently, and scaled by ``1 / (1 - p)``) from a mask of random
bytes instead of a Bernoulli draw per element on the CPU (:mod:`gatlib.ops.dropout`)."""
from __future__ import annotations

from torch import Tensor, nn

from ..ops.dropout import dropout

__all__ = ["dropout", "Dropout"]


class Dropout(nn.Dropout):
    """``nn.Dropout`` with :func:`dropout`'s mask (same arguments, state and repr; ``inplace``
    runs ``nn.Dropout`` itself).

    Shapes: any -> the same.
    """

    def forward(self, x: Tensor) -> Tensor:
        if self.inplace:
            return super().forward(x)
        return dropout(x, self.p, self.training)
