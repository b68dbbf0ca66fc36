"""Scaling out on an ogbn-arxiv-sized graph: time per training epoch and peak memory of
full-batch training, sampled training (1 process, and 2 processes under torchrun/DDP), and
full-graph layer-wise inference, for gatlib's layers against the same model built from PyG's
layers (``torch_geometric.nn.GATConv``) fed by gatlib's sampler, so that only the layers differ.

The graph is ``experiments/configs/arxiv-size-gat.yaml``'s (``dataset: csbm``, 169,343 nodes,
1.17M edges, 128 features, 40 classes), the model the GAT paper's (2 layers, 8 heads x 8, one
output head, dropout 0.6), sampled training as that config (fanouts [10, 10], 1024 seeds a step
per process), Adam. Each case runs in a fresh process (the graph is generated once and cached
under ``--cache``); ``ddp2`` cases are started with ``python -m torch.distributed.run
--standalone --nproc_per_node 2`` (gloo), each rank training on half of the training nodes.

Reported per case: the median wall time of ``--epochs`` epochs (inference: of ``--epochs``
passes), the peak memory the first epoch adds above what the process held before it
(``gatlib.utils.PeakMemory``: growth of the resident high-water mark), and the process's peak
resident set over its life (``VmHWM``: graph, model, everything); for ``ddp2`` the larger of the
two ranks' figures. ``--threads`` torch threads per process (default 1: a 2-process run then
uses 2 cores, a 1-process run 1; pass ``--threads 2`` to give one process both).

With ``--breakdown`` each 1-process training case runs one more epoch under ``torch.profiler``
and reports the seconds of its parts (attention ops, linear maps, dropout, the loader, the rest)
beside the epoch's work (input rows of layer 1, edges of each layer with self-loops), so that a
sampled epoch can be set against a full-batch one part by part.

Run:  python experiments/benchmarks/scaling_out.py [--cases full-gatlib,sampled-gatlib,...]
      [--epochs 2] [--threads 1] [--breakdown] [--out experiments/results]
Writes ``<out>/scaling_out_cpu.{json,md}`` (default ``results/`` in the checkout, git-ignored).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "experiments" / "configs" / "arxiv-size-gat.yaml"
CASES = ("full-gatlib", "full-pyg", "sampled-gatlib", "sampled-pyg", "sampled-gatlib-ddp2",
         "sampled-pyg-ddp2", "infer-gatlib", "infer-pyg")


def _kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _graph(cache: Path):
    """The config's graph, generated once and cached."""
    from gatlib.experiments.config import load_config
    from gatlib.experiments.supervised import synthetic_graph
    cfg = load_config(CONFIG)
    path = cache / "arxiv-size-csbm.pt"
    if path.exists():
        return cfg, torch.load(path, weights_only=False)
    data = synthetic_graph(cfg)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(data, tmp)
    os.replace(tmp, path)
    return cfg, data


class PygGAT(torch.nn.Module):
    """The GAT paper's model from PyG's layers: Dropout -> GATConv(F, 8, heads=8) -> ELU ->
    Dropout -> GATConv(64, C, heads=1, concat=False), attention dropout 0.6."""

    def __init__(self, in_channels: int, hidden: int, heads: int, out_channels: int,
                 p: float = 0.6):
        super().__init__()
        from torch_geometric.nn import GATConv
        self.p = p
        self.conv1 = GATConv(in_channels, hidden, heads=heads, dropout=p)
        self.conv2 = GATConv(hidden * heads, out_channels, heads=1, concat=False, dropout=p)

    def forward(self, x, edge_index):
        h = F.elu(self.conv1(F.dropout(x, self.p, self.training), edge_index))   # [N, H D]
        return self.conv2(F.dropout(h, self.p, self.training), edge_index)       # [N, C]

    def layerwise_steps(self):
        """The steps gatlib.nn.inference runs (PyG layers get the bipartite pair)."""
        drop = torch.nn.Dropout(self.p)
        drop.train(self.training)
        return [drop, self.conv1, torch.nn.ELU(), drop, self.conv2]


