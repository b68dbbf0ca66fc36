"""Benchmark: forward + backward of GAT attention, gatlib against its peers.

Two subjects (``--what``):
- ``attention``: the operator ``gat_attention`` against PyG's path for the same maths (its
  ``softmax`` utility, then gather and scatter, as GATConv computes it), gatlib's reference and,
  where installed, torch_scatter's ``scatter_softmax``;
- ``layer``: gatlib's ``GATConv`` against PyG's ``GATConv`` with the same weights
  (``--in-channels`` input features; both add self-loops, as in use).

On a random graph (default: 100,000 nodes, 2,000,000 edges, 8 heads x 16 channels) it
1. checks gatlib's output and gradients against PyG (or the reference) at full size,
2. measures each candidate in a fresh process: median wall time of forward + backward over
   ``--repeats`` runs after a warm-up, and the peak memory of one step,
3. measures, in the same run, the roofline of that work (:mod:`gatlib.experiments.roofline`:
   the op's unavoidable row gathers with ``torch.index_select``, the output written once, the
   exponentials, and for the layer its linear map; forward and forward + backward) beside
   gatlib's forward and forward + backward, with the ratio gatlib / bound, and the per-call
   conversion of the raw ``edge_index`` (with the layers' self-loops) on its own line,
4. prints a table with the ratios, and writes it to ``results/bench_gat_<what>_<device>.{md,json}``
   in the checkout (git-ignored) atomically, or to ``--out STEM`` (the committed figures:
   ``--out experiments/results/bench_gat_<what>_<device>``).

Run:  python experiments/benchmarks/bench_gat.py [--what layer] [--device cuda] [--nodes N] ...
"""
from __future__ import annotations

import argparse
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

import gatlib
from gatlib.experiments import bench
from gatlib.experiments.bench import (LAYER_IMPLS, add_int_args, available_impls, gat_forward,
                                     gat_inputs, gat_layer_setup, random_graph)
from gatlib.experiments.roofline import attention_bound, format_bound
from gatlib.graph import as_adjacency, to_csr
from gatlib.utils import atomic_write_json, atomic_write_text, measure
from gatlib.utils.measure import measure_here

# Default output folder: results/ in the checkout, git-ignored, so a run leaves it clean.
RESULTS = Path(__file__).resolve().parents[2] / "results"


def _run_once(args, impl):
    """Output and gradients of one candidate, for the check."""
    if args.what == "layer":
        layer, x, edge_index, grad = gat_layer_setup(impl, **_size(args))
        out = layer(x, edge_index)
        out.backward(grad)
        return [out.detach(), x.grad] + [p.grad for p in layer.parameters()]
    x = gat_inputs(args.nodes, args.edges, args.heads, args.channels, args.seed, args.device)
    graph = to_csr(x["edge_index"], args.nodes) if impl == "gatlib" else x["edge_index"]
    out = gat_forward(impl, x["a_src"], x["a_dst"], x["v"], graph)
    out.backward(x["grad"])
    return [out.detach()] + [x[k].grad for k in ("a_src", "a_dst", "v")]


def check(args) -> dict:
    """Max abs error of gatlib's forward and gradients against the peer at full size."""
    peer = "pyg" if "pyg" in available_impls() else "reference"
    ours, theirs = _run_once(args, "gatlib"), _run_once(args, peer)
    names = ["out"] + [f"grad{i}" for i in range(len(ours) - 1)]
    # Error relative to the tensor's scale: parameter gradients sum over all nodes.
    errs = {n: ((a - b).abs().max() / b.abs().max().clamp(min=1.0)).item()
            for n, a, b in zip(names, ours, theirs)}
    worst = max(errs.values())
    print(f"check against {peer}: max error (relative to scale) of the output "
          f"{errs['out']:.2e}, of the gradients {max(v for k, v in errs.items() if k != 'out'):.2e}")
    if not worst < 1e-4:
        sys.exit(f"gatlib disagrees with {peer} (max scaled error {worst:.3e}); not timing")
    return {"peer": peer, "max_scaled_error": errs}


def _size(args) -> dict:
    size = dict(num_nodes=args.nodes, num_edges=args.edges, heads=args.heads,
                channels=args.channels, seed=args.seed, device=args.device)
    if args.what == "layer":
        size["in_channels"] = args.in_channels
    return size


