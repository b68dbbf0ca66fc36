"""How a model meets its data, as two small strategies for the one training loop
(:func:`gatlib.experiments.loop.fit`): how batches are made, how the loss is computed, how a
model is evaluated.

- :class:`NodeProtocol`: one graph whose nodes are split by masks (Cora's public split, the
  heterophilous graphs' stored splits): an epoch is one full-batch step on the training nodes,
  and one forward pass serves every split's evaluation.
- :class:`BatchProtocol`: mini-batches from loaders, one per split (graph classification, or
  node classification over many small graphs): an epoch is a step per training batch.

Both take the loss ``loss(out, y, reduction="mean")`` and the score ``score(out, y)`` (from the
logits ``out``) of the experiment, and answer ``evaluate(model, splits)`` with
``{split: (score, mean loss)}``.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Tuple

import torch
from torch import Tensor

__all__ = ["NodeProtocol", "BatchProtocol"]

Loss = Callable[..., Tensor]
Score = Callable[[Tensor, Tensor], float]


class NodeProtocol:
    """One graph, its nodes split by boolean masks.

    Args:
        x: node features ``[N, F]`` (dense or sparse CSR), on the model's device.
        graph: the graph as the model takes it (``edge_index [2, E]`` or a ``GraphCSR``).
        y: labels ``[N]``.
        masks: ``{"train", "val", "test": [N] bool}``.
        pe: positional encodings ``[N, K]`` or None (given to a model that has a positional
            encoder).
        loss: ``loss(out, y, reduction="mean")``, the training loss.
        score: ``score(logits, y) -> float``.
        eval_loss: ``eval_loss(logits, y) -> float``, the mean loss an evaluation reports.
    """

    def __init__(self, x: Tensor, graph: Any, y: Tensor, masks: Dict[str, Tensor],
                 pe: Optional[Tensor], loss: Loss, score: Score,
                 eval_loss: Callable[[Tensor, Tensor], float]) -> None:
        self.x, self.graph, self.y, self.masks, self.pe = x, graph, y, masks, pe
        self.loss, self.score, self.eval_loss = loss, score, eval_loss

    def forward(self, model: torch.nn.Module) -> Tensor:
        pe = self.pe if getattr(model, "pe_encoder", None) is not None else None
        return model(self.x, self.graph, pe=pe)                                   # [N, C]

    def train_epoch(self, model: torch.nn.Module, opt: torch.optim.Optimizer) -> float:
        """One full-batch step on the training nodes; returns its loss."""
        m = self.masks["train"]
        opt.zero_grad()
        loss = self.loss(self.forward(model)[m], self.y[m])
        loss.backward()
        opt.step()
        return loss.item()

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, splits: Sequence[str]
                 ) -> Dict[str, Tuple[float, float]]:
        """``{split: (score, mean loss)}``, every split from one forward pass."""
        model.eval()
        logits = self.forward(model)                                              # [N, C]
        out = {}
        for split in splits:
            m = self.masks[split]
            out[split] = (self.score(logits[m], self.y[m]), self.eval_loss(logits[m], self.y[m]))
        return out


class BatchProtocol:
    """Mini-batches of PyG ``Data`` from one loader per split.

    Each batch goes to the model as ``model(x, edge_index, batch, pe=...)``, ``pe`` only when
    the model has a positional encoder; the targets are ``batch.y`` flattened (one per graph,
    or one per node).

    Args:
        loaders: ``{"train", "val", "test": iterable of batches}``.
        device: where batches go.
        loss: ``loss(out, y, reduction="mean")``.
        score: ``score(logits, y) -> float`` over a split's concatenated outputs.
        train_loss (default "mean"): what an epoch reports, the loss averaged over every
            target (``"mean"``) or the sum of the batches' losses (``"sum"``).
    """

    def __init__(self, loaders: Dict[str, Iterable], device: Any, loss: Loss, score: Score,
                 train_loss: str = "mean") -> None:
        if train_loss not in ("mean", "sum"):
            raise ValueError(f"train_loss must be 'mean' or 'sum', got {train_loss!r}")
        self.loaders, self.device, self.loss, self.score = loaders, device, loss, score
        self.train_loss = train_loss

    def forward(self, model: torch.nn.Module, batch: Any) -> Tuple[Tensor, Tensor]:
        """``(logits, targets)`` of one batch."""
        batch = batch.to(self.device)
        pe = getattr(batch, "pe", None) if getattr(model, "pe_encoder", None) is not None \
            else None
        out = model(batch.x.float(), batch.edge_index, getattr(batch, "batch", None), pe=pe)
        return out, batch.y.view(-1)

    def train_epoch(self, model: torch.nn.Module, opt: torch.optim.Optimizer) -> float:
        """A step per training batch; returns the epoch's loss (see ``train_loss``)."""
        # Sum the loss on the device and read it once per epoch: a .item() per batch would
        # make the host wait for the GPU at every step.
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        seen = 0
        for batch in self.loaders["train"]:
            opt.zero_grad()
            out, y = self.forward(model, batch)
            loss = self.loss(out, y)
            loss.backward()
            opt.step()
            if self.train_loss == "mean":
                total += loss.detach().double() * y.numel()
                seen += y.numel()
            else:
                total += loss.detach().double()
        # .item() also waits for the last step.
        return total.item() / max(seen, 1) if self.train_loss == "mean" else total.item()

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, splits: Sequence[str]
                 ) -> Dict[str, Tuple[float, float]]:
        """``{split: (score, mean loss)}`` over each split's batches."""
        model.eval()
        out = {}
        for split in splits:
            loss = torch.zeros((), dtype=torch.float64, device=self.device)
            outs, ys = [], []
            for batch in self.loaders[split]:
                logits, y = self.forward(model, batch)
                loss += self.loss(logits, y, reduction="sum").double()
                outs.append(logits)
                ys.append(y)
            if not ys:
                out[split] = (self.score(torch.zeros(0, 1), torch.zeros(0, dtype=torch.long)),
                              0.0)
                continue
            y = torch.cat(ys)                                                       # [T]
            out[split] = (self.score(torch.cat(outs), y), loss.item() / max(y.numel(), 1))
        return out
