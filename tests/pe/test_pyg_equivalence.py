"""gatlib's PE transforms against PyG's (AddLaplacianEigenvectorPE, AddRandomWalkPE): same
arguments, same numbers by default (eigenvectors up to per-column sign)."""
import numpy as np
import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.transforms import AddLaplacianEigenvectorPE as PyGLapPE
from torch_geometric.transforms import AddRandomWalkPE as PyGRandomWalkPE
from torch_geometric.utils import coalesce, get_laplacian, to_undirected

from gatlib.graph.builders import complete_graph, path_graph
from gatlib.pe import (AddLaplacianEigenvectorPE, AddLaplacianPE, AddRandomWalkPE,
                       laplacian_pe, random_walk_pe)


def random_connected(n, extra, seed):
    """A connected undirected simple graph (both directions stored, coalesced)."""
    g = torch.Generator().manual_seed(seed)
    tree = torch.stack([torch.tensor([int(torch.randint(0, i, (1,), generator=g))
                                      for i in range(1, n)]), torch.arange(1, n)])
    more = torch.randint(0, n, (2, extra), generator=g)
    ei = torch.cat([tree, more], 1)
    ei = ei[:, ei[0] != ei[1]]
    return to_undirected(ei, num_nodes=n)


def disconnected():
    """Components on nodes 0-5, 6-10 and 12-15, node 11 isolated: n = 16."""
    a, b, c = random_connected(6, 4, 1), random_connected(5, 3, 2), random_connected(4, 1, 3)
    return torch.cat([a, b + 6, c + 12], 1), 16


def with_self_loops(ei, nodes):
    loops = torch.tensor(nodes).repeat(2, 1)
    return coalesce(torch.cat([ei, loops], 1))


def pyg_laplacian(ei, n):
    ones = torch.ones(ei.size(1), dtype=torch.float64)   # float64, so L is exact to round-off
    idx, w = get_laplacian(ei, ones, normalization="sym", num_nodes=n)
    lap = torch.zeros(n, n, dtype=torch.float64)
    lap.index_put_((idx[0], idx[1]), w.double(), accumulate=True)
    return lap.numpy()


def simple_columns(lap, k):
    """Indices j < k (of the kept eigenpairs 1..k of the whole graph) whose eigenvalue is
    simple: only there is the eigenvector defined (up to sign)."""
    vals = np.linalg.eigvalsh(lap)
    keep = []
    for j in range(k):
        lam = vals[j + 1]
        if np.all(np.abs(np.delete(vals, j + 1) - lam) > 1e-6):
            keep.append(j)
    return keep, vals


def assert_equal_up_to_sign(ours, theirs, cols, atol=1e-5):
    assert cols, "nothing compared"
    for j in cols:
        a, b = ours[:, j].double(), theirs[:, j].double()
        sign = 1.0 if float(a @ b) >= 0 else -1.0
        torch.testing.assert_close(a, sign * b, atol=atol, rtol=0)


# ------------------------------------------------------------------------------- random walk

RW_CASES = {
    "connected": (random_connected(12, 10, 0), 12),
    "disconnected": disconnected(),
    "self_loops": (with_self_loops(random_connected(10, 6, 4), [0, 3, 7]), 10),
    "directed": (coalesce(torch.tensor([[0, 1, 2, 2, 3, 4, 4], [1, 2, 0, 3, 3, 0, 1]])), 6),
}


@pytest.mark.parametrize("case", sorted(RW_CASES))
def test_random_walk_pe_matches_pyg(case):
    ei, n = RW_CASES[case]
    data = Data(edge_index=ei, num_nodes=n)
    ours = AddRandomWalkPE(7)(data)
    theirs = PyGRandomWalkPE(7)(data)
    assert ours.random_walk_pe.shape == (n, 7) and ours.random_walk_pe.dtype == torch.float32
    torch.testing.assert_close(ours.random_walk_pe, theirs.random_walk_pe, atol=1e-6, rtol=0)
    # The sparse path gives the same numbers.
    torch.testing.assert_close(random_walk_pe(ei, n, 7, dense_max_nodes=0),
                               theirs.random_walk_pe, atol=1e-6, rtol=0)


