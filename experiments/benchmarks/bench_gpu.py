"""GPU benchmark: gatlib's fused attention against PyG on power-law graphs up to ogbn-products size.

Subjects (``--subjects``, all by default):
- ``gat``: gatlib ``GATConv`` against PyG ``GATConv`` (same weights, both add self-loops);
- ``gatv2``: gatlib ``GATv2Conv`` against PyG ``GATv2Conv`` (the IO-aware kernels' anchor);
- ``transformer``: gatlib ``GraphTransformerConv`` against PyG ``TransformerConv``;
- ``softmax``: gatlib ``segment_softmax`` against PyG's ``softmax`` utility and, when installed,
  ``torch_scatter``'s ``scatter_softmax``; also its forward alone, reported as achieved memory
  bandwidth (bytes a segment softmax must move / time) and as a fraction of the device's peak.

Graphs: random directed multigraphs whose in- and out-degrees follow a power law (a few hubs with
tens of thousands of edges next to many nodes with one), ``--sizes`` edges (default 1e5 to 1e7)
at average degree ``--avg-degree``, plus one of ogbn-products' size (2,449,029 nodes, 61,859,140
edges, 100 input features) with 8 heads x 16 channels.

Each subject runs in every dtype of ``--dtypes`` (default fp32; ``float32,bfloat16`` for the
issue's figures); a row's subject names its dtype when it is not fp32 (``gat (bf16)``).
``--tile-budgets 1024,4096`` adds candidates ``gatlib@1024``... that run gatlib with the Triton
kernels' tile budget (``gatlib.ops.triton.launch.TILE_BUDGET``, elements of a program's register
tiles, 2048 by default) set to each value: a sweep of the kernels' block sizes, compared with
the default ``gatlib`` row (``--impls gatlib`` leaves the peers out).

For each subject and size, every candidate's output and gradients are first checked against
gatlib's reference (pure PyTorch, ``use_backend("reference")``) on the same inputs; a candidate
that disagrees is not timed. In fp32 the check asks a max error relative to scale of at most
``--check-tol``; in fp16/bf16 the tests' rule: at most twice the error of the reference run in
that dtype (both against the fp32 reference) plus 1e-3. On CUDA the run first asks gatlib's
self-check for the Triton kernels (``gatlib.ops.self_check``) and records its verdicts. Where
the reference itself runs out of memory the check is skipped at that size and the table says
so (the smaller sizes were checked). Then each candidate runs in a fresh process
(``gatlib.utils.measure``): the median wall time of forward + backward after a warm-up, and the
peak of ``torch.cuda.max_memory_allocated``. Out of memory is
reported as OOM, not as a crash. gatlib builds its CSR view of a graph once (as a training loop
does); PyG re-derives its structure on every call, which is part of what is compared.

Writes ``bench_gpu_<device>.{md,json,png}`` into ``results/`` in the checkout (git-ignored;
``--out-dir experiments/results`` for the committed figures) (atomically; the plot
is log-log time and memory against edges).

Run:  python experiments/benchmarks/bench_gpu.py --device cuda [--sizes 1e5,1e6,1e7] ...
      python experiments/benchmarks/bench_gpu.py --dry-run      (tiny sizes, CPU, a smoke test)
      TRITON_INTERPRET=1 python experiments/benchmarks/bench_gpu.py --dry-run --backend triton \
          --no-products --sizes 300 --subjects gat --tile-budgets 1024 (the Triton path on the CPU)
``experiments/benchmarks/gpu_session.sh`` runs the issue's whole GPU session (self-check
verdicts, the GPU tests, this benchmark) within a time limit.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import platform
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch

import gatlib
from gatlib.experiments.bench import add_int_args
from gatlib.experiments.bench_report import fmt_mb as _fmt_mb
from gatlib.experiments.bench_report import gpu_plot as plot
from gatlib.experiments.bench_report import gpu_table as table
from gatlib.ops import reference, segment_softmax, select, self_check, use_backend
from gatlib.utils import atomic_write_json, atomic_write_text, measure

# Default output folder: results/ in the checkout, git-ignored, so a run leaves it clean.
RESULTS = Path(__file__).resolve().parents[2] / "results"
THIS_MODULE = "bench_gpu"          # the measure() workers import this file by name

# Peak DRAM bandwidth (GB/s, vendor figures) by a substring of torch.cuda.get_device_name();
# the first match wins. --peak-bandwidth overrides.
PEAK_BANDWIDTH_GBPS = [
    ("H200", 4800.0),
    ("H100 NVL", 3900.0),
    ("H100 PCIe", 2000.0),
    ("H100", 3350.0),          # SXM5
    ("A100-SXM4-80GB", 2039.0),
    ("A100 80GB PCIe", 1935.0),
    ("A100", 1555.0),          # 40 GB
    ("L40S", 864.0),
    ("A10G", 600.0),
]

PRODUCTS = dict(name="ogbn-products size", num_nodes=2_449_029, num_edges=61_859_140,
                in_channels=100)


# ------------------------------------------------------------------------------ the graphs

def power_law_graph(num_nodes: int, num_edges: int, seed: int = 0, device: str = "cpu",
                    gamma: float = 2.0) -> torch.Tensor:
    """A random multigraph ``[2, E]`` with power-law in- and out-degrees.

    Node ranks are drawn as ``floor(N * u ** gamma)`` with ``u`` uniform, so rank ``r`` receives
    about ``E / gamma * (r / N) ** (1 / gamma - 1) / N`` edges (the top node of ogbn-products'
    size about 40,000); ranks are then shuffled onto node ids so hubs sit anywhere.
    """
    g = torch.Generator(device="cpu").manual_seed(seed)
    ends = []
    for _ in range(2):
        u = torch.rand(num_edges, generator=g, dtype=torch.float64)
        rank = torch.clamp((num_nodes * u.pow(gamma)).long(), max=max(num_nodes - 1, 0))
        ids = torch.randperm(num_nodes, generator=g)
        ends.append(ids[rank])
        del u, rank
    return torch.stack(ends).to(device)                                    # [2, E]


def _randn(*shape, seed: int, device: str, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn(*shape, generator=g).to(device=device, dtype=dtype)


# ------------------------------------------------------------------- what each candidate runs

LAYER_IMPLS = ("gatlib", "pyg")
LAYERS = ("gat", "gatv2", "transformer")
DTYPES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


def _dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {name!r}")
    return getattr(torch, name)


@contextlib.contextmanager
def tile_budget(budget: str):
    """Run the Triton kernels with ``launch.TILE_BUDGET = budget`` inside (nothing when
    ``budget`` is empty)."""
    if not budget:
        yield
        return
    from gatlib.ops.triton import launch
    old = launch.TILE_BUDGET
    launch.TILE_BUDGET = int(budget)
    try:
        yield
    finally:
        launch.TILE_BUDGET = old


def _layer(kind: str, impl: str, in_channels: int, heads: int, channels: int, seed: int):
    from torch_geometric.nn import GATConv as PyGGATConv
    from torch_geometric.nn import GATv2Conv as PyGGATv2Conv
    from torch_geometric.nn import TransformerConv

    from gatlib.nn import GATConv, GATv2Conv, GraphTransformerConv
    torch.manual_seed(seed)
    if kind == "gat":
        peer = PyGGATConv(in_channels, channels, heads=heads)
        ours = GATConv
    elif kind == "gatv2":
        peer = PyGGATv2Conv(in_channels, channels, heads=heads)
        ours = GATv2Conv
    elif kind == "transformer":
        peer = TransformerConv(in_channels, channels, heads=heads)
        ours = GraphTransformerConv
    else:
        raise ValueError(f"layer kind must be one of {LAYERS}, got {kind!r}")
    if impl == "pyg":
        return peer
    if impl in ("gatlib", "reference"):
        return ours.from_pyg(peer)
    raise ValueError(f"impl must be one of {LAYER_IMPLS + ('reference',)}, got {impl!r}")


def layer_step(kind: str, impl: str, num_nodes: int, num_edges: int, in_channels: int,
               heads: int, channels: int, seed: int = 0, device: str = "cpu",
               backend: Optional[str] = None,
               dtype: str = "float32") -> Callable[[], List[torch.Tensor]]:
    """Forward plus backward of one attention layer in ``dtype``; the step returns the output
    and the gradients (input first, then parameters) for the check. ``impl`` ``gatlib@B`` is
    gatlib with the Triton tile budget ``B``."""
    impl, _, budget = impl.partition("@")
    dt = _dtype(dtype)
    layer = _layer(kind, impl, in_channels, heads, channels, seed).to(device=device, dtype=dt)
    x = _randn(num_nodes, in_channels, seed=seed + 1, device=device, dtype=dt).requires_grad_()
    grad = _randn(num_nodes, heads * channels, seed=seed + 2, device=device, dtype=dt)
    edge_index = power_law_graph(num_nodes, num_edges, seed, device)
    if impl == "reference":
        backend = "reference"
    elif impl == "pyg":
        backend = None

    def step():
        layer.zero_grad(set_to_none=True)
        x.grad = None
        with use_backend(backend), tile_budget(budget):
            out = layer(x, edge_index)
            out.backward(grad)
        return [out.detach(), x.grad] + [p.grad for p in layer.parameters()]
    return step


def softmax_impls() -> List[str]:
    out = ["gatlib", "pyg"]
    try:
        import torch_scatter  # noqa: F401
        out.append("torch_scatter")
    except ImportError:
        pass
    return out


def _softmax_fn(impl: str, num_nodes: int) -> Callable:
    if impl == "gatlib":
        return lambda src, index: segment_softmax(src, index, num_nodes)
    if impl == "reference":
        return lambda src, index: reference.segment_softmax_ref(src, index, num_nodes)
    if impl == "pyg":
        from torch_geometric.utils import softmax
        return lambda src, index: softmax(src, index, num_nodes=num_nodes)
    if impl == "torch_scatter":
        from torch_scatter.composite import scatter_softmax
        return lambda src, index: scatter_softmax(src, index, dim=0, dim_size=num_nodes)
    raise ValueError(f"unknown segment softmax impl {impl!r}")


def softmax_step(impl: str, num_nodes: int, num_edges: int, heads: int, seed: int = 0,
                 device: str = "cpu", backward: bool = True, backend: Optional[str] = None,
                 dtype: str = "float32") -> Callable[[], List[torch.Tensor]]:
    """Segment softmax of ``[E, H]`` scores in ``dtype`` over the targets of a power-law graph
    (forward, and backward unless ``backward=False``)."""
    impl, _, budget = impl.partition("@")
    dt = _dtype(dtype)
    index = power_law_graph(num_nodes, num_edges, seed, device)[1]        # [E]
    src = _randn(num_edges, heads, seed=seed + 1, device=device, dtype=dt)
    src.requires_grad_(backward)
    grad = _randn(num_edges, heads, seed=seed + 2, device=device, dtype=dt)
    fn = _softmax_fn(impl, num_nodes)
    if impl != "gatlib":
        backend = None

    def step():
        src.grad = None
        with use_backend(backend), tile_budget(budget):
            out = fn(src, index)
            if not backward:
                return [out]
            out.backward(grad)
        return [out.detach(), src.grad]
    return step


# ------------------------------------------------------------------------------ the checks

def _free(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or "out of memory" in str(exc)


def _max_error(got: List[torch.Tensor], want: List[torch.Tensor]) -> float:
    """The largest max abs difference relative to each tensor's scale (NaN counts as inf)."""
    errs = [((a.float() - b.float()).abs().max() / b.float().abs().max().clamp(min=1.0)).item()
            for a, b in zip(got, want) if a is not None and b is not None and b.numel()]
    err = max(errs) if errs else 0.0
    return float("inf") if err != err else err


