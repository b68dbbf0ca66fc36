"""Scaling study: sparse attention over a graph against dense attention, forward + backward.

Two sweeps, every candidate measured in a fresh process (``gatlib.utils.measure``: median wall
time of ``--repeats`` steps after a warm-up, peak memory of one step):

A. nodes: ``N`` on a log grid (two points a decade, 100 to 10^6) at a fixed average in-degree
   (``--degree``, default 16; ``E = N * degree``): ``sparse_attention`` on a random graph
   against ``dense_attention`` over all ``N^2`` pairs (one graph; torch SDPA);
B. density: fixed ``N`` (``--density-nodes``, default 4096), average degree 1, 2, 4, ... up to
   ``N`` (the complete graph): sparse time and memory against the density ``E / N^2``, with
   dense at the same ``N`` as a horizontal line.

Before timing, sparse attention over the complete graph must equal dense attention (output and
gradients, max abs difference < 1e-4 in fp32), else the script exits non-zero.

A size is skipped (status ``skipped``, with the reason) when the power law through the last two
sizes measured for that candidate predicts more than ``--max-seconds`` for one step or more
than ``--max-memory-gb`` of peak memory (dense, before two sizes are measured: the ``N^2 * H *
4`` bytes of the scores of SDPA's math path); once a candidate fails (``oom``, ``timeout``,
``error``) its larger sizes are skipped. Nothing crashes the sweep.

Fits: least squares on ``log y`` against ``log N`` (and against ``log E`` for sweep B) over the
sizes where fixed overhead no longer dominates: ``N >= --fit-min-nodes`` (1000) and time
``>= --fit-min-ms`` (5 ms); memory fits also drop peaks under 1 MiB (page-granular noise).
Crossovers are interpolated in log-log space between the neighbouring sizes where the order of
the two candidates flips (the last flip: beyond it the order holds to the end of the range).

Writes ``<out>/scaling_<device>.{json,md}`` and ``scaling_<device>_{nodes,density}.png``
(default ``results/scaling/`` in the checkout, git-ignored; ``--out
experiments/results/scaling`` for the committed figures), atomically.

Run:  python experiments/benchmarks/scaling.py [--device cuda] [--quick] [--max-seconds 20] ...
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from tqdm import tqdm

import gatlib
from gatlib.experiments.bench import (attention_inputs, crossover, device_name, extrapolate,
                                     fit_loglog)
from gatlib.experiments.bench_report import markdown, plot_density, plot_nodes
from gatlib.graph import complete_graph, to_csr
from gatlib.ops import dense_attention, select, sparse_attention
from gatlib.utils import atomic_write_json, atomic_write_text, measure

# Default output folder: results/ in the checkout, git-ignored, so a run leaves it clean.
RESULTS = Path(__file__).resolve().parents[2] / "results" / "scaling"
MIB = 2 ** 20
CANDIDATES = ("sparse", "dense")
# A quick grid: the whole run in about a minute (most of it starting worker processes).
QUICK = dict(nodes=[100, 1000], density_nodes=256, degrees=[4, 256], repeats=1,
             fit_min_nodes=100, fit_min_ms=0.0)


def log_grid(lo: int, hi: int, per_decade: int = 2):
    """``lo, ..., hi`` spaced ``per_decade`` to a decade, rounded to whole numbers."""
    steps = round(per_decade * math.log10(hi / lo))
    return sorted({round(lo * 10 ** (i / per_decade)) for i in range(steps + 1)} | {hi})


def degree_grid(n: int):
    """Average degrees 1, 2, 4, ... and ``n`` (the complete graph)."""
    return sorted({2 ** i for i in range(int(math.log2(n)) + 1)} | {n})


# ----------------------------------------------------------------------------- correctness

def check(n: int, heads: int, dim: int, seed: int, device: str) -> dict:
    """Sparse attention over ``complete_graph(n)`` against ``dense_attention``: max abs
    difference of the output and of the gradients of q, k, v."""
    graph = to_csr(complete_graph(n, device=device), n)
    runs = []
    for attend in (lambda q, k, v: sparse_attention(q, k, v, graph), dense_attention):
        q, k, v, grad = attention_inputs(n, heads, dim, seed, device)
        out = attend(q, k, v)
        out.backward(grad)
        runs.append([out.detach(), q.grad, k.grad, v.grad])
    errs = {name: (a - b).abs().max().item()
            for name, a, b in zip(("out", "grad_q", "grad_k", "grad_v"), *runs)}
    worst = max(errs.values())
    print(f"check: sparse attention over complete_graph({n}) against dense_attention: "
          f"max abs diff of the output {errs['out']:.2e}, of the gradients "
          f"{max(errs['grad_q'], errs['grad_k'], errs['grad_v']):.2e}")
    if not worst < 1e-4:
        sys.exit(f"sparse and dense attention disagree (max abs diff {worst:.3e}); not timing")
    return {"nodes": n, "max_abs_diff": errs, "tolerance": 1e-4}


# ----------------------------------------------------------------------------- the sweeps

class Candidate:
    """One candidate along one sweep: what it measured so far, and whether it has stopped."""

    def __init__(self, name: str, target: str):
        self.name, self.target = name, target
        self.xs, self.times, self.peaks = [], [], []
        self.failed = None

    def plan(self, x: float, args, memory_bound: float = None):
        """None to measure at size ``x``, else why it is skipped; and the predictions."""
        pred = {"time_s": extrapolate(self.xs, self.times, x),
                "peak_bytes": extrapolate(self.xs, self.peaks, x)}
        if pred["peak_bytes"] is None and memory_bound is not None:
            pred["peak_bytes"] = memory_bound
        if self.failed:
            return f"a smaller size ended in {self.failed}", pred
        if pred["time_s"] is not None and pred["time_s"] > args.max_seconds:
            return f"predicted {pred['time_s']:.0f} s a step > --max-seconds", pred
        if pred["peak_bytes"] is not None and pred["peak_bytes"] > args.max_memory_gb * 2**30:
            return (f"predicted {pred['peak_bytes'] / 2**30:.1f} GiB > --max-memory-gb", pred)
        return None, pred

    def run(self, x: float, kwargs: dict, args, memory_bound: float = None) -> dict:
        why, pred = self.plan(x, args, memory_bound)
        if why:
            return {"status": "skipped", "message": why, "predicted": pred}
        r = measure(self.target, kwargs, device=args.device, repeats=args.repeats,
                    warmup=args.warmup, timeout=args.timeout)
        r["predicted"] = pred
        if r["status"] == "ok":
            self.xs.append(x)
            self.times.append(r["time_s"])
            self.peaks.append(r["peak_bytes"])
        else:
            self.failed = r["status"]
        return r


def scores_bytes(n: int, heads: int) -> int:
    """Bytes of the ``[H, N, N]`` fp32 scores that SDPA's math path materialises."""
    return n * n * heads * 4


