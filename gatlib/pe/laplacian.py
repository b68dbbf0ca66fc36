"""Laplacian eigenvector positional encodings.

Each node gets the entries of the ``k`` eigenvectors of the graph Laplacian with the smallest
non-trivial eigenvalues: low-frequency "coordinates" of the node on the graph. This is
preprocessing (a transform runs it once per graph), so it works in float64 on NumPy/SciPy and
loops over graphs and connected components in Python.

The graph is read as an undirected, unweighted simple graph: ``edge_index`` is symmetrised and
duplicate edges and self-loops are dropped (PyG's transform drops self-loops too; it sums
duplicate edges and reads ``edge_weight``, which gatlib does not). By default the trivial
eigenvectors are skipped as PyG's ``AddLaplacianEigenvectorPE`` skips them (only the first of the
whole graph); ``per_component=True`` skips every component's.
"""
from __future__ import annotations

from typing import List, NamedTuple, Optional, Tuple, Union

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.csgraph
import scipy.sparse.linalg
import torch
from torch import Tensor

from .._checks import check_num_nodes, check_positive_int
from ..graph.validate import check_edge_index

__all__ = ["laplacian_pe"]

#: Connected components up to this many nodes are solved with dense ``eigh``, larger ones with
#: sparse ``eigsh`` (shift-invert Lanczos).
DENSE_MAX_NODES = 2000

# Shift-invert target of eigsh: just below the spectrum (which starts at 0), so the eigenvalues
# nearest to it are the smallest ones and ``L - sigma I`` is positive definite.
_EIGSH_SIGMA = -1e-5

# Entries within this relative distance of the largest magnitude count as tied for the sign rule.
_SIGN_TIE_RTOL = 1e-6


