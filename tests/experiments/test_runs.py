"""Runs a user can trust: identified by their resolved config, one process per run folder,
checkpoints that survive damage, and a command line that speaks in one or two lines."""
import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

import gatlib.data
from gatlib import cli
from gatlib.experiments import supervised as run_mod
from gatlib.experiments.protocols import BatchProtocol
from gatlib.experiments.checkpoint import load_checkpoint, save_checkpoint
from gatlib.utils import FolderLock, FolderLocked

from .test_cli import _config, _graph_config, _interrupt_on_call, toy  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


def _train(cfg, res, *extra):
    return cli.main(["train", "--config", str(cfg), "--results", str(res), "--quiet", *extra])


def _metrics(res, name="toy-gat", seed=0):
    return json.loads((res / name / str(seed) / "metrics.json").read_text())


def _error_lines(err: str):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert 1 <= len(lines) <= 2, err
    assert "Traceback" not in err
    return lines


# ------------------------------------------------------------------ 1. identity by config

def test_finished_run_of_another_config_is_refused_naming_the_changed_keys(toy, tmp_path,
                                                                          capsys):
    cfg, res = _config(tmp_path), tmp_path / "res"
    assert _train(cfg, res, "train.epochs=4") == 0
    first = _metrics(res)
    capsys.readouterr()
    # The case: other overrides into a folder that holds a finished seed.
    assert _train(cfg, res, "model.heads=4", "train.epochs=3") == 2
    lines = _error_lines(capsys.readouterr().err)
    assert "model.heads: 2 -> 4" in lines[0] and "train.epochs: 4 -> 3" in lines[0]
    assert "--restart" in lines[1] and "name=toy-gat-2" in lines[1]
    assert _metrics(res) == first                                  # untouched
    # The same config is the same run: its result is reused, nothing trains.
    calls = []
    real = run_mod.train_node
    run_mod.train_node = lambda *a: calls.append(1) or real(*a)
    try:
        assert _train(cfg, res, "train.epochs=4") == 0
    finally:
        run_mod.train_node = real
    assert calls == [] and _metrics(res) == first
    # Another name keeps both; --restart replaces the run.
    assert _train(cfg, res, "model.heads=4", "train.epochs=3", "name=toy-gat-2") == 0
    assert _metrics(res, "toy-gat-2")["epochs_run"] == 3
    assert _train(cfg, res, "model.heads=4", "train.epochs=3", "--restart") == 0
    again = _metrics(res)
    assert again["epochs_run"] == 3 and again["config_hash"] != first["config_hash"]
    saved = yaml.safe_load((res / "toy-gat" / "0" / "config.yaml").read_text())
    assert saved["model"]["heads"] == 4
    rec = json.loads((res / "toy-gat" / "0" / "run.json").read_text())
    assert rec["config_hash"] == again["config_hash"] and rec["config"] == saved
    assert rec["gatlib"] == gatlib.__version__


def test_resume_with_a_changed_override_is_refused_not_run_with_the_old_state(toy, tmp_path,
                                                                             monkeypatch,
                                                                             capsys):
    """Before, a changed lr resumed with the optimizer's old lr while config.yaml said the new
    one, and a changed width died with 'size mismatch' after config.yaml was overwritten."""
    cfg, res = _config(tmp_path), tmp_path / "res"
    real = _interrupt_on_call(monkeypatch, "_metric", 3 * 13)
    assert _train(cfg, res) == 130
    monkeypatch.setattr(run_mod, "_metric", real)
    seed_dir = res / "toy-gat" / "0"
    before = (seed_dir / "config.yaml").read_text()
    capsys.readouterr()
    for override, change in (("optim.lr=0.05", "optim.lr: 0.005 -> 0.05"),
                             ("model.hidden_channels=8", "model.hidden_channels: 4 -> 8")):
        assert _train(cfg, res, override) == 2
        assert change in _error_lines(capsys.readouterr().err)[0]
        assert (seed_dir / "config.yaml").read_text() == before
        assert (seed_dir / "checkpoint.pt").exists()
    # The unchanged command resumes it.
    assert _train(cfg, res) == 0 and _metrics(res)["epochs_run"] == 30


def test_a_resumed_run_removes_the_temporary_files_a_killed_write_left(toy, tmp_path,
                                                                         monkeypatch):
    """A run killed inside a checkpoint write leaves ``.checkpoint.pt.<random>.tmp``; resuming
    it (under the folder's lock) removes such files, and only those."""
    cfg, res = _config(tmp_path), tmp_path / "res"
    real = _interrupt_on_call(monkeypatch, "_metric", 3 * 13)
    assert _train(cfg, res) == 130
    monkeypatch.setattr(run_mod, "_metric", real)
    seed_dir = res / "toy-gat" / "0"
    stale = [seed_dir / ".checkpoint.pt.k3j9x2.tmp", seed_dir / ".metrics.json.a8b1.tmp"]
    for p in stale:
        p.write_bytes(b"half a write")
    mine = seed_dir / ".notes.tmp"                  # not a run file's temporary: left alone
    mine.write_text("user file")
    assert _train(cfg, res) == 0 and _metrics(res)["epochs_run"] == 30
    assert not any(p.exists() for p in stale)
    assert mine.exists()