def sweep_nodes(args, bar) -> list:
    sizes = dict(heads=args.heads, dim=args.dim, seed=args.seed, device=args.device)
    sparse = Candidate("sparse", "gatlib.experiments.bench:sparse_attention_step")
    dense = Candidate("dense", "gatlib.experiments.bench:dense_attention_step")
    rows = []
    for n in args.nodes:
        row = {"nodes": n, "edges": round(n * args.degree)}
        bar.set_postfix_str(f"nodes: sparse N={n:,}")
        row["sparse"] = (sparse.run(n, dict(num_nodes=n, avg_degree=args.degree, **sizes), args)
                         if n <= args.max_nodes_sparse else
                         {"status": "skipped", "message": "N > --max-nodes-sparse"})
        bar.update()
        bar.set_postfix_str(f"nodes: dense N={n:,}")
        row["dense"] = (dense.run(n, dict(num_nodes=n, **sizes), args,
                                  memory_bound=scores_bytes(n, args.heads))
                        if n <= args.max_nodes_dense else
                        {"status": "skipped", "message": "N > --max-nodes-dense"})
        bar.update()
        rows.append(row)
    return rows


def sweep_density(args, bar) -> dict:
    n = args.density_nodes
    sizes = dict(num_nodes=n, heads=args.heads, dim=args.dim, seed=args.seed,
                 device=args.device)
    bar.set_postfix_str(f"density: dense N={n:,}")
    dense = Candidate("dense", "gatlib.experiments.bench:dense_attention_step").run(
        n, sizes, args, memory_bound=scores_bytes(n, args.heads))
    bar.update()
    sparse = Candidate("sparse", "gatlib.experiments.bench:sparse_attention_step")
    rows = []
    for d in args.degrees:
        e = n * n if d >= n else round(n * d)
        bar.set_postfix_str(f"density: sparse degree {d:,}")
        rows.append({"degree": d, "edges": e, "density": e / n ** 2,
                     "sparse": sparse.run(e, dict(avg_degree=d, **sizes), args)})
        bar.update()
    return {"nodes": n, "dense": dense, "rows": rows}


