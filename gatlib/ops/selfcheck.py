"""The self-check of a backend's kernels on the user's machine, run before they are trusted.

The Triton kernels are tested under Triton's CPU interpreter, but a GPU compiles them anew for
its own architecture and Triton version; a miscompile there would give a wrong answer, not an
error. So the first time a backend with a self-check (Triton) would run a *kernel family* (one
op of its table: ``gat_attention``, ``sparse_attention``, ``attend``, ``segment_softmax``) for a
(device model, Triton version, gatlib version, dtype), :class:`SelfCheck` runs that family's
forward and backward kernels once on a small built-in graph (:func:`builtin_graph`: a hub target
split into several chunks, a hub source, an empty row, an isolated node, self-loops, duplicate
edges, ``-inf`` scores and a fully masked row) and compares them with the reference
(:mod:`gatlib.ops.reference`, pure PyTorch) on the same device, in two cases: with a per-edge
term and the returned weights, and with a dropout mask.

**Tolerance** (the tests' rule, :data:`ATOL`): every output and gradient, scaled by the
reference's largest magnitude (at least 1), differs from the float64 reference by at most twice
the error of the reference itself run in the checked dtype, plus ``ATOL[dtype]`` (fp64 1e-9,
fp32 1e-5, fp16/bf16 1e-3). A NaN or an exception (a compile error) fails the check.

**Verdicts** are kept in memory for the process and as one small JSON file per key in a private
folder (:func:`gatlib._private.private_folder`: created 0700; the folder and the file must be
owned by the user and not writable by group or others, else the verdict is ignored and the
check runs again). Their key holds the device model, the Triton, torch and gatlib versions, a
digest of the kernels' source, the dtype and the family.

:mod:`gatlib.ops.dispatch` asks :meth:`SelfCheck.__call__` before it picks the backend
automatically; a failed family goes to the next backend in the search order, with one warning
line. A forced backend (``GATLIB_BACKEND=triton`` or ``use_backend("triton")``) is not checked.
The check never runs while ``torch.compile`` traces or a CUDA graph is being captured: there
only a verdict already known to the process counts, and without one the backend is passed over
for that call (run :func:`gatlib.ops.self_check` or one eager call first).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .._checks import compiling
from .._private import trusted_file
from ..graph import to_csr
from .backend import Kernels
from .factory import ATTENTION_OPS, _Eager
from .graph_args import graph_tensors
from .reference import segment_softmax_ref
from .reference_backend import KERNELS as REFERENCE

__all__ = ["FAMILIES", "ATOL", "Verdict", "SelfCheck", "builtin_graph", "check_family",
           "describe_device", "source_digest", "NOT_WHILE_TRACING"]

FAMILIES = ("gat_attention", "sparse_attention", "attend", "segment_softmax")
ATOL = {torch.float64: 1e-9, torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 1e-3}
NOT_WHILE_TRACING = ("not self-checked yet in this process (the check never runs while "
                     "torch.compile traces or a CUDA graph is captured; call "
                     "gatlib.ops.self_check() or run the op once eagerly first)")

# The built-in graph: H heads, D of q/k, C of v (not a power of two: the masked lanes count).
_H, _D, _C = 2, 8, 5
_DROPOUT = 0.25


class Verdict(NamedTuple):
    """The outcome of one family's check.

    Attributes:
        passed: every comparison within tolerance and no exception.
        check: the first comparison that failed (``"forward out"``, ``"backward grad of v"``,
            ``"compile or launch"``...), ``""`` when passed.
        detail: its error against its tolerance, or the exception.
        errors: ``{comparison: scaled error}`` of the comparisons made.
        seconds: wall time of the check.
    """

    passed: bool
    check: str
    detail: str
    errors: Dict[str, float]
    seconds: float

    @property
    def reason(self) -> str:
        """``""`` when passed, else why the family is not trusted (one line)."""
        return "" if self.passed else f"self-check failed: {self.check}: {self.detail}"


# ------------------------------------------------------------------------- the built-in graph

def builtin_graph(device) -> Tuple[Tensor, int, Tensor]:
    """``(edge_index [2, E], N, masked [E])`` of the check's graph on ``device``.

    Node 0 is a hub target (24 in-edges: five duplicates from node 3, a self-loop, every third
    edge masked), node 1 a hub source (10 out-edges), node 2 has only masked in-edges, node 8
    no in-edges (an empty row that still sends), node 9 is isolated. The caller's edge order is
    shuffled (the kernels read per-edge tensors through the CSR permutation)."""
    to_hub = [1, 2, 3, 3, 3, 3, 3, 4, 5, 6, 7, 8, 0, 1, 2, 4, 5, 6, 7, 8, 1, 5, 7, 8]
    rest = [(1, 2), (5, 2), (6, 2), (1, 3), (1, 3), (4, 3), (5, 4), (7, 4), (1, 5), (4, 5),
            (1, 6), (1, 7), (8, 7), (1, 1), (2, 6), (3, 7)]
    src = torch.tensor(to_hub + [s for s, _ in rest])
    dst = torch.tensor([0] * len(to_hub) + [d for _, d in rest])
    masked = torch.zeros(src.numel(), dtype=torch.bool)
    masked[0:len(to_hub):3] = True                          # a third of the hub's in-edges
    masked[dst == 2] = True                                 # every in-edge of node 2
    order = torch.randperm(src.numel(), generator=torch.Generator().manual_seed(0))
    edge_index = torch.stack([src[order], dst[order]])
    return edge_index.to(device), 10, masked[order].to(device)


def _inputs(op: str, edge_index: Tensor, N: int, masked: Tensor, with_term: bool) -> dict:
    """The op's tensors in float64 on the CPU (drawn from a fixed generator, never the global
    one): ``{"before": [...], "term": Tensor or None, "mask": Tensor or None}``."""
    g = torch.Generator().manual_seed(7)
    E = edge_index.size(1)

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)
    if op == "gat_attention":
        before = [r(N, _H), r(N, _H), r(N, _H, _C)]
    elif op == "sparse_attention":
        before = [r(N, _H, _D), r(N, _H, _D), r(N, _H, _C)]
    elif op == "attend":
        before = [r(E, _H), r(N, _H, _C)]
    else:
        before = [r(E, _H)]
    term = r(E, _H) if with_term and op in ("gat_attention", "sparse_attention") else None
    minf = masked.cpu().unsqueeze(-1).expand(E, _H)
    if term is not None:
        term = term.masked_fill(minf, -math.inf)
    if op in ("attend", "segment_softmax"):             # the scores themselves carry the mask
        before[0] = before[0].masked_fill(minf, -math.inf)
    mask = None if with_term else torch.rand(E, _H, generator=g) >= _DROPOUT
    return {"before": before, "term": term, "mask": mask}


# ------------------------------------------------------------------------------ one run

def _run(op: str, kernels: Optional[Kernels], graph: List[Tensor], index: Tensor, N: int,
         case: dict, dtype: torch.dtype, device, weights: List[Tensor]) -> Dict[str, Tensor]:
    """Outputs and gradients of one case, by ``kernels`` (None: the reference), in ``dtype``
    on ``device``: ``{name: tensor}``."""
    def leaf(t):
        return None if t is None else t.to(device=device, dtype=dtype).requires_grad_()
    before = [leaf(t) for t in case["before"]]
    if op == "segment_softmax":
        (src,) = before
        if kernels is None:
            out = segment_softmax_ref(src, index, N)
            (g,) = torch.autograd.grad((out * weights[0].to(dtype)).sum(), [src])
        else:
            out = kernels.forward(src.detach(), index, N)
            g = kernels.backward(weights[0].to(dtype), out, index, N)
        return {"forward out": out, "backward grad of src": g}
    term = leaf(case["term"])
    mask = None if case["mask"] is None else case["mask"].to(device)
    dropout = 0.0 if mask is None else _DROPOUT
    numbers = {"gat_attention": [0.2], "sparse_attention": [1.0 / math.sqrt(_D)],
               "attend": []}[op]
    extra = [] if op == "attend" else [term]
    ret = mask is None                     # the weights are returned in the first case
    args = before + [graph] + extra + [mask] + numbers + [dropout, ret]
    if kernels is None:
        out, _, alpha = REFERENCE[op].forward(*args)
    else:
        out, _, alpha = _Eager.apply(ATTENTION_OPS[op], kernels, *args)
    loss = (out * weights[0].to(dtype)).sum()
    if ret:
        loss = loss + (alpha * weights[1].to(dtype)).sum()
    names = [a.split()[-1] for a in ATTENTION_OPS[op].args]
    leaves = [(names[i], t) for i, t in enumerate(before)] + (
        [(names[len(before) + 1], term)] if term is not None else [])
    grads = torch.autograd.grad(loss, [t for _, t in leaves])
    result = {"forward out": out}
    if ret:
        result["forward alpha"] = alpha
    result.update({f"backward grad of {n}": g for (n, _), g in zip(leaves, grads)})
    return result


def _scaled_error(got: Tensor, want: Tensor) -> float:
    if got is None or got.shape != want.shape:
        return math.inf
    if want.numel() == 0:
        return 0.0
    want = want.double()
    err = (got.double() - want).abs().max() / want.abs().max().clamp(min=1.0)
    err = err.item()
    return math.inf if math.isnan(err) else err


def _compare(op, kernels, device, dtype, graph_args):
    """``(first failure (comparison, detail) or None, {comparison: scaled error})``."""
    edge_index, N, masked = builtin_graph(device)
    csr = to_csr(edge_index, N)
    seven = graph_tensors(csr)
    E = edge_index.size(1)
    g = torch.Generator().manual_seed(11)
    weights = [torch.randn(*shape, generator=g, dtype=torch.float64).to(device)
               for shape in ((E, _H) if op == "segment_softmax" else (N, _H, _C), (E, _H))]
    cases = [True] if op == "segment_softmax" else [True, False]
    errors: Dict[str, float] = {}
    failed: Optional[Tuple[str, str]] = None
    for with_term in cases:
        case = _inputs(op, edge_index, N, masked, with_term)
        label = "" if len(cases) == 1 else (" [-inf terms, weights returned]" if with_term else
                                            " [dropout mask]")
        want = _run(op, None, seven, edge_index[1], N, case, torch.float64, device, weights)
        low = (want if dtype == torch.float64 else
               _run(op, None, seven, edge_index[1], N, case, dtype, device, weights))
        try:
            graph = graph_args(csr, _H) if graph_args is not None else seven
            got = _run(op, kernels[op], graph, edge_index[1], N, case, dtype, device, weights)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
        except Exception as exc:  # noqa: BLE001  (a compile or launch error is a verdict)
            text = str(exc).strip().splitlines()
            return (failed or ("compile or launch" + label,
                               f"{type(exc).__name__}: {text[0] if text else ''}"[:300]),
                    errors)
        for name, ref in want.items():
            err = _scaled_error(got.get(name), ref)
            tol = 2 * _scaled_error(low[name], ref) + ATOL[dtype]
            errors[name + label] = err
            if not err <= tol and failed is None:
                failed = (name + label, f"scaled error {err:.2e} > tolerance {tol:.2e}")
    return failed, errors


def check_family(op: str, kernels: Dict[str, Kernels], device, dtype: torch.dtype,
                 graph_args: Optional[Callable] = None) -> Verdict:
    """Check the forward and backward kernels of ``op`` from the table ``kernels`` on the
    built-in graph, on ``device`` in ``dtype``, against the reference on the same device.

    Args:
        op: a family of :data:`FAMILIES`.
        kernels: a backend's table ``{op: Kernels(forward, backward)}`` (the kernels are called
            directly, not through the registered ops or the dispatcher).
        device: where to run (CUDA; the CPU under Triton's interpreter in the tests).
        dtype: the dtype checked.
        graph_args: ``(GraphCSR, heads) -> Tensor[]``, the graph argument the kernels take
            (default: the seven CSR tensors).
    """
    if op not in FAMILIES:
        raise ValueError(f"op must be one of {FAMILIES}, got {op!r}")
    t0 = time.perf_counter()
    device = torch.device(device)
    # The check runs as eager code whatever the caller's context: gradients on, no inference
    # mode, no autocast, and the reference's scatter kernels allowed (the caller may have
    # asked for deterministic algorithms only; the verdict does not depend on it).
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        torch.use_deterministic_algorithms(False)
        with torch.inference_mode(False), torch.enable_grad(), \
                torch.autocast(device.type, enabled=False):
            failed, errors = _compare(op, kernels, device, dtype, graph_args)
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    seconds = time.perf_counter() - t0
    if failed is None:
        return Verdict(True, "", "", errors, seconds)
    return Verdict(False, failed[0], failed[1], errors, seconds)


# --------------------------------------------------------------------------- the verdicts

def describe_device(device) -> str:
    """The device model: ``"NVIDIA H100 80GB HBM3 (sm_90)"``, or the CPU's name."""
    device = torch.device(device)
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return f"{torch.cuda.get_device_name(device)} (sm_{major}{minor})"
    return f"{device.type} ({_cpu_name()})"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def source_digest(folder: Path, pattern: str = "*.py") -> str:
    """A digest of the source files of a backend (its verdicts are redone when they change)."""
    h = hashlib.sha256()
    for path in sorted(Path(folder).glob(pattern)):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


class Record(NamedTuple):
    """A verdict with its key and where it came from (``"checked now"`` or the file read)."""

    verdict: Verdict
    key: dict
    source: str


def _capturing(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.is_current_stream_capturing()


class SelfCheck:
    """A backend's self-check (the ``self_check`` of its :class:`~gatlib.ops.backend.Backend`):
    called as ``check(op, device, dtype)``, it returns ``""`` when the backend's kernels for
    ``op`` are trusted on this device and dtype, else the reason (one line).

    Args:
        backend: the backend's name (part of the verdicts' file names).
        kernels: its table ``{op: Kernels(forward, backward)}``.
        graph_args: ``(GraphCSR, heads) -> Tensor[]`` for the check (default: the seven CSR
            tensors).
        environment: ``device -> {name: str}``, what besides the device model, dtype, family
            and gatlib and torch versions the verdict depends on (e.g. the Triton version).
        folder: a zero-argument function returning the verdicts' folder (a private folder);
            None keeps verdicts in memory only.
        digest: a digest of the kernels' source (see :func:`source_digest`).
    """

    def __init__(self, backend: str, kernels: Dict[str, Kernels],
                 graph_args: Optional[Callable] = None,
                 environment: Optional[Callable[[torch.device], dict]] = None,
                 folder: Optional[Callable[[], Path]] = None, digest: str = "") -> None:
        self.backend = backend
        self.kernels = kernels
        self.graph_args = graph_args
        self.environment = environment
        self.folder = folder
        self.digest = digest
        self.runs = 0                      # checks run by this process
        self._memo: Dict[tuple, Record] = {}
        self._lock = threading.Lock()

    def __call__(self, op: str, device: torch.device, dtype: torch.dtype) -> str:
        hit = self._memo.get((op, device.type, device.index, dtype))
        if hit is not None:
            return hit.verdict.reason
        if op not in FAMILIES or op not in self.kernels:
            return ""
        if compiling() or _capturing(device):
            return NOT_WHILE_TRACING
        return self.record(op, device, dtype).verdict.reason

    def known(self, op: str, device: torch.device, dtype: torch.dtype) -> Optional[Record]:
        """The verdict this process knows, without running or reading anything."""
        return self._memo.get((op, device.type, device.index, dtype))

    def key(self, op: str, device: torch.device, dtype: torch.dtype) -> dict:
        from .. import __version__
        key = {"backend": self.backend, "family": op, "dtype": str(dtype).replace("torch.", ""),
               "device": describe_device(device), "gatlib": __version__,
               "torch": torch.__version__, "kernels": self.digest}
        if self.environment is not None:
            key.update(self.environment(device))
        return key

    def file_name(self, key: dict) -> str:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        return f"{self.backend}-{key['family']}-{key['dtype']}-{digest}.json"

    def record(self, op: str, device: torch.device, dtype: torch.dtype) -> Record:
        """The verdict of ``op`` on ``device`` in ``dtype``: known to the process, else read
        from a trusted file, else checked now (and written). Runs the check in eager mode."""
        memo_key = (op, device.type, device.index, dtype)
        with self._lock:
            hit = self._memo.get(memo_key)
            if hit is not None:
                return hit
            key = self.key(op, device, dtype)
            folder = self.folder() if self.folder is not None else None
            path = folder / self.file_name(key) if folder is not None else None
            rec = _read(path, key) if path is not None else None
            if rec is None:
                self.runs += 1
                verdict = check_family(op, self.kernels, device, dtype, self.graph_args)
                rec = Record(verdict, key, "checked now")
                if path is not None:
                    _write(path, rec)
            self._memo[memo_key] = rec
            return rec

    def forget(self) -> None:
        """Drop the verdicts known to the process (the files stay)."""
        with self._lock:
            self._memo.clear()


def _read(path: Path, key: dict) -> Optional[Record]:
    """The verdict in ``path`` when the file and its folder are trusted and its key matches."""
    if not trusted_file(path):
        return None
    try:
        data = json.loads(path.read_text())
        if data.get("key") != key:
            return None
        v = data["verdict"]
        verdict = Verdict(bool(v["passed"]), str(v["check"]), str(v["detail"]),
                          {str(k): float(x) for k, x in v["errors"].items()},
                          float(v["seconds"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return Record(verdict, key, str(path))


def _write(path: Path, rec: Record) -> None:
    """Write the verdict atomically (a 0600 temporary file renamed); a folder that cannot be
    written only loses the cache."""
    data = {"key": rec.key, "verdict": rec.verdict._asdict(),
            "checked": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".verdict-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except (OSError, UnboundLocalError):
            pass


def run_checks(checks: Sequence[Tuple[str, SelfCheck]], device, dtypes: Sequence[torch.dtype],
               ops: Sequence[str] = FAMILIES) -> Dict[Tuple[str, str, torch.dtype], Record]:
    """The verdicts of every backend's self-check ``(name, check)`` for ``ops`` x ``dtypes`` on
    ``device`` (run or read now)."""
    device = torch.device(device)
    out = {}
    for name, check in checks:
        for dtype in dtypes:
            for op in ops:
                if op in check.kernels:
                    out[(name, op, dtype)] = check.record(op, device, dtype)
    return out