def laplacian_pe(edge_index: Tensor, num_nodes: int, k: int, batch: Optional[Tensor] = None,
                 normalized: bool = True, return_eigenvalues: bool = False, *,
                 per_component: bool = False, dense_max_nodes: int = DENSE_MAX_NODES,
                 eigsh_kwargs: Optional[dict] = None) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    r"""Eigenvectors of the ``k`` smallest non-trivial eigenvalues of the graph Laplacian.

    With ``A`` the adjacency of the undirected simple graph (``edge_index`` symmetrised,
    duplicates and self-loops dropped) and ``D`` its degree matrix, the Laplacian is

    .. math::
        L = I - D^{-1/2} A D^{-1/2} \quad (\text{normalized}), \qquad L = D - A \quad
        (\text{otherwise}).

    **Trivial eigenvalues.** ``L`` has a zero eigenvalue per connected component (spanned by
    ``D^{1/2} 1`` resp. ``1`` on the component), which carries no positional information. Two
    readings:

    - ``per_component=False`` (default, PyG's ``AddLaplacianEigenvectorPE``): the eigenpairs of
      the whole graph sorted by eigenvalue, the first one dropped, the next ``k`` kept. An
      isolated node has ``L_ii = 1`` in the normalized Laplacian (PyG's ``get_laplacian``), so
      it gives the eigenpair ``(1, e_i)``; in ``D - A`` it is a component of its own. On a
      connected graph this is the classic encoding. On a disconnected graph with ``c``
      components the null space has dimension ``c`` and only one vector of it is dropped: here
      the dropped one is the graph's own trivial vector ``D^{1/2} 1`` (normalised), and the
      ``c - 1`` kept null-space columns are the orthonormal (Helmert) basis of its complement
      built from the components' trivial vectors in order of their first node, so the result
      is deterministic (PyG's choice inside this eigenspace is whatever LAPACK returns).
    - ``per_component=True`` (gatlib's variant): each component's zero eigenpair is dropped (an
      isolated node gets a zero row and column, Chung's convention), the non-trivial pairs of
      all components merged in ascending order (ties: component with the smaller first node
      first) and the first ``k`` kept: skipping all ``c`` zero eigenvalues, so no column is a
      mere component indicator, and each column is supported on one component.

    Both compute each component on its own (a block of ``L``) and give, where an eigenvalue is
    simple, the same eigenvector (up to sign) as a solver on the whole matrix; the result is
    equivariant under node permutations for those columns.

    **Padding.** When the graph has fewer than ``k`` kept eigenpairs (fewer than ``k + 1``
    nodes, or many components with ``per_component=True``) the missing columns are zero (and
    their eigenvalues 0), so every graph gives a finite ``[n, k]`` encoding (PyG's transform
    fails on graphs with ``n <= k``).

    **Sign.** An eigenvector is defined up to sign. Here the entry of largest magnitude is made
    positive (the first node among entries tied within a relative ``1e-6``), so the result is
    deterministic. PyG's transform flips each column at random instead; in gatlib that flip
    belongs to training, in the encoder (:class:`gatlib.nn.encoders.LapPEEncoder`).
    Eigenvectors of a repeated eigenvalue are one orthonormal basis of its eigenspace, not a
    canonical one.

    **Solvers.** Components with at most ``dense_max_nodes`` nodes use dense ``eigh``; larger
    ones use ``scipy.sparse.linalg.eigsh`` in shift-invert mode (a sparse LU of ``L``).

    Args:
        edge_index (LongTensor [2, E]): the graph (direction is ignored).
        num_nodes (int): number of nodes ``N``.
        k (int): number of eigenvectors per node, ``>= 1``.
        batch (LongTensor [N], default None): graph id of each node, sorted (PyG's batch
            vector); the encodings are computed per graph. ``None``: all nodes are one graph.
        normalized (bool, default True): symmetric-normalised Laplacian instead of ``D - A``.
        return_eigenvalues (bool, default False): also return the eigenvalues.
        per_component (bool, default False): drop every component's trivial eigenpair
            (gatlib's variant) instead of the first eigenpair of the whole graph (PyG's).
        dense_max_nodes (int, default 2000): largest component solved with dense ``eigh``.
        eigsh_kwargs (dict, default None): ``tol``, ``maxiter`` or ``ncv`` for ``eigsh``.

    Returns:
        ``pe`` of shape ``[N, k]``, float32, on the device of ``edge_index``: column ``j`` of
        the rows of one graph is that graph's ``j``-th kept eigenvector (unit norm, orthogonal
        to the others), or zero when padded. With ``return_eigenvalues=True`` the pair
        ``(pe, eigenvalues)``, ``eigenvalues`` of shape ``[N, k]``, float32: row ``i`` holds
        the eigenvalues of the graph of node ``i`` (the same for all its nodes, so the tensor
        batches like node features), 0 where padded.

    Shapes:
        - edge_index: ``[2, E]``, batch: ``[N]``
        - output: ``[N, K]`` (and ``[N, K]``)
    """
    num_nodes = check_edge_index(edge_index, num_nodes)
    k = check_positive_int(k, "k")
    dense_max_nodes = check_num_nodes(dense_max_nodes, "dense_max_nodes")
    eigsh_kwargs = _check_eigsh_kwargs(eigsh_kwargs)
    graph_of = _check_batch(batch, edge_index, num_nodes)              # [N] numpy, or None

    pe = np.zeros((num_nodes, k))                                       # [N, K]
    evals = np.zeros((num_nodes, k))                                    # [N, K]
    if num_nodes > 0:
        adj = _simple_adjacency(edge_index, num_nodes)                  # [N, N] csr
        opts = _Options(k, bool(normalized), bool(per_component), dense_max_nodes,
                        eigsh_kwargs)
        _fill_laplacian_pe(adj, graph_of, opts, pe, evals)

    device = edge_index.device
    pe_t = torch.from_numpy(pe).to(device=device, dtype=torch.float32)
    if not return_eigenvalues:
        return pe_t
    return pe_t, torch.from_numpy(evals).to(device=device, dtype=torch.float32)