def test_random_walk_self_loop_by_hand():
    # Undirected path 0-1-2 with a self-loop on 1: deg(1) = 3, P_11 = 1/3.
    ei = torch.cat([path_graph(3), torch.tensor([[1], [1]])], 1)
    pe = random_walk_pe(ei, 3, 2)
    want = torch.tensor([[0.0, 1 / 3], [1 / 3, 1 / 9 + 1 / 3 + 1 / 3], [0.0, 1 / 3]])
    torch.testing.assert_close(pe, want, atol=1e-7, rtol=0)
    # A one-way cycle of 3: the walker is back after exactly 3 steps.
    cyc = torch.tensor([[0, 1, 2], [1, 2, 0]])
    torch.testing.assert_close(random_walk_pe(cyc, 3, 4),
                               torch.tensor([[0.0, 0.0, 1.0, 0.0]]).repeat(3, 1))
    # The old reading (simple=True) drops the loop and symmetrises.
    torch.testing.assert_close(random_walk_pe(cyc, 3, 2, simple=True),
                               torch.tensor([[0.0, 0.5]]).repeat(3, 1))


def test_random_walk_old_keyword_and_names():
    ei = random_connected(8, 4, 5)
    data = Data(edge_index=ei, num_nodes=8)
    torch.testing.assert_close(AddRandomWalkPE(steps=5)(data).random_walk_pe,
                               AddRandomWalkPE(walk_length=5)(data).random_walk_pe)
    torch.testing.assert_close(random_walk_pe(ei, 8, steps=5), random_walk_pe(ei, 8, 5))
    assert AddRandomWalkPE(steps=5).steps == AddRandomWalkPE(5).walk_length == 5
    with pytest.raises(TypeError, match="not both"):
        AddRandomWalkPE(5, steps=5)
    with pytest.raises(TypeError, match="walk_length"):
        AddRandomWalkPE()
    with pytest.raises(ValueError, match="steps"):
        random_walk_pe(ei, 8, steps=0)


# ---------------------------------------------------------------------------------- laplacian

@pytest.mark.parametrize("is_undirected", [True, False])
@pytest.mark.parametrize("n,extra,seed", [(20, 15, 0), (30, 40, 1), (120, 150, 2)])
def test_laplacian_pe_matches_pyg_connected(n, extra, seed, is_undirected):
    k = 6
    ei = random_connected(n, extra, seed)
    data = Data(edge_index=ei, num_nodes=n)
    torch.manual_seed(0)                                 # PyG draws a random sign per column
    theirs = PyGLapPE(k, is_undirected=is_undirected)(data).laplacian_eigenvector_pe
    ours = AddLaplacianPE(k, is_undirected=is_undirected)(data).laplacian_eigenvector_pe
    assert ours.shape == (n, k) and ours.dtype == torch.float32
    cols, _ = simple_columns(pyg_laplacian(ei, n), k)
    assert_equal_up_to_sign(ours, theirs, cols, atol=1e-4 if n >= 100 else 1e-5)


