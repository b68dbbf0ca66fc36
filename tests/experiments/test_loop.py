"""The one training loop: the early-stopping rules by hand, and what fit calls, in which order."""
import math

import pytest
import torch

from gatlib.experiments.config import ConfigError, load_config
from gatlib.experiments.loop import EarlyStopping, EpochClock, fit


def _feed(stopper, rows):
    """rows: (val, val_loss, test) per epoch; returns the epochs that were the new best."""
    return [e for e, (v, loss, t) in enumerate(rows) if stopper.update(e, v, loss, t)]


def test_best_val_rule_prefers_higher_val_then_lower_loss_and_counts_patience():
    s = EarlyStopping("best_val", patience=2)
    rows = [(0.5, 1.0, 0.1), (0.6, 2.0, 0.2), (0.6, 1.5, 0.3), (0.6, 1.6, 0.4), (0.5, 0.1, 0.5)]
    assert _feed(s, rows[:3]) == [0, 1, 2]
    assert s.best == {"val": 0.6, "val_loss": 1.5, "test": 0.3, "epoch": 2} and not s.stop
    assert not s.update(3, *rows[3]) and s.bad_epochs == 1 and not s.stop
    assert not s.update(4, *rows[4]) and s.stop          # a lower loss alone is no progress


def test_val_or_loss_rule_is_the_gat_papers():
    """Patience restarts when either the val score or the val loss is at least as good as its
    best so far; the epoch kept is the last one at least as good on both."""
    s = EarlyStopping("val_or_loss", patience=2)
    rows = [(0.5, 1.0, 0.1),      # best on both
            (0.6, 1.2, 0.2),      # val up, loss worse: progress, not kept
            (0.4, 0.9, 0.3),      # loss down, val worse: progress, not kept
            (0.6, 0.9, 0.4),      # ties both bests: kept
            (0.1, 5.0, 0.5),      # neither
            (0.1, 5.0, 0.6)]      # neither: patience 2 runs out
    assert _feed(s, rows) == [0, 3]
    assert s.best["test"] == 0.4 and s.best["epoch"] == 3
    assert s.seen == {"val": 0.6, "val_loss": 0.9} and s.stop


def test_val_rule_counts_only_the_val_score():
    s = EarlyStopping("val", patience=1)
    assert _feed(s, [(0.5, 1.0, 0.1), (0.5, 9.0, 0.2)]) == [0, 1]   # ties on val: kept
    assert s.best["epoch"] == 1 and not s.stop
    assert _feed(s, [(0.4, 0.1, 0.3)]) == [] and s.stop


def test_test_score_is_computed_only_for_a_new_best_and_state_round_trips():
    calls = []
    s = EarlyStopping(best={"val": -1.0, "val_loss": math.inf, "test": 0.0, "epoch": -1})
    s.update(0, 0.5, 1.0, lambda: calls.append(0) or 0.7)
    s.update(1, 0.4, 1.0, lambda: calls.append(1) or 0.8)
    assert calls == [0] and s.best["test"] == 0.7 and s.patience is None and not s.stop
    t = EarlyStopping()
    t.load_state_dict(s.state_dict())
    assert t.state_dict() == s.state_dict()
    with pytest.raises(ValueError, match="rule must be one of"):
        EarlyStopping("loss")


class _Scripted:
    """A protocol whose validation scores are given; it records what the loop asks."""

    def __init__(self, vals):
        self.vals, self.calls, self.epoch = vals, [], -1

    def train_epoch(self, model, opt):
        self.epoch += 1
        self.calls.append(("train", self.epoch, model.training))
        return float(self.epoch)

    def evaluate(self, model, splits):
        self.calls.append(("eval", tuple(splits)))
        v = self.vals[self.epoch]
        return {s: (v if s == "val" else 10 * v, 1.0) for s in splits}


def test_fit_trains_evaluates_logs_and_stops_before_after():
    model = torch.nn.Linear(1, 1)
    proto = _Scripted([0.1, 0.5, 0.4, 0.3, 0.9])
    logged, after = [], []
    stopper = fit(model, None, proto, EarlyStopping("best_val", patience=2), range(5),
                  clock=EpochClock(), splits=("val",),
                  log=lambda e, loss, s: logged.append((e, loss, s["val"][0])),
                  after=after.append)
    # Epoch 3 is the second without progress: the loop stops before after(3) and epoch 4.
    assert [e for e, _, _ in logged] == [0, 1, 2, 3] and after == [0, 1, 2]
    assert all(c[2] for c in proto.calls if c[0] == "train")        # model.train() first
    # The test split is evaluated lazily, only at the new bests (epochs 0 and 1).
    assert proto.calls.count(("eval", ("test",))) == 2
    assert stopper.best == {"val": 0.5, "val_loss": 1.0, "test": 5.0, "epoch": 1}


def test_epoch_clock_times_each_epoch():
    clock = EpochClock()
    for _ in range(3):
        with clock.epoch():
            sum(range(1000))
    assert len(clock.times) == len(clock.cpu) == 3 and all(t >= 0 for t in clock.times)
    assert clock.peak_bytes is None and clock.load >= 0


def test_protocol_key_is_read_and_must_fit_the_task(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("dataset: MUTAG\ntask: graph\n")
    assert load_config(cfg)["protocol"] == "cv10"              # unset: the task's own
    cfg.write_text("dataset: Cora\ntask: node\n")
    assert load_config(cfg)["protocol"] == "planetoid"
    with pytest.raises(ConfigError, match="protocol=cv10 does not fit task=node"):
        load_config(cfg, ["protocol=cv10"])
    cfg.write_text("dataset: MUTAG\ntask: graph\nprotocol: splits\n")
    with pytest.raises(ConfigError, match="graph tasks cv10"):
        load_config(cfg)