class _Options(NamedTuple):
    k: int
    normalized: bool
    per_component: bool
    dense_max_nodes: int
    eigsh_kwargs: dict


# A candidate column of one graph: its eigenvalue and its pieces (node ids, values on them).
_Column = Tuple[float, List[Tuple[np.ndarray, np.ndarray]]]


def _fill_laplacian_pe(adj: sp.csr_matrix, graph_of: Optional[np.ndarray], opts: _Options,
                       pe: np.ndarray, evals: np.ndarray) -> None:
    """Write the encodings of every graph into ``pe`` and ``evals`` ([N, K] each), in place."""
    n = adj.shape[0]
    # Components of the disjoint union are the components of its graphs (edges never cross
    # graphs; _check_batch made sure). Number them in order of their first node.
    _, labels = scipy.sparse.csgraph.connected_components(adj, directed=False)
    _, first = np.unique(labels, return_index=True)
    rank = np.empty_like(first)
    rank[np.argsort(first)] = np.arange(len(first))
    labels = rank[labels]                                               # [N]
    perm = np.argsort(labels, kind="stable")                            # [N] nodes by component
    bounds = np.concatenate([[0], np.cumsum(np.bincount(labels))])      # [C + 1]
    # Permute once so every component is a contiguous diagonal block of the matrix.
    adj_p = adj[perm][:, perm].tocsr()                                  # [N, N]
    graph_p = np.zeros(n, dtype=np.int64) if graph_of is None else graph_of[perm]

    # Candidate columns of each graph, collected component by component, merged when the graph
    # ends. The components of one graph are contiguous in the permuted order (graphs are
    # sorted), and so are its nodes in the original order.
    columns: List[_Column] = []
    nulls: List[Tuple[np.ndarray, np.ndarray, float]] = []   # (nodes, unit vector, weight)
    graph_start = 0
    for c in range(len(bounds) - 1):
        s, e = int(bounds[c]), int(bounds[c + 1])
        nodes = perm[s:e]
        if e - s > 1:
            block = _diagonal_block(adj_p, s, e)                        # [n_c, n_c]
            vals, vecs = _component_eigenpairs(block, opts.k, opts.normalized,
                                               opts.dense_max_nodes, opts.eigsh_kwargs)
            columns.extend((float(v), [(nodes, vecs[:, j])]) for j, v in enumerate(vals))
            if not opts.per_component:
                nulls.append(_trivial_vector(block, nodes, opts.normalized))
        elif not opts.per_component:
            if opts.normalized:             # PyG: L_ii = 1 at an isolated node
                columns.append((1.0, [(nodes, np.ones(1))]))
            else:                           # D - A: a zero row, a component of its own
                nulls.append((nodes, np.ones(1), 1.0))
        if e == n or graph_p[e] != graph_p[s]:                          # last component of a graph
            lo, hi = int(perm[graph_start:e].min()), int(perm[graph_start:e].max()) + 1
            _write_graph(columns, nulls, lo, hi, opts, pe, evals)
            columns, nulls, graph_start = [], [], e


def _trivial_vector(adj: sp.csr_matrix, nodes: np.ndarray,
                    normalized: bool) -> Tuple[np.ndarray, np.ndarray, float]:
    """The zero eigenvector of one connected component (unit norm) and its weight ``w`` in the
    graph's trivial vector: ``D^{1/2} 1 / sqrt(vol)``, ``w = sqrt(vol)`` (normalized), or
    ``1 / sqrt(n)``, ``w = sqrt(n)`` (``D - A``)."""
    if normalized:
        deg = np.asarray(adj.sum(axis=1)).ravel()                        # [n_c]
        w = float(np.sqrt(deg.sum()))
        return nodes, np.sqrt(deg) / w, w
    w = float(np.sqrt(len(nodes)))
    return nodes, np.full(len(nodes), 1.0 / w), w


