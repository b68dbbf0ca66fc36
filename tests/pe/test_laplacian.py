import math

import numpy as np
import pytest
import torch

from gatlib.graph.builders import complete_graph, grid_graph, path_graph
from gatlib.pe import laplacian_pe


def dense_laplacian(edge_index, n, normalized):
    """Reference Laplacian of the undirected simple graph, built entry by entry."""
    a = np.zeros((n, n))
    for j, i in edge_index.t().tolist():
        if i != j:
            a[i, j] = a[j, i] = 1.0
    deg = a.sum(1)
    if not normalized:
        return np.diag(deg) - a
    inv = np.array([1 / math.sqrt(d) if d > 0 else 0.0 for d in deg])
    return np.diag((deg > 0).astype(float)) - inv[:, None] * a * inv[None, :]


def random_connected(n, extra, seed):
    g = torch.Generator().manual_seed(seed)
    tree = torch.stack([torch.tensor([int(torch.randint(0, i, (1,), generator=g))
                                      for i in range(1, n)]), torch.arange(1, n)])
    more = torch.randint(0, n, (2, extra), generator=g)
    return torch.cat([tree, more], 1)


def check_eigenpairs(edge_index, n, pe, ev, normalized, atol=1e-5):
    lap = dense_laplacian(edge_index, n, normalized)
    v = pe.double().numpy()
    lam = ev.double().numpy().max(0)                     # eigenvalues are the same in every row
    used = lam > 0
    v, lam = v[:, used], lam[used]
    np.testing.assert_allclose(lap @ v, v * lam, atol=atol)
    np.testing.assert_allclose(v.T @ v, np.eye(len(lam)), atol=atol)


@pytest.mark.parametrize("n", [6, 13])
def test_path_normalized_closed_form(n):
    K = 4
    pe, ev = laplacian_pe(path_graph(n), n, K, return_eigenvalues=True)
    want = 1 - np.cos(np.pi * np.arange(1, K + 1) / (n - 1))
    assert pe.shape == ev.shape == (n, K) and pe.dtype == ev.dtype == torch.float32
    np.testing.assert_allclose(ev.numpy(), np.tile(want, (n, 1)), atol=1e-6)
    check_eigenpairs(path_graph(n), n, pe, ev, normalized=True)


@pytest.mark.parametrize("n", [6, 13])
def test_path_plain_closed_form(n):
    K = 4
    pe, ev = laplacian_pe(path_graph(n), n, K, normalized=False, return_eigenvalues=True)
    want = 2 - 2 * np.cos(np.pi * np.arange(1, K + 1) / n)
    np.testing.assert_allclose(ev.numpy(), np.tile(want, (n, 1)), atol=1e-6)
    check_eigenpairs(path_graph(n), n, pe, ev, normalized=False)


def test_grid_plain_is_sum_of_paths():
    h, w, K = 3, 5, 8
    path_h = 2 - 2 * np.cos(np.pi * np.arange(h) / h)
    path_w = 2 - 2 * np.cos(np.pi * np.arange(w) / w)
    want = np.sort((path_h[:, None] + path_w[None, :]).ravel())[1:K + 1]
    ei = grid_graph(h, w)
    pe, ev = laplacian_pe(ei, h * w, K, normalized=False, return_eigenvalues=True)
    np.testing.assert_allclose(ev[0].numpy(), want, atol=1e-5)
    check_eigenpairs(ei, h * w, pe, ev, normalized=False)


@pytest.mark.parametrize("normalized", [True, False])
def test_random_graph_eigenpairs_and_sign(normalized):
    n = 40
    ei = random_connected(n, 60, seed=1)
    pe, ev = laplacian_pe(ei, n, 6, normalized=normalized, return_eigenvalues=True)
    check_eigenpairs(ei, n, pe, ev, normalized)
    full = np.linalg.eigvalsh(dense_laplacian(ei, n, normalized))
    np.testing.assert_allclose(ev[0].numpy(), full[1:7], atol=1e-5)
    # Sign convention: the entry of largest magnitude is positive.
    lead = pe.abs().argmax(0)
    assert (pe[lead, torch.arange(6)] > 0).all()


def test_sign_tie_breaks_on_first_node():
    # Path eigenvectors are (anti)symmetric: |v_0| = |v_{n-1}| ties are common.
    pe = laplacian_pe(path_graph(8), 8, 7)
    for j in range(7):
        mag = pe[:, j].abs()
        first = int(torch.nonzero(mag >= mag.max() * (1 - 1e-5))[0])
        assert pe[first, j] > 0