def conversion(args) -> dict:
    """The per-call conversion of the raw ``edge_index`` a layer does (checks, then the
    target- and source-sorted orders with one self-loop per node), timed in this process."""
    ei = random_graph(args.nodes, args.edges, args.seed)
    r = measure_here(lambda: as_adjacency(ei, args.nodes).with_self_loops(),
                     repeats=args.repeats)
    return {"time_s": r["time_s"], "times_s": r["times_s"], "threads": torch.get_num_threads()}


def roofline(args, fwd_bwd: dict) -> dict:
    """gatlib's forward and forward + backward beside the bound of the same work measured now:
    the op on the CSR view of the graph (``attention``), or the layer's linear map plus the op
    on the graph with self-loops (``layer``; the bound leaves out the conversion, which is
    reported on its own). gatlib's two steps are timed in this process in the same rounds as
    the bound's parts (the ratios), and the forward also in a fresh process as the table's
    candidates are."""
    size = _size(args)
    what = "gat_forward_step" if args.what == "attention" else "gat_layer_forward_step"
    fwd = measure("gatlib.experiments.bench:" + what, dict(impl="gatlib", **size),
                  device=args.device, repeats=args.repeats)
    ei = random_graph(args.nodes, args.edges, args.seed)
    if args.what == "attention":
        graph, linear = to_csr(ei, args.nodes), ()
        steps = {"fwd": bench.gat_forward_step("gatlib", **size),
                 "fwd_bwd": bench.gat_step("gatlib", **size)}
    else:
        graph = as_adjacency(ei, args.nodes).with_self_loops()
        linear = [(args.nodes, args.in_channels, args.heads * args.channels)]
        steps = {"fwd": bench.gat_layer_forward_step("gatlib", **size),
                 "fwd_bwd": bench.gat_layer_step("gatlib", **size)}
    bound = attention_bound(graph.col, graph.col_t, graph.num_src, graph.num_dst, args.heads,
                            args.channels, linear=linear, repeats=args.repeats,
                            candidates=steps)
    out = {"bound": bound, "num_edges": graph.num_edges, "threads": torch.get_num_threads(),
           "fresh_process_s": {k: r.get("time_s") for k, r in (("fwd", fwd),
                                                               ("fwd_bwd", fwd_bwd))}}
    for key in ("fwd", "fwd_bwd"):
        t = bound["candidates_s"][key]
        out[key + "_s"] = t
        out[key + "_ratio"] = t / bound[key + "_s"]
        out[key + "_ratio_warm"] = t / bound[key + "_warm_s"]
    return out