# ----------------------------------------------------------------------------- analysis

def _ok(r, key):
    return r[key] if r.get("status") == "ok" else None


def fit(x, time_s, peak, args, x_name: str, nodes=None) -> dict:
    """Slopes of log time and log memory against ``log x`` over the sizes above the floor."""
    nodes = x if nodes is None else nodes
    out = {}
    for what, y, low in (("time", time_s, args.fit_min_ms / 1e3), ("memory", peak, MIB)):
        pts = [(a, b) for a, b, n in zip(x, y, nodes)
               if b is not None and b >= low and n >= args.fit_min_nodes]
        if len({a for a, _ in pts}) < 2:
            out[what] = None
            continue
        slope, intercept = fit_loglog(*zip(*pts))
        out[what] = {"slope": slope, "intercept": intercept, "against": x_name,
                     "from": min(a for a, _ in pts), "to": max(a for a, _ in pts),
                     "points": len(pts)}
    return out


def analyse(nodes_rows, density) -> dict:
    n = [r["nodes"] for r in nodes_rows]
    cols = {c: {k: [_ok(r[c], k) for r in nodes_rows] for k in ("time_s", "peak_bytes")}
            for c in CANDIDATES}
    dens = [r["density"] for r in density["rows"]]
    sp = {k: [_ok(r["sparse"], k) for r in density["rows"]] for k in ("time_s", "peak_bytes")}
    dn = {k: [_ok(density["dense"], k)] * len(dens) for k in ("time_s", "peak_bytes")}
    return {
        "crossover_nodes": {w: crossover(n, cols["dense"][k], cols["sparse"][k])
                            for w, k in (("time", "time_s"), ("memory", "peak_bytes"))},
        "crossover_density": {w: crossover(dens, sp[k], dn[k])
                              for w, k in (("time", "time_s"), ("memory", "peak_bytes"))},
    }


def analyse_fits(nodes_rows, density, args) -> dict:
    n = [r["nodes"] for r in nodes_rows]
    fits = {c: fit(n, [_ok(r[c], "time_s") for r in nodes_rows],
                   [_ok(r[c], "peak_bytes") for r in nodes_rows], args, "N")
            for c in CANDIDATES}
    rows = density["rows"]
    fits["sparse_density"] = fit([r["edges"] for r in rows],
                                 [_ok(r["sparse"], "time_s") for r in rows],
                                 [_ok(r["sparse"], "peak_bytes") for r in rows], args, "E",
                                 nodes=[density["nodes"]] * len(rows))
    return fits


