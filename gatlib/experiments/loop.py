"""The one training loop of the experiments (``gatlib train`` and ``gatlib compare``), with
its early-stopping policy and its epoch clock.

:func:`fit` runs epochs of a protocol (:mod:`gatlib.experiments.protocols`): train, evaluate,
report, let the :class:`EarlyStopping` policy keep the best epoch and decide whether to go on.
What differs between experiments is passed in: the protocol, the policy, which splits each
epoch evaluates, and two callbacks (``log`` after each evaluation, ``after`` at the end of an
epoch that does not stop: checkpoints, progress bars).
"""
from __future__ import annotations

import math
import os
import random
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence

import numpy as np
import torch

from ..utils import PeakMemory

__all__ = ["EarlyStopping", "EpochClock", "fit", "seed_everything", "TrainingInterrupted"]


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; the message says where it stopped and how to resume."""


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class EarlyStopping:
    """Which epoch's model counts (``best``: its validation score and loss, its test score and
    its epoch) and when training stops.

    Rules (``rule``):

    - ``"best_val"``: an epoch is the best when its validation score beats the best so far, or
      ties it with a lower validation loss; patience counts the epochs since the best.
    - ``"val_or_loss"``: the GAT paper's code. Patience restarts when the validation score or
      the validation loss is at least as good as its best so far (each tracked on its own);
      the epoch kept is the last one at least as good on both.
    - ``"val"``: the GAT authors' rule for CiteSeer (PetarV-/GAT issue 14): only the validation
      score counts; the epoch kept is the last one at least as good on it.

    Args:
        rule (default "best_val"): one of the above.
        patience (default None: never stop): epochs without progress before stopping.
        best (default: score -inf, loss +inf, test NaN, epoch -1): the starting record.
    """

    RULES = ("best_val", "val_or_loss", "val")

    def __init__(self, rule: str = "best_val", patience: Optional[int] = None,
                 best: Optional[Dict[str, float]] = None) -> None:
        if rule not in self.RULES:
            raise ValueError(f"rule must be one of {self.RULES}, got {rule!r}")
        self.rule, self.patience = rule, patience
        self.best = dict(best) if best is not None else {
            "val": -math.inf, "val_loss": math.inf, "test": float("nan"), "epoch": -1}
        self.seen = {"val": -math.inf, "val_loss": math.inf}
        self.bad_epochs = 0

    def update(self, epoch: int, val: float, val_loss: float,
               test: "float | Callable[[], float]") -> bool:
        """Record an epoch's validation score and loss; ``test`` is its test score, or a
        function that computes it (called only when the epoch is the new best). Returns whether
        it is the new best."""
        if self.rule == "best_val":
            better = val > self.best["val"] or (val == self.best["val"]
                                                and val_loss < self.best["val_loss"])
            progress = better
        else:
            up, down = val >= self.seen["val"], val_loss <= self.seen["val_loss"]
            if self.rule == "val":
                down = up
            better, progress = up and down, up or down
            if progress:
                self.seen = {"val": max(val, self.seen["val"]),
                             "val_loss": min(val_loss, self.seen["val_loss"])}
        if better:
            self.best = {"val": val, "val_loss": val_loss,
                         "test": test() if callable(test) else test, "epoch": epoch}
        self.bad_epochs = 0 if progress else self.bad_epochs + 1
        return better

    @property
    def stop(self) -> bool:
        """Whether patience has run out."""
        return self.patience is not None and self.bad_epochs >= self.patience

    def state_dict(self) -> Dict[str, Any]:
        return {"best": dict(self.best), "seen": dict(self.seen), "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.best, self.seen = dict(state["best"]), dict(state["seen"])
        self.bad_epochs = int(state["bad_epochs"])


class EpochClock:
    """Wall and process CPU time of each training epoch (``times``, ``cpu``), the largest
    1-minute load average seen at an epoch's end (``load``) and, with ``peak=True``, the peak
    memory the first timed epoch adds (``peak_bytes``, see :class:`~gatlib.utils.PeakMemory`).
    """

    def __init__(self, device: Any = "cpu", peak: bool = False) -> None:
        self.device, self.peak = device, peak
        self.times: List[float] = []
        self.cpu: List[float] = []
        self.load = 0.0
        self.peak_bytes: Optional[int] = None

    @contextmanager
    def epoch(self) -> Iterator[None]:
        mem = PeakMemory(self.device) if self.peak and not self.times else None
        t0, c0 = time.perf_counter(), time.process_time()
        if mem is not None:
            mem.__enter__()
        yield
        if mem is not None:
            mem.__exit__(None, None, None)
            self.peak_bytes = mem.bytes
        self.times.append(time.perf_counter() - t0)
        self.cpu.append(time.process_time() - c0)
        self.load = max(self.load, os.getloadavg()[0])


def fit(model: torch.nn.Module, opt: torch.optim.Optimizer, protocol: Any,
        stopper: EarlyStopping, epochs: Iterable[int], *, clock: Optional[EpochClock] = None,
        splits: Sequence[str] = ("val", "test"),
        log: Optional[Callable[[int, float, Dict[str, Any]], None]] = None,
        after: Optional[Callable[[int], None]] = None) -> EarlyStopping:
    """Train ``model`` over ``epochs`` (an iterable of epoch numbers, e.g. a progress bar over
    a range that starts where a checkpoint left off).

    Each epoch: ``protocol.train_epoch`` (timed by ``clock``), ``protocol.evaluate`` on
    ``splits``, ``log(epoch, train_loss, scores)``, then ``stopper.update`` with the validation
    score and loss and the test score (evaluated only when the epoch is the best, when
    ``"test"`` is not among ``splits``). Stops when the stopper says so; otherwise calls
    ``after(epoch)``. Returns the stopper, which holds the best epoch.
    """
    for epoch in epochs:
        model.train()
        if clock is None:
            train_loss = protocol.train_epoch(model, opt)
        else:
            with clock.epoch():
                train_loss = protocol.train_epoch(model, opt)
        scores = protocol.evaluate(model, splits)
        if log is not None:
            log(epoch, train_loss, scores)
        if "test" in scores:
            test: Any = scores["test"][0]
        else:
            def test() -> float:
                return protocol.evaluate(model, ("test",))["test"][0]
        stopper.update(epoch, scores["val"][0], scores["val"][1], test)
        if stopper.stop:
            break
        if after is not None:
            after(epoch)
    return stopper
