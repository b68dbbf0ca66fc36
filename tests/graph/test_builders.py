"""Tests for gatlib.graph.builders: exact edges against brute-force double loops, edge counts,
ordering, symmetry, known Laplacian spectra and argument checks."""
import math

import networkx as nx
import pytest
import torch

from gatlib.graph import complete_graph, grid_graph, path_graph


# ---------------------------------------------------------------- brute-force references

def brute_path(n, window=1, dilation=1, causal=False, self_loops=False):
    edges = []
    for i in range(n):                      # target
        for j in range(n):                  # source, ascending
            d = i - j
            if d == 0:
                ok = self_loops
            elif causal and d < 0:
                ok = False
            else:
                ok = abs(d) % dilation == 0 and abs(d) // dilation <= window
            if ok:
                edges.append((j, i))
    return _as_edge_index(edges)


def brute_grid(h, w, radius=1, diagonal=False, self_loops=False):
    edges = []
    for i in range(h * w):
        ri, ci = divmod(i, w)
        for j in range(h * w):
            rj, cj = divmod(j, w)
            dr, dc = abs(ri - rj), abs(ci - cj)
            if i == j:
                ok = self_loops
            elif diagonal:
                ok = max(dr, dc) <= radius
            else:
                ok = min(dr, dc) == 0 and max(dr, dc) <= radius
            if ok:
                edges.append((j, i))
    return _as_edge_index(edges)


def brute_complete(n, self_loops=True):
    return _as_edge_index([(j, i) for i in range(n) for j in range(n) if self_loops or i != j])


def _as_edge_index(edges):
    return torch.tensor(edges, dtype=torch.long).view(-1, 2).t()


def edge_set(edge_index):
    return set(map(tuple, edge_index.t().tolist()))


def assert_well_formed(edge_index, num_nodes):
    """int64 [2, E], in range, sorted by (target, source) with no duplicate edge."""
    assert edge_index.dtype == torch.long
    assert edge_index.dim() == 2 and edge_index.size(0) == 2
    if edge_index.numel():
        assert int(edge_index.min()) >= 0 and int(edge_index.max()) < num_nodes
    key = edge_index[1] * max(num_nodes, 1) + edge_index[0]
    assert bool((key.diff() > 0).all()), "edges must be sorted by target then source, unique"


def assert_symmetric(edge_index):
    assert edge_set(edge_index) == edge_set(edge_index.flip(0))


def laplacian(edge_index, n):
    """Plain Laplacian D - A of a symmetric edge_index, float64."""
    A = torch.zeros(n, n, dtype=torch.float64)
    A[edge_index[1], edge_index[0]] = 1.0
    return torch.diag(A.sum(1)) - A


# ---------------------------------------------------------------- path_graph

@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("self_loops", [False, True])
@pytest.mark.parametrize("dilation", [1, 2, 3])
@pytest.mark.parametrize("window", [0, 1, 2, 4])
def test_path_graph_matches_brute_force(window, dilation, causal, self_loops):
    for n in range(0, 13):
        got = path_graph(n, window=window, dilation=dilation, causal=causal,
                         self_loops=self_loops)
        want = brute_path(n, window, dilation, causal, self_loops)
        assert torch.equal(got, want), (n, window, dilation, causal, self_loops)
        assert_well_formed(got, n)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 20, 101])
@pytest.mark.parametrize("window", [0, 1, 2, 5, 200])
def test_path_graph_edge_count(n, window):
    ei = path_graph(n, window=window)
    want = sum(min(window, i) + min(window, n - 1 - i) for i in range(n))
    assert ei.size(1) == want
    # Causal keeps exactly the earlier half of a symmetric pattern.
    causal = path_graph(n, window=window, causal=True)
    assert 2 * causal.size(1) == want
    assert bool((causal[0] < causal[1]).all())
    # Self-loops add exactly n edges, in both modes.
    assert path_graph(n, window=window, self_loops=True).size(1) == want + n
    assert path_graph(n, window=window, causal=True, self_loops=True).size(1) == want // 2 + n