def _helmert_columns(nulls, limit: int) -> List[_Column]:
    """An orthonormal basis of the null space minus the graph's trivial vector.

    With ``u_i`` the components' unit trivial vectors, ``w_i`` their weights and
    ``S_j = sum_{i <= j} w_i^2``, column ``j = 2..c`` is
    ``(sum_{i < j} w_i w_j u_i - S_{j-1} u_j) / sqrt(S_{j-1} S_j)``: in the span of
    ``u_1..u_j``, orthogonal to ``sum_{i <= j} w_i u_i`` (hence to the trivial vector and to
    the earlier columns), unit norm. Only the first ``limit`` columns are built (column ``j``
    has ``j`` pieces, so all of them would cost ``O(c^2)`` for ``c`` components).
    """
    out: List[_Column] = []
    s_prev = nulls[0][2] ** 2
    for j in range(1, min(len(nulls), limit + 1)):
        nodes_j, u_j, w_j = nulls[j]
        s_j = s_prev + w_j ** 2
        scale = 1.0 / np.sqrt(s_prev * s_j)
        pieces = [(nodes, u * (w * w_j * scale)) for nodes, u, w in nulls[:j]]
        pieces.append((nodes_j, u_j * (-s_prev * scale)))
        out.append((0.0, pieces))
        s_prev = s_j
    return out


def _write_graph(columns: List[_Column], nulls, lo: int, hi: int, opts: _Options,
                 pe: np.ndarray, evals: np.ndarray) -> None:
    """Sort one graph's candidate columns, drop the trivial ones, keep the ``k`` smallest and
    write them (sign-fixed) into rows ``lo:hi`` of ``pe`` and ``evals``."""
    if not opts.per_component:
        if nulls:       # drop the graph's trivial vector, keep the rest of the null space
            columns = _helmert_columns(nulls, opts.k) + columns
        else:           # no null space (normalized, isolated nodes only): drop the first pair
            columns = sorted(columns, key=lambda col: col[0])[1:]
    if not columns:
        return
    vals = np.array([col[0] for col in columns])                        # [M]
    order = np.argsort(vals, kind="stable")[: opts.k]    # stable: ties keep component order
    for j, idx in enumerate(order):
        for nodes, vec in columns[idx][1]:
            pe[nodes, j] = vec
    pe[lo:hi] = _fix_signs(pe[lo:hi])                    # on the graph's rows: deterministic
    # Every node of the graph, isolated ones included, carries the graph's eigenvalues.
    evals[lo:hi, : len(order)] = vals[order]


def _component_eigenpairs(adj: sp.csr_matrix, k: int, normalized: bool, dense_max_nodes: int,
                          eigsh_kwargs: Optional[dict] = None
                          ) -> Tuple[np.ndarray, np.ndarray]:
    """Up to ``k`` smallest non-trivial eigenpairs of one connected component (``n >= 2``).

    Returns eigenvalues ``[m]`` ascending and eigenvectors ``[n, m]``, ``m = min(k, n - 1)``,
    with the sign convention applied.
    """
    n = adj.shape[0]
    m = min(k, n - 1)
    deg = np.asarray(adj.sum(axis=1)).ravel()                            # [n], all >= 1
    if normalized:
        inv_sqrt = 1.0 / np.sqrt(deg)
        lap = sp.identity(n, format="csr") - sp.diags(inv_sqrt) @ adj @ sp.diags(inv_sqrt)
    else:
        lap = sp.diags(deg) - adj
    if n <= dense_max_nodes or m + 1 >= n - 1:
        # Index 0 is the component's zero eigenvalue; ask LAPACK only for 1..m.
        vals, vecs = scipy.linalg.eigh(lap.toarray(), subset_by_index=[1, m])
    else:
        v0 = np.random.default_rng(0).standard_normal(n)                # deterministic start
        vals, vecs = scipy.sparse.linalg.eigsh(lap.tocsc(), k=m + 1, sigma=_EIGSH_SIGMA,
                                               which="LM", v0=v0, **(eigsh_kwargs or {}))
        order = np.argsort(vals)[1:]                                    # drop the zero one
        vals, vecs = vals[order], vecs[:, order]
    return vals, _fix_signs(vecs)