@pytest.mark.parametrize("loops", [False, True])
def test_laplacian_pe_matches_pyg_disconnected(loops):
    ei, n = disconnected()
    if loops:
        ei = with_self_loops(ei, [0, 7, 11, 13])         # 11 is the isolated node
    k = 10
    data = Data(edge_index=ei, num_nodes=n)
    theirs = PyGLapPE(k, is_undirected=True)(data).laplacian_eigenvector_pe
    ours = laplacian_pe(ei, n, k)
    torch.testing.assert_close(AddLaplacianPE(k)(data).laplacian_eigenvector_pe, ours)
    lap = pyg_laplacian(ei, n)                 # PyG's L: self-loops removed, L[11, 11] = 1
    cols, vals = simple_columns(lap, k)
    # Three non-isolated components: PyG keeps 2 of the 3 zero eigenvectors, then the rest.
    np.testing.assert_allclose(vals[:3], 0, atol=1e-10)
    assert cols and min(cols) >= 2
    assert_equal_up_to_sign(ours, theirs, cols)
    # The two null-space columns (a repeated eigenvalue: any basis is PyG's answer) lie in
    # the null space, are orthonormal and orthogonal to the dropped D^{1/2} 1.
    v = ours[:, :2].double().numpy()
    np.testing.assert_allclose(lap @ v, 0, atol=1e-6)
    np.testing.assert_allclose(v.T @ v, np.eye(2), atol=1e-6)
    deg = np.bincount(ei[0][ei[0] != ei[1]].numpy(), minlength=n).astype(float)
    np.testing.assert_allclose(np.sqrt(deg) @ v, 0, atol=1e-6)
    # The isolated node: e_11 with eigenvalue 1, as PyG.
    pe, ev = laplacian_pe(ei, n, k, return_eigenvalues=True)
    j = int(torch.nonzero(pe[11].abs() > 0.5)[0])
    assert abs(float(ev[0, j]) - 1.0) < 1e-6 and torch.equal(pe[:, j], torch.eye(n)[11])
    # Every kept column is an eigenvector of PyG's Laplacian with the reported eigenvalue.
    w = pe.double().numpy()
    np.testing.assert_allclose(lap @ w, w * ev[0].double().numpy(), atol=1e-5)
    np.testing.assert_allclose(ev[0].numpy(), vals[1:k + 1], atol=1e-5)


def test_laplacian_null_columns_unnormalized_and_truncated():
    # D - A: the isolated node is a component of its own (4 components, 3 null columns kept).
    ei, n = disconnected()
    pe, ev = laplacian_pe(ei, n, 5, normalized=False, return_eigenvalues=True)
    a = np.zeros((n, n))
    a[ei[0], ei[1]] = 1
    lap = np.diag(a.sum(1)) - a
    v = pe.double().numpy()
    np.testing.assert_allclose(ev[0, :3].numpy(), 0, atol=0)
    np.testing.assert_allclose(lap @ v, v * ev[0].double().numpy(), atol=1e-5)
    np.testing.assert_allclose(v.T @ v, np.eye(5), atol=1e-6)
    np.testing.assert_allclose(v[:, :3].sum(0), 0, atol=1e-6)        # orthogonal to 1
    np.testing.assert_allclose(ev[0, 3:].numpy(), np.linalg.eigvalsh(lap)[4:6], atol=1e-5)
    # k smaller than the null space: the first k Helmert columns.
    torch.testing.assert_close(laplacian_pe(ei, n, 2, normalized=False), pe[:, :2])


def chung_laplacian(ei, n):
    """I - D^-1/2 A D^-1/2 with a zero row and column at isolated nodes (per_component=True)."""
    a = np.zeros((n, n))
    a[ei[0], ei[1]] = 1
    np.fill_diagonal(a, 0)
    deg = a.sum(1)
    inv = np.divide(1, np.sqrt(deg), out=np.zeros(n), where=deg > 0)
    return np.diag((deg > 0).astype(float)) - inv[:, None] * a * inv[None, :]


