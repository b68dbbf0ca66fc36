"""Every split of the package in one place: node masks and index splits that keep class
proportions, stratified cross-validation folds, a random split of a list of graphs, and the
choice of one of several stored node splits.

- :func:`stratified_masks`: train / val / test boolean masks over nodes, the fractions taken
  inside every class (the synthetic node tasks);
- :func:`stratified_split`: the same as sorted index tensors, for any integer labels (the graph
  tasks of :mod:`gatlib.data.tasks`);
- :func:`stratified_folds`: ``k`` disjoint test folds for cross-validation (``gatlib train``'s
  ``cv10`` protocol);
- :func:`random_split`: a fixed random 80/10/10 split of a list of graphs (``gatlib compare``);
- :func:`split_mask`: a ``[N]`` mask, or column ``seed % S`` of an ``[N, S]`` stack of splits.

Each draws from its own ``torch.Generator``, so a split depends on its seed alone, never on
the global random state.
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

import torch
from torch import Tensor

__all__ = ["stratified_masks", "stratified_split", "stratified_folds", "random_split",
           "split_mask"]


def stratified_masks(y: Tensor, num_classes: int, split: Sequence[float],
                      g: torch.Generator) -> Tuple[Tensor, Tensor, Tensor]:
    """Disjoint train/val/test masks with the fractions of ``split`` inside every class."""
    if len(split) != 3 or any(f < 0 for f in split) or sum(split) > 1.0 + 1e-9:
        raise ValueError(f"split must be three non-negative fractions (train, val, test) "
                         f"summing to at most 1, got {tuple(split)!r}")
    masks = [torch.zeros(y.numel(), dtype=torch.bool) for _ in range(3)]
    for c in range(num_classes):
        idx = (y == c).nonzero().view(-1)
        idx = idx[torch.randperm(idx.numel(), generator=g)]
        n_tr = int(round(split[0] * idx.numel()))
        n_va = int(round(split[1] * idx.numel()))
        n_te = min(int(round(split[2] * idx.numel())), idx.numel() - n_tr - n_va)
        masks[0][idx[:n_tr]] = True
        masks[1][idx[n_tr:n_tr + n_va]] = True
        masks[2][idx[n_tr + n_va:n_tr + n_va + n_te]] = True
    return masks[0], masks[1], masks[2]


def stratified_split(y: Tensor, fractions: Sequence[float] = (0.8, 0.1, 0.1),
                     seed: int = 0) -> Tuple[Tensor, Tensor, Tensor]:
    """Disjoint train / val / test indices with the class proportions of ``y`` in each part.

    Inside every class the items are shuffled and cut by ``fractions`` (rounded per class).
    When the fractions sum to 1, items left over by rounding go to train, so the three parts
    cover every item. For the graph tasks of this module,
    ``y = torch.cat([d.y for d in data_list])``.

    Args:
        y: labels ``[N]``, any integer values.
        fractions: ``(train, val, test)`` fractions, non-negative, summing to at most 1
            (default (0.8, 0.1, 0.1)).
        seed: random seed (default 0).

    Returns:
        ``(train, val, test)``: sorted LongTensors of indices into ``y``.
    """
    if not isinstance(y, Tensor):
        raise TypeError(f"y must be a 1-D integer tensor of labels, got {type(y).__name__}")
    if y.dim() != 1 or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise TypeError(f"y must be a 1-D integer tensor of labels, got dtype {y.dtype} and "
                        f"shape {tuple(y.shape)}")
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) > 1.0 + 1e-9:
        raise ValueError(f"fractions must be three non-negative numbers (train, val, test) "
                         f"summing to at most 1, got {fractions!r}")
    classes, labels = torch.unique(y, return_inverse=True)                     # labels [N]
    g = torch.Generator().manual_seed(int(seed))
    train, val, test = stratified_masks(labels, classes.numel(), fractions, g)
    if abs(sum(fractions) - 1.0) <= 1e-9:
        train = ~(val | test)
    return tuple(m.nonzero().view(-1) for m in (train, val, test))


def stratified_folds(y: Tensor, k: int, seed: int) -> List[Tensor]:
    """``k`` disjoint test folds, each with about the same class proportions.

    Inside every class (in sorted label order) the items are shuffled and dealt round-robin to
    the folds, the dealing continuing where the previous class stopped.

    Args:
        y: labels ``[N]``.
        k: number of folds.
        seed: random seed.

    Returns:
        ``k`` sorted LongTensors of indices into ``y`` that together cover every item.
    """
    g = torch.Generator().manual_seed(seed)
    folds: List[List[int]] = [[] for _ in range(k)]
    offset = 0
    for c in torch.unique(y):
        idx = (y == c).nonzero().view(-1)
        idx = idx[torch.randperm(idx.numel(), generator=g)]
        for i, node in enumerate(idx.tolist()):
            folds[(i + offset) % k].append(node)
        offset += idx.numel()
    return [torch.tensor(sorted(f), dtype=torch.long) for f in folds]


def random_split(items: List[Any], seed: int = 0, fractions: Sequence[float] = (0.8, 0.1, 0.1)
                 ) -> Dict[str, List[Any]]:
    """A fixed random split of a list (of graphs): ``{"train", "val", "test": [...]}``, the
    sizes rounded from ``fractions``, the test part the rest. The seed is the data's, not the
    model's."""
    perm = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed)).tolist()
    n_train = int(round(fractions[0] * len(items)))
    n_val = int(round(fractions[1] * len(items)))
    parts = {"train": perm[:n_train], "val": perm[n_train:n_train + n_val],
             "test": perm[n_train + n_val:]}
    return {name: [items[i] for i in idx] for name, idx in parts.items()}


def split_mask(mask: Tensor, seed: int) -> Tensor:
    """A boolean node mask ``[N]``: ``mask`` itself, or column ``seed % S`` when the dataset
    stores ``S`` splits as ``[N, S]`` (the heterophilous graphs, chameleon)."""
    if mask.dim() == 2:
        mask = mask[:, seed % mask.size(1)]
    return mask.bool()
