"""The ``gatlib`` command.

    gatlib train --config experiments/configs/cora-gat.yaml [key=value ...] [--seeds 0-9]
    gatlib summarize RESULTS_DIR
    gatlib compare [--preset small|full|medium|paper] [--tasks ...] [--seeds 0-1] ...
    gatlib data list | fetch [--mirror DIR] [--copy] [NAME ...]
    gatlib demo [--nodes N] [--edges E] [--heads H] [--channels C]
    gatlib doctor [--device cuda] [--dtypes float32,bfloat16,float16] [--no-check]

An error in what the user gave (a config, an override, missing or damaged data, a run folder
another process holds) prints one or two lines and exits with status 2; ``--debug`` shows the
traceback instead. Ctrl-C exits with status 130 and says how to resume.

``train`` runs a config for each seed (resumable; results under ``--results``), ``summarize``
turns finished runs into ``mean ± std`` tables and learning curves, ``data`` lists and fetches
datasets, ``compare`` trains sparse, dense and hybrid attention side by side under one
parameter and tuning budget and writes the comparison table and plots, and ``demo`` checks the
attention operators on a built-in graph against the reference and compares their time and peak
memory (it prints only; about 3 GB of memory at its default size), and ``doctor`` prints which
backend runs each attention op and dtype on a device and why, running the GPU kernels'
self-checks that have no verdict yet (exit status 1 when one fails).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import List, Optional

import torch

from . import __version__
from .experiments.tasks import DEFAULT_TASKS, PRESETS


def _demo(args: argparse.Namespace) -> int:
    from .experiments.demo import demo
    return demo(nodes=args.nodes, edges=args.edges, heads=args.heads, channels=args.channels,
                seed=args.seed)


def _doctor(args: argparse.Namespace) -> int:
    from .ops.dispatch import diagnose
    from .utils import UserError
    names = ("float32", "bfloat16", "float16", "float64") if args.dtypes == "all" else [
        d.strip() for d in args.dtypes.split(",") if d.strip()]
    bad = [d for d in names if d not in ("float32", "bfloat16", "float16", "float64")]
    if bad or not names:
        raise UserError(f"--dtypes must be a comma-separated list of float32, bfloat16, "
                        f"float16, float64 (or all), got {args.dtypes!r}")
    try:
        device = torch.device(args.device) if args.device else None
    except RuntimeError as exc:
        raise UserError(f"--device: {exc}") from None
    if device is not None and device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda but CUDA is not available here")
    text, failed = diagnose(device, [getattr(torch, d) for d in names],
                            check=not args.no_check)
    print(text)
    if failed:
        print(f"gatlib doctor: {failed} self-check(s) failed: those ops run on the next "
              f"backend; please report this as a gatlib issue with the output above",
              file=sys.stderr)
        return 1
    return 0


# What the experiments extra installs (pyproject.toml), by import name.
_EXTRA = ("yaml", "matplotlib", "sklearn")


def _missing_extra() -> List[str]:
    """The modules of the experiments extra that cannot be imported."""
    missing = []
    for name in _EXTRA:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def _rank_zero() -> bool:
    """Whether this process prints: not started by torchrun, or its rank 0."""
    return os.environ.get("RANK", "0") == "0"


def _train(args: argparse.Namespace) -> int:
    from .experiments import load_config, parse_seeds, run_config, summarize
    from .experiments.distributed import check_config, session
    overrides = list(args.overrides) + ([f"device={args.device}"] if args.device else [])
    cfg = load_config(args.config, overrides)      # checked before any data is read
    seeds = parse_seeds(args.seeds)
    check_config(cfg, int(os.environ.get("WORLD_SIZE", "1")))
    # Under torchrun: one process group for all seeds, each rank on its device (a CUDA
    # config's "cuda" is then this rank's GPU, cuda:LOCAL_RANK); rank 0 alone prints.
    with session(cfg["device"]):
        rows = run_config(cfg, seeds, Path(args.results), progress=not args.quiet,
                          restart=args.restart)
    if not _rank_zero():
        return 0
    metric = cfg["metric"]
    vals = [r[f"test_{metric}"] for r in rows]
    print(f"{cfg['name']}: test {metric} over {len(vals)} seed(s): "
          + ", ".join(f"{v:.4f}" for v in vals))
    print(summarize(Path(args.results)))
    return 0


_COMPARE_LRS = "0.003"
_COMPARE_TASKS = ",".join(DEFAULT_TASKS)


def _default_jobs() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _model_settings(rows) -> str:
    """The models' settings as the comparison's rows record them: one phrase, or one per group
    of tasks when the tasks differ (layers, heads, a norm and early stopping where a task
    sets them)."""
    groups: dict = {}
    for r in rows:
        key = (r["layers"], r["heads"], r["norm"], r["patience"], r["epochs"])
        groups.setdefault(key, {})[r["task"]] = None

    def phrase(layers, heads, norm, patience, epochs) -> str:
        text = f"{layers} attention layers, {heads} heads"
        text += f", {norm} norm" if norm else ""
        if patience is not None:
            text += (f", at most {epochs} epochs with early stopping after {patience} without "
                     f"a better validation score")
        return text
    if len(groups) == 1:
        return phrase(*next(iter(groups)))
    return "; ".join(f"{', '.join(tasks)}: {phrase(*key)}" for key, tasks in groups.items())


def _compare(args: argparse.Namespace) -> int:
    import platform

    from .experiments import parse_seeds
    from .experiments.compare import TASKS, compare, missing_task_data, write_report
    if args.full and args.preset not in (None, "full"):
        print(f"gatlib compare: --full is --preset full; it cannot go with --preset "
              f"{args.preset}", file=sys.stderr)
        return 2
    preset = PRESETS[args.preset or ("full" if args.full else "small")]
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    if tasks is None:
        tasks = list(preset.tasks)
    bad = [t for t in tasks if t not in TASKS]
    if bad:
        print(f"gatlib compare: unknown task(s) {', '.join(bad)}; choose from "
              f"{', '.join(TASKS)}", file=sys.stderr)
        return 2
    variants = ([v.strip() for v in args.variants.split(",") if v.strip()]
                if args.variants else preset.variants)
    preset_lrs = ",".join(f"{x:g}" for x in preset.lrs)
    lrs_text = args.lrs or preset_lrs
    seeds_text = args.seeds or preset.seeds
    try:
        lrs = [float(x) for x in lrs_text.split(",") if x.strip()]
    except ValueError:
        print(f"gatlib compare: --lrs must be comma-separated numbers, got {lrs_text!r}",
              file=sys.stderr)
        return 2
    seeds = parse_seeds(seeds_text)
    # Every task's data is checked before anything trains: a missing dataset is found now,
    # not after the tasks before it have trained.
    missing = missing_task_data(tasks)
    if missing and not args.skip_missing:
        names = ", ".join(f"{m['dataset']} (task {t})" for t, m in missing.items())
        first = next(iter(missing.values()))["message"].splitlines()[0]
        print(f"gatlib compare: dataset(s) not available: {names}; nothing was trained.\n"
              f"  {first}\n"
              f"  Get them with `gatlib data fetch {' '.join(m['dataset'] for m in missing.values())}`"
              f" (add --mirror DIR to link a mirror folder), or add --skip-missing to run the "
              f"other tasks and name these in the table.", file=sys.stderr)
        return 2
    run_tasks = [t for t in tasks if t not in missing]
    if not run_tasks:
        print("gatlib compare: no task left to run: every task's dataset is missing",
              file=sys.stderr)
        return 2
    if missing:
        print("gatlib compare: skipping " + "; ".join(
            f"{t} ({m['dataset']}: {m['state']})" for t, m in missing.items())
            + " (--skip-missing)", file=sys.stderr)
    import time
    t0 = time.perf_counter()
    rows = compare(run_tasks, variants, seeds, budget=args.budget, lrs=lrs,
                   results=Path(args.results), device=args.device, size=preset.size,
                   progress=not args.quiet, epochs=args.epochs, jobs=args.jobs)
    wall = time.perf_counter() - t0
    kept = list(dict.fromkeys(r["task"] for r in rows))
    per_task = dict.fromkeys((r["task"], r["budget"]) for r in rows)
    budgets = (f"{args.budget:,}" if args.budget else
               f"{rows[0]['budget']:,}" if len({b for _, b in per_task}) == 1 else
               ", ".join(f"{t} {b:,}" for t, b in per_task))
    threads = (f"{args.jobs} one-thread worker processes" if args.jobs > 1
               else f"{torch.get_num_threads()} threads")
    again = [f"--preset {preset.name}"] if preset.name != "small" else []
    again += [f"--tasks {','.join(kept)}"] if list(kept) != list(preset.tasks) else []
    again += [f"--seeds {seeds_text}"] if seeds_text != preset.seeds else []
    again += [f"--variants {args.variants}"] if args.variants else []
    again += [f"--lrs {lrs_text}"] if lrs_text != preset_lrs else []
    again += [f"--budget {args.budget}"] if args.budget else []
    again += [f"--epochs {args.epochs}"] if args.epochs is not None else []
    skipped = {t: f"dataset {m['dataset']} not available ({m['state']})"
               for t, m in missing.items()}
    layers = _model_settings(rows)
    settings = (f"Settings: preset {preset.name}; {len(seeds)} seed(s) ({seeds_text}); "
                f"parameter budget {budgets} (width chosen per variant); learning rates tried "
                f"on seed {seeds[0]}: {', '.join(f'{x:g}' for x in lrs)} (best on validation "
                f"kept); {layers}, AdamW; device {args.device} "
                f"({platform.processor() or platform.machine()}, {threads}); torch {torch.__version__}, gatlib "
                f"{__version__}; {wall / 60:.1f} min wall time (cached runs are not re-run). "
                f"Reproduce: `gatlib compare {' '.join(again)}`.")
    text = write_report(rows, Path(args.out), settings, skipped=skipped)
    print(text)
    print(f"wrote {Path(args.out) / 'compare.md'}, compare.json, compare_accuracy.png and "
          f"compare_cost.png")
    return 0


def _summarize(args: argparse.Namespace) -> int:
    from .experiments import summarize
    print(summarize(Path(args.results_dir), plots=not args.no_plots))
    return 0


def _data_places() -> str:
    from .data import root as data_root
    root = data_root.dataset_root()
    how = "$GATLIB_DATA" if os.environ.get("GATLIB_DATA") else "datasets/ in the checkout"
    mirrors = data_root.mirror_roots()
    from .data.download import offline, url_base
    return (f"local root: {root} ({how}); mirror: "
            + (", ".join(str(m) for m in mirrors) if mirrors else "none ($GATLIB_MIRROR unset)")
            + "; downloads: " + ("off (GATLIB_OFFLINE)" if offline() else
                                 f"from {url_base()}" + (" ($GATLIB_DATA_URL)"
                                                   if os.environ.get("GATLIB_DATA_URL") else "")))


def _data(args: argparse.Namespace) -> int:
    from . import data
    if args.action == "list":
        print(_data_places())
        print(f"{'dataset':<12} {'task':<5} {'where':<8} path")
        labels = {"local": "local", "linked": "linked", "mirror": "mirror",
                  "incomplete": "partial", "missing": "missing", "downloadable": "missing"}
        absent = []
        for entry in data.list_datasets():
            st = data.dataset_status(entry.name)
            if st.state == "linked":
                path = f"{entry.raw_dir()} -> {st.path}"
                path += " (sha256 checked)" if st.verified else ""
            elif st.state == "mirror":
                path = f"{st.path} (linked on first use)"
            elif st.state == "local":
                path = f"{st.path}" + (" (sha256 checked)" if st.verified else "")
            elif st.state == "incomplete":
                path = f"{st.path} ({st.detail})"
            elif st.state == "downloadable":
                path = f"downloadable, {st.detail} (fetched on first use)"
            else:
                path = f"not downloadable now: {st.detail}"
            if st.state in ("missing", "incomplete", "downloadable"):
                absent.append(entry.name)
            print(f"{entry.name:<12} {entry.task:<5} {labels[st.state]:<8} {path}")
        if absent:
            print(f"{len(absent)} dataset(s) not here yet: `gatlib data fetch NAME` downloads "
                  f"them, `--mirror DIR` links them from a mirror folder (README: Getting the "
                  f"datasets)")
        return 0
    print(_data_places() if args.mirror is None else
          f"local root: {data.dataset_root()}; mirror: {args.mirror}", file=sys.stderr)
    report = data.fetch(args.names or None, mirror=args.mirror, copy=args.copy)
    print(report)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gatlib", description="Attention on graphs.")
    parser.add_argument("--version", action="version", version=f"gatlib {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error instead of a one-line message")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="check the operators against the reference and "
                                       "compare their time and memory on a built-in graph "
                                       "(about 3 GB of memory at the default size)")
    demo.add_argument("--nodes", type=int, default=50_000, help="nodes (default 50,000)")
    demo.add_argument("--edges", type=int, default=1_000_000, help="edges (default 1,000,000)")
    demo.add_argument("--heads", type=int, default=8, help="attention heads (default 8)")
    demo.add_argument("--channels", type=int, default=16, help="channels per head (default 16)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.set_defaults(func=_demo)

    doc = sub.add_parser("doctor", help="which backend runs each attention op and dtype here "
                                        "and why; runs the GPU kernels' self-checks")
    doc.add_argument("--device", default=None,
                     help="cuda, cuda:1 or cpu (default: the current GPU, else the CPU)")
    doc.add_argument("--dtypes", default="float32,bfloat16,float16",
                     help="comma-separated, or all (default float32,bfloat16,float16)")
    doc.add_argument("--no-check", action="store_true",
                     help="report the verdicts already known, run no self-check")
    doc.set_defaults(func=_doctor)

    train = sub.add_parser("train", help="train a config over seeds (resumable)")
    train.add_argument("--config", required=True, help="a YAML file in experiments/configs/")
    train.add_argument("overrides", nargs="*", metavar="key=value",
                       help="config overrides, e.g. model.heads=4 optim.lr=0.01")
    train.add_argument("--seeds", default="0", help="e.g. 0-9 or 0,3,5 (default 0)")
    train.add_argument("--results", default="results", help="results folder (default results)")
    train.add_argument("--device", default=None, help="cpu or cuda (default: the config's)")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.add_argument("--restart", action="store_true",
                       help="delete what each seed's run folder holds and train it afresh "
                            "(default: reuse a finished run of the same config, resume an "
                            "unfinished one, refuse a folder holding another config)")
    train.set_defaults(func=_train)

    summ = sub.add_parser("summarize", help="mean ± std tables and learning curves of runs")
    summ.add_argument("results_dir", help="a results folder written by gatlib train")
    summ.add_argument("--no-plots", action="store_true", help="tables only")
    summ.set_defaults(func=_summarize)

    cmp_ = sub.add_parser(
        "compare", help="dense vs sparse vs hybrid attention under one parameter and tuning "
                        "budget: table and plots")
    cmp_.add_argument("--tasks", default=None,
                      help="comma-separated, from pattern, cluster, sequence, digits, cora, "
                           f"citeseer, chameleon, mutag, proteins (default: the preset's; "
                           f"small and full: {_COMPARE_TASKS})")
    cmp_.add_argument("--variants", default=None,
                      help="comma-separated, e.g. sparse,dense+lap,gps,sparse[bigbird] "
                           "(default: the preset's, else each task's own list)")
    cmp_.add_argument("--seeds", default=None,
                      help="e.g. 0-4 (default: the preset's; 0-1, medium 0-2, paper 0-3)")
    cmp_.add_argument("--budget", type=int, default=None,
                      help="parameters per model (default: the task's, 20,000, or 100,000 on "
                           "the citation graphs)")
    cmp_.add_argument("--lrs", default=None,
                      help="learning rates tried on the first seed, the best on validation "
                           f"kept (default: the preset's; {_COMPARE_LRS}, medium 0.003, "
                           f"paper 0.0005)")
    cmp_.add_argument("--epochs", type=int, default=None, help="override every task's epochs")
    cmp_.add_argument("--preset", choices=tuple(PRESETS), default=None,
                      help="; ".join(f"{p.name}: {p.about}" for p in PRESETS.values())
                           + " (default small)")
    cmp_.add_argument("--full", action="store_true", help="the same as --preset full")
    cmp_.add_argument("--results", default="results/compare",
                      help="per-run results, resumable (default results/compare)")
    cmp_.add_argument("--out", default="results/compare",
                      help="where compare.md, compare.json and the plots go "
                           "(default results/compare)")
    cmp_.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    cmp_.add_argument("--jobs", type=int, default=_default_jobs(),
                      help="runs trained at once, each in a one-thread worker process (CPU "
                           f"only; default {_default_jobs()}: one per core, up to four)")
    cmp_.add_argument("--quiet", action="store_true", help="no progress bars")
    cmp_.add_argument("--skip-missing", action="store_true",
                      help="run the tasks whose dataset is available and name the others in "
                           "the table (default: refuse to start when one is missing)")
    cmp_.set_defaults(func=_compare)

    dat = sub.add_parser("data", help="list the datasets and where they are, or fetch them "
                                      "(downloaded, or linked from a mirror)")
    dat.add_argument("action", choices=("list", "fetch"))
    dat.add_argument("names", nargs="*", help="datasets to fetch (default: all)")
    dat.add_argument("--mirror", default=None,
                     help="a mirror folder in PyG's layout to link (or --copy) raw/ folders "
                          "from (default $GATLIB_MIRROR); datasets it lacks are downloaded")
    dat.add_argument("--copy", action="store_true", help="copy instead of linking")
    dat.set_defaults(func=_data)
    for p in sub.choices.values():
        # --debug after the command too; SUPPRESS keeps `gatlib --debug train` working.
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the traceback of an error instead of a one-line message")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command; returns its exit status (0 done, 1 a failed check, 2 a user error,
    130 interrupted)."""
    args = build_parser().parse_args(argv)
    from .utils import UserError
    if args.command in ("train", "summarize", "compare") and _missing_extra():
        print(f"gatlib {args.command}: needs the experiments extra ({', '.join(_missing_extra())} "
              f"missing): pip install 'gatlib[experiments]'", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except UserError as exc:
        if args.debug:
            raise
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        if _rank_zero():                  # under torchrun every rank has it; one says it
            print(f"gatlib {args.command}: error: {lines[0]}", file=sys.stderr)
            for line in lines[1:]:
                print(f"  {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        if args.debug:
            raise
        text = str(exc) or ("interrupted; re-run the same command to resume (finished runs "
                            "are kept)" if args.command in ("train", "compare") else
                            "interrupted")
        if _rank_zero():                  # rank 0 holds the checkpoints: its word counts
            print(f"\ngatlib {args.command}: {text}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