# ----------------------------------------------------------------------------- main

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--quick", action="store_true",
                   help="a small grid that finishes in about a minute (for tests)")
    p.add_argument("--out", default=None, help=f"output folder (default {RESULTS})")
    p.add_argument("--degree", type=float, default=16, help="average degree of sweep A")
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--dim", type=int, default=16, help="head dimension (q, k and v)")
    p.add_argument("--min-nodes", type=int, default=100)
    p.add_argument("--max-nodes-sparse", type=int, default=1_000_000)
    p.add_argument("--max-nodes-dense", type=int, default=1_000_000)
    p.add_argument("--density-nodes", type=int, default=4096, help="N of sweep B")
    p.add_argument("--max-seconds", type=float, default=20.0,
                   help="skip a size whose predicted time for one step exceeds this")
    p.add_argument("--max-memory-gb", type=float, default=8.0,
                   help="skip a size whose predicted peak memory exceeds this")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds per candidate (default: 60 + 2 x max-seconds per step)")
    p.add_argument("--fit-min-nodes", type=int, default=1000)
    p.add_argument("--fit-min-ms", type=float, default=5.0)
    p.add_argument("--check-nodes", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads of every worker (default: torch's); on cores that other "
                        "jobs keep busy, 1 avoids threads stalling at OpenMP barriers")
    args = p.parse_args(argv)
    args.nodes = log_grid(args.min_nodes, max(args.max_nodes_sparse, args.max_nodes_dense))
    args.degrees = degree_grid(args.density_nodes)
    if args.quick:
        for k, v in QUICK.items():
            setattr(args, k, v)
    if args.timeout is None:
        args.timeout = 60 + 2 * args.max_seconds * (args.repeats + args.warmup + 1)
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    t0 = time.monotonic()
    if args.threads:
        # The spawned workers read OMP_NUM_THREADS when torch starts; this process obeys too.
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
        torch.set_num_threads(args.threads)
    dev = device_name(args.device)
    sdpa = torch._fused_sdp_choice(*(torch.empty(args.heads, 8, args.dim, device=args.device,
                                                 requires_grad=True),) * 3)
    env = {"device": dev, "threads": torch.get_num_threads(), "torch": torch.__version__,
           "gatlib": gatlib.__version__, "python": platform.python_version(),
           "sparse_backend": select("sparse_attention", torch.device(args.device),
                                    torch.float32, head_dim=args.dim),
           "sdpa_backend": str(torch.nn.attention.SDPBackend(sdpa))}
    header = (f"Forward + backward, fp32, {args.heads} heads x {args.dim}; device {args.device} "
              f"({dev}, {env['threads']} threads); sparse backend {env['sparse_backend']}, "
              f"dense: torch SDPA ({env['sdpa_backend']} for the [H, N, D] inputs "
              f"dense_attention passes); torch {torch.__version__}, gatlib "
              f"{gatlib.__version__}; median of {args.repeats} after {args.warmup} warm-up, each "
              f"candidate in a fresh process; {datetime.now(timezone.utc):%Y-%m-%d}.")
    print(header)
    checked = check(args.check_nodes, args.heads, args.dim, args.seed, args.device)
    total = 2 * len(args.nodes) + 1 + len(args.degrees)
    with tqdm(total=total, desc="scaling", unit="candidate") as bar:
        nodes_rows = sweep_nodes(args, bar)
        density = sweep_density(args, bar)
    record = {"args": vars(args), "env": env, "device": dev, "header": header,
              "check": checked, "nodes_sweep": nodes_rows, "density_sweep": density}
    record["fits"] = analyse_fits(nodes_rows, density, args)
    record["crossovers"] = analyse(nodes_rows, density)
    record["wall_s"] = time.monotonic() - t0
    md = markdown(record)
    print("\n" + md)
    out = Path(args.out) if args.out else RESULTS
    stem = out / f"scaling_{args.device}"
    atomic_write_json(stem.with_suffix(".json"), record)
    atomic_write_text(stem.with_suffix(".md"), md)
    for name, plot in (("nodes", plot_nodes), ("density", plot_density)):
        path = out / f"scaling_{args.device}_{name}.png"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(plot(record))
        tmp.replace(path)
    print(f"wrote {stem}.{{json,md}} and {stem.name}_{{nodes,density}}.png")
    return record


if __name__ == "__main__":
    main()