def fmt_mb(b):
    return "n/a" if b is None else f"{b / 2**20:,.0f}"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--what", choices=("attention", "layer"), default="attention")
    p.add_argument("--in-channels", type=int, default=64, help="input features (layer only)")
    add_int_args(p, nodes=100_000, edges=2_000_000, heads=8, channels=16, repeats=5, seed=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--impls", default=None,
                   help="comma-separated candidates (default: all installed)")
    p.add_argument("--out", default=None, help="output stem (default results/bench_gat_<what>_<device>, "
                   "git-ignored; the committed figures are experiments/results/...)")
    args = p.parse_args(argv)
    if args.impls is None:
        args.impls = ",".join(available_impls() if args.what == "attention"
                              else [i for i in LAYER_IMPLS if i in available_impls()])
    subject = ("GAT attention" if args.what == "attention"
               else f"GATConv layer ({args.in_channels} input features)")
    target = "gatlib.experiments.bench:" + ("gat_step" if args.what == "attention"
                                            else "gat_layer_step")
    size = _size(args)
    print(f"{subject} forward+backward: {args.nodes:,} nodes, {args.edges:,} edges, "
          f"{args.heads} heads x {args.channels}, device {args.device}, "
          f"torch {torch.__version__}, gatlib {gatlib.__version__}, "
          f"threads {torch.get_num_threads()}")
    from gatlib import native
    print(f"  {native.status()}")
    checked = check(args)
    rows = {}
    for impl in args.impls.split(","):
        r = measure(target, dict(impl=impl, **size), device=args.device,
                    repeats=args.repeats)
        rows[impl] = r
        shown = (f"{r['time_s'] * 1e3:,.0f} ms, peak {fmt_mb(r['peak_bytes'])} MiB"
                 if r["status"] == "ok" else f"{r['status']}: {r['message'].splitlines()[0]}")
        print(f"  {impl:>14}: {shown}")

    g = rows.get("gatlib", {})
    roof = conv = None
    if args.device == "cpu" and g:
        conv = conversion(args)
        print(f"  conversion of the raw edge_index per call (checks + both orders + self-loops, "
              f"{conv['threads']} threads): {conv['time_s'] * 1e3:,.1f} ms")
        roof = roofline(args, g)
        for key, name in (("fwd", "forward"), ("fwd_bwd", "forward+backward")):
            print(f"  roofline, gatlib {name} (timed alternating with the bound's parts): "
                  f"{roof[key + '_s'] * 1e3:,.0f} ms; "
                  + format_bound(roof[key + "_s"], roof["bound"], key))
    lines = ["| implementation | fwd+bwd time (ms) | peak memory (MiB) | gatlib speed-up | "
             "gatlib memory ratio |", "|---|---:|---:|---:|---:|"]
    for impl, r in rows.items():
        if r["status"] != "ok":
            lines.append(f"| {impl} | {r['status']} | {r['status']} | | |")
            continue
        speed = g["time_s"] and r["time_s"] / g["time_s"] if g.get("status") == "ok" else None
        mem = (g["peak_bytes"] / r["peak_bytes"]
               if g.get("status") == "ok" and g["peak_bytes"] and r["peak_bytes"] else None)
        lines.append(f"| {impl} | {r['time_s'] * 1e3:,.0f} | {fmt_mb(r['peak_bytes'])} | "
                     f"{'' if speed is None else f'{speed:.1f}x'} | "
                     f"{'' if mem is None else f'{mem:.3f}'} |")
    device_name = (torch.cuda.get_device_name() if args.device.startswith("cuda")
                   else platform.processor() or platform.machine())
    header = (f"{subject} forward+backward, {args.nodes:,} nodes, {args.edges:,} edges, "
              f"{args.heads} heads x {args.channels}; device {args.device} ({device_name}, "
              f"{torch.get_num_threads()} threads); torch {torch.__version__}, gatlib "
              f"{gatlib.__version__}; median of {args.repeats} after warm-up; "
              f"{datetime.now(timezone.utc):%Y-%m-%d}; "
              f"{native.status().split(' from ')[0]} ({native._state['variant']}); torch's "
              f"CPU kernels {torch.backends.cpu.get_cpu_capability()}.")
    if roof is not None:
        b = roof["bound"]
        lines += ["", "gatlib against the roofline (gatlib's steps timed in the same rounds as the "
                  "bound's parts, median; gatlib.experiments.roofline):", "",
                  "| gatlib against the roofline | gatlib (ms) | bound, new tensors (ms) | "
                  "gatlib / bound | bound, warm buffers (ms) | gatlib / warm bound |",
                  "|---|---:|---:|---:|---:|---:|"]
        for key, name in (("fwd", "forward"), ("fwd_bwd", "forward+backward")):
            lines.append(f"| {name} | {roof[key + '_s'] * 1e3:,.0f} | "
                         f"{b[key + '_s'] * 1e3:,.0f} | {roof[key + '_ratio']:.2f}x | "
                         f"{b[key + '_warm_s'] * 1e3:,.0f} | "
                         f"{roof[key + '_ratio_warm']:.2f}x |")
        lines += ["", f"Conversion of the raw edge_index per call (checks, both orders, "
                      f"self-loops; {conv['threads']} threads): {conv['time_s'] * 1e3:,.1f} ms."]
    table = "\n".join(lines)
    print("\n" + header + "\n\n" + table)
    stem = Path(args.out) if args.out else RESULTS / f"bench_gat_{args.what}_{args.device}"
    record = {"args": vars(args), "check": checked, "results": rows, "header": header,
              "roofline": roof, "conversion": conv,
              "torch": torch.__version__, "gatlib": gatlib.__version__, "device": device_name}
    atomic_write_json(stem.with_suffix(".json"), record)
    atomic_write_text(stem.with_suffix(".md"), header + "\n\n" + table + "\n")
    print(f"\nwrote {stem.with_suffix('.md')} and .json")
    return record


if __name__ == "__main__":
    main()
