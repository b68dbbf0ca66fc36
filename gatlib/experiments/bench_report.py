"""The reports of the benchmark scripts that write the most: ``experiments/benchmarks/
scaling.py``'s Markdown and plots (sparse against dense attention as the graph grows and
densifies) and ``bench_gpu.py``'s table and plot. Plots import matplotlib (the experiments
extra) when they are drawn."""
from __future__ import annotations

import io
import math
import os
import tempfile
from pathlib import Path
from typing import Dict, List

__all__ = ["markdown", "plot_nodes", "plot_density", "gpu_table", "gpu_plot", "fmt_mb"]

MIB = 2 ** 20
CANDIDATES = ("sparse", "dense")


def _ok(r, key):
    return r[key] if r.get("status") == "ok" else None


def ms(r):
    return f"{r['time_s'] * 1e3:,.1f}" if r.get("status") == "ok" else r["status"]


def mib(r):
    if r.get("status") != "ok":
        return r["status"]
    return "n/a" if r["peak_bytes"] is None else f"{r['peak_bytes'] / MIB:,.1f}"


def ratio(a, b, key):
    """``a / b`` of ``key`` where both were measured (and b is not zero)."""
    x, y = _ok(a, key), _ok(b, key)
    return f"{x / y:,.2f}" if x is not None and y else ""


