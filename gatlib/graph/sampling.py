"""Random draws behind the randomised patterns of :mod:`gatlib.graph.patterns`: ``P`` distinct
sources per node (random keys + top-k, or Floyd's algorithm for large graphs) and random
``d``-regular graphs (cycles and a matching, then switchings that remove repeated edges). All
draws come from the caller's ``torch.Generator`` on the CPU."""
from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

__all__ = ["topk_sample", "floyd_sample", "random_regular", "SWITCH_ROUNDS", "EXPANDER_DRAWS"]

# random_regular: switching rounds per draw, and draws before giving up.
SWITCH_ROUNDS = 1000
EXPANDER_DRAWS = 20


def topk_sample(counts: Tensor, P: int, gen: torch.Generator) -> Tensor:
    """Row ``i``: ``min(P, counts[i])`` distinct uniform values of ``[0, counts[i])``, first.

    Random keys ``[N, C]``, the candidates beyond ``counts[i]`` pushed past every real key; the
    ``P`` smallest keys of a row are a uniform random ``P``-subset of its candidates.
    """
    C = int(counts.max())
    keys = torch.rand(counts.numel(), C, generator=gen, dtype=torch.float64)  # [N, C]
    keys = keys.masked_fill(torch.arange(C) >= counts.unsqueeze(1), 2.0)
    return keys.topk(P, dim=1, largest=False).indices                    # [N, P]


def floyd_sample(counts: Tensor, P: int, gen: torch.Generator) -> Tensor:
    """Floyd's algorithm for every row at once: as :func:`_topk_sample`, without ``[N, C]``.

    Row ``i`` draws ``m = min(P, C)`` values: at step ``s`` it draws ``r`` uniform in
    ``[0, t]`` with ``t = C - m + s``, and keeps ``t`` instead when ``r`` was already drawn.
    Every ``m``-subset comes out with probability ``1 / binom(C, m)``. Entries past ``m`` are -1.
    """
    N = counts.numel()
    m = counts.clamp(max=P)                                              # [N]
    picked = torch.full((N, P), -1, dtype=torch.long)                    # [N, P]
    for s in range(P):                                                   # P steps, not N
        t = counts - m + s                                               # [N]
        u = torch.rand(N, generator=gen, dtype=torch.float64)
        r = torch.minimum((u * (t + 1)).long(), t)                       # uniform in [0, t]
        seen = (picked[:, :s] == r.unsqueeze(1)).any(dim=1)
        picked[:, s] = torch.where(s < m, torch.where(seen, t, r), -1)
    return picked


def random_regular(n: int, d: int, gen: torch.Generator) -> Tuple[Tensor, Tensor]:
    """A simple ``d``-regular graph on ``n`` nodes (``1 <= d < n``, ``n * d`` even), on the CPU,
    as its ``M = n * d / 2`` undirected edges ``(u [M], v [M])``.

    See :func:`gatlib.graph.patterns.expander_edges`, steps 1 and 2.
    """
    for _ in range(EXPANDER_DRAWS):
        u, v = _cycles_and_matching(n, d, gen)                           # [M] each, M = N*d/2
        fixed = n if d >= 2 else 0                                       # the first cycle
        if _switch_out_repeats(u, v, fixed, n, gen):
            return u, v
    raise RuntimeError(f"expander_edges could not draw a simple {d}-regular graph on {n} nodes "
                       f"in {EXPANDER_DRAWS} draws; try another seed")


def _cycles_and_matching(n: int, d: int, gen: torch.Generator) -> Tuple[Tensor, Tensor]:
    """``d // 2`` random Hamiltonian cycles plus, for odd ``d``, a random perfect matching."""
    us: List[Tensor] = []
    vs: List[Tensor] = []
    for _ in range(d // 2):                                              # cycles, not nodes
        perm = torch.randperm(n, generator=gen)                          # [N]
        us.append(perm)
        vs.append(perm.roll(-1))                                         # perm[t] - perm[t+1]
    if d % 2:
        perm = torch.randperm(n, generator=gen).view(-1, 2)              # [N/2, 2]
        us.append(perm[:, 0])
        vs.append(perm[:, 1])
    return torch.cat(us), torch.cat(vs)


def _switch_out_repeats(u: Tensor, v: Tensor, fixed: int, n: int,
                        gen: torch.Generator) -> bool:
    """Remove repeated undirected edges ``(u, v)`` in place by degree-preserving switches.

    Edges ``[:fixed]`` are never switched (they hold the first Hamiltonian cycle, which has no
    repeat). Returns True when the graph is simple.
    """
    M = u.numel()
    if fixed >= M:
        return True
    for _ in range(SWITCH_ROUNDS):
        key = torch.minimum(u, v) * n + torch.maximum(u, v)              # [M]
        ks, perm = torch.sort(key, stable=True)
        # Every copy after the first one of a key is a repeat; the fixed edges come first.
        bad = perm[1:][ks[1:] == ks[:-1]]                                # [B]
        if bad.numel() == 0:
            return True
        B = bad.numel()
        part = torch.randint(fixed, M, (B,), generator=gen)              # [B] partner edges
        flip = torch.rand(B, generator=gen) < 0.5
        a, b = u[bad], v[bad]
        x = torch.where(flip, v[part], u[part])
        y = torch.where(flip, u[part], v[part])
        k1 = torch.minimum(a, x) * n + torch.maximum(a, x)               # new edge (a, x)
        k2 = torch.minimum(b, y) * n + torch.maximum(b, y)               # new edge (b, y)
        ok = ((part != bad) & (a != x) & (b != y) & (k1 != k2)
              & ~torch.isin(k1, key) & ~torch.isin(k2, key))
        # Accept only the proposals that touch edges and create keys no other one does.
        idx = ok.nonzero().view(-1)
        alone = (_once(torch.stack([bad[idx], part[idx]], 1))
                 & _once(torch.stack([k1[idx], k2[idx]], 1)))
        idx = idx[alone]
        u[bad[idx]], v[bad[idx]] = a[idx], x[idx]
        u[part[idx]], v[part[idx]] = b[idx], y[idx]
    return False


def _once(pairs: Tensor) -> Tensor:
    """For ``pairs [P, 2]``: True where both entries of a row occur once in the whole tensor."""
    _, inverse, counts = torch.unique(pairs.reshape(-1), return_inverse=True,
                                      return_counts=True)
    return (counts[inverse] == 1).view(-1, 2).all(dim=1)