def check(subject: str, size: dict, impls: List[str], args, dtype: str = "float32"
          ) -> Dict[str, dict]:
    """Each candidate's output and gradients in ``dtype`` against gatlib's fp32 reference, at
    this size: in fp32 within ``args.check_tol``, in fp16/bf16 within twice the error of the
    reference run in ``dtype`` plus 1e-3.

    Returns ``{impl: {"status": "ok" | "mismatch" | "unchecked" | "oom" | "error", "error":
    float, "tolerance": float}}``; errors are max abs differences relative to scale."""
    step_fn, kw = _step(subject, size, args)
    tol = args.check_tol
    try:
        want = [t.detach().clone() for t in
                step_fn(impl="reference", **dict(kw, dtype="float32"))()]
        _free(args.device)
        if dtype != "float32":
            low = step_fn(impl="reference", **dict(kw, dtype=dtype))()
            tol = 2 * _max_error(low, want) + 1e-3
            del low
    except Exception as exc:  # noqa: BLE001  (out of memory, reported)
        if not _is_oom(exc):
            raise
        _free(args.device)
        return {impl: {"status": "unchecked", "error": None,
                       "note": "reference out of memory at this size"} for impl in impls}
    _free(args.device)
    out = {}
    for impl in impls:
        try:
            got = step_fn(impl=impl, **dict(kw, dtype=dtype))()
        except Exception as exc:  # noqa: BLE001  (reported in the table, the run goes on)
            status = "oom" if _is_oom(exc) else "error"
            out[impl] = {"status": status, "error": None,
                         "note": f"{type(exc).__name__}: {exc}"[:300]}
            _free(args.device)
            continue
        err = _max_error(got, want)
        out[impl] = {"status": "ok" if err <= tol else "mismatch", "error": err,
                     "tolerance": tol}
        del got
        _free(args.device)
    del want
    _free(args.device)
    return out


