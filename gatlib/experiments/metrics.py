"""Scores and losses of the experiments, each written once.

Two readings of accuracy exist on purpose, each the one its recorded results used:
:func:`accuracy` is the float32 mean of the hits (``gatlib train``'s node runs and
``gatlib compare``), :func:`fraction_correct` the integer count over the total in float64
(``gatlib train``'s graph cross-validation).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["accuracy", "fraction_correct", "balanced_accuracy", "roc_auc", "logits_metric",
           "balanced_cross_entropy"]


def accuracy(pred: Tensor, y: Tensor) -> float:
    """The share of ``pred == y`` (a float32 mean); NaN when there is nothing to score."""
    if y.numel() == 0:
        return float("nan")
    return (pred == y).float().mean().item()


def fraction_correct(pred: Tensor, y: Tensor) -> float:
    """Correct predictions over all of them, counted as integers; 0.0 when there are none."""
    return int((pred == y).sum()) / max(y.numel(), 1)


def balanced_accuracy(pred: Tensor, y: Tensor, num_classes: int) -> float:
    """The mean recall over the classes present (Dwivedi et al.'s metric for PATTERN and
    CLUSTER, where chance is 1 / classes whatever the class sizes); NaN when empty."""
    if y.numel() == 0:
        return float("nan")
    pred, y = pred.cpu(), y.cpu()
    hits = torch.zeros(num_classes).index_add_(0, y, (pred == y).float())      # [classes]
    counts = torch.bincount(y, minlength=num_classes).float()                  # [classes]
    present = counts > 0
    return (hits[present] / counts[present]).mean().item()


def roc_auc(score: Tensor, y: Tensor) -> float:
    """Area under the ROC curve (ties get the average rank: the Mann-Whitney U statistic);
    NaN without both classes."""
    y = y.bool()
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = torch.argsort(score)
    ranks = torch.empty_like(score, dtype=torch.float64)
    ranks[order] = torch.arange(1, score.numel() + 1, dtype=torch.float64)
    # Average the ranks of tied scores.
    uniq, inverse, counts = torch.unique(score, return_inverse=True, return_counts=True)
    if uniq.numel() < score.numel():
        sums = torch.zeros(uniq.numel(), dtype=torch.float64).index_add_(0, inverse, ranks)
        ranks = (sums / counts)[inverse]
    return ((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)).item()


def logits_metric(name: str, logits: Tensor, y: Tensor) -> float:
    """A config's ``metric`` (``accuracy`` or ``roc_auc``, the positive class's softmax) of
    ``logits [N, C]``; NaN when there is nothing to score."""
    if y.numel() == 0:
        return float("nan")
    if name == "accuracy":
        return accuracy(logits.argmax(-1), y)
    if name == "roc_auc":
        return roc_auc(torch.softmax(logits.float(), -1)[:, 1], y)
    raise ValueError(f"metric must be 'accuracy' or 'roc_auc', got {name!r}")


def balanced_cross_entropy(out: Tensor, y: Tensor, num_classes: int,
                           reduction: str = "mean") -> Tensor:
    """Cross-entropy weighted per batch by ``(n - n_c) / n`` for class ``c`` of ``n_c`` of the
    ``n`` targets, as Dwivedi et al. weight it, so that a model cannot score by predicting the
    majority class."""
    if y.numel() == 0:
        return F.cross_entropy(out, y, reduction=reduction)
    counts = torch.bincount(y, minlength=num_classes).to(out.dtype)          # [classes]
    weight = (y.numel() - counts) / y.numel() * (counts > 0)                  # [classes]
    return F.cross_entropy(out, y, weight=weight, reduction=reduction)
