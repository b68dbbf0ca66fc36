"""The roofline of sparse attention on the CPU: the time of the work no implementation of the op
can avoid, done by the plainest means, measured on this machine in the same run as the op.

The op ``out_i = sum_j softmax_j(score_ij) v_j`` over the ``E`` edges of a graph (``S`` sources,
``T`` targets, ``H`` heads of ``C`` channels) must, whatever its algorithm:

**Forward**
    - gather every edge's source row(s): one ``index_select`` along ``col`` (the target-sorted
      sources) per gathered tensor, into a new ``[E, w]`` tensor (GAT: ``v [S, H*C]`` and
      ``a_src [S, H]``; GATv2: the projected sources; the transformer: ``k`` and ``v``);
    - write the output ``[T, H*C]`` once;
    - take ``E * H`` exponentials (``torch.exp`` of an ``[E, H]`` tensor).

**Backward** (on top of the forward)
    - gather the same source rows again (the score gradient ``<g_i, v_j>`` needs ``v_j`` for
      every edge, and no ``[E, H*C]`` tensor is kept from the forward);
    - gather the output gradient's target row for every edge in source order (one
      ``index_select`` of ``grad_out [T, H*C]`` along ``col_t``): each source's value gradient
      ``sum_i alpha_ij g_i`` reads the gradient of each of its targets;
    - write each input gradient once (``[S, w]`` per gathered tensor, ``[T, H]`` for the
      target-side score term);
    - take ``E * H`` exponentials again (the probabilities, recomputed or read back).

A layer adds its linear maps (``x [N, F] @ W [F, F']`` forward; the two matmuls of its gradient
backward). Each part is timed on random tensors of the real sizes with the graph's own index
arrays, the parts alternating round by round (median of ``repeats``), and the bound is their
sum: a time the op cannot beat without skipping a read, a write or an exponential. Two columns:
``new`` allocates every result as a fresh tensor (the literal plain means: on a machine where
first-touching fresh pages is slow this costs more than the data movement itself), ``warm``
writes into buffers allocated once (the data movement alone, the tighter bound).
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch import Tensor

__all__ = ["attention_bound", "format_bound"]


def _parts(col: Tensor, col_t: Tensor, S: int, T: int, widths: Sequence[int], out_width: int,
           heads: int, linear: Sequence[tuple], warm: bool) -> Dict[str, Callable[[], object]]:
    """The zero-argument callables of each unavoidable part, forward then backward (the
    backward's names start with ``bwd_``): fresh results, or into buffers made here once when
    ``warm``."""
    g = torch.Generator().manual_seed(0)
    E = col.numel()

    def r(*shape):
        return torch.randn(*shape, generator=g)
    parts: Dict[str, Callable[[], object]] = {}

    def gather(name, src: Tensor, index: Tensor):
        buf = torch.empty(index.numel(), src.size(1)) if warm else None
        parts[name] = (lambda: torch.index_select(src, 0, index, out=buf)) if warm else \
            (lambda: torch.index_select(src, 0, index))

    def write(name, rows: int, width: int):
        buf = torch.empty(rows, width) if warm else None
        parts[name] = (lambda: buf.fill_(1.0)) if warm else \
            (lambda: torch.empty(rows, width).fill_(1.0))

    def exp(name):
        s = r(E, heads)
        buf = torch.empty_like(s) if warm else None
        parts[name] = (lambda: torch.exp(s, out=buf)) if warm else (lambda: torch.exp(s))

    def matmul(name, a: Tensor, b: Tensor):
        buf = torch.empty(a.size(0), b.size(1)) if warm else None
        parts[name] = (lambda: torch.mm(a, b, out=buf)) if warm else (lambda: torch.mm(a, b))

    for k, (n, f, fo) in enumerate(linear):
        x, w = r(n, f), r(f, fo)
        matmul(f"linear{k}", x, w)
        matmul(f"bwd_linear{k}_grad_x", r(n, fo), w.t().contiguous())
        matmul(f"bwd_linear{k}_grad_w", x.t().contiguous(), r(n, fo))
    for k, w in enumerate(widths):
        src = r(S, w)
        gather(f"gather{k}", src, col)
        gather(f"bwd_gather{k}_again", src, col)
        write(f"bwd_grad_src{k}", S, w)
    write("out", T, out_width)
    exp("exp")
    gather("bwd_gather_grad_out", r(T, out_width), col_t)
    write("bwd_grad_dst", T, heads)
    exp("bwd_exp_again")
    return parts


def attention_bound(col: Tensor, col_t: Tensor, num_src: int, num_dst: int, heads: int,
                    channels: int, widths: Optional[Sequence[int]] = None,
                    linear: Sequence[tuple] = (), repeats: int = 5,
                    candidates: Optional[Dict[str, Callable[[], object]]] = None
                    ) -> Dict[str, object]:
    """The roofline of the attention op on one graph, forward and forward + backward.

    Args:
        col, col_t: the graph's sources in target order and targets in source order (``[E]``,
            :class:`~gatlib.graph.GraphCSR`'s ``col`` and ``col_t``): the gathers use them.
        num_src, num_dst: ``S`` and ``T``.
        heads, channels: ``H`` and ``C``; the output is ``[T, H*C]``.
        widths: the widths of the source tensors gathered per edge (default GAT's:
            ``[H*C, H]``, the values and the source scores).
        linear: ``(rows, in_features, out_features)`` of each linear map of a layer (none for
            the op alone).
        repeats: timed rounds (median), after one warm-up round.
        candidates: zero-argument steps to time in the same rounds as the parts (e.g. gatlib's
            forward and forward + backward), so that a change in the machine's load during the
            run moves the candidate and its bound alike.

    Returns:
        ``{"fwd_s", "fwd_bwd_s", "fwd_warm_s", "fwd_bwd_warm_s", "parts_s", "candidates_s"}``:
        the sums of the parts' median times (``new`` and ``warm`` columns, see the module
        docstring), each part's median (fresh results, forward + backward) and each
        candidate's median over both rounds of parts.
    """
    if widths is None:
        widths = [heads * channels, heads]
    col, col_t = col.cpu().contiguous(), col_t.cpu().contiguous()
    out: Dict[str, object] = {}
    per_part: Dict[str, float] = {}
    cand = dict(candidates or {})
    cand_times: Dict[str, List[float]] = {k: [] for k in cand}
    for warm in (False, True):
        both = _parts(col, col_t, num_src, num_dst, widths, heads * channels, heads, linear,
                      warm)
        both.update(cand)
        times: Dict[str, List[float]] = {k: [] for k in both}
        for rnd in range(repeats + 1):
            names = list(both) if rnd % 2 == 0 else list(both)[::-1]
            for name in names:
                t0 = time.perf_counter()
                both[name]()
                if rnd:
                    times[name].append(time.perf_counter() - t0)
        for k in cand:
            cand_times[k] += times.pop(k)
        med = {k: statistics.median(v) for k, v in times.items()}
        tag = "_warm" if warm else ""
        out["fwd" + tag + "_s"] = sum(v for k, v in med.items() if not k.startswith("bwd_"))
        out["fwd_bwd" + tag + "_s"] = sum(med.values())
        if not warm:
            per_part = med
        del both
    out["parts_s"] = per_part
    out["candidates_s"] = {k: statistics.median(v) for k, v in cand_times.items()}
    return out


def format_bound(time_s: float, bound: Dict[str, object], key: str = "fwd_bwd") -> str:
    """``"bound X ms (warm Y ms), ratio a (b)"``: a measured time against a bound's
    ``key`` (``"fwd"`` or ``"fwd_bwd"``)."""
    b, w = bound[key + "_s"], bound[key + "_warm_s"]
    return (f"bound {b * 1e3:,.1f} ms (warm buffers {w * 1e3:,.1f} ms), gatlib / bound "
            f"{time_s / b:.2f}x ({time_s / w:.2f}x)")
