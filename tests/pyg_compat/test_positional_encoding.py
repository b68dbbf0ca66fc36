"""PyG's ``test/transforms/test_add_positional_encoding.py`` (PyG 2.8) against
``gatlib.pe.AddLaplacianPE`` (for ``AddLaplacianEigenvectorPE``) and
``gatlib.pe.AddRandomWalkPE``.

Every assertion of PyG's test is kept, on the same inputs, with the import swapped: PyG's
argument spellings (``k``, ``walk_length``, ``attr_name=None`` appending to ``x``,
``is_undirected``) and PyG's default attribute names (``laplacian_eigenvector_pe``,
``random_walk_pe``).

Adapted, and why:
- ``str(transform) == 'AddLaplacianEigenvectorPE()'``: gatlib's class is ``AddLaplacianPE``,
  so the expected repr carries that name (PyG's form: class name and ``()``).
- PyG's ``@onlyLinux`` on the random-walk test (an older version's CSR @ CSR workaround) is
  dropped: nothing here depends on the platform. ``@withPackage('scipy')`` is kept.
- ``test_add_random_walk_pe_edge_weight`` and ``test_add_random_walk_pe_duplicated_edges`` of
  PyG's master branch are left out: they test a fix made after PyG 2.8.1 (#10098), whose
  transform gives other numbers there.

Extras (marked ``gatlib extra``): the defaults give PyG's numbers on random graphs: random-walk
PE equal to PyG's exactly (up to float32 round-off), Laplacian PE equal to PyG's up to the sign
of each column on connected graphs with simple eigenvalues.
"""
import torch
from torch_geometric.data import Data
from torch_geometric.testing import withPackage
from torch_geometric.transforms import AddLaplacianEigenvectorPE as PygAddLaplacianPE
from torch_geometric.transforms import AddRandomWalkPE as PygAddRandomWalkPE
from torch_geometric.utils import to_undirected

from gatlib.pe import AddLaplacianPE, AddRandomWalkPE


@withPackage('scipy')
def test_add_laplacian_eigenvector_pe():
    x = torch.randn(6, 4)
    edge_index = torch.tensor([[0, 1, 0, 4, 1, 4, 2, 3, 3, 5],
                               [1, 0, 4, 0, 4, 1, 3, 2, 5, 3]])
    data = Data(x=x, edge_index=edge_index)

    transform = AddLaplacianPE(k=3)
    assert str(transform) == 'AddLaplacianPE()'
    out = transform(data)
    assert out.laplacian_eigenvector_pe.size() == (6, 3)

    transform = AddLaplacianPE(k=3, attr_name=None)
    out = transform(data)
    assert out.x.size() == (6, 4 + 3)

    transform = AddLaplacianPE(k=3, attr_name='x')
    out = transform(data)
    assert out.x.size() == (6, 3)

    # Output tests:
    edge_index = torch.tensor([[0, 1, 0, 4, 1, 4, 2, 3, 3, 5, 2, 5],
                               [1, 0, 4, 0, 4, 1, 3, 2, 5, 3, 5, 2]])
    data = Data(x=x, edge_index=edge_index)

    transform1 = AddLaplacianPE(k=1, is_undirected=True)
    transform2 = AddLaplacianPE(k=1, is_undirected=False)

    # Clustering test with first non-trivial eigenvector (Fiedler vector)
    pe = transform1(data).laplacian_eigenvector_pe
    pe_cluster_1 = pe[[0, 1, 4]]
    pe_cluster_2 = pe[[2, 3, 5]]
    assert not torch.allclose(pe_cluster_1, pe_cluster_2)
    assert torch.allclose(pe_cluster_1, pe_cluster_1.mean())
    assert torch.allclose(pe_cluster_2, pe_cluster_2.mean())

    pe = transform2(data).laplacian_eigenvector_pe
    pe_cluster_1 = pe[[0, 1, 4]]
    pe_cluster_2 = pe[[2, 3, 5]]
    assert not torch.allclose(pe_cluster_1, pe_cluster_2)
    assert torch.allclose(pe_cluster_1, pe_cluster_1.mean())
    assert torch.allclose(pe_cluster_2, pe_cluster_2.mean())


@withPackage('scipy')
def test_eigenvector_permutation_invariance():
    edge_index = torch.tensor([[0, 1, 0, 4, 1, 4, 2, 3, 3, 5],
                               [1, 0, 4, 0, 4, 1, 3, 2, 5, 3]])
    data = Data(edge_index=edge_index, num_nodes=6)

    perm = torch.randperm(data.num_nodes)
    transform = AddLaplacianPE(
        k=2,
        is_undirected=True,
        attr_name='x',
    )
    out1 = transform(data)

    transform = AddLaplacianPE(
        k=2,
        is_undirected=True,
        attr_name='x',
    )
    out2 = transform(data.subgraph(perm))

    assert torch.allclose(out1.x[perm].abs(), out2.x.abs(), atol=1e-6)


