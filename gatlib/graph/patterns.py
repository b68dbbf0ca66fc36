"""Efficient-attention patterns as graphs: global tokens, random attention, expanders, virtual
nodes, their unions, and BigBird's pattern.

Sparse attention over a graph (:func:`gatlib.ops.sparse_attention`) computes exactly what a
transformer computes under the boolean mask ``mask[i, j] = (j -> i is an edge)``, so each classic
efficient-attention pattern is a graph:

- sliding window, dilated window and causal window: :func:`gatlib.graph.path_graph`
  (``window``, ``dilation``, ``causal``, ``self_loops``); they are not repeated here;
- image neighbourhoods: :func:`gatlib.graph.grid_graph`; full attention:
  :func:`gatlib.graph.complete_graph`;
- global tokens (Longformer, BigBird): :func:`global_tokens`;
- random attention (BigBird): :func:`random_edges`;
- a random regular expander (Exphormer): :func:`expander_edges`;
- virtual (master) nodes joined to every node: :func:`virtual_nodes`;
- any combination: :func:`union`; BigBird's window + global + random: :func:`bigbird`;
  Exphormer's graph + expander + virtual nodes, with each edge's origin: :func:`exphormer`.

Every pattern returns a ``LongTensor [2, E]`` (row 0 = source j, row 1 = target i) sorted by
target, then by source, with no duplicate edge. Edges are built with tensor operations; no Python
loop runs over nodes. Randomised patterns take a ``seed`` and draw from a local
``torch.Generator`` on the CPU (the same seed gives the same graph on every device), then move the
result to ``device``.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .builders import Device, _masked_edges, complete_graph, path_graph
from .sampling import floyd_sample, random_regular, topk_sample
from .validate import check_edge_index, check_num_nodes, check_same_device

__all__ = ["global_tokens", "random_edges", "expander_edges", "virtual_nodes", "union",
           "bigbird", "exphormer", "pattern_density"]

# Above this many candidate pairs ``N * C``, random_edges samples with Floyd's algorithm
# (``O(N * per_node^2)`` time, ``O(N * per_node)`` memory) instead of random keys + topk.
_TOPK_MAX_PAIRS = 1 << 22


def global_tokens(n: int, tokens: Union[int, Sequence[int], Tensor], self_loops: bool = False,
                  device: Device = None) -> Tensor:
    """Global attention (Longformer, BigBird): global nodes attend to all, all attend to them.

    The edge ``j -> i`` is present when node ``i`` or node ``j`` is global (and ``j != i``
    unless ``self_loops``). Nodes that are not global do not attend to each other; combine with
    a window (:func:`union` with :func:`gatlib.graph.path_graph`) for local attention.

    Args:
        n (int): number of nodes, ``>= 0``.
        tokens (int, list of int or 1-D LongTensor): an int ``k`` makes the first ``k`` nodes
            ``0, ..., k-1`` global (``0 <= k <= n``); a list or tensor names the global nodes
            (ids in ``[0, n)``; a repeated id counts once).
        self_loops (bool, default False): add the edge ``(i, i)`` for every node (global or
            not), as :func:`gatlib.graph.path_graph` does.
        device (default None): device of the result (CPU when None).

    Returns:
        ``edge_index`` of shape ``[2, E]``, int64, sorted by target then source. With ``k``
        distinct global nodes, ``E = k * (2 * n - k - 1)``, plus ``n`` with self loops: each
        global node receives from the ``n - 1`` others, each of the ``n - k`` other nodes from
        the ``k`` global ones.
    """
    n = check_num_nodes(n, "n")
    is_global = _global_mask(n, tokens, device)                          # [N]
    nodes = torch.arange(n, device=device)                               # [N]
    glob, rest = nodes[is_global], nodes[~is_global]                     # [K], [N-K]
    k = glob.numel()
    # Global targets receive from every node; the other targets from the global nodes only.
    src = torch.cat([nodes.repeat(k), glob.repeat(n - k)])               # [K*N + (N-K)*K]
    dst = torch.cat([glob.repeat_interleave(n), rest.repeat_interleave(k)])
    keep = src != dst
    src, dst = src[keep], dst[keep]                                      # [E]
    if self_loops:
        src, dst = torch.cat([src, nodes]), torch.cat([dst, nodes])      # [E + N]
    return _coalesce(src, dst, n)


def random_edges(n: int, per_node: int, seed: int = 0, causal: bool = False,
                 self_loops: bool = False, device: Device = None) -> Tensor:
    """Random attention (BigBird): each node receives from ``per_node`` random other nodes.

    Target ``i`` draws its sources uniformly, without replacement, from its candidates: all
    ``j != i`` (``C_i = n - 1`` of them), or with ``causal=True`` the earlier nodes ``j < i``
    (``C_i = i``). A node with fewer candidates than ``per_node`` receives from all of them.
    Sampling is exact (every ``min(per_node, C_i)``-subset equally likely) and never builds an
    ``[N, N]`` tensor for large ``n``: random keys + ``topk`` over ``[N, C]`` when
    ``N * C <= 2**22``, Floyd's algorithm vectorised over nodes otherwise (``per_node`` steps,
    ``O(N * per_node^2)`` time).

    Args:
        n (int): number of nodes, ``>= 0``.
        per_node (int): random sources per target, ``>= 0``.
        seed (int, default 0): seed of the local generator; the same seed gives the same graph.
        causal (bool, default False): draw only from earlier nodes ``j < i``.
        self_loops (bool, default False): add the edge ``(i, i)`` for every node (on top of
            the ``per_node`` random sources).
        device (default None): device of the result (CPU when None).

    Returns:
        ``edge_index`` of shape ``[2, E]``, int64, sorted by target then source, with
        ``E = sum_i min(per_node, C_i)`` (plus ``n`` with self loops): ``n * min(per_node,
        n - 1)``, or with ``causal=True`` ``p * (p - 1) / 2 + (n - p) * p`` for
        ``p = min(per_node, n)``.
    """
    n = check_num_nodes(n, "n")
    per_node = check_num_nodes(per_node, "per_node")
    gen = _generator(seed)
    nodes = torch.arange(n)                                              # [N]
    counts = nodes if causal else torch.full((n,), max(n - 1, 0))        # [N] candidates C_i
    P = min(per_node, int(counts.max()) if n else 0)
    if P > 0 and n * int(counts.max()) <= _TOPK_MAX_PAIRS:
        picked = topk_sample(counts, P, gen)                            # [N, P]
    else:
        picked = floyd_sample(counts, P, gen)                           # [N, P]
    take = counts.clamp(max=P)                                           # [N] sources drawn
    drawn = torch.arange(P) < take.unsqueeze(1)                          # [N, P]
    if not causal:
        picked = picked + (picked >= nodes.unsqueeze(1))                 # skip j == i
    src = picked.masked_fill(~drawn, n)                                  # [N, P]
    if self_loops:
        src = torch.cat([src, nodes.unsqueeze(1)], dim=1)                # [N, P+1]
        take = take + 1
    # Unused slots hold n and sort last: the first take_i entries of a row are its sources.
    src = src.sort(dim=1).values
    return _masked_edges(src, torch.arange(src.size(1)) < take.unsqueeze(1)).to(device)


def expander_edges(n: int, degree: int, seed: int = 0, device: Device = None) -> Tensor:
    """A random ``degree``-regular graph (Exphormer's expander), both directions stored.

    Random regular graphs are expanders with high probability: the second largest eigenvalue of
    the adjacency matrix is close to the Ramanujan bound ``2 * sqrt(d - 1)``, so a few layers of
    attention over ``O(n * d)`` edges mix information across the whole graph.

    Construction (exactly ``d``-regular, simple):

    1. ``d // 2`` random Hamiltonian cycles (each a random permutation closed into a cycle), and
       for odd ``d`` a random perfect matching: a ``d``-regular multigraph with no self-loop.
    2. Edges that repeat an earlier edge are removed by degree-preserving switches: a repeated
       edge ``(a, b)`` and a random edge ``(x, y)`` become ``(a, x), (b, y)`` when neither is a
       self-loop or an existing edge; all repeats are switched at once, for up to 1000 rounds.
       The first cycle is never switched, so the graph is connected for ``d >= 2``. If repeats
       remain, the graph is drawn afresh (up to 20 draws), then a ``RuntimeError`` is raised
       (in practice only for tiny, dense graphs; try another seed).
    3. When ``d > (n - 1) / 2`` the complement, a sparser ``(n - 1 - d)``-regular graph, is
       drawn instead and inverted (the result has minimum degree ``>= n / 2``, hence is
       connected); ``d = n - 1`` gives the complete graph.

    Args:
        n (int): number of nodes, ``>= 0``.
        degree (int): in- and out-degree ``d`` of every node: ``0 <= d < n`` (``d = 0`` is
            allowed for any ``n`` and gives no edges), ``n * d`` even.
        seed (int, default 0): seed of the local generator; the same seed gives the same graph.
        device (default None): device of the result (CPU when None).

    Returns:
        ``edge_index`` of shape ``[2, E]``, int64, sorted by target then source, symmetric,
        without self-loops or duplicates, ``E = n * d`` (``n * d / 2`` undirected edges).
    """
    n = check_num_nodes(n, "n")
    degree = check_num_nodes(degree, "degree")
    gen = _generator(seed)
    if degree == 0:
        return torch.empty(2, 0, dtype=torch.long, device=device)
    if degree >= n:
        raise ValueError(f"degree must be < n for a simple regular graph, got degree={degree} "
                         f"with n={n}; the largest possible is n - 1 (the complete graph)")
    if (n * degree) % 2:
        raise ValueError(f"n * degree must be even (a d-regular graph has n * d / 2 edges), "
                         f"got n={n}, degree={degree}; use an even n or an even degree")
    if 2 * degree > n - 1:
        inverse = n - 1 - degree
        dense = complete_graph(n, self_loops=False)                      # [2, N*(N-1)]
        if inverse == 0:
            return dense.to(device)
        sparse = _both_ways(*random_regular(n, inverse, gen), n)        # [2, N*(N-1-d)]
        drop = torch.isin(_keys(dense, n), _keys(sparse, n))             # [N*(N-1)]
        return dense[:, ~drop].to(device)
    return _both_ways(*random_regular(n, degree, gen), n).to(device)     # [2, N*d]


def _both_ways(u: Tensor, v: Tensor, n: int) -> Tensor:
    """Undirected edges ``(u, v)`` as both directed edges, sorted: ``[2, 2M]``."""
    return _coalesce(torch.cat([u, v]), torch.cat([v, u]), n)


def virtual_nodes(n: int, k: int = 1, device: Device = None) -> Tensor:
    """``k`` virtual (master) nodes joined in both directions to all ``n`` real nodes.

    The virtual nodes get ids ``n, ..., n + k - 1``; they are not joined to each other and have
    no self-loop. The result is a graph on ``n + k`` nodes, so callers must append ``k`` rows of
    features (e.g. a learned embedding) to the ``n`` rows of real node features before attending.

    Args:
        n (int): number of real nodes, ``>= 0``.
        k (int, default 1): number of virtual nodes, ``>= 0``.
        device (default None): device of the result (CPU when None).

    Returns:
        ``edge_index`` of shape ``[2, E]``, int64, on ``n + k`` nodes, sorted by target then
        source, with ``E = 2 * n * k``: each real node receives from the ``k`` virtual ones and
        each virtual node from the ``n`` real ones.
    """
    n = check_num_nodes(n, "n")
    k = check_num_nodes(k, "k")
    real = torch.arange(n, device=device)                                # [N]
    virt = torch.arange(n, n + k, device=device)                         # [K]
    # Real targets (ids < n) come first, then virtual ones; sources ascend within each target.
    src = torch.cat([virt.repeat(n), real.repeat(k)])                    # [2*N*K]
    dst = torch.cat([real.repeat_interleave(k), virt.repeat_interleave(n)])
    return torch.stack([src, dst])


def union(*edge_indices: Tensor, num_nodes: Optional[int] = None) -> Tensor:
    """Union of attention patterns: every edge of any input, once.

    Args:
        *edge_indices (LongTensor [2, E_t]): the patterns, all on one device.
        num_nodes (int, optional): number of nodes; when given, every input is checked to lie
            in ``[0, num_nodes)``.

    Returns:
        ``edge_index`` of shape ``[2, E]``, int64, sorted by target then source, without
        duplicates; ``E <= sum_t E_t``. With no input, an empty ``[2, 0]`` on the CPU.
    """
    if num_nodes is not None:
        num_nodes = check_num_nodes(num_nodes, "num_nodes")
    if not edge_indices:
        return torch.empty(2, 0, dtype=torch.long)
    size = 0
    for t, ei in enumerate(edge_indices):
        size = max(size, check_edge_index(ei, num_nodes, name=f"edge_indices[{t}]"))
    check_same_device(**{f"edge_indices[{t}]": ei for t, ei in enumerate(edge_indices)})
    edges = torch.cat([ei.long() for ei in edge_indices], dim=1)         # [2, sum E_t]
    return _coalesce(edges[0], edges[1], size)


def bigbird(n: int, window: int = 3, num_global: int = 2, num_random: int = 3, seed: int = 0,
            device: Device = None) -> Tensor:
    """BigBird's attention pattern (Zaheer et al., 2020): window + global tokens + random.

    The union of ``path_graph(n, window, self_loops=True)`` (each node attends to itself and
    to ``window`` neighbours on each side), ``global_tokens(n, min(num_global, n),
    self_loops=True)`` (the first nodes are global) and ``random_edges(n, num_random, seed)``.

    Args:
        n (int): number of nodes (sequence length), ``>= 0``.
        window (int, default 3): neighbours on each side, ``>= 0``.
        num_global (int, default 2): global nodes ``0, ..., num_global - 1``, ``>= 0``; capped
            at ``n``.
        num_random (int, default 3): random sources per node, ``>= 0``.
        seed (int, default 0): seed of the random part.
        device (default None): device of the result (CPU when None).

    Returns:
        ``edge_index`` of shape ``[2, E]``, int64, sorted by target then source, without
        duplicates. ``E`` is at most the sum of the three parts' counts and at least the
        largest of them (random edges may repeat window or global edges).
    """
    n = check_num_nodes(n, "n")
    num_global = check_num_nodes(num_global, "num_global")
    num_random = check_num_nodes(num_random, "num_random")
    return union(path_graph(n, window, self_loops=True, device=device),
                 global_tokens(n, min(num_global, n), self_loops=True, device=device),
                 random_edges(n, num_random, seed=seed, device=device), num_nodes=n)


def exphormer(edge_index: Tensor, num_nodes: int, degree: int = 4, num_virtual: int = 1,
              seed: int = 0) -> Tuple[Tensor, Tensor]:
    """Exphormer's attention graph (Shirzad et al., ICML 2023): the input graph, a random
    ``degree``-regular expander on its nodes (:func:`expander_edges`) and ``num_virtual``
    virtual nodes joined to every node (:func:`virtual_nodes`), with each edge's origin.

    Sparse attention over the result attends, for each node, over its neighbours, a few random
    far nodes and the virtual nodes (which see every node): ``O(E + N * (degree + k))`` pairs
    instead of the ``N^2`` of full attention. The edge types let a layer with edge features
    (:class:`gatlib.nn.GraphTransformerConv` with ``edge_dim=3``) tell the three kinds apart.

    On graphs of at most ``degree`` nodes the expander's degree is lowered to ``n - 1`` (and
    by one more when ``n * d`` is odd): a ``d``-regular simple graph needs ``d < n``.

    Args:
        edge_index (LongTensor [2, E]): the input graph on ``num_nodes`` nodes.
        num_nodes (int): its number of nodes ``N``.
        degree (int, default 4): the expander's degree ``d``; 0 for none.
        num_virtual (int, default 1): virtual nodes ``k``, given ids ``N .. N + k - 1``.
        seed (int, default 0): the expander's seed.

    Returns:
        ``(edge_index [2, E'], edge_type [E', 3])`` on ``N + k`` nodes, sorted by target then
        source, each edge once; ``edge_type`` is float multi-hot (input graph, expander,
        virtual node): an input edge that the expander also drew has both bits set.
    """
    n = check_edge_index(edge_index, num_nodes)
    degree = check_num_nodes(degree, "degree")
    k = check_num_nodes(num_virtual, "num_virtual")
    d = min(degree, max(n - 1, 0))
    if (n * d) % 2:
        d -= 1
    parts = [edge_index.long().cpu(), expander_edges(n, d, seed=seed), virtual_nodes(n, k)]
    size = max(n + k, 1)
    keys = torch.cat([_keys(ei, size) for ei in parts])                   # [sum E_t]
    kind = torch.cat([torch.full((ei.size(1),), t, dtype=torch.long)
                      for t, ei in enumerate(parts)])                      # [sum E_t]
    uniq, inverse = torch.unique(keys, return_inverse=True)               # [E'], [sum E_t]
    edge_type = torch.zeros(uniq.numel(), 3)                               # [E', 3]
    edge_type[inverse, kind] = 1.0
    out = torch.stack([uniq % size, uniq // size])                         # [2, E']
    return out.to(edge_index.device), edge_type.to(edge_index.device)


def pattern_density(edge_index: Tensor, num_nodes: int) -> float:
    """Fraction of the ``N * N`` (target, source) pairs that are edges: ``E / N^2``.

    Args:
        edge_index (LongTensor [2, E]): the pattern (duplicate edges count as many times).
        num_nodes (int): number of nodes ``N``.

    Returns:
        ``E / N^2`` as a Python float (1.0 for the complete graph with self-loops; 0.0 when
        ``N = 0``).
    """
    num_nodes = check_edge_index(edge_index, check_num_nodes(num_nodes, "num_nodes"))
    return edge_index.size(1) / num_nodes ** 2 if num_nodes else 0.0


# ---------------------------------------------------------------- helpers

def _coalesce(src: Tensor, dst: Tensor, n: int) -> Tensor:
    """``[2, E]`` from edge lists: duplicates dropped, sorted by target then source."""
    n = max(n, 1)
    key = torch.unique(dst * n + src)                                    # [E'] sorted
    return torch.stack([key % n, key // n])


def _keys(edge_index: Tensor, n: int) -> Tensor:
    """One int64 per directed edge, ordered as (target, source)."""
    return edge_index[1] * n + edge_index[0]                             # [E]


def _generator(seed) -> torch.Generator:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    return torch.Generator().manual_seed(seed)


def _global_mask(n: int, tokens, device: Device) -> Tensor:
    """Validate ``tokens`` and return the boolean mask of global nodes ``[N]``."""
    if isinstance(tokens, (bool, int)):
        k = check_num_nodes(tokens, "tokens")
        if k > n:
            raise ValueError(f"tokens (number of global nodes) must be <= n, got tokens={k} "
                             f"with n={n}")
        return torch.arange(n, device=device) < k
    if isinstance(tokens, (list, tuple)):
        if any(isinstance(t, bool) or not isinstance(t, int) for t in tokens):
            raise TypeError("tokens must be an int or a list of int node ids, got "
                            f"{[type(t).__name__ for t in tokens]}")
        tokens = torch.tensor(tokens, dtype=torch.long).view(-1)
    if not isinstance(tokens, Tensor):
        raise TypeError(f"tokens must be an int, a list of int or a 1-D LongTensor, got "
                        f"{type(tokens).__name__}")
    if tokens.dtype not in (torch.int64, torch.int32) or tokens.dim() != 1:
        raise TypeError(f"tokens must be a 1-D LongTensor of node ids, got dtype {tokens.dtype} "
                        f"and shape {tuple(tokens.shape)}")
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= n):
        raise ValueError(f"tokens must hold node ids in [0, n) = [0, {n}), got ids from "
                         f"{int(tokens.min())} to {int(tokens.max())}")
    mask = torch.zeros(n, dtype=torch.bool, device=device)
    mask[tokens.to(device=device, dtype=torch.long)] = True
    return mask