def _step(subject: str, size: dict, args):
    """(setup function, its keyword arguments but ``impl``) of a subject at a size."""
    common = dict(num_nodes=size["num_nodes"], num_edges=size["num_edges"], heads=args.heads,
                  seed=args.seed, device=args.device, backend=args.backend)
    if subject in LAYERS:
        return (lambda impl, **kw: layer_step(subject, impl, **kw),
                dict(common, in_channels=size["in_channels"], channels=args.channels))
    return (lambda impl, **kw: softmax_step(impl, **kw), common)


# ------------------------------------------------------------------------------ reporting

def peak_bandwidth(args) -> Optional[float]:
    """Peak DRAM bandwidth in GB/s: ``--peak-bandwidth``, else the table by device name."""
    if args.peak_bandwidth:
        return float(args.peak_bandwidth)
    if not args.device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name()
    for key, gbps in PEAK_BANDWIDTH_GBPS:
        if key in name:
            return gbps
    return None


def softmax_bytes(num_edges: int, heads: int, itemsize: int = 4) -> int:
    """Bytes a segment softmax must move at least: read the scores and the int64 index, write
    the result (a two-pass kernel reads the scores twice; this is the floor)."""
    return num_edges * heads * itemsize * 2 + num_edges * 8


# ----------------------------------------------------------------------------------- main

