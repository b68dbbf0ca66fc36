"""How a model meets its data, as two small strategies for the one training loop
(:func:`gatlib.experiments.loop.fit`): how batches are made, how the loss is computed, how a
model is evaluated.

- :class:`NodeProtocol`: one graph whose nodes are split by masks (Cora's public split, the
  heterophilous graphs' stored splits): an epoch is one full-batch step on the training nodes,
  and one forward pass serves every split's evaluation.
- :class:`BatchProtocol`: mini-batches from loaders, one per split (graph classification, or
  node classification over many small graphs): an epoch is a step per training batch.
- :class:`NeighborProtocol`: one graph, trained on mini-batches of sampled in-neighbourhoods of
  its training nodes (:mod:`gatlib.loader`), evaluated over the whole graph layer by layer
  (:func:`gatlib.nn.inference.layerwise_inference`); under ``torchrun`` each rank trains on
  its share of the training nodes and rank 0 evaluates for all.

Both take the loss ``loss(out, y, reduction="mean")`` and the score ``score(out, y)`` (from the
logits ``out``) of the experiment, and answer ``evaluate(model, splits)`` with
``{split: (score, mean loss)}``.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Tuple

import torch
from torch import Tensor

__all__ = ["NodeProtocol", "BatchProtocol", "NeighborProtocol", "BlockForward", "epoch_seed"]

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

    Each batch goes to the model as ``model(x, edge_index, batch, edge_attr=..., pe=...)``,
    ``edge_attr`` only when the model reads edge features (``edge_dim``) and ``pe`` only when
    it has a positional encoder; the targets are ``batch.y`` flattened (one per graph, or one
    per node). A batch with a boolean ``target_mask`` per node (nodes that an attention pattern
    added, such as Exphormer's virtual nodes, are ``False``) is scored on the masked nodes
    only.

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
        edge_attr = (getattr(batch, "edge_attr", None) if getattr(model, "edge_dim", None)
                     else None)
        out = model(batch.x.float(), batch.edge_index, getattr(batch, "batch", None),
                    edge_attr=edge_attr, pe=pe)
        y = batch.y.view(-1)
        keep = getattr(batch, "target_mask", None)
        if keep is not None:
            out, y = out[keep], y[keep]
        return out, y

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


def epoch_seed(seed: int, rank: int, epoch: int) -> int:
    """The seed of one rank's epoch (sampling and dropout): a function of the run's seed, the
    rank and the epoch only, so a resumed run draws what an uninterrupted one would."""
    return ((int(seed) * 1_000_003 + int(epoch)) * 1_009 + int(rank)) % (2 ** 62)


class BlockForward(torch.nn.Module):
    """``model`` run on the per-layer blocks of a sampled batch
    (:func:`gatlib.nn.inference.forward_blocks`) as a module, so that DDP can wrap it: DDP
    all-reduces the gradients of the parameters a forward through it used."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, blocks: Sequence[Any], pe: Optional[Tensor] = None) -> Tensor:
        from ..nn.inference import forward_blocks
        return forward_blocks(self.model, x, blocks, pe=pe)                       # [B, C]


