"""Training time per epoch of the TU graph-classification configs, on the CPU, with gatlib's
native CPU kernels and without them.

For each config ``experiments/configs/<dataset>-<layer>.yaml`` (datasets MUTAG, ENZYMES,
PROTEINS, IMDB-BINARY, NCI1; layers ``gat``, ``transformer``, ``gps+lap``) the script trains
the config's model on fold 0 of seed 0 (the real dataset, its loaders and batch size, as
``gatlib train`` does) for ``--warmup`` epochs and then ``--epochs`` timed epochs, and reports
the median time of a training epoch (forward, backward and optimiser steps over the training
batches; evaluation excluded). Each (config, path) runs in its own worker process on one thread:
``native`` with the fused CPU kernels and the counting-sort CSR builder (``gatlib.native``),
``torch`` with ``GATLIB_NATIVE=0`` (torch's kernels, as before they existed). The two workers of
a config run one after the other, and the load average is recorded beside each row.

Writes ``<out>.{md,json}`` (default ``experiments/results/tu_epochs_cpu``).

Run:  python experiments/benchmarks/tu_epochs.py [--datasets mutag,nci1] [--layers gat]
      [--epochs 5] [--warmup 1]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from gatlib.experiments.bench import write_results

ROOT = Path(__file__).resolve().parents[2]
DATASETS = ("mutag", "enzymes", "proteins", "imdb-binary", "nci1")
LAYERS = ("gat", "transformer", "gps+lap")
PATHS = ("native", "torch")


def worker(config: str, epochs: int, warmup: int) -> dict:
    """Train one config on fold 0 (seed 0); the median training-epoch time and the path used."""
    import torch
    torch.set_num_threads(1)
    from gatlib import native
    from gatlib.experiments.config import load_config
    from gatlib.experiments.loop import seed_everything
    from gatlib.experiments.models import model_from_config
    from gatlib.experiments.protocols import BatchProtocol
    import torch.nn.functional as F

    from gatlib.data.splits import stratified_folds
    from gatlib.experiments.metrics import fraction_correct
    from gatlib.experiments.supervised import _fold_loaders, _graph_dataset

    cfg = load_config(ROOT / "experiments" / "configs" / f"{config}.yaml", ["device=cpu"])
    data_list, num_classes = _graph_dataset(cfg)
    y = torch.tensor([int(d.y) for d in data_list])
    folds = stratified_folds(y, 10, 0)
    seed_everything(0)
    loaders = _fold_loaders(data_list, y, folds, 0, 0, cfg["train"]["batch_size"])
    model = model_from_config(cfg, data_list[0].num_features, num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["optim"]["lr"])
    protocol = BatchProtocol(loaders, torch.device("cpu"), loss=F.cross_entropy,
                             score=lambda logits, t: fraction_correct(logits.argmax(-1), t))
    model.train()
    times = []
    for epoch in range(warmup + epochs):
        start = time.perf_counter()
        protocol.train_epoch(model, opt)
        if epoch >= warmup:
            times.append(time.perf_counter() - start)
    return {"config": config, "seconds": statistics.median(times), "epochs": epochs,
            "train_graphs": len(loaders["train"].dataset), "native": native.available(),
            "load": os.getloadavg()[0]}


def run_worker(config: str, path: str, epochs: int, warmup: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if path == "torch":
        env["GATLIB_NATIVE"] = "0"
    cmd = [sys.executable, __file__, "--worker", config, "--epochs", str(epochs), "--warmup",
           str(warmup)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        sys.exit(f"{config} ({path}) failed:\n{res.stderr[-2000:]}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    if out["native"] != (path == "native"):
        sys.exit(f"{config}: the {path} worker ran with native={out['native']}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--layers", default=",".join(LAYERS))
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "experiments" / "results" / "tu_epochs_cpu"))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.epochs < 1 or args.warmup < 0:
        ap.error("--epochs must be at least 1 and --warmup at least 0")
    if args.worker:
        print(json.dumps(worker(args.worker, args.epochs, args.warmup)))
        return
    rows = []
    for ds in args.datasets.split(","):
        for layer in args.layers.split(","):
            config = f"{ds}-{layer}"
            if not (ROOT / "experiments" / "configs" / f"{config}.yaml").exists():
                ap.error(f"no config experiments/configs/{config}.yaml")
            got = {p: run_worker(config, p, args.epochs, args.warmup) for p in PATHS}
            row = {"config": config, "train_graphs": got["native"]["train_graphs"],
                   **{f"{p}_s": got[p]["seconds"] for p in PATHS},
                   "speedup": got["torch"]["seconds"] / got["native"]["seconds"],
                   "load": [got[p]["load"] for p in PATHS]}
            rows.append(row)
            print(f"{config:26s} native {row['native_s']:.3f} s  torch {row['torch_s']:.3f} s"
                  f"  {row['speedup']:.2f}x  (load {max(row['load']):.1f})", flush=True)
    import platform

    import torch
    meta = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            "cpu": f"{platform.machine()}, {os.cpu_count()} cores", "torch": torch.__version__,
            "epochs": args.epochs, "warmup": args.warmup}
    lines = [
        f"Training time per epoch (median of {args.epochs} after {args.warmup} warm-up) of the "
        f"TU configs on fold 0, seed 0, one thread, {meta['cpu']}, torch {meta['torch']}; "
        f"{meta['date']}. native: gatlib's native CPU kernels; torch: GATLIB_NATIVE=0 (torch's "
        f"kernels). Each in its own worker process, one after the other. "
        f"`python experiments/benchmarks/tu_epochs.py`",
        "",
        "| config | training graphs | native s / epoch | torch s / epoch | speed-up | load avg |",
        "|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['train_graphs']:,} | {r['native_s']:.3f} | "
                     f"{r['torch_s']:.3f} | **{r['speedup']:.2f}x** | "
                     f"{min(r['load']):.1f}-{max(r['load']):.1f} |")
    write_results(args.out, lines, {"meta": meta, "rows": rows})


if __name__ == "__main__":
    main()
