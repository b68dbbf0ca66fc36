"""Sequences as path graphs and images as grid graphs: graph-classification tasks that run
through the same sparse and dense attention layers.

- :func:`long_range_sequences`: a generated long-range sequence task. A read-out token (CLS)
  at position 0 must report the token at one flagged position far away from it; the attention
  pattern over the sequence (sliding window, dilated window, global tokens, BigBird, full
  attention, or any callable) is the graph. It is a small relative of the long-range tasks of
  Tay et al., "Long Range Arena: A Benchmark for Efficient Transformers" (ICLR 2021), made so
  that the distance the information must travel is set by hand (``min_distance``) and compared
  with the receptive field of a windowed model (:func:`receptive_field`).
- :func:`digits_graphs`: scikit-learn's bundled 8x8 handwritten digits (Alpaydin and Kaynak,
  UCI "Optical Recognition of Handwritten Digits", 1998) with pixels or patches as the nodes of
  a grid graph (or of the complete graph: a plain transformer over patches, as in Dosovitskiy
  et al., "An Image is Worth 16x16 Words", ICLR 2021). Works offline: the data ships with
  scikit-learn.
- :func:`stratified_split` (from :mod:`gatlib.data.splits`): train / val / test indices with
  the same class proportions in every part.

Every task returns a list of ``torch_geometric.data.Data`` with a graph label ``y`` of shape
``[1]``, ready for ``torch_geometric.loader.DataLoader``.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Tuple, Union

import torch
from torch import Tensor
from torch_geometric.data import Data

from .._checks import check_positive_int
from ..graph import check_edge_index, complete_graph, grid_graph, path_graph
from .splits import stratified_split

__all__ = ["long_range_sequences", "receptive_field", "digits_graphs", "stratified_split",
           "SEQUENCE_PATTERNS"]

#: The named attention patterns of :func:`long_range_sequences`.
SEQUENCE_PATTERNS = ("window", "dilated", "global", "bigbird", "full")

Pattern = Union[str, Callable[[int], Tensor]]


# ------------------------------------------------------------------------------ sequences

def receptive_field(num_layers: int, window: int, dilation: int = 1) -> int:
    """How far along a sequence ``num_layers`` layers of windowed attention can see.

    One layer over ``path_graph(n, window, dilation)`` moves information at most
    ``window * dilation`` positions, so after ``L`` layers node ``i`` depends only on positions
    ``j`` with ``|i - j| <= L * window * dilation``.

    Args:
        num_layers: attention layers ``L``, ``>= 0``.
        window: neighbours on each side ``w``, ``>= 0``.
        dilation: step between neighbours ``d``, ``>= 1`` (default 1).

    Returns:
        ``L * w * d`` (an int).
    """
    L = check_positive_int(num_layers, "num_layers", minimum=0)
    w = check_positive_int(window, "window", minimum=0)
    d = check_positive_int(dilation, "dilation")
    return L * w * d


def _sequence_edges(pattern: Pattern, length: int, window: int, dilation: int,
                    num_random: int, seed: int) -> Tensor:
    """The attention pattern over a sequence of ``length`` positions: ``[2, E]``."""
    if callable(pattern):
        edge_index = pattern(length)
        check_edge_index(edge_index, length, name="the edge_index returned by pattern(length)")
        return edge_index.long()
    if pattern not in SEQUENCE_PATTERNS:
        raise ValueError(f"pattern must be one of {SEQUENCE_PATTERNS} or a callable "
                         f"f(length) -> edge_index, got {pattern!r}")
    if pattern == "full":
        return complete_graph(length)
    if pattern == "dilated" and dilation < 2:
        raise ValueError(f"pattern='dilated' needs dilation >= 2, got dilation={dilation}; "
                         f"use pattern='window' for an undilated window")
    local = path_graph(length, window, dilation, self_loops=True)                # [2, E_w]
    if pattern in ("window", "dilated"):
        return local
    # Imported here, not at module import: only these two patterns need it.
    from ..graph import patterns
    if pattern == "bigbird":
        return patterns.bigbird(length, window=window, num_global=1, num_random=num_random,
                                seed=seed)
    hub = patterns.global_tokens(length, [0])                                    # [2, E_g]
    return patterns.union(local, hub, num_nodes=length)


def long_range_sequences(num_graphs: int = 1000, length: int = 64, vocab: int = 8,
                         min_distance: Optional[int] = None, pattern: Pattern = "window",
                         window: int = 2, dilation: int = 1, seed: int = 0, *,
                         num_random: int = 3) -> List[Data]:
    r"""A long-range sequence-classification task on path graphs: report a far-away token.

    Each sequence has ``length`` positions. Position 0 is a read-out token (CLS); positions
    ``1, ..., length - 1`` hold tokens drawn uniformly from ``vocab`` symbols. One position
    ``p``, drawn uniformly from ``[min_distance, length - 1]``, is flagged, and the label of
    the sequence is the token at ``p``: ``num_classes = vocab``, balanced in expectation.

    **Read out at node 0.** The task is meant to be solved by reading the prediction from the
    CLS node (node 0 of every graph; in a batch, ``h[batch.ptr[:-1]]``, which is what
    ``GraphClassifier(..., pool="first")`` does). Only then is it
    long-range: with a global pooling read-out (mean, sum, max) the flagged node can report its
    own token and every pattern solves the task without long-range attention.

    **Why it is long-range.** With ``L`` layers of windowed attention of window ``w`` and
    dilation ``d``, node 0 depends only on positions ``<= L * w * d``
    (:func:`receptive_field`). When ``min_distance > L * w * d`` node 0 never sees the flagged
    position, so a window model read out at node 0 is at chance (``1 / vocab``), however it is
    trained. Global tokens (node 0 attends to and is attended by every position), BigBird (its
    global token is node 0) and full attention reach every position in one layer and can solve
    it. A dilated window alone (``dilation = d > 1``) reaches only the positions that are
    multiples of ``d``, however many layers it has; combine it with an undilated window (a
    callable ``pattern``) to cover every position.

    **Features.** ``x`` is ``[length, vocab + 2]``: the one-hot token (all zeros for CLS), a
    CLS indicator column and a flag column (1 at ``p``). There is deliberately no position
    feature: positions are what the graph (the pattern) and positional encodings supply, so
    that patterns and encodings, not features, are compared.

    **Patterns** (``pattern``), each over the ``length`` nodes of one sequence:

    - ``"window"``: ``path_graph(length, window, dilation, self_loops=True)``;
    - ``"dilated"``: the same, an alias that insists on ``dilation >= 2``;
    - ``"global"``: the window plus edges from node 0 to every node and from every node to
      node 0 (``gatlib.graph.patterns.global_tokens`` with node 0 global);
    - ``"bigbird"``: ``gatlib.graph.patterns.bigbird(length, window, num_global=1,
      num_random=num_random, seed=seed)``;
    - ``"full"``: ``complete_graph(length)`` (with self loops): dense attention;
    - a callable ``f(length) -> edge_index [2, E]``.

    The pattern is built once and the same ``edge_index`` tensor is shared by every graph of
    the list (random patterns are drawn once from ``seed``), so graphs differ only in ``x``,
    ``y`` and ``deciding``.

    Args:
        num_graphs: number of sequences (default 1000).
        length: positions per sequence including CLS, ``>= 3`` (default 64).
        vocab: token symbols, ``>= 2``; also the number of classes (default 8).
        min_distance: smallest flagged position, in ``[1, length - 1]`` (default
            ``length // 2``).
        pattern: the attention pattern, a name above or a callable (default ``"window"``).
        window: neighbours on each side for the window patterns, ``>= 1`` (default 2).
        dilation: step between window neighbours, ``>= 1`` (default 1).
        seed: random seed for tokens, flagged positions and random patterns (default 0).
        num_random: random sources per node of ``"bigbird"`` (default 3).

    Returns:
        A list of ``Data(x [length, vocab + 2] float, y [1] long, edge_index [2, E],
        deciding [1] long)``, where ``deciding`` is the flagged position ``p`` within its
        graph (in a batch it is not offset: its node is ``batch.ptr[b] + deciding[b]``).
    """
    num_graphs = check_positive_int(num_graphs, "num_graphs", minimum=0)
    length = check_positive_int(length, "length", minimum=3)
    vocab = check_positive_int(vocab, "vocab", minimum=2)
    if min_distance is None:
        min_distance = length // 2
    if (isinstance(min_distance, bool) or int(min_distance) != min_distance
            or not 1 <= min_distance <= length - 1):
        raise ValueError(f"min_distance must be an int in [1, length - 1] = [1, {length - 1}] "
                         f"(the flagged position is drawn from [min_distance, length - 1]), "
                         f"got {min_distance!r}")
    min_distance = int(min_distance)
    window = check_positive_int(window, "window")
    dilation = check_positive_int(dilation, "dilation")
    num_random = check_positive_int(num_random, "num_random", minimum=0)
    edge_index = _sequence_edges(pattern, length, window, dilation, num_random, int(seed))

    g = torch.Generator().manual_seed(int(seed))
    G, V = num_graphs, vocab
    tokens = torch.randint(V, (G, length - 1), generator=g)                  # [G, length-1]
    deciding = torch.randint(min_distance, length, (G,), generator=g)        # [G]
    rows = torch.arange(G)
    x = torch.zeros(G, length, V + 2)                                        # [G, length, V+2]
    x[:, 1:, :V] = torch.nn.functional.one_hot(tokens, V).float()
    x[:, 0, V] = 1.0                                                         # CLS indicator
    x[rows, deciding, V + 1] = 1.0                                           # flag at p
    y = tokens[rows, deciding - 1]                                           # [G] token at p
    return [Data(x=x[i], y=y[i:i + 1], edge_index=edge_index, deciding=deciding[i:i + 1],
                 num_nodes=length) for i in range(G)]


# ------------------------------------------------------------------------------ images

_PATCHES = (1, 2, 4)


def digits_graphs(patch: int = 1, radius: int = 1, diagonal: bool = True, coords: bool = True,
                  full: bool = False) -> Tuple[List[Data], int]:
    """scikit-learn's bundled handwritten digits as grid graphs of pixels or patches.

    The 1797 images of ``sklearn.datasets.load_digits`` (8x8 pixels, values 0..16, ten
    classes; Alpaydin and Kaynak, UCI "Optical Recognition of Handwritten Digits") are cut into
    ``(8 / patch)^2`` square patches of ``patch x patch`` pixels, the nodes of the graph in
    row-major order: node ``(r, c)`` of the patch grid has id ``r * (8 // patch) + c``, as in
    :func:`gatlib.graph.grid_graph`. ``patch=1`` makes every pixel a node; larger patches are
    the tokens of a vision transformer. Needs no download: the data ships with scikit-learn.

    Args:
        patch: patch side in pixels, 1, 2 or 4 (default 1: 64 nodes; 2: 16; 4: 4).
        radius: neighbourhood radius on the patch grid (default 1).
        diagonal: square (8-neighbour) rather than plus-shaped neighbourhood (default True).
        coords: append the patch's normalised ``(row, col)`` in ``[0, 1]`` to its features
            (default True).
        full: connect every pair of patches (``complete_graph``, with self loops: a plain
            transformer over patches) instead of the grid (default False).

    Returns:
        ``(data_list, 10)``: a list of 1797 ``Data(x [P, patch^2 (+ 2)] float, y [1] long,
        edge_index [2, E])``, with ``P = (8 // patch)^2`` and pixel features scaled to
        ``[0, 1]`` (value / 16), in the patch's row-major pixel order; and the number of
        classes. ``edge_index`` is ``grid_graph(8 // patch, 8 // patch, radius, diagonal)``
        (shared by every graph) or the complete graph when ``full``.
    """
    if isinstance(patch, bool) or patch not in _PATCHES:
        raise ValueError(f"patch must be one of {_PATCHES} (the side of a square patch that "
                         f"tiles the 8x8 image), got {patch!r}")
    radius = check_positive_int(radius, "radius", minimum=0)
    from sklearn.datasets import load_digits       # imported here: only this task needs it

    digits = load_digits()
    images = torch.as_tensor(digits.images, dtype=torch.float32) / 16.0       # [B, 8, 8]
    side = 8 // patch
    # unfold lists the patches in row-major order, each as its pixels in row-major order.
    cols = torch.nn.functional.unfold(images.unsqueeze(1), patch, stride=patch)  # [B, p^2, P]
    x = cols.transpose(1, 2).contiguous()                                     # [B, P, p^2]
    if coords:
        r, c = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
        pos = torch.stack([r.flatten(), c.flatten()], dim=1).float() / (side - 1)  # [P, 2]
        x = torch.cat([x, pos.expand(x.size(0), -1, -1)], dim=2)              # [B, P, p^2+2]
    edge_index = (complete_graph(side * side) if full
                  else grid_graph(side, side, radius, diagonal))               # [2, E]
    y = torch.as_tensor(digits.target, dtype=torch.long)                      # [B]
    data = [Data(x=x[i], y=y[i:i + 1], edge_index=edge_index, num_nodes=side * side)
            for i in range(x.size(0))]
    return data, 10
