"""Synthetic graphs, generated from a seed and needing no files.

- :func:`csbm`: one graph of the contextual stochastic block model (Deshpande, Sen, Montanari
  and Mossel, "Contextual Stochastic Block Models", NeurIPS 2018), a node-classification task
  whose homophily and feature signal are both set by hand.
- :func:`sbm_pattern` and :func:`sbm_cluster`: lists of small SBM graphs for the PATTERN and
  CLUSTER node-classification tasks of Dwivedi, Joshi, Luu, Laurent, Bengio and Bresson,
  "Benchmarking Graph Neural Networks" (arXiv:2003.00982, JMLR 2023), whose graphs were
  themselves drawn from a generator; the defaults here are smaller for quick CPU runs and each
  docstring gives the paper's sizes.

All three use one ``torch.Generator`` seeded with ``seed``: the same seed gives the same graphs
on every machine with the same torch version. Edges are undirected and stored in both
directions, sorted (coalesced), with no self-loops and no duplicates.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import coalesce

from .._checks import check_positive_int
from .splits import stratified_masks

__all__ = ["csbm", "sbm_pattern", "sbm_cluster"]


# ------------------------------------------------------------------------------ helpers

def _check_prob(name: str, value: float, why: str = "") -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise ValueError(f"{name} must be a probability in [0, 1], got {value:.4g}{why}")
    return value


def _check_size_range(name: str, rng: Sequence[int]) -> Tuple[int, int]:
    try:
        lo, hi = (int(v) for v in rng)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a pair (min, max) of ints, got {rng!r}") from None
    if not 1 <= lo <= hi:
        raise ValueError(f"{name} must satisfy 1 <= min <= max, got {rng!r}")
    return lo, hi


def _distinct(total: int, m: int, g: torch.Generator) -> Tensor:
    """``m`` distinct integers drawn uniformly from ``[0, total)``."""
    if m <= 0:
        return torch.empty(0, dtype=torch.long)
    if total <= (1 << 22) or 4 * m > total:
        return torch.randperm(total, generator=g)[:m]
    # Sparse case: draw with replacement until m distinct values are in hand, then keep a
    # uniform subset of m (the set is exchangeable, so the result is a uniform m-subset).
    out = torch.empty(0, dtype=torch.long)
    while out.numel() < m:
        need = m - out.numel()
        cand = torch.randint(total, (need + need // 8 + 16,), generator=g)
        out = torch.unique(torch.cat([out, cand]))
    return out[torch.randperm(out.numel(), generator=g)[:m]]


def _sbm_pairs(sizes: Sequence[int], p_in: float, p_out: float, g: torch.Generator) -> Tensor:
    """Undirected edges ``(i < j)`` of a stochastic block model whose blocks are consecutive
    node ranges of the given sizes: ``[2, M]``. Each block pair draws its edge count from the
    binomial law and then that many distinct pairs, which is exactly independent Bernoulli
    edges, without an ``N x N`` matrix."""
    offsets = [0]
    for s in sizes:
        offsets.append(offsets[-1] + s)
    rows, cols = [], []
    for a in range(len(sizes)):
        for b in range(a, len(sizes)):
            na, nb, prob = sizes[a], sizes[b], (p_in if a == b else p_out)
            total = na * nb
            if total == 0 or prob == 0.0:
                continue
            m = int(torch.binomial(torch.tensor(float(total), dtype=torch.float64),
                                   torch.tensor(prob, dtype=torch.float64), generator=g))
            idx = _distinct(total, m, g)                   # [m] over the na x nb rectangle
            i, j = idx // nb, idx % nb
            if a == b:                                     # ordered pairs: keep i < j only
                keep = i < j
                i, j = i[keep], j[keep]
            rows.append(i + offsets[a])
            cols.append(j + offsets[b])
    if not rows:
        return torch.empty(2, 0, dtype=torch.long)
    return torch.stack([torch.cat(rows), torch.cat(cols)])


def _dense_pairs(prob: Tensor, g: torch.Generator) -> Tensor:
    """Undirected edges ``(i < j)`` with ``P(i ~ j) = prob[i, j]`` for a small graph: ``[2, M]``."""
    n = prob.size(0)
    draw = torch.rand(n, n, generator=g, dtype=torch.float64) < prob      # [n, n]
    return torch.triu(draw, diagonal=1).nonzero().t()                     # [2, M]


def _undirected(pairs: Tensor, perm: Tensor, num_nodes: int) -> Tensor:
    """Relabel node ``k`` as ``perm[k]`` and store each edge in both directions: ``[2, 2M]``."""
    pairs = perm[pairs]
    edge_index = torch.cat([pairs, pairs.flip(0)], dim=1)
    return coalesce(edge_index, num_nodes=num_nodes)


def _balanced_sizes(n: int, k: int) -> List[int]:
    return [n // k + (1 if c < n % k else 0) for c in range(k)]


def _features(tokens: Tensor, vocab: int, one_hot: bool) -> Tensor:
    if one_hot:
        return torch.nn.functional.one_hot(tokens, vocab).float()          # [N, vocab]
    return tokens                                                          # [N]


# ------------------------------------------------------------------------------ CSBM

def csbm(num_nodes: int = 1000, num_classes: int = 2, avg_degree: float = 5.0,
         homophily: Optional[float] = None, *, p: Optional[float] = None,
         q: Optional[float] = None, lam: Optional[float] = None, feature_dim: int = 100,
         mu: float = 2.0, split: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0) -> Data:
    r"""A graph of the contextual stochastic block model (CSBM; Deshpande et al., NeurIPS 2018).

    Nodes fall into ``num_classes`` classes of equal size (up to one node). An edge joins two
    nodes of the same class with probability ``p_in`` and of different classes with ``p_out``,
    independently. Give the edge law one of three ways (default ``homophily=0.8``):

    - ``homophily=h``: the expected fraction of edges inside a class (edge homophily) is ``h``
      and the expected degree ``avg_degree``; ``h = 1 / num_classes`` is an Erdős–Rényi graph,
      smaller ``h`` is heterophilous.
    - ``lam=λ`` (the paper's parameter): ``p_in = (d + λ√d (C-1)) / n`` and
      ``p_out = (d - λ√d) / n`` with ``d = avg_degree``; for two classes this is the paper's
      ``(d ± λ√d) / n``, and the edge homophily is ``1/C + λ (C-1) / (C √d)``.
    - ``p=p_in, q=p_out`` directly (``avg_degree`` is then ignored).

    Features follow the paper: ``x_i = sqrt(mu / n) u_{y_i} + z_i / sqrt(F)`` with
    ``z_i ~ N(0, I_F)`` and class directions ``u_c ~ N(0, I_F / F)``, centred over classes and
    rescaled so that for two classes they are ``±u`` exactly as in the paper. With
    ``γ = n / F``, the paper shows the classes are detectable (better than chance) from graph
    and features together iff ``λ² + mu² / γ > 1``.

    Args:
        num_nodes: number of nodes ``n`` (default 1000).
        num_classes: number of classes ``C`` (default 2).
        avg_degree: expected degree ``d`` (default 5.0).
        homophily: expected edge homophily in ``[0, 1]`` (default 0.8 when nothing is given).
        p, q: intra- and inter-class edge probabilities (both or neither).
        lam: the paper's ``λ`` in ``[-√d / (C-1), √d]``.
        feature_dim: feature dimension ``F`` (default 100).
        mu: feature signal ``mu >= 0`` (default 2.0; 0 gives features independent of labels).
        split: fractions of every class in the train, val and test masks (default 0.6/0.2/0.2).
        seed: random seed (default 0).

    Returns:
        ``Data(x [N, F], y [N], edge_index [2, E], train_mask, val_mask, test_mask [N])``.
    """
    n = check_positive_int(num_nodes, "num_nodes")
    C = check_positive_int(num_classes, "num_classes")
    F = check_positive_int(feature_dim, "feature_dim")
    if n < C:
        raise ValueError(f"num_nodes ({n}) must be at least num_classes ({C})")
    if mu < 0:
        raise ValueError(f"mu must be >= 0, got {mu}")
    given = [k for k, v in (("homophily", homophily), ("lam", lam), ("p/q", p if p is not None
                                                                      else q)) if v is not None]
    if len(given) > 1:
        raise ValueError(f"give the edge law one way: homophily, lam, or p and q; got "
                         f"{' and '.join(given)}")
    if (p is None) != (q is None):
        raise ValueError("p and q go together: give both (intra- and inter-class probability)")
    sizes = _balanced_sizes(n, C)
    d = float(avg_degree)
    if p is not None:
        p_in, p_out = _check_prob("p", p), _check_prob("q", q)
    else:
        if d < 0:
            raise ValueError(f"avg_degree must be >= 0, got {avg_degree}")
        why = (f" (num_nodes={n}, num_classes={C}, avg_degree={d}); lower avg_degree or make "
               f"the homophily less extreme")
        if lam is not None:
            p_in = (d + lam * math.sqrt(d) * (C - 1)) / n
            p_out = (d - lam * math.sqrt(d)) / n
            why = f" from lam={lam}" + why
        else:
            h = 0.8 if homophily is None else _check_prob("homophily", homophily)
            # Ordered pairs of distinct nodes inside classes and across them; n*d directed edges
            # in expectation, a fraction h of them inside classes.
            intra = sum(s * (s - 1) for s in sizes)
            inter = n * n - sum(s * s for s in sizes)
            if (intra == 0 and h > 0) or (inter == 0 and h < 1):
                raise ValueError(f"homophily={h} is impossible with class sizes {sizes}")
            p_in = h * n * d / intra if intra else 0.0
            p_out = (1 - h) * n * d / inter if inter else 0.0
            why = f" from homophily={h}" + why
        p_in = _check_prob("the intra-class edge probability", p_in, why)
        p_out = _check_prob("the inter-class edge probability", p_out, why)

    g = torch.Generator().manual_seed(int(seed))
    y_sorted = torch.repeat_interleave(torch.arange(C), torch.tensor(sizes))      # [N]
    pairs = _sbm_pairs(sizes, p_in, p_out, g)                                      # [2, M]
    perm = torch.randperm(n, generator=g)              # node k of the block order -> perm[k]
    edge_index = _undirected(pairs, perm, n)                                       # [2, E]
    y = torch.empty(n, dtype=torch.long)
    y[perm] = y_sorted                                                             # [N]

    u = torch.randn(C, F, generator=g) / math.sqrt(F)                              # [C, F]
    if C > 1:
        u = (u - u.mean(0, keepdim=True)) * math.sqrt(C / (C - 1))
    noise = torch.randn(n, F, generator=g) / math.sqrt(F)                          # [N, F]
    x = math.sqrt(mu / n) * u[y] + noise                                           # [N, F]
    train, val, test = stratified_masks(y, C, split, g)
    return Data(x=x, y=y, edge_index=edge_index, train_mask=train, val_mask=val,
                test_mask=test, num_nodes=n)


# ------------------------------------------------------------------------------ PATTERN

def sbm_pattern(num_graphs: int = 100, seed: int = 0, *, num_communities: int = 5,
                community_size: Tuple[int, int] = (5, 15), p: float = 0.5, q: float = 0.35,
                pattern_size: int = 10, p_pattern: float = 0.5, q_pattern: float = 0.5,
                num_patterns: int = 100, vocab_size: int = 3,
                one_hot: bool = True) -> List[Data]:
    """Graphs of the PATTERN task (Dwivedi et al., "Benchmarking Graph Neural Networks", 2020):
    find the nodes of a planted pattern.

    Each graph is an SBM of ``num_communities`` communities whose sizes are drawn uniformly
    from ``community_size`` (inclusive), edges with probability ``p`` inside a community and
    ``q`` across; node features are random tokens from ``{0, ..., vocab_size - 1}``. A pattern
    (``pattern_size`` nodes, edges inside it with probability ``p_pattern``, its own random
    tokens) is drawn once for each of ``num_patterns`` patterns; graph ``i`` gets pattern
    ``i % num_patterns`` (so a split of the list by index shares patterns, as the paper's
    splits do), joined to every other node with probability ``q_pattern``. Node labels are
    1 inside the pattern and 0 elsewhere, then node ids are shuffled.

    The paper's sizes: 5 communities of 5-35 nodes, ``p = 0.5``, ``q = 0.35``, a 20-node
    pattern with ``p_P = q_P = 0.5``, 3 tokens, 100 patterns, 44-188 nodes per graph and
    10,000 / 2,000 / 2,000 train / val / test graphs (the authors' released generator used
    ``q = 0.2``). The defaults here halve the sizes (5-15 node communities, a 10-node
    pattern), which keeps the paper's share of pattern nodes: about 1/6 of all nodes, between
    10% and 30% over any few dozen graphs (a single graph: ``pattern_size`` over its size).

    Args:
        num_graphs: number of graphs (default 100).
        seed: random seed (default 0).
        num_communities: communities per graph (default 5).
        community_size: ``(min, max)`` nodes per community, inclusive (default (5, 15)).
        p, q: intra- and inter-community edge probability (default 0.5, 0.35).
        pattern_size: nodes of the pattern (default 10).
        p_pattern: edge probability inside a pattern (default 0.5).
        q_pattern: probability that a pattern node links to a given community node
            (default 0.5).
        num_patterns: number of distinct patterns (default 100).
        vocab_size: feature tokens (default 3).
        one_hot: ``x`` as a float one-hot ``[N, vocab_size]`` (default, like PyG's
            ``GNNBenchmarkDataset``) or as the tokens, a LongTensor ``[N]``.

    Returns:
        A list of ``Data(x, y [N], edge_index [2, E], pattern [1])``, ready for
        ``torch_geometric.loader.DataLoader``.
    """
    num_graphs = check_positive_int(num_graphs, "num_graphs", minimum=0)
    K = check_positive_int(num_communities, "num_communities")
    lo, hi = _check_size_range("community_size", community_size)
    P = check_positive_int(pattern_size, "pattern_size")
    T = check_positive_int(num_patterns, "num_patterns")
    V = check_positive_int(vocab_size, "vocab_size")
    p, q = _check_prob("p", p), _check_prob("q", q)
    p_pattern, q_pattern = _check_prob("p_pattern", p_pattern), _check_prob("q_pattern", q_pattern)

    g = torch.Generator().manual_seed(int(seed))
    patterns = []
    for _ in range(T):
        w0 = torch.triu(torch.rand(P, P, generator=g, dtype=torch.float64) < p_pattern, 1)
        w0 = (w0 | w0.t()).double()                                    # [P, P] fixed edges
        patterns.append((w0, torch.randint(V, (P,), generator=g)))     # its tokens [P]
    out = []
    for i in range(num_graphs):
        w0, tok0 = patterns[i % T]
        sizes = torch.randint(lo, hi + 1, (K,), generator=g)                       # [K]
        comm = torch.repeat_interleave(torch.arange(K), sizes)                     # [NG]
        ng = comm.numel()
        n = ng + P
        prob = torch.full((n, n), q_pattern, dtype=torch.float64)                  # [N, N]
        prob[:ng, :ng] = torch.where(comm[:, None] == comm[None, :], p, q)
        prob[ng:, ng:] = w0
        pairs = _dense_pairs(prob, g)                                              # [2, M]
        tokens = torch.cat([torch.randint(V, (ng,), generator=g), tok0])           # [N]
        label = torch.cat([torch.zeros(ng, dtype=torch.long), torch.ones(P, dtype=torch.long)])
        perm = torch.randperm(n, generator=g)
        y, tok = torch.empty_like(label), torch.empty_like(tokens)
        y[perm], tok[perm] = label, tokens
        out.append(Data(x=_features(tok, V, one_hot), y=y,
                        edge_index=_undirected(pairs, perm, n),
                        pattern=torch.tensor([i % T]), num_nodes=n))
    return out


# ------------------------------------------------------------------------------ CLUSTER

def sbm_cluster(num_graphs: int = 100, seed: int = 0, *, num_clusters: int = 6,
                cluster_size: Tuple[int, int] = (5, 15), p: float = 0.55, q: float = 0.25,
                one_hot: bool = True) -> List[Data]:
    """Graphs of the CLUSTER task (Dwivedi et al., "Benchmarking Graph Neural Networks", 2020):
    semi-supervised clustering, one labelled node per cluster.

    Each graph is an SBM of ``num_clusters`` clusters whose sizes are drawn uniformly from
    ``cluster_size`` (inclusive), edges with probability ``p`` inside a cluster and ``q``
    across. In every cluster one node, chosen at random, carries its cluster's id as feature
    token ``c + 1``; every other node has token 0 (unlabelled), as in the authors' generator.
    The label of every node is its cluster ``c`` in ``{0, ..., num_clusters - 1}``; node ids
    are shuffled.

    The paper's sizes: 6 clusters of 5-35 nodes, ``p = 0.55``, ``q = 0.25``, 40-190 nodes per
    graph, 10,000 / 1,000 / 1,000 train / val / test graphs. The defaults here use clusters of
    5-15 nodes.

    Args:
        num_graphs: number of graphs (default 100).
        seed: random seed (default 0).
        num_clusters: clusters per graph (default 6).
        cluster_size: ``(min, max)`` nodes per cluster, inclusive (default (5, 15)).
        p, q: intra- and inter-cluster edge probability (default 0.55, 0.25).
        one_hot: ``x`` as a float one-hot ``[N, num_clusters + 1]`` (default, like PyG's
            ``GNNBenchmarkDataset``) or as the tokens, a LongTensor ``[N]``.

    Returns:
        A list of ``Data(x, y [N], edge_index [2, E])``, ready for
        ``torch_geometric.loader.DataLoader``.
    """
    num_graphs = check_positive_int(num_graphs, "num_graphs", minimum=0)
    K = check_positive_int(num_clusters, "num_clusters")
    lo, hi = _check_size_range("cluster_size", cluster_size)
    p, q = _check_prob("p", p), _check_prob("q", q)

    g = torch.Generator().manual_seed(int(seed))
    out = []
    for _ in range(num_graphs):
        sizes = torch.randint(lo, hi + 1, (K,), generator=g)                       # [K]
        label = torch.repeat_interleave(torch.arange(K), sizes)                    # [N]
        n = label.numel()
        prob = torch.where(label[:, None] == label[None, :], p, q).double()        # [N, N]
        pairs = _dense_pairs(prob, g)                                              # [2, M]
        # One seed node per cluster: the first node of each block plus a random offset.
        starts = torch.cumsum(sizes, 0) - sizes                                    # [K]
        seeds = starts + (torch.rand(K, generator=g) * sizes).long()               # [K]
        tokens = torch.zeros(n, dtype=torch.long)
        tokens[seeds] = torch.arange(1, K + 1)
        perm = torch.randperm(n, generator=g)
        y, tok = torch.empty_like(label), torch.empty_like(tokens)
        y[perm], tok[perm] = label, tokens
        out.append(Data(x=_features(tok, K + 1, one_hot), y=y,
                        edge_index=_undirected(pairs, perm, n), num_nodes=n))
    return out