def test_add_random_walk_pe():
    x = torch.randn(6, 4)
    edge_index = torch.tensor([[0, 1, 0, 4, 1, 4, 2, 3, 3, 5],
                               [1, 0, 4, 0, 4, 1, 3, 2, 5, 3]])
    data = Data(x=x, edge_index=edge_index)

    transform = AddRandomWalkPE(walk_length=3)
    assert str(transform) == 'AddRandomWalkPE()'
    out = transform(data)
    assert out.random_walk_pe.size() == (6, 3)

    transform = AddRandomWalkPE(walk_length=3, attr_name=None)
    out = transform(data)
    assert out.x.size() == (6, 4 + 3)

    transform = AddRandomWalkPE(walk_length=3, attr_name='x')
    out = transform(data)
    assert out.x.size() == (6, 3)

    # Output tests:
    assert out.x.tolist() == [
        [0.0, 0.5, 0.25],
        [0.0, 0.5, 0.25],
        [0.0, 0.5, 0.00],
        [0.0, 1.0, 0.00],
        [0.0, 0.5, 0.25],
        [0.0, 0.5, 0.00],
    ]

    edge_index = torch.tensor([[0, 1, 2], [0, 1, 2]])
    data = Data(edge_index=edge_index, num_nodes=4)
    out = transform(data)

    assert out.x.tolist() == [
        [1.0, 1.0, 1.0],
        [1.0, 1.0, 1.0],
        [1.0, 1.0, 1.0],
        [0.0, 0.0, 0.0],
    ]


# ---------------------------------------------------------------------------------------------
# gatlib extras: not in PyG's test file.
# ---------------------------------------------------------------------------------------------

def _random_graph(num_nodes: int, num_edges: int, seed: int, loops: bool = True):
    """A random undirected graph that is connected (a path through all nodes plus random
    edges), with a few self-loops when ``loops``."""
    g = torch.Generator().manual_seed(seed)
    path = torch.stack([torch.arange(num_nodes - 1), torch.arange(1, num_nodes)])
    extra = torch.randint(0, num_nodes, (2, num_edges), generator=g)
    if not loops:
        extra = extra[:, extra[0] != extra[1]]
    return to_undirected(torch.cat([path, extra], dim=1), num_nodes=num_nodes)


def test_add_random_walk_pe_matches_pyg():
    """gatlib extra: by default, the random-walk PE equals PyG's (self-loops counted as PyG
    counts them), on connected graphs with self-loops and on graphs with isolated nodes."""
    for seed, n in [(0, 7), (1, 15), (2, 30)]:
        edge_index = _random_graph(n, 2 * n, seed)
        for num_nodes in (n, n + 3):                        # n + 3: three isolated nodes
            data = Data(edge_index=edge_index, num_nodes=num_nodes)
            out = AddRandomWalkPE(walk_length=5)(data).random_walk_pe
            expected = PygAddRandomWalkPE(walk_length=5)(data).random_walk_pe
            assert out.size() == (num_nodes, 5)
            assert torch.allclose(out.float(), expected.float(), atol=1e-6)


def test_add_laplacian_pe_matches_pyg():
    """gatlib extra: by default, the Laplacian PE equals PyG's up to the sign of each column
    (PyG flips signs at random) on connected graphs whose eigenvalues are simple, with
    ``is_undirected`` True and False."""
    for seed, n in [(0, 8), (1, 12), (2, 20)]:
        edge_index = _random_graph(n, n, seed, loops=False)
        data = Data(edge_index=edge_index, num_nodes=n)
        lap = torch.linalg.eigvalsh(_normalized_laplacian(edge_index, n))
        assert (lap.diff()[:4] > 1e-4).all()               # the first eigenvalues are simple
        for is_undirected in (True, False):
            out = AddLaplacianPE(k=3, is_undirected=is_undirected)(data)
            expected = PygAddLaplacianPE(k=3, is_undirected=is_undirected)(data)
            out, expected = out.laplacian_eigenvector_pe, expected.laplacian_eigenvector_pe
            assert out.size() == (n, 3)
            sign = torch.sign((out.double() * expected.double()).sum(0))   # [3]
            assert torch.allclose(out.double() * sign, expected.double(), atol=1e-5)


def _normalized_laplacian(edge_index, n):
    adj = torch.zeros(n, n, dtype=torch.float64)
    adj[edge_index[0], edge_index[1]] = 1.0
    d = adj.sum(1).clamp(min=1).rsqrt()
    return torch.eye(n, dtype=torch.float64) - d[:, None] * adj * d[None, :]