def _model(kind: str, cfg, data):
    torch.manual_seed(0)
    C = int(data.y.max()) + 1
    m = cfg["model"]
    if kind == "gatlib":
        from gatlib.experiments.models import model_from_config
        return model_from_config(cfg, data.num_features, C)
    return PygGAT(data.num_features, m["hidden_channels"], m["heads"], C, m["dropout"])


# The profiler's events of each part of a training epoch (self CPU time), for --breakdown.
PARTS = {"attention ops (fwd + bwd)": ("_Eager", "_EagerBackward"),
         "linear maps (mm, fwd + bwd)": ("aten::mm", "aten::addmm"),
         "dropout (fwd + bwd)": ("_NativeDropout", "_NativeDropoutBackward", "aten::bernoulli_",
                                 "aten::random_")}
LOADER_EVENT = "enumerate(DataLoader)"


def _breakdown(run_epoch, work: dict) -> dict:
    """One more epoch under ``torch.profiler``: seconds per part (:data:`PARTS`, self CPU time of
    their events; the loader's: the whole of its ``next()`` calls), the rest as "other", and
    the epoch's work (``work``: rows and edges through each layer)."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        run_epoch()
        wall = time.perf_counter() - t0
    events = prof.key_averages()
    parts = {name: sum(e.self_cpu_time_total for e in events if e.key in keys) / 1e6
             for name, keys in PARTS.items()}
    parts["sampling and batch assembly (loader)"] = sum(
        e.cpu_time_total for e in events if e.key.startswith(LOADER_EVENT)) / 1e6
    parts["other (autograd, optimizer, small ops)"] = wall - sum(parts.values())
    return {"profiled_epoch_s": wall, "parts_s": parts, "work": work}


def _work_full(data) -> dict:
    n, e = data.num_nodes, data.edge_index.size(1)
    return {"input_rows": n, "layer_edges_with_loops": [e + n, e + n]}


def _work_sampled(proto) -> dict:
    """Rows and edges (with each block's self-loops) of one epoch's batches."""
    from gatlib.loader import to_blocks
    rows, edges = 0, [0, 0]
    for batch in proto.loader:
        blocks = to_blocks(batch, 2)
        rows += blocks[0].size[0]
        for l, b in enumerate(blocks):
            edges[l] += b.num_edges + b.size[1]
    return {"input_rows": rows, "layer_edges_with_loops": edges}


def run_case(case: str, epochs: int, cache: Path, breakdown: bool = False) -> dict:
    """One case in this process (under torchrun for the ddp2 cases); returns its figures."""
    from gatlib.experiments import distributed
    from gatlib.experiments.protocols import NeighborProtocol
    from gatlib.graph import to_csr
    from gatlib.nn.inference import layerwise_inference
    from gatlib.utils import PeakMemory
    what, lib = case.split("-")[0], case.split("-")[1]
    cfg, data = _graph(cache)
    world_size, rank = distributed.world()
    model = _model(lib, cfg, data)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["optim"]["lr"])
    graph = to_csr(data.edge_index, data.num_nodes) if lib == "gatlib" else data.edge_index
    train = data.train_mask
    times, peak = [], None
    if what == "sampled":
        from torch_geometric.data import Data
        ld = cfg["loader"]
        proto = NeighborProtocol(
            Data(x=data.x, y=data.y, edge_index=data.edge_index, num_nodes=data.num_nodes),
            data.x, graph, data.y, {"train": train, "val": data.val_mask,
                                    "test": data.test_mask}, None,
            fanouts=ld["fanouts"], batch_size=ld["batch_size"], replace=ld["replace"], seed=0,
            loss=F.cross_entropy, score=lambda o, t: 0.0, eval_loss=lambda o, t: 0.0,
            device="cpu", world_size=world_size, rank=rank)
        proto.wrap(model, ddp=world_size > 1)
    def run_epoch(epoch: int) -> None:
        if what == "full":
            model.train()
            opt.zero_grad()
            loss = F.cross_entropy(model(data.x, graph)[train], data.y[train])
            loss.backward()
            opt.step()
        elif what == "sampled":
            proto.epoch = epoch
            proto.train_epoch(model, opt)
        else:
            model.eval()
            out = layerwise_inference(model, data.x, graph, chunk_size=4096)   # [N, C]
            assert out.shape == (data.num_nodes, int(data.y.max()) + 1)

    for epoch in range(epochs):
        mem = PeakMemory("cpu") if epoch == 0 else None
        if mem is not None:
            mem.__enter__()
        t0 = time.perf_counter()
        run_epoch(epoch)
        times.append(time.perf_counter() - t0)
        if mem is not None:
            mem.__exit__(None, None, None)
            peak = mem.bytes
    row = {"case": case, "epoch_s": statistics.median(times), "times_s": times,
           "peak_added_mib": None if peak is None else peak / 2 ** 20,
           "peak_rss_mib": _kib("VmHWM") / 1024, "world_size": world_size,
           "threads": torch.get_num_threads(), "load_1min": os.getloadavg()[0]}
    if what == "sampled":
        row["batches_per_epoch"] = len(proto.loader)
    if breakdown and what != "infer" and world_size == 1:
        work = _work_full(data) if what == "full" else _work_sampled(proto)
        row["breakdown"] = _breakdown(lambda: run_epoch(epochs), work)
    if world_size > 1:
        rows = [None] * world_size
        import torch.distributed as dist
        dist.all_gather_object(rows, row)
        row = dict(rows[0])
        for key in ("epoch_s", "peak_added_mib", "peak_rss_mib"):
            row[key] = max(r[key] for r in rows if r[key] is not None)
        row["ranks"] = rows
    return row


def _child(args) -> None:
    from gatlib.experiments import distributed
    torch.set_num_threads(args.threads)
    with distributed.session("cpu"):
        row = run_case(args.case, args.epochs, Path(args.cache), args.breakdown)
        if distributed.is_main():
            Path(args.row).write_text(json.dumps(row))


def _markdown(rows, meta) -> str:
    lines = [f"Graph: {meta['graph']}. Machine: {meta['machine']}; load average (1 min) "
             f"before / after: {meta['load_before']} / {meta['load_after']}. "
             f"{meta['threads']} torch thread(s) per process. Command: `{meta['command']}`.",
             "", "| case | processes | time / epoch (s) | peak added (MiB) | peak RSS (MiB) | "
             "batches / epoch (per process) |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['case']} | | {r['error']} | | | |")
            continue
        add = "" if r["peak_added_mib"] is None else f"{r['peak_added_mib']:.0f}"
        lines.append(f"| {r['case']} | {r['world_size']} | {r['epoch_s']:.2f} | {add} | "
                     f"{r['peak_rss_mib']:.0f} | {r.get('batches_per_epoch', '')} |")
    return "\n".join(lines) + "\n" + _breakdown_markdown(rows)


def _breakdown_markdown(rows) -> str:
    """The --breakdown table: per part, each case's seconds in its profiled epoch, and the
    epoch's work; with a full and a sampled case, the sampled / full ratio."""
    cases = [r for r in rows if "breakdown" in r]
    if not cases:
        return ""
    ratio = len(cases) == 2 and cases[0]["case"].startswith("full") \
        and cases[1]["case"].startswith("sampled")
    head = "| part | " + " | ".join(r["case"] for r in cases) + (" | ratio |" if ratio else " |")
    lines = ["", "One more epoch of each case under torch.profiler (seconds of self CPU time "
             "per part; the profiler adds its own overhead, so the total exceeds the table "
             "above), and the epoch's work:", "", head,
             "|---|" + "---:|" * (len(cases) + ratio)]

    def line(name, values, fmt):
        cells = " | ".join(fmt(v) for v in values)
        extra = f" | {values[1] / values[0]:.1f}x" if ratio and values[0] else (
            " | " if ratio else "")
        lines.append(f"| {name} | {cells}{extra} |")

    for part in cases[0]["breakdown"]["parts_s"]:
        line(part, [r["breakdown"]["parts_s"][part] for r in cases], lambda v: f"{v:.2f}")
    line("profiled epoch", [r["breakdown"]["profiled_epoch_s"] for r in cases],
         lambda v: f"{v:.2f}")
    line("input rows (layer 1's sources)", [r["breakdown"]["work"]["input_rows"]
                                            for r in cases], lambda v: f"{v:,}")
    for l in range(2):
        line(f"edges of layer {l + 1} (with self-loops)",
             [r["breakdown"]["work"]["layer_edges_with_loops"][l] for r in cases],
             lambda v: f"{v:,}")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache", default=str(ROOT / "results" / "cache"))
    p.add_argument("--out", default=str(ROOT / "results"))
    p.add_argument("--timeout", type=int, default=900, help="seconds per case")
    p.add_argument("--breakdown", action="store_true",
                   help="one more epoch of each 1-process training case under torch.profiler: "
                        "seconds per part (attention ops, linear maps, dropout, loader, other) "
                        "and the epoch's work (input rows, edges per layer)")
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--row", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.case:
        _child(args)
        return 0
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    bad = [c for c in cases if c not in CASES]
    if bad:
        p.error(f"unknown case(s) {bad}; choose from {', '.join(CASES)}")
    from gatlib.utils import atomic_write_json, atomic_write_text
    _graph(Path(args.cache))                       # generate once, before any timing
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                       os.environ.get("PYTHONPATH")]))}
    rows, load_before = [], os.getloadavg()[0]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for case in cases:
        row_path = out / f".scaling_out_{case}.json"
        row_path.unlink(missing_ok=True)
        launch = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                   "--nproc_per_node", "2"] if case.endswith("ddp2") else [sys.executable])
        cmd = launch + [__file__, "--case", case, "--epochs", str(args.epochs), "--threads",
                        str(args.threads), "--cache", args.cache, "--row", str(row_path)]
        if args.breakdown:
            cmd.append("--breakdown")
        print(f"scaling_out: {case} ...", file=sys.stderr, flush=True)
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                                  timeout=args.timeout)
            if proc.returncode != 0 or not row_path.exists():
                rows.append({"case": case, "error": f"exit {proc.returncode}"})
                print(proc.stderr[-2000:], file=sys.stderr)
            else:
                rows.append(json.loads(row_path.read_text()))
                row_path.unlink()
        except subprocess.TimeoutExpired:
            rows.append({"case": case, "error": f"timeout ({args.timeout} s)"})
        print(f"scaling_out: {rows[-1]}", file=sys.stderr, flush=True)
    from gatlib.experiments.config import load_config
    s = load_config(CONFIG)["synthetic"]
    meta = {"graph": f"csbm {s['num_nodes']} nodes, avg_degree {s['avg_degree']}, "
                     f"{s['feature_dim']} features, {s['num_classes']} classes "
                     f"(arxiv-size-gat.yaml)",
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, "
                       f"torch {torch.__version__}",
            "load_before": f"{load_before:.2f}", "load_after": f"{os.getloadavg()[0]:.2f}",
            "threads": args.threads, "epochs": args.epochs,
            "command": "python experiments/benchmarks/scaling_out.py " + " ".join(sys.argv[1:]),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    atomic_write_json(out / "scaling_out_cpu.json", {"meta": meta, "rows": rows})
    atomic_write_text(out / "scaling_out_cpu.md", _markdown(rows, meta))
    print(_markdown(rows, meta))
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