@pytest.mark.parametrize("per_component", [False, True])
@pytest.mark.parametrize("connected", [True, False])
def test_laplacian_pe_permutation_equivariant_where_simple(connected, per_component):
    ei, n = (random_connected(25, 20, 7), 25) if connected else disconnected()
    k = 8 if connected else 6              # a spectral gap after the k-th kept eigenvalue
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))   # new -> old
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(n)                                            # old -> new
    pe, ev = laplacian_pe(ei, n, k, per_component=per_component, return_eigenvalues=True)
    pe_p = laplacian_pe(inv[ei], n, k, per_component=per_component)[inv]  # back to old order
    full = np.linalg.eigvalsh(chung_laplacian(ei, n) if per_component else pyg_laplacian(ei, n))
    simple = [j for j in range(k) if np.sum(np.abs(full - float(ev[0, j])) < 1e-6) == 1]
    assert len(simple) >= (6 if connected else 2)
    assert_equal_up_to_sign(pe_p, pe, simple)
    # The deterministic sign makes them equal, not only up to sign (no ties here).
    torch.testing.assert_close(pe_p[:, simple], pe[:, simple], atol=1e-5, rtol=0)
    # The kept columns span the same space whatever the order (repeated eigenvalues too: in
    # PyG's reading the kept null-space part is the complement of the trivial vector).
    proj = pe.double() @ pe.double().t()
    proj_p = pe_p.double() @ pe_p.double().t()
    torch.testing.assert_close(proj_p, proj, atol=1e-5, rtol=0)


def test_laplacian_old_keywords_and_pyg_spellings():
    ei = random_connected(10, 6, 8)
    data = Data(x=torch.randn(10, 3), edge_index=ei)
    assert AddLaplacianEigenvectorPE is AddLaplacianPE
    out = AddLaplacianPE(3, normalized=False)(data)
    torch.testing.assert_close(out.laplacian_eigenvector_pe,
                               laplacian_pe(ei, 10, 3, normalized=False))
    # Options of the sparse solver, as PyG's kwargs; a large graph goes through eigsh.
    big = path_graph(60)
    dense = laplacian_pe(big, 60, 3)
    sparse = laplacian_pe(big, 60, 3, dense_max_nodes=10, eigsh_kwargs={"tol": 1e-12})
    torch.testing.assert_close(sparse, dense, atol=1e-5, rtol=0)
    assert AddLaplacianPE(3, is_undirected=True, tol=1e-8, maxiter=500).kwargs == {
        "tol": 1e-8, "maxiter": 500}
    with pytest.raises(TypeError, match="eigensolver option"):
        AddLaplacianPE(3, which="SA")
    with pytest.raises(ValueError, match="attr_name"):
        AddLaplacianPE(3, attr_name="")


# ------------------------------------------------------------------------ attr_name=None (x)

@pytest.mark.parametrize("x", ["2d", "1d", "none", "double"])
def test_attr_name_none_appends_to_x_as_pyg(x):
    ei = random_connected(9, 5, 9)
    xs = {"2d": torch.randn(9, 2), "1d": torch.randn(9), "none": None,
          "double": torch.randn(9, 2, dtype=torch.float64)}
    data = Data(x=xs[x], edge_index=ei, num_nodes=9)
    ours = AddRandomWalkPE(4, attr_name=None)(data)
    theirs = PyGRandomWalkPE(4, attr_name=None)(data)
    assert ours.x.dtype == theirs.x.dtype
    torch.testing.assert_close(ours.x, theirs.x, atol=1e-6, rtol=0)
    assert "random_walk_pe" not in ours
    lap = AddLaplacianPE(3, attr_name=None)(data)
    width = 0 if xs[x] is None else (1 if xs[x].dim() == 1 else 2)
    assert lap.x.shape == (9, width + 3)
    torch.testing.assert_close(lap.x[:, width:].float(), laplacian_pe(ei, 9, 3))
    if xs[x] is not None:
        torch.testing.assert_close(lap.x[:, :width], xs[x].view(9, -1))
        assert lap.x.dtype == xs[x].dtype
    assert data.x is xs[x]                               # the input is not modified


def test_complete_graph_repeated_eigenvalue_is_an_orthonormal_basis():
    # K_5: eigenvalue 5/4 repeated 4 times; any orthonormal basis of it is right (PyG too).
    ei = complete_graph(5, self_loops=False)
    pe = laplacian_pe(ei, 5, 4).double()
    torch.testing.assert_close(pe.t() @ pe, torch.eye(4, dtype=torch.float64), atol=1e-6,
                               rtol=0)
    torch.testing.assert_close(pe.sum(0), torch.zeros(4, dtype=torch.float64), atol=1e-6, rtol=0)