@pytest.mark.parametrize("n", [1, 5, 16, 33])
@pytest.mark.parametrize("window", [1, 3])
@pytest.mark.parametrize("dilation", [2, 3, 7])
def test_path_graph_dilation(n, window, dilation):
    ei = path_graph(n, window=window, dilation=dilation)
    want = sum(min(window, i // dilation) + min(window, (n - 1 - i) // dilation)
               for i in range(n))
    assert ei.size(1) == want
    gap = (ei[1] - ei[0]).abs()
    assert bool((gap % dilation == 0).all())
    steps = gap // dilation
    assert bool(((steps >= 1) & (steps <= window)).all())


def test_path_graph_window_is_band():
    n, w = 30, 4
    ei = path_graph(n, window=w, self_loops=True)
    i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    band = (i - j).abs() <= w
    assert edge_set(ei) == {(int(b), int(a)) for a, b in band.nonzero().tolist()}


def test_path_graph_symmetric_and_causal_half():
    for n in range(0, 15):
        full = path_graph(n, window=3, dilation=2)
        assert_symmetric(full)
        causal = path_graph(n, window=3, dilation=2, causal=True)
        assert edge_set(causal) | edge_set(causal.flip(0)) == edge_set(full)
        assert edge_set(causal) & edge_set(causal.flip(0)) == set()


@pytest.mark.parametrize("n", [0, 1, 2, 5, 12])
def test_path_graph_equals_networkx_path(n):
    ei = path_graph(n)
    want = {(u, v) for u, v in nx.path_graph(n).edges()}
    want |= {(v, u) for u, v in want}
    assert edge_set(ei) == want


@pytest.mark.parametrize("n", [2, 3, 8, 17])
def test_path_graph_laplacian_spectrum(n):
    # The plain Laplacian of the path on n nodes has eigenvalues 2 - 2 cos(pi k / n).
    eig = torch.linalg.eigvalsh(laplacian(path_graph(n), n))
    k = torch.arange(n, dtype=torch.float64)
    want = 2 - 2 * torch.cos(math.pi * k / n)
    torch.testing.assert_close(eig, want.sort().values, atol=1e-10, rtol=0)


def test_path_graph_device_and_dtype():
    ei = path_graph(6, window=2, device="cpu")
    assert ei.device == torch.device("cpu") and ei.dtype == torch.long
    assert path_graph(0).shape == (2, 0)
    assert path_graph(1).shape == (2, 0)
    assert torch.equal(path_graph(1, self_loops=True), torch.tensor([[0], [0]]))
    assert path_graph(10, window=0).shape == (2, 0)


@pytest.mark.parametrize("kwargs, exc, words", [
    (dict(n=-1), ValueError, "n"),
    (dict(n=2.5), TypeError, "n"),
    (dict(n=True), TypeError, "n"),
    (dict(n="4"), TypeError, "n"),
    (dict(n=4, window=-1), ValueError, "window"),
    (dict(n=4, window=1.0), TypeError, "window"),
    (dict(n=4, dilation=0), ValueError, "dilation"),
    (dict(n=4, dilation=-2), ValueError, "dilation"),
    (dict(n=4, dilation=1.5), TypeError, "dilation"),
])
def test_path_graph_bad_arguments(kwargs, exc, words):
    with pytest.raises(exc, match=words):
        path_graph(**kwargs)


# ---------------------------------------------------------------- grid_graph

@pytest.mark.parametrize("self_loops", [False, True])
@pytest.mark.parametrize("diagonal", [False, True])
@pytest.mark.parametrize("radius", [0, 1, 2, 3])
def test_grid_graph_matches_brute_force(radius, diagonal, self_loops):
    for h in range(0, 6):
        for w in range(0, 6):
            got = grid_graph(h, w, radius=radius, diagonal=diagonal, self_loops=self_loops)
            want = brute_grid(h, w, radius, diagonal, self_loops)
            assert torch.equal(got, want), (h, w, radius, diagonal, self_loops)
            assert_well_formed(got, h * w)
            assert_symmetric(got)


@pytest.mark.parametrize("h, w", [(1, 1), (1, 7), (7, 1), (2, 2), (3, 5), (8, 8), (13, 4)])
def test_grid_graph_edge_count(h, w):
    four = 2 * (h * (w - 1) + w * (h - 1))
    assert grid_graph(h, w).size(1) == four
    assert grid_graph(h, w, diagonal=True).size(1) == four + 2 * 2 * (h - 1) * (w - 1)
    assert grid_graph(h, w, self_loops=True).size(1) == four + h * w
    # Interior node degrees: 4 and 8 for radius 1, 4r and (2r+1)^2 - 1 in general.
    for radius in (1, 2):
        for diagonal, deg in ((False, 4 * radius), (True, (2 * radius + 1) ** 2 - 1)):
            ei = grid_graph(h, w, radius=radius, diagonal=diagonal)
            in_deg = torch.bincount(ei[1], minlength=h * w).view(h, w)
            inner = in_deg[radius:h - radius, radius:w - radius]
            assert bool((inner == deg).all())
            assert int(in_deg.max()) <= deg


def test_grid_graph_row_is_path():
    # One row of pixels is a sequence: the plus-shaped grid reduces to the windowed path.
    for n in range(0, 10):
        for r in range(0, 4):
            assert torch.equal(grid_graph(1, n, radius=r), path_graph(n, window=r))
            col = grid_graph(n, 1, radius=r, self_loops=True)
            assert torch.equal(col, path_graph(n, window=r, self_loops=True))


@pytest.mark.parametrize("h, w", [(0, 3), (1, 4), (3, 3), (4, 6)])
def test_grid_graph_equals_networkx(h, w):
    want = set()
    for (ra, ca), (rb, cb) in nx.grid_2d_graph(h, w).edges():
        a, b = ra * w + ca, rb * w + cb
        want |= {(a, b), (b, a)}
    assert edge_set(grid_graph(h, w)) == want
    # The king's graph: grid plus both diagonals of every cell.
    king = set(want)
    for r in range(h - 1):
        for c in range(w - 1):
            a, b, d, e = r * w + c, r * w + c + 1, (r + 1) * w + c, (r + 1) * w + c + 1
            king |= {(a, e), (e, a), (b, d), (d, b)}
    assert edge_set(grid_graph(h, w, diagonal=True)) == king


@pytest.mark.parametrize("h, w", [(2, 3), (4, 4), (3, 6)])
def test_grid_graph_laplacian_spectrum(h, w):
    # A grid's Laplacian eigenvalues are the sums of those of its two paths.
    path = lambda n: 2 - 2 * torch.cos(math.pi * torch.arange(n, dtype=torch.float64) / n)
    want = (path(h)[:, None] + path(w)[None, :]).flatten().sort().values
    eig = torch.linalg.eigvalsh(laplacian(grid_graph(h, w), h * w))
    torch.testing.assert_close(eig, want, atol=1e-10, rtol=0)


def test_grid_graph_empty_and_device():
    for h, w in ((0, 0), (0, 5), (5, 0)):
        ei = grid_graph(h, w, diagonal=True, self_loops=True)
        assert ei.shape == (2, 0) and ei.dtype == torch.long
    assert grid_graph(3, 3, device="cpu").device == torch.device("cpu")
    assert grid_graph(4, 4, radius=0).shape == (2, 0)


@pytest.mark.parametrize("kwargs, exc, words", [
    (dict(height=-1, width=3), ValueError, "height"),
    (dict(height=3, width=-2), ValueError, "width"),
    (dict(height=3.0, width=3), TypeError, "height"),
    (dict(height=3, width=3, radius=-1), ValueError, "radius"),
    (dict(height=3, width=3, radius=1.5), TypeError, "radius"),
])
def test_grid_graph_bad_arguments(kwargs, exc, words):
    with pytest.raises(exc, match=words):
        grid_graph(**kwargs)


# ---------------------------------------------------------------- complete_graph

@pytest.mark.parametrize("self_loops", [False, True])
def test_complete_graph_matches_brute_force(self_loops):
    for n in range(0, 9):
        got = complete_graph(n, self_loops=self_loops)
        assert torch.equal(got, brute_complete(n, self_loops))
        assert_well_formed(got, n)
        assert_symmetric(got)
        assert got.size(1) == (n * n if self_loops else n * (n - 1))


def test_complete_graph_equals_networkx_and_window():
    n = 7
    want = {(u, v) for u, v in nx.complete_graph(n).edges()}
    want |= {(v, u) for u, v in want}
    assert edge_set(complete_graph(n, self_loops=False)) == want
    # A window as wide as the sequence is the complete graph.
    assert torch.equal(path_graph(n, window=n, self_loops=True), complete_graph(n))
    assert torch.equal(grid_graph(2, 3, radius=2, diagonal=True, self_loops=True),
                       complete_graph(6))


def test_complete_graph_default_and_bad_arguments():
    assert complete_graph(3).size(1) == 9
    assert complete_graph(0).shape == (2, 0)
    assert complete_graph(4, device="cpu").dtype == torch.long
    with pytest.raises(ValueError, match="n"):
        complete_graph(-3)
    with pytest.raises(TypeError, match="n"):
        complete_graph(3.0)