def _fix_signs(vecs: np.ndarray) -> np.ndarray:
    """Flip each column so that its largest-magnitude entry (first one among ties) is positive."""
    mag = np.abs(vecs)                                                  # [n, m]
    tied = mag >= mag.max(axis=0, keepdims=True) * (1 - _SIGN_TIE_RTOL)
    lead = np.argmax(tied, axis=0)                                      # [m] first tied row
    signs = np.sign(vecs[lead, np.arange(vecs.shape[1])])               # [m]
    signs[signs == 0] = 1
    return vecs * signs


def _diagonal_block(mat: sp.csr_matrix, s: int, e: int) -> sp.csr_matrix:
    """The block ``mat[s:e, s:e]`` of a matrix whose rows ``s:e`` have columns only in ``s:e``."""
    lo, hi = mat.indptr[s], mat.indptr[e]
    return sp.csr_matrix((mat.data[lo:hi], mat.indices[lo:hi] - s, mat.indptr[s:e + 1] - lo),
                         shape=(e - s, e - s))


def _simple_adjacency(edge_index: Tensor, num_nodes: int) -> sp.csr_matrix:
    """The 0/1 adjacency ``[N, N]`` (float64) of the undirected simple graph of ``edge_index``:
    symmetrised, without duplicate edges and self-loops."""
    src, dst = edge_index.detach().cpu().long().numpy()
    keep = src != dst
    src, dst = src[keep], dst[keep]
    rows = np.concatenate([src, dst])
    cols = np.concatenate([dst, src])
    adj = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(num_nodes, num_nodes))
    adj.sum_duplicates()
    adj.data[:] = 1.0                                   # duplicates were summed; unweighted
    return adj


def _check_batch(batch: Optional[Tensor], edge_index: Tensor,
                 num_nodes: int) -> Optional[np.ndarray]:
    """Validate a PyG batch vector; return it as a NumPy array (None when ``batch`` is None)."""
    if batch is None:
        return None
    if not isinstance(batch, Tensor):
        raise TypeError(f"batch must be a LongTensor [num_nodes] or None, got "
                        f"{type(batch).__name__}")
    if batch.dtype.is_floating_point or batch.dtype == torch.bool or batch.is_complex():
        raise TypeError(f"batch must have an integer dtype (torch.long), got {batch.dtype}")
    if batch.dim() != 1 or batch.numel() != num_nodes:
        raise ValueError(f"batch must have shape [num_nodes] = [{num_nodes}], got "
                         f"{tuple(batch.shape)}")
    b = batch.detach().cpu().long().numpy()
    if num_nodes > 0 and (b[0] < 0 or np.any(np.diff(b) < 0)):
        raise ValueError("batch must be sorted and non-negative (PyG's batch vector: the nodes "
                         "of graph 0, then of graph 1, ...); sort the nodes by graph first")
    if edge_index.size(1) > 0:
        src, dst = edge_index.detach().cpu().long().numpy()
        if np.any(b[src] != b[dst]):
            raise ValueError("edge_index has edges between different graphs of batch; each "
                             "edge must join two nodes of the same graph")
    return b


_EIGSH_KEYS = ("tol", "maxiter", "ncv")


def _check_eigsh_kwargs(kwargs: Optional[dict]) -> dict:
    """The options passed on to ``eigsh``; anything else is an error that lists them."""
    kwargs = dict(kwargs or {})
    bad = sorted(set(kwargs) - set(_EIGSH_KEYS))
    if bad:
        raise TypeError(f"unknown eigensolver option(s) {bad}; the sparse solver (eigsh in "
                        f"shift-invert mode) takes {list(_EIGSH_KEYS)}")
    return kwargs
