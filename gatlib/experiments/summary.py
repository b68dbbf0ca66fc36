"""Many seeds -> ``mean ± std`` tables (Markdown) and learning-curve plots (PNG)."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import yaml

from ..utils import UserError, atomic_write_text, read_jsonl

__all__ = ["collect", "summarize", "NoRuns"]


class NoRuns(UserError, FileNotFoundError):
    """A results folder without finished runs."""


def collect(results: Path) -> Dict[str, List[Dict[str, Any]]]:
    """``{run name: [metrics of each finished seed]}`` under a results folder."""
    runs: Dict[str, List[Dict[str, Any]]] = {}
    for metrics in sorted(Path(results).glob("*/*/metrics.json")):
        runs.setdefault(metrics.parent.parent.name, []).append(json.loads(metrics.read_text()))
    return runs


def _config(results: Path, name: str) -> Dict[str, Any]:
    for cfg in sorted((Path(results) / name).glob("*/config.yaml")):
        return yaml.safe_load(cfg.read_text())
    return {}


def _fmt(values: List[float]) -> str:
    arr = np.asarray(values, dtype=float) * 100
    std = arr.std(ddof=1) if arr.size > 1 else 0.0
    return f"{arr.mean():.1f} ± {std:.1f}"


def _plot_curves(results: Path, name: str, metric: str) -> Optional[Path]:
    logs = sorted((Path(results) / name).glob("*/log.jsonl"))
    if not logs:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    folds = False
    for log in logs:
        rows = read_jsonl(log)
        # Graph runs log every fold of the cross-validation: one line per fold and seed.
        curves: Dict[Any, List[Dict[str, Any]]] = {}
        for r in rows:
            curves.setdefault(r.get("fold"), []).append(r)
        folds = folds or None not in curves
        for part in curves.values():
            ep = [r["epoch"] for r in part]
            lw, alpha = (0.5, 0.35) if folds else (0.7, 0.6)
            ax1.plot(ep, [r["train_loss"] for r in part], lw=lw, alpha=alpha)
            ax2.plot(ep, [r["val"] for r in part], lw=lw, alpha=alpha)
    per = "one line per fold and seed" if folds else "one line per seed"
    ax1.set(xlabel="epoch", ylabel="training loss", title=f"{name}: loss")
    ax2.set(xlabel="epoch", ylabel=f"validation {metric}", title=f"{name}: {per}")
    fig.tight_layout()
    path = Path(results) / name / "curves.png"
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def save_figure(fig, path: Path, dpi: int = 120) -> Path:
    """Save a matplotlib figure atomically, through a temporary file unique to this call."""
    import tempfile
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def summarize(results: Path, out: Optional[Path] = None, plots: bool = True) -> str:
    """Write ``summary.md`` (and ``<run>/curves.png``) under ``results``; return the table."""
    results = Path(results)
    runs = collect(results)
    if not runs:
        raise NoRuns(f"no finished runs (*/<seed>/metrics.json) under {results}")
    lines = ["| run | dataset | metric | test (mean ± std) | seeds | published | "
             "time / epoch (s) |", "|---|---|---|---:|---:|---:|---:|"]
    for name, rows in runs.items():
        metric = rows[0]["metric"]
        cfg = _config(results, name)
        values = [r[f"test_{metric}"] for r in rows if not math.isnan(r[f"test_{metric}"])]
        epoch_t = np.mean([r.get("time_per_epoch_s", float("nan")) for r in rows])
        published = cfg.get("published") or ""
        lines.append(f"| {name} | {rows[0]['dataset']} | {metric} | {_fmt(values)} | "
                     f"{len(values)} | {published} | {epoch_t:.3f} |")
        if plots:
            _plot_curves(results, name, metric)
    table = "\n".join(lines) + "\n"
    atomic_write_text(out or results / "summary.md", table)
    return table