class NeighborProtocol:
    """One graph, trained on sampled neighbourhoods of its training nodes, evaluated on all.

    An epoch: the training nodes in a shuffled order (a ``DistributedSampler`` over them, of
    ``world_size`` ranks; this rank's share), cut into batches of ``batch_size`` seeds, each
    batch's ``len(fanouts)``-hop in-neighbourhood sampled (:func:`gatlib.loader.neighbor_loader`
    with gatlib's sampler) and the model run layer by layer on its blocks
    (:class:`BlockForward`); the loss is the mean over the batch's seeds. The order, the
    sampling and dropout are seeded from ``(seed, rank, epoch)`` (:func:`epoch_seed`), so
    resuming at an epoch is exact. Under DDP the gradients are averaged over the ranks: with
    equal shares, one step is the gradient of the mean loss over ``world_size * batch_size``
    seeds (a ``DistributedSampler`` pads the last share by repeating a few seeds).

    Evaluation runs :func:`gatlib.nn.inference.layerwise_inference` over the whole graph, on
    rank 0 only; the other ranks receive its scores, so every rank takes the same
    early-stopping decision.

    Args:
        data: PyG ``Data`` with ``x`` (dense), ``y``, ``edge_index`` (and ``pe`` when the model
            reads positional encodings), on the CPU: the loader samples from it.
        x, graph, y, masks, pe: as :class:`NodeProtocol`'s (on the model's device), for
            evaluation.
        fanouts (list of int): neighbours sampled per layer, ``-1`` for all.
        batch_size (int): seeds per step on each rank.
        replace (bool): sample with replacement.
        seed (int): the run's seed.
        loss, score, eval_loss: as :class:`NodeProtocol`'s.
        device: where batches go.
        world_size, rank (default 1, 0): the process group.
        chunk_size (default 4096): targets per chunk of the layer-wise evaluation.
    """

    def __init__(self, data: Any, x: Tensor, graph: Any, y: Tensor, masks: Dict[str, Tensor],
                 pe: Optional[Tensor], *, fanouts: Sequence[int], batch_size: int,
                 replace: bool, seed: int, loss: Loss, score: Score,
                 eval_loss: Callable[[Tensor, Tensor], float], device: Any,
                 world_size: int = 1, rank: int = 0, chunk_size: int = 4096) -> None:
        from torch.utils.data.distributed import DistributedSampler

        from ..loader import neighbor_loader
        self.x, self.graph, self.y, self.masks, self.pe = x, graph, y, masks, pe
        self.loss, self.score, self.eval_loss = loss, score, eval_loss
        self.device, self.seed, self.rank, self.world_size = device, seed, rank, world_size
        self.chunk_size = chunk_size
        train_idx = masks["train"].nonzero().view(-1).cpu()                      # [N_train]
        self.order = DistributedSampler(range(train_idx.numel()), num_replicas=world_size,
                                        rank=rank, shuffle=True, seed=seed)
        self.loader = neighbor_loader(data, list(fanouts), batch_size, input_nodes=train_idx,
                                      replace=replace, backend="gatlib",
                                      seed=epoch_seed(seed, rank, 0), sampler=self.order)
        self.num_layers = len(fanouts)
        self.epoch = 0                 # set by the caller before each train_epoch
        self.step_module: Optional[torch.nn.Module] = None

    def wrap(self, model: torch.nn.Module, ddp: bool) -> None:
        """Make the training forward :class:`BlockForward` of ``model``, DDP-wrapped when
        ``ddp`` (call once the model holds its starting or resumed parameters)."""
        step = BlockForward(model)
        if ddp:
            from torch.nn.parallel import DistributedDataParallel
            dev = torch.device(self.device)
            if dev.type == "cuda":         # "cuda": this rank's GPU (torch.cuda.set_device)
                index = dev.index if dev.index is not None else torch.cuda.current_device()
                step = DistributedDataParallel(step, device_ids=[index])
            else:
                step = DistributedDataParallel(step)
        self.step_module = step

    def train_epoch(self, model: torch.nn.Module, opt: torch.optim.Optimizer) -> float:
        """A step per batch of this rank's share of the training nodes; returns the mean
        training loss over every rank's seeds."""
        from . import distributed
        from ..loader import to_blocks
        if self.step_module is None:
            self.wrap(model, ddp=False)
        s = epoch_seed(self.seed, self.rank, self.epoch)
        self.order.set_epoch(self.epoch)
        self.loader.node_sampler.reseed(s)
        torch.manual_seed(s)                                                  # dropout
        self.step_module.train()
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        seen = 0
        for batch in self.loader:
            blocks = [(ei.to(self.device), size, e)
                      for ei, size, e in to_blocks(batch, self.num_layers)]
            pe = batch.pe.to(self.device) if self.pe is not None else None
            opt.zero_grad()
            out = self.step_module(batch.x.to(self.device), blocks, pe)           # [B, C]
            y = batch.y[:batch.batch_size].to(self.device)                        # [B]
            loss = self.loss(out, y)
            loss.backward()
            opt.step()
            total += loss.detach().double() * y.numel()
            seen += y.numel()
        return distributed.all_mean(total.item(), seen)

    @torch.no_grad()
    def _evaluate_here(self, model: torch.nn.Module, splits: Sequence[str]
                       ) -> Dict[str, Tuple[float, float]]:
        from ..nn.inference import layerwise_inference
        model.eval()
        logits = layerwise_inference(model, self.x, self.graph, pe=self.pe,
                                     chunk_size=self.chunk_size)                 # [N, C]
        out = {}
        for split in splits:
            m = self.masks[split]
            out[split] = (self.score(logits[m], self.y[m]), self.eval_loss(logits[m], self.y[m]))
        return out

    def evaluate(self, model: torch.nn.Module, splits: Sequence[str]
                 ) -> Dict[str, Tuple[float, float]]:
        """``{split: (score, mean loss)}`` from one layer-wise pass over the whole graph, on
        rank 0 (every rank holds the same parameters), shared with the other ranks."""
        from . import distributed
        mine = self._evaluate_here(model, splits) if self.rank == 0 else None
        return distributed.share(mine)