def test_bad_override_is_named_before_any_data_is_loaded(tmp_path, monkeypatch, capsys):
    def no_data(*a, **k):
        raise AssertionError("data loaded before the config was checked")
    monkeypatch.setattr(gatlib.data, "load_dataset", no_data)
    res = tmp_path / "res"
    for override, words in (("optim.lr=abc", ["optim.lr", "number", "'abc'"]),
                            ("model.heads=0", ["model.heads", ">= 1"]),
                            ("train.epochs=2.5", ["train.epochs", "whole number"]),
                            ("model.layer=gcn", ["model.layer", "gat, gatv2"]),
                            ("model.head=4", ["unknown config key 'model.head'"])):
        assert _train(_config(tmp_path), res, override) == 2, override
        line = _error_lines(capsys.readouterr().err)[0]
        assert all(w in line for w in words), line
    assert not res.exists()                             # no folder, no config.yaml
    # A YAML value is checked the same way, and numbers are spelt one way (1e-3 is a float).
    cfg = _config(tmp_path)
    cfg.write_text(cfg.read_text() + "optim: {lr: 1e-3}\n")
    from gatlib.experiments import load_config
    assert load_config(cfg)["optim"]["lr"] == 0.001
    cfg.write_text(cfg.read_text().replace("lr: 1e-3", "lr: fast"))
    assert _train(cfg, res) == 2
    assert "optim.lr" in _error_lines(capsys.readouterr().err)[0]


def test_missing_data_writes_no_config_and_says_where_it_looked(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gatlib.data.root, "mirror_roots", lambda: [])
    monkeypatch.setenv("GATLIB_DATA", str(tmp_path / "empty-root"))
    cfg = tmp_path / "cora.yaml"
    cfg.write_text("dataset: Cora\ntrain: {epochs: 2}\n")
    res = tmp_path / "res"
    assert _train(cfg, res) == 2
    line = _error_lines(capsys.readouterr().err)[0]
    assert "Cora: not in" in line and str(tmp_path / "empty-root") in line
    assert "GATLIB_OFFLINE" in line and "gatlib data fetch Cora" in line
    assert not (res / "cora" / "0" / "config.yaml").exists()
    assert not (res / "cora" / "0" / "run.json").exists()


def test_a_run_of_an_older_gatlib_is_adopted_only_when_its_config_matches(toy, tmp_path,
                                                                         capsys):
    cfg, res = _config(tmp_path), tmp_path / "res"
    assert _train(cfg, res, "train.epochs=3") == 0
    seed_dir = res / "toy-gat" / "0"
    (seed_dir / "run.json").unlink()                    # as an older gatlib left it
    m = _metrics(res)
    assert _train(cfg, res, "train.epochs=3") == 0 and _metrics(res) == m
    assert (seed_dir / "run.json").exists()             # adopted: its hash recorded now
    (seed_dir / "run.json").unlink()
    assert _train(cfg, res, "train.epochs=5") == 2
    assert "train.epochs: 3 -> 5" in capsys.readouterr().err


# ------------------------------------------------------------------ 2. locks and checkpoints

def test_a_second_process_on_a_run_folder_fails_at_once(toy, tmp_path, capsys):
    cfg, res = _config(tmp_path), tmp_path / "res"
    seed_dir = res / "toy-gat" / "0"
    with FolderLock(seed_dir, what="run"):
        assert _train(cfg, res, "train.epochs=2") == 2
        line = _error_lines(capsys.readouterr().err)[0]
        assert str(seed_dir) in line and f"process {os.getpid()}" in line
        assert not (seed_dir / "config.yaml").exists()
        with pytest.raises(FolderLocked):
            FolderLock(seed_dir).acquire()
    assert _train(cfg, res, "train.epochs=2") == 0      # released on leaving the block