def _sizes(args) -> List[dict]:
    out = []
    for e in args.sizes.split(","):
        E = int(float(e))
        out.append(dict(name="power law", num_nodes=max(E // args.avg_degree, 2), num_edges=E,
                        in_channels=args.in_channels))
    if args.products:
        p = dict(PRODUCTS)
        if args.dry_run:   # the same shape of graph, a thousand times smaller
            p.update(name="ogbn-products / 1000", num_nodes=PRODUCTS["num_nodes"] // 1000,
                     num_edges=PRODUCTS["num_edges"] // 1000)
        out.append(p)
    return out


def _parse_list(text: str, allowed, what: str) -> List[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in allowed]
    if bad or not items:
        sys.exit(f"{what} must be a comma-separated list of {', '.join(allowed)}, got {text!r}")
    return items


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--subjects", default="gat,gatv2,transformer,softmax",
                   help="comma-separated, from gat, gatv2, transformer, softmax (default all)")
    p.add_argument("--dtypes", default="float32",
                   help="comma-separated, from float32, bfloat16, float16 (default float32)")
    p.add_argument("--sizes", default=None,
                   help="edge counts, comma-separated (default 1e5,3e5,1e6,3e6,1e7; dry run "
                        "2000,6000)")
    p.add_argument("--avg-degree", type=int, default=10, help="edges per node of the sweep")
    p.add_argument("--no-products", dest="products", action="store_false",
                   help="skip the ogbn-products-sized graph")
    add_int_args(p, in_channels=100, heads=8, channels=16, repeats=10, warmup=2, seed=0)
    p.add_argument("--tile-budgets", default="",
                   help="Triton tile budgets to sweep, e.g. 1024,4096: one more gatlib "
                        "candidate each (gatlib@1024, ...; default none)")
    p.add_argument("--impls", default=None,
                   help="keep only these candidates, e.g. gatlib (the sweep without the "
                        "peers; default all)")
    p.add_argument("--backend", default=None,
                   help="force gatlib's backend (e.g. triton: under TRITON_INTERPRET=1 the "
                        "Triton path on the CPU; default automatic choice)")
    p.add_argument("--check-tol", type=float, default=1e-4,
                   help="largest max abs error relative to scale accepted by the fp32 check")
    p.add_argument("--peak-bandwidth", type=float, default=None,
                   help="device peak DRAM bandwidth in GB/s (default: a table by device name)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per candidate")
    p.add_argument("--tag", default="",
                   help="suffix of the output files (bench_gpu_<device>_<tag>.*)")
    p.add_argument("--out-dir", default=None,
                   help="default results/ in the checkout, git-ignored (dry run: a temporary "
                        "folder)")
    p.add_argument("--dry-run", action="store_true",
                   help="tiny sizes on the CPU (cpu backend unless --backend): a smoke test "
                        "of the script")
    return p


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    subjects = _parse_list(args.subjects, LAYERS + ("softmax",), "--subjects")
    dtypes = _parse_list(args.dtypes, tuple(DTYPES), "--dtypes")
    budgets = [b.strip() for b in args.tile_budgets.split(",") if b.strip()]
    if any(not b.isdigit() or int(b) < 64 for b in budgets):
        sys.exit(f"--tile-budgets must be integers >= 64, got {args.tile_budgets!r}")
    if args.dry_run:
        args.device, args.repeats, args.warmup = "cpu", 2, 1
        args.sizes = args.sizes or "2000,6000"
        args.in_channels, args.heads, args.channels = 16, 2, 4
        out_dir = Path(args.out_dir or tempfile.mkdtemp(prefix="bench_gpu_dry_run_"))
    else:
        out_dir = Path(args.out_dir) if args.out_dir else RESULTS
    args.sizes = args.sizes or "1e5,3e5,1e6,3e6,1e7"
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("--device cuda but CUDA is not available here (use --dry-run for a CPU smoke "
                 "test)")
    # measure()'s workers are spawned processes that import this file by its module name.
    sys.path.insert(0, str(Path(__file__).resolve().parent))

    dev = torch.device(args.device)
    device_name = (torch.cuda.get_device_name(dev) if dev.type == "cuda"
                   else platform.processor() or platform.machine())
    try:
        import triton
        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    # The Triton kernels' self-check (run or read now, as automatic choice would), and the
    # backend each dtype then gets.
    verdicts = {f"{op} {str(dt).replace('torch.', '')}": reason or "passed"
                for (_, op, dt), reason in self_check(dev, [_dtype(d) for d in dtypes]).items()}
    with use_backend(args.backend):
        backends = {d: select("gat_attention", dev, _dtype(d)) for d in dtypes}
    backend = ", ".join(f"{b} ({DTYPES[d]})" for d, b in backends.items())
    peak = peak_bandwidth(args)
    print(f"device {args.device} ({device_name}); torch {torch.__version__}, triton "
          f"{triton_version}, gatlib {gatlib.__version__}; gatlib backend {backend}; peak "
          f"bandwidth {peak} GB/s; {args.heads} heads x {args.channels}", flush=True)
    for name, verdict in verdicts.items():
        print(f"  self-check {name}: {verdict}", flush=True)

    header = (f"Forward + backward on power-law graphs; device {args.device} ({device_name}); "
              f"torch {torch.__version__}, triton {triton_version}, gatlib {gatlib.__version__} "
              f"(backend {backend}); {args.heads} heads x {args.channels}, "
              f"{', '.join(DTYPES[d] for d in dtypes)}"
              + (f"; Triton tile budgets {', '.join(budgets)} (gatlib@B; default 2048)"
                 if budgets else "")
              + f"; median of {args.repeats} after {args.warmup} warm-up; each candidate in a "
              f"fresh process; speed-up = candidate time / gatlib time, memory ratio = gatlib "
              f"peak / candidate peak; bandwidth = bytes a segment softmax must move (scores "
              f"read, result written, int64 index read) / forward time, against a peak of "
              f"{peak} GB/s; {datetime.now(timezone.utc):%Y-%m-%d}.")
    stem = out_dir / (f"bench_gpu_{dev.type}" + (f"_{args.tag}" if args.tag else ""))
    record = {"args": vars(args), "header": header, "rows": [], "device": device_name,
              "torch": torch.__version__, "triton": triton_version,
              "gatlib": gatlib.__version__, "backend": backends, "self_check": verdicts,
              "peak_bandwidth_gbps": peak}
    for size in _sizes(args):
        for dtype in dtypes:
            for subject in subjects:
                record["rows"] += _run_subject(subject, size, dtype, budgets, args, peak)
                # Written after every subject: a run stopped by a time limit keeps its rows.
                text = header + "\n\n" + table(record["rows"]) + "\n"
                atomic_write_json(stem.with_suffix(".json"), record)
                atomic_write_text(stem.with_suffix(".md"), text)
    print("\n" + text)
    plot(record["rows"], stem.with_suffix(".png"))
    print(f"wrote {stem}.md, .json and .png")
    return record


def _run_subject(subject: str, size: dict, dtype: str, budgets: List[str], args,
                 peak: Optional[float]) -> List[dict]:
    """Check, then time, every candidate of one subject at one size and dtype."""
    impls = list(LAYER_IMPLS if subject != "softmax" else softmax_impls())
    impls[1:1] = [f"gatlib@{b}" for b in budgets]
    if args.impls:
        keep = {i.strip() for i in args.impls.split(",")}
        impls = [i for i in impls if i.partition("@")[0] in keep]
    label = subject if dtype == "float32" else f"{subject} ({DTYPES[dtype]})"
    checks = check(subject, size, impls, args, dtype)
    rows = []
    for impl in impls:
        c = checks[impl]
        row = dict(subject=label, kind=subject, dtype=dtype, graph=size["name"],
                   num_nodes=size["num_nodes"], num_edges=size["num_edges"], impl=impl,
                   check=c)
        if c["status"] == "mismatch":
            row["timing"] = {"status": "not timed (mismatch)"}
        elif c["status"] in ("oom", "error"):
            row["timing"] = {"status": c["status"]}
        else:
            _, kw = _step(subject, size, args)
            kw = dict(kw, impl=impl, dtype=dtype)
            target = (f"{THIS_MODULE}:layer_step" if subject != "softmax"
                      else f"{THIS_MODULE}:softmax_step")
            if subject != "softmax":
                kw = dict(kind=subject, **kw)
            row["timing"] = measure(target, kw, device=args.device, repeats=args.repeats,
                                    warmup=args.warmup, timeout=args.timeout)
            if subject == "softmax" and row["timing"]["status"] == "ok":
                fwd = measure(f"{THIS_MODULE}:softmax_step", dict(kw, backward=False),
                              device=args.device, repeats=args.repeats, warmup=args.warmup,
                              timeout=args.timeout)
                if fwd["status"] == "ok":
                    itemsize = _dtype(dtype).itemsize
                    moved = softmax_bytes(size["num_edges"], args.heads, itemsize)
                    gbps = moved / fwd["time_s"] / 1e9
                    row["bandwidth"] = {"fwd_time_s": fwd["time_s"], "gbps": gbps,
                                        "fraction": gbps / peak if peak else None}
        rows.append(row)
        t = row["timing"]
        shown = (f"{t['time_s'] * 1e3:,.2f} ms, peak {_fmt_mb(t)} MiB"
                 if t.get("status") == "ok" else t.get("status"))
        print(f"  {label:>18} {size['name']:>20} E={size['num_edges']:>11,} "
              f"{impl:>14}: check {c['status']}, {shown}", flush=True)
    return rows


if __name__ == "__main__":
    main()
