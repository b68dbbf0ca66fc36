"""The report of ``gatlib compare``: the appendix-style Markdown tables (score, then cost) and
two figures (score per task and variant; score against time and memory)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..utils import atomic_write_json, atomic_write_text
from .summary import save_figure

__all__ = ["compare_table", "plot_compare", "write_report", "pareto_front"]

# The two costs a variant's score is weighed against, as (row key, label, scale to the unit).
_COSTS = (("time_per_epoch_s", "ms / epoch", 1000), ("peak_memory_bytes", "peak MiB", 2**-20))


def _mib(b: Optional[float]) -> str:
    return "n/a" if b is None else f"{b / 2**20:,.1f}"


def pareto_front(costs: List[float], scores: List[float]) -> List[int]:
    """Indices of the points no other point beats: none has a cost as low and a score as high
    with one of them strictly better. Returned in order of increasing cost (the front's
    score then increases strictly); points with a missing (None or NaN) cost are never on it."""
    ok = [i for i, c in enumerate(costs)
          if c is not None and not math.isnan(c) and not math.isnan(scores[i])]
    front, best = [], -math.inf
    for i in sorted(ok, key=lambda i: (costs[i], -scores[i])):
        if scores[i] > best:
            front.append(i)
            best = scores[i]
    return front


def _fronts(rows: List[Dict[str, Any]]) -> Dict[tuple, List[str]]:
    """``{(task, variant): [labels of the costs on whose Pareto front it lies]}``."""
    out: Dict[tuple, List[str]] = {(r["task"], r["variant"]): [] for r in rows}
    for t in dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == t]
        for key, label, _ in _COSTS:
            for i in pareto_front([r[key] for r in mine], [r["test_mean"] for r in mine]):
                out[(t, mine[i]["variant"])].append(label.split()[-1])
    return out


def compare_table(rows: List[Dict[str, Any]], settings: str = "",
                  skipped: Optional[Dict[str, str]] = None) -> str:
    """The appendix-style Markdown report: accuracy table (best per task in bold, then a row per
    skipped task with the reason), cost table, and the settings that produced them."""
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    by = {(r["task"], r["variant"]): r for r in rows}
    out = ["**Test score (%) at the best validation epoch, mean ± std over seeds.**", "",
           "| task | metric | " + " | ".join(variants) + " |",
           "|---|---|" + "---:|" * len(variants)]
    for t in tasks:
        cells = [by.get((t, v)) for v in variants]
        best = max((c["test_mean"] for c in cells if c), default=None)
        txt = []
        for c in cells:
            if c is None:
                txt.append("")
                continue
            s = f"{c['test_mean']:.1f} ± {c['test_std']:.1f}"
            txt.append(f"**{s}**" if c["test_mean"] == best else s)
        metric = next(c["metric"] for c in cells if c).replace("_", " ")
        out.append(f"| {t} | {metric} | " + " | ".join(txt) + " |")
    for t, why in (skipped or {}).items():
        out.append(f"| {t} | skipped: {why} |" + " |" * len(variants))
    out += ["", "**Cost: training time per epoch (ms, wall and process CPU time) / peak memory "
            "of a training epoch (MiB); parameters; chosen learning rate; the largest 1-minute "
            "load average seen during the runs; the Pareto fronts of score against cost that "
            "the variant is on (epoch time, memory): no other variant of the task is both "
            "cheaper and better.**", "",
            "| task | variant | params | width | lr | ms / epoch | CPU ms / epoch | peak MiB "
            "| load avg | Pareto front |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    fronts = _fronts(rows)
    for t in tasks:
        for v in variants:
            c = by.get((t, v))
            if c is None:
                continue
            cpu_ms, load = c.get("cpu_per_epoch_s", math.nan) * 1000, c.get("load_avg", math.nan)
            out.append(f"| {t} | {v} | {c['params']:,} | {c['width']} | {c['lr']:g} | "
                       f"{c['time_per_epoch_s'] * 1000:,.1f} | {cpu_ms:,.1f} | "
                       f"{_mib(c['peak_memory_bytes'])} | {load:.1f} | "
                       f"{', '.join(fronts[(t, v)]) or '-'} |")
    out += ["", "Tasks:", ""]
    for t in tasks:
        desc = next(r["description"] for r in rows if r["task"] == t)
        out.append(f"- **{t}**: {desc}.")
    for t, why in (skipped or {}).items():
        out.append(f"- **{t}**: not run, {why}.")
    if settings:
        out += ["", settings]
    return "\n".join(out) + "\n"


def plot_compare(rows: List[Dict[str, Any]], out_dir: Path) -> List[Path]:
    """Two figures: test score per task and variant (bars with std), and score against
    training time per epoch and peak memory (one panel per task)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    colors = {v: plt.cm.tab10(i % 10) for i, v in enumerate(variants)}
    by = {(r["task"], r["variant"]): r for r in rows}
    paths = []

    fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks) + 1, 3.6), squeeze=False)
    for ax, t in zip(axes[0], tasks):
        vs = [v for v in variants if (t, v) in by]
        means = [by[(t, v)]["test_mean"] for v in vs]
        stds = [by[(t, v)]["test_std"] for v in vs]
        ax.bar(range(len(vs)), means, yerr=stds, color=[colors[v] for v in vs], capsize=3)
        ax.set_xticks(range(len(vs)), vs, rotation=50, ha="right", fontsize=8)
        lo = max(0.0, min(m - s for m, s in zip(means, stds)) - 10)
        ax.set_ylim(lo, min(100.0, max(m + s for m, s in zip(means, stds)) + 5))
        ax.set_title(t)
        ax.set_ylabel(f"test {by[(t, vs[0])]['metric'].replace('_', ' ')} (%)")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Dense vs sparse attention: test score (mean ± std over seeds)")
    fig.tight_layout()
    paths.append(_save(fig, out_dir / "compare_accuracy.png"))
    plt.close(fig)

    fig, axes = plt.subplots(2, len(tasks), figsize=(3.2 * len(tasks) + 1, 6.2), squeeze=False)
    for j, t in enumerate(tasks):
        for i, (key, label, scale) in enumerate(_COSTS):
            ax = axes[i][j]
            for v in variants:
                c = by.get((t, v))
                if c is None or c[key] is None:
                    continue
                ax.errorbar(c[key] * scale, c["test_mean"], yerr=c["test_std"], fmt="o",
                            color=colors[v], label=v, capsize=2)
            mine = [by[(t, v)] for v in variants if (t, v) in by]
            front = [mine[k] for k in pareto_front([c[key] for c in mine],
                                                   [c["test_mean"] for c in mine])]
            if front:
                # The front: the variants worth picking at some cost, joined as a staircase.
                fx = [c[key] * scale for c in front]
                fy = [c["test_mean"] for c in front]
                ax.step(fx, fy, where="post", color="0.4", lw=1, ls="--", zorder=0,
                        label="Pareto front")
                ax.scatter(fx, fy, s=140, facecolors="none", edgecolors="0.2", lw=1.2,
                           zorder=3)
            xs = [by[(t, v)][key] * scale for v in variants
                  if (t, v) in by and by[(t, v)][key] is not None]
            if xs and min(xs) > 0 and max(xs) / min(xs) >= 10:
                # Costs spanning decades: a log axis, plain numbers, minor ticks unlabelled.
                ax.set_xscale("log")
                ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.3g}"))
                ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel(label)
            ax.set_ylabel("test score (%)")
            ax.set_title(t)
            ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes.flat:
        h, lab = ax.get_legend_handles_labels()
        for hh, ll in zip(h, lab):
            if ll not in labels:
                handles.append(hh)
                labels.append(ll)
    # As many legend columns as fit the figure's width; rows of legend below the panels.
    ncol = max(1, min(len(labels), 2 * len(tasks)))
    rows_needed = -(-len(labels) // ncol)
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=8)
    fig.suptitle("Score against cost (up and left is better; ringed: the Pareto front)")
    fig.tight_layout(rect=(0, 0.035 * rows_needed + 0.02, 1, 1))
    paths.append(_save(fig, out_dir / "compare_cost.png"))
    plt.close(fig)
    return paths


def _save(fig, path: Path) -> Path:
    return save_figure(fig, path, dpi=120)


def write_report(rows: List[Dict[str, Any]], out_dir: Path, settings: str,
                 skipped: Optional[Dict[str, str]] = None) -> str:
    """Write ``compare.md``, ``compare.json`` and the plots under ``out_dir``; return the
    Markdown. ``skipped`` (``{task: reason}``) adds a row per task that was not run."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = compare_table(rows, settings, skipped)
    atomic_write_json(out_dir / "compare.json", rows)
    atomic_write_text(out_dir / "compare.md", text)
    plot_compare(rows, out_dir)
    return text