def test_small_graph_is_zero_padded():
    pe, ev = laplacian_pe(path_graph(3), 3, 5, return_eigenvalues=True)
    assert pe.shape == (3, 5) and torch.isfinite(pe).all() and torch.isfinite(ev).all()
    assert (pe[:, 2:] == 0).all() and (ev[:, 2:] == 0).all()
    assert (pe[:, :2].abs().sum(0) > 0).all()
    np.testing.assert_allclose(ev[0, :2].numpy(), [1.0, 2.0], atol=1e-6)
    single = laplacian_pe(torch.empty(2, 0, dtype=torch.long), 1, 3)
    assert torch.equal(single, torch.zeros(1, 3))
    assert laplacian_pe(torch.empty(2, 0, dtype=torch.long), 0, 3).shape == (0, 3)


@pytest.mark.parametrize("normalized", [True, False])
def test_disconnected_graph_per_component(normalized):
    # Components: path 0-1-2-3, triangle 4-5-6, isolated node 7; c = 3, 8 - 3 = 5 pairs.
    ei = torch.cat([path_graph(4), complete_graph(3, self_loops=False) + 4], 1)
    n, K = 8, 7
    pe, ev = laplacian_pe(ei, n, K, normalized=normalized, return_eigenvalues=True,
                          per_component=True)
    assert torch.isfinite(pe).all() and torch.isfinite(ev).all()
    assert (pe[:, 5:] == 0).all() and (ev[:, 5:] == 0).all()
    assert (pe[7] == 0).all()                            # isolated node
    assert (ev == ev[0]).all()                           # one spectrum per graph, every row
    # Each eigenvector lives on one component.
    for j in range(5):
        on_path, on_tri = pe[:4, j].abs().sum() > 0, pe[4:7, j].abs().sum() > 0
        assert bool(on_path) != bool(on_tri)
    # Same as skipping the c = 3 zero eigenvalues of the whole graph.
    full = np.linalg.eigvalsh(dense_laplacian(ei, n, normalized))
    np.testing.assert_allclose(full[:3], 0, atol=1e-10)
    np.testing.assert_allclose(ev[0, :5].numpy(), full[3:], atol=1e-5)
    check_eigenpairs(ei, n, pe, ev, normalized)


def test_batch_equals_graphs_alone():
    g1, n1 = path_graph(5), 5
    g2, n2 = torch.cat([grid_graph(2, 3), torch.tensor([[6], [7]])], 1), 9  # isolated node 8
    g3, n3 = random_connected(12, 10, seed=3), 12
    ei = torch.cat([g1, g2 + n1, g3 + n1 + n2], 1)
    batch = torch.tensor([0] * n1 + [1] * n2 + [2] * n3)
    pe, ev = laplacian_pe(ei, n1 + n2 + n3, 6, batch=batch, return_eigenvalues=True)
    for g, lo, n in [(g1, 0, n1), (g2, n1, n2), (g3, n1 + n2, n3)]:
        pe_g, ev_g = laplacian_pe(g, n, 6, return_eigenvalues=True)
        torch.testing.assert_close(pe[lo:lo + n], pe_g, atol=1e-6, rtol=0)
        torch.testing.assert_close(ev[lo:lo + n], ev_g, atol=1e-6, rtol=0)


def test_direction_duplicates_and_self_loops_are_ignored():
    n = 7
    one_way = torch.stack([torch.arange(n - 1), torch.arange(1, n)])
    messy = torch.cat([one_way, one_way, torch.arange(n).repeat(2, 1)], 1)
    torch.testing.assert_close(laplacian_pe(messy, n, 3), laplacian_pe(path_graph(n), n, 3))


@pytest.mark.parametrize("normalized", [True, False])
def test_sparse_solver_matches_dense(normalized):
    n, K = 80, 4
    ei = path_graph(n)
    pe_s, ev_s = laplacian_pe(ei, n, K, normalized=normalized, return_eigenvalues=True,
                              dense_max_nodes=10)
    pe_d, ev_d = laplacian_pe(ei, n, K, normalized=normalized, return_eigenvalues=True)
    want = (1 - np.cos(np.pi * np.arange(1, K + 1) / (n - 1)) if normalized
            else 2 - 2 * np.cos(np.pi * np.arange(1, K + 1) / n))
    np.testing.assert_allclose(ev_s[0].numpy(), want, atol=1e-6)
    torch.testing.assert_close(pe_s, pe_d, atol=1e-5, rtol=0)


def test_bad_input():
    ei = path_graph(4)
    with pytest.raises(ValueError, match="k"):
        laplacian_pe(ei, 4, 0)
    with pytest.raises(TypeError, match="k"):
        laplacian_pe(ei, 4, 2.0)
    with pytest.raises(ValueError, match="edge_index"):
        laplacian_pe(ei, 3, 2)
    with pytest.raises(ValueError, match="edge_index"):
        laplacian_pe(ei - 1, 4, 2)
    with pytest.raises(ValueError, match="batch"):
        laplacian_pe(ei, 4, 2, batch=torch.tensor([1, 0, 0, 0]))
    with pytest.raises(ValueError, match="batch"):
        laplacian_pe(ei, 4, 2, batch=torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="different graphs"):
        laplacian_pe(ei, 4, 2, batch=torch.tensor([0, 0, 1, 1]))