def markdown(record) -> str:
    a, b = record["nodes_sweep"], record["density_sweep"]
    lines = [f"# Sparse versus dense attention: scaling ({record['device']})", "",
             record["header"], "",
             f"Check: sparse attention over complete_graph({record['check']['nodes']}) equals "
             f"dense_attention; max abs diff "
             f"{max(record['check']['max_abs_diff'].values()):.2e} (output and gradients).", "",
             f"## A. Nodes, average degree {record['args']['degree']:g}", "",
             "| N | E | sparse ms | dense ms | sparse MiB | dense MiB | time dense/sparse | "
             "memory dense/sparse |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in a:
        lines.append(f"| {r['nodes']:,} | {r['edges']:,} | {ms(r['sparse'])} | {ms(r['dense'])} "
                     f"| {mib(r['sparse'])} | {mib(r['dense'])} | "
                     f"{ratio(r['dense'], r['sparse'], 'time_s')} | "
                     f"{ratio(r['dense'], r['sparse'], 'peak_bytes')} |")
    d = b["dense"]
    lines += ["", f"## B. Density, N = {b['nodes']:,}", "",
              f"Dense attention at N = {b['nodes']:,}: {ms(d)} ms, {mib(d)} MiB.", "",
              "| degree | E | density E/N^2 | sparse ms | sparse MiB | time dense/sparse | "
              "memory dense/sparse |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in b["rows"]:
        lines.append(f"| {r['degree']:,} | {r['edges']:,} | {r['density']:.2e} | "
                     f"{ms(r['sparse'])} | {mib(r['sparse'])} | "
                     f"{ratio(d, r['sparse'], 'time_s')} | "
                     f"{ratio(d, r['sparse'], 'peak_bytes')} |")
    skipped = [(f"A N={r['nodes']:,}", c, r[c]["message"]) for r in a for c in CANDIDATES
               if r[c]["status"] != "ok"]
    skipped += [(f"B degree {r['degree']:,}", "sparse", r["sparse"]["message"])
                for r in b["rows"] if r["sparse"]["status"] != "ok"]
    if skipped:
        lines += ["", "Not measured: " + "; ".join(
            f"{w} {c} ({m.splitlines()[0]})" for w, c, m in skipped) + "."]
    lines += ["", "## Fitted slopes (log-log least squares)", "",
              f"Over the sizes where fixed overhead no longer dominates: N >= "
              f"{record['args']['fit_min_nodes']:,} and time >= {record['args']['fit_min_ms']:g} "
              f"ms (memory: peak >= 1 MiB). Expected: sparse ~1 in E (so in N at a fixed "
              f"degree), dense ~2 in N (time; memory too if the scores are materialised).", "",
              "| candidate | quantity | slope | against | range | points |",
              "|---|---|---:|---|---|---:|"]
    for name, label in (("sparse", "sparse (sweep A)"), ("dense", "dense (sweep A)"),
                        ("sparse_density", f"sparse (sweep B, N = {b['nodes']:,})")):
        for what in ("time", "memory"):
            f = record["fits"][name][what]
            lines.append(f"| {label} | {what} | " + (
                "not enough points | | | |" if f is None else
                f"{f['slope']:.2f} | {f['against']} | {f['from']:,}–{f['to']:,} | "
                f"{f['points']} |"))
    cn, cd = record["crossovers"]["crossover_nodes"], record["crossovers"]["crossover_density"]
    lines += ["", "## Crossovers (interpolated in log-log space)", ""]
    for what in ("time", "memory"):
        x = cn[what]
        lines.append(f"- {what}, sweep A (degree {record['args']['degree']:g}): " + (
            "the curves do not cross in the range measured" if x is None else
            f"dense is cheaper below N ≈ {x:,.0f}, sparse above"))
    for what in ("time", "memory"):
        x = cd[what]
        lines.append(f"- {what}, sweep B (N = {b['nodes']:,}): " + (
            "the curves do not cross in the range measured" if x is None else
            f"dense becomes cheaper above density E/N^2 ≈ {x:.3g} "
            f"(average degree ≈ {x * b['nodes']:,.0f})"))
    lines += ["", f"Wall time of the run: {record['wall_s'] / 60:.1f} min.", ""]
    return "\n".join(lines)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=130, bbox_inches="tight")
    return buf.getvalue()


def _panels(title, xlabel):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, ylabel in zip(axes, ("forward + backward time (ms)", "peak memory of a step (MiB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(title)
    return plt, fig, axes


QUANTITIES = (("time_s", "time", 1e3), ("peak_bytes", "memory", 1 / MIB))


def plot_nodes(record) -> bytes:
    rows, fits = record["nodes_sweep"], record["fits"]
    plt, fig, axes = _panels(f"Sparse vs dense attention on {record['device']}: "
                             f"average degree {record['args']['degree']:g}, "
                             f"{record['args']['heads']} heads x {record['args']['dim']}, fp32",
                             "nodes N")
    for ax, (key, what, unit) in zip(axes, QUANTITIES):
        for c, color in zip(CANDIDATES, ("C0", "C1")):
            pts = [(r["nodes"], r[c][key] * unit) for r in rows
                   if _ok(r[c], key) is not None]
            if pts:
                ax.plot(*zip(*pts), "o-", color=color, label=f"{c} (measured)")
            f = fits[c][what]
            if f:
                xs = [f["from"], f["to"]]
                ax.plot(xs, [math.exp(f["intercept"]) * x ** f["slope"] * unit for x in xs],
                        "--", color=color, lw=2, alpha=0.7,
                        label=f"{c} fit: slope {f['slope']:.2f}")
        x = record["crossovers"]["crossover_nodes"][what]
        if x:
            ax.axvline(x, color="grey", ls=":", label=f"crossover N ≈ {x:,.0f}")
        ax.set_title(f"{what} against N")
        ax.legend(fontsize=8)
    png = _png(fig)
    plt.close(fig)
    return png


def plot_density(record) -> bytes:
    b = record["density_sweep"]
    n = b["nodes"]
    plt, fig, axes = _panels(f"Sparse attention against density on {record['device']}: "
                             f"N = {n:,}, {record['args']['heads']} heads x "
                             f"{record['args']['dim']}, fp32", "density E / N^2")
    for ax, (key, what, unit) in zip(axes, QUANTITIES):
        pts = [(r["density"], r["sparse"][key] * unit) for r in b["rows"]
               if _ok(r["sparse"], key) is not None]
        if pts:
            ax.plot(*zip(*pts), "o-", color="C0", label="sparse (measured)")
        if _ok(b["dense"], key) is not None:
            ax.axhline(b["dense"][key] * unit, color="C1", label=f"dense, N = {n:,}")
        x = record["crossovers"]["crossover_density"][what]
        if x:
            ax.axvline(x, color="grey", ls=":", label=f"crossover E/N^2 ≈ {x:.3g}")
        top = ax.secondary_xaxis("top", functions=(lambda d: d * n, lambda k: k / n))
        top.set_xlabel("average degree")
        ax.set_title(f"{what} against density", pad=28)
        ax.legend(fontsize=8)
    png = _png(fig)
    plt.close(fig)
    return png



# ------------------------------------------------------------------------------ bench_gpu

def _fmt_ms(r):
    return f"{r['time_s'] * 1e3:,.2f}" if r.get("status") == "ok" else r.get("status", "")


def fmt_mb(r):
    if r.get("status") != "ok":
        return r.get("status", "")
    return "n/a" if r.get("peak_bytes") is None else f"{r['peak_bytes'] / 2**20:,.0f}"


def gpu_table(rows: List[dict]) -> str:
    """``bench_gpu.py``'s Markdown table: a row per subject, graph and implementation."""
    lines = ["| subject | graph | nodes | edges | implementation | check (max scaled err) | "
             "fwd+bwd (ms) | peak memory (MiB) | gatlib speed-up | gatlib memory ratio | "
             "fwd bandwidth (GB/s) | of peak |",
             "|---|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        base = next((r for r in rows if r["subject"] == row["subject"]
                     and r["graph"] == row["graph"] and r["impl"] == "gatlib"), None)
        t, ok = row["timing"], row["timing"].get("status") == "ok"
        speed = mem = ""
        if ok and base is not None and base["timing"].get("status") == "ok":
            speed = f"{t['time_s'] / base['timing']['time_s']:.2f}x"
            if t.get("peak_bytes") and base["timing"].get("peak_bytes"):
                mem = f"{base['timing']['peak_bytes'] / t['peak_bytes']:.3f}"
        c = row["check"]
        chk = c["status"] if c.get("error") is None else f"{c['status']} ({c['error']:.1e})"
        bw = row.get("bandwidth") or {}
        gbps = "" if bw.get("gbps") is None else f"{bw['gbps']:,.1f}"
        frac = "" if bw.get("fraction") is None else f"{bw['fraction']:.0%}"
        lines.append(
            f"| {row['subject']} | {row['graph']} | {row['num_nodes']:,} | {row['num_edges']:,} | "
            f"{row['impl']} | {chk} | {_fmt_ms(t)} | {fmt_mb(t)} | {speed} | {mem} | "
            f"{gbps} | {frac} |")
    return "\n".join(lines)


def gpu_plot(rows: List[dict], path: Path) -> None:
    """Log-log time and peak memory against edges, one line per subject and implementation."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    series: Dict[tuple, list] = {}
    for row in rows:
        if row["timing"].get("status") == "ok":
            series.setdefault((row["subject"], row["impl"]), []).append(row)
    for (subject, impl), pts in sorted(series.items()):
        pts = sorted(pts, key=lambda r: r["num_edges"])
        e = [p["num_edges"] for p in pts]
        style = "-" if impl == "gatlib" else "--"
        axes[0].plot(e, [p["timing"]["time_s"] * 1e3 for p in pts], style, marker="o",
                     label=f"{subject}: {impl}")
        mem = [(p["num_edges"], p["timing"]["peak_bytes"] / 2**20) for p in pts
               if p["timing"].get("peak_bytes")]
        if mem:
            axes[1].plot(*zip(*mem), style, marker="o", label=f"{subject}: {impl}")
    from matplotlib.ticker import NullFormatter
    for ax, ylabel in zip(axes, ("forward + backward (ms)", "peak memory (MiB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())   # decade labels only
        ax.set_xlabel("edges")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Atomic like the other outputs: write beside, then rename.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