def test_the_lock_is_released_when_its_holder_is_killed(tmp_path):
    folder = tmp_path / "run"
    code = ("import sys, time; sys.path.insert(0, sys.argv[1]); "
            "from gatlib.utils.lock import FolderLock; "
            "FolderLock(sys.argv[2]).acquire(); print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(ROOT), str(folder)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(FolderLocked, match=f"process {proc.pid}"):
            FolderLock(folder).acquire()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    FolderLock(folder).acquire().release()             # kill -9 left no stale lock


def test_checkpoint_writes_are_atomic_unique_and_synced(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    errors = []

    def writer(tag):
        try:
            for i in range(40):
                save_checkpoint({"tag": tag, "i": i}, path)
        except Exception as exc:                        # a shared temp name fails here
            errors.append(exc)
    threads = [threading.Thread(target=writer, args=(t,)) for t in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert load_checkpoint(path)["i"] == 39
    # No temporary file is left, whoever won each rename.
    assert {p.name for p in tmp_path.iterdir()} <= {"checkpoint.pt", "checkpoint.prev.pt"}
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real(fd))
    save_checkpoint({"x": 1}, path)
    assert synced                                        # the data reached the disk first


@pytest.mark.parametrize("damage", ["newest", "both"])
def test_a_damaged_checkpoint_falls_back_and_the_result_is_unchanged(toy, tmp_path,
                                                                    monkeypatch, capsys,
                                                                    damage):
    cfg = _config(tmp_path)
    cfg.write_text(cfg.read_text().replace("epochs: 30", "epochs: 15"))
    assert _train(cfg, tmp_path / "full") == 0
    want = _metrics(tmp_path / "full")
    real = _interrupt_on_call(monkeypatch, "_metric", 3 * 13)   # checkpoints at epochs 5, 10
    res = tmp_path / "res"
    assert _train(cfg, res) == 130
    monkeypatch.setattr(run_mod, "_metric", real)
    seed_dir = res / "toy-gat" / "0"
    newest = seed_dir / "checkpoint.pt"
    newest.write_bytes(newest.read_bytes()[:-100])              # cut short by a crash
    if damage == "both":
        prev = seed_dir / "checkpoint.prev.pt"
        data = bytearray(prev.read_bytes())
        data[-50:-47] = bytes(b ^ 0xFF for b in data[-50:-47])   # three bytes flipped
        prev.write_bytes(bytes(data))
    capsys.readouterr()
    assert _train(cfg, res) == 0
    err = capsys.readouterr().err
    assert "checkpoint damaged: checkpoint.pt" in err
    if damage == "newest":
        assert "resuming from checkpoint.prev.pt" in err
    else:
        assert "checkpoint.prev.pt" in err and "starts from scratch" in err
    got = _metrics(res)
    for key in ("test_accuracy", "val_accuracy", "best_epoch", "epochs_run"):
        assert got[key] == want[key], key
    epochs = [json.loads(ln)["epoch"] for ln in (seed_dir / "log.jsonl").read_text().splitlines()]
    assert epochs == list(range(15))
    assert sorted(p.name for p in seed_dir.iterdir()) == [
        ".lock", "config.yaml", "log.jsonl", "metrics.json", "run.json"]


def test_a_damaged_folds_file_restarts_the_folds(toy, tmp_path, monkeypatch, capsys):
    path = _graph_config(tmp_path, "gat", epochs=2, patience=100)
    res = tmp_path / "res"
    real = _interrupt_on_call(monkeypatch, "_evaluate", 12)       # after a fold or two
    assert _train(path, res) == 130
    err = capsys.readouterr().err
    fold = len(json.loads((res / "toy-graphs" / "0" / "folds.json").read_text()))
    assert fold >= 1 and re.search(
        rf"interrupted at epoch \d of fold {fold}; re-run the same command to resume "
        rf"\(from the start of fold {fold}", err), err
    monkeypatch.setattr(BatchProtocol, "evaluate", real)
    seed_dir = res / "toy-graphs" / "0"
    (seed_dir / "folds.json").write_text('[{"val": 0.5, "te')
    assert _train(path, res) == 0
    assert "folds.json is damaged" in capsys.readouterr().err
    m = _metrics(res, "toy-graphs")
    assert len(m["test_accuracy_folds"]) == 10


# ------------------------------------------------------------------ 4. the command line

def test_ctrl_c_exits_130_and_says_how_to_resume(toy, tmp_path, monkeypatch, capsys):
    _interrupt_on_call(monkeypatch, "_metric", 3 * 13)
    assert _train(_config(tmp_path), tmp_path / "res") == 130
    err = capsys.readouterr().err
    assert "interrupted at epoch 12; re-run the same command to resume" in err
    assert "from epoch 10" in err and "Traceback" not in err


def test_user_errors_are_short_and_debug_shows_the_traceback(tmp_path, capsys):
    missing = str(tmp_path / "nope.yaml")
    assert cli.main(["train", "--config", missing]) == 2
    line = _error_lines(capsys.readouterr().err)[0]
    assert line.startswith("gatlib train: error: config file") and "nope.yaml" in line
    assert cli.main(["train", "--config", str(_config(tmp_path)), "--seeds", "x"]) == 2
    assert "--seeds must look like 0-9" in _error_lines(capsys.readouterr().err)[0]
    with pytest.raises(FileNotFoundError):
        cli.main(["--debug", "train", "--config", missing])
    with pytest.raises(FileNotFoundError):
        cli.main(["train", "--config", missing, "--debug"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: [Cora\n")
    assert cli.main(["train", "--config", str(bad)]) == 2
    assert "not valid YAML" in _error_lines(capsys.readouterr().err)[0]
