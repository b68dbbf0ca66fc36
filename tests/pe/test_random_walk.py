import numpy as np
import pytest
import torch

from gatlib.graph.builders import complete_graph, path_graph
from gatlib.pe import random_walk_pe


def cycle(n):
    src = torch.arange(n)
    return torch.stack([src, (src + 1) % n])             # one direction; simple=True symmetrises


def dense_rwse(edge_index, n, steps):
    a = np.zeros((n, n))
    for j, i in edge_index.t().tolist():
        if i != j:
            a[i, j] = a[j, i] = 1.0
    deg = a.sum(1, keepdims=True)
    p = np.divide(a, deg, out=np.zeros_like(a), where=deg > 0)
    return np.stack([np.diag(np.linalg.matrix_power(p, t)) for t in range(1, steps + 1)], 1)


def test_cycle_of_four():
    pe = random_walk_pe(cycle(4), 4, 6, simple=True)
    assert pe.shape == (4, 6) and pe.dtype == torch.float32
    want = torch.tensor([0.0, 0.5, 0.0, 0.5, 0.0, 0.5]).repeat(4, 1)
    torch.testing.assert_close(pe, want, atol=1e-7, rtol=0)


def test_triangle():
    pe = random_walk_pe(complete_graph(3, self_loops=False), 3, 4)
    want = torch.tensor([0.0, 1 / 2, 1 / 4, 3 / 8]).repeat(3, 1)
    torch.testing.assert_close(pe, want, atol=1e-7, rtol=0)


def test_path_and_isolated_node_and_self_loop():
    # Path 0-1-2 with a self-loop on 1 (dropped by simple=True), node 3 isolated.
    ei = torch.cat([path_graph(3), torch.tensor([[1], [1]])], 1)
    pe = random_walk_pe(ei, 4, 3, simple=True)
    want = torch.tensor([[0.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(pe, want, atol=1e-7, rtol=0)
    assert torch.equal(random_walk_pe(torch.empty(2, 0, dtype=torch.long), 2, 3),
                       torch.zeros(2, 3))


@pytest.mark.parametrize("dense_max_nodes", [2000, 0])
def test_random_graph_simple_matches_matrix_power(graph_factory, dense_max_nodes):
    n, steps = 30, 7
    ei = graph_factory(n, 80, seed=2)                    # isolated node, loops, duplicates
    pe = random_walk_pe(ei, n, steps, dense_max_nodes=dense_max_nodes, simple=True)
    np.testing.assert_allclose(pe.numpy(), dense_rwse(ei, n, steps), atol=1e-6)
    assert (pe[n - 1] == 0).all()                        # the factory's isolated node


def test_batch_equals_graphs_alone(graph_factory):
    g1, g2 = graph_factory(10, 25, seed=0), cycle(5)
    ei = torch.cat([g1, g2 + 10], 1)
    batch = torch.tensor([0] * 10 + [1] * 5)
    pe = random_walk_pe(ei, 15, 5, batch=batch)
    torch.testing.assert_close(pe[:10], random_walk_pe(g1, 10, 5))
    torch.testing.assert_close(pe[10:], random_walk_pe(g2, 5, 5))


def test_bad_input():
    ei = path_graph(4)
    with pytest.raises(ValueError, match="steps"):
        random_walk_pe(ei, 4, 0)
    with pytest.raises(TypeError, match="steps"):
        random_walk_pe(ei, 4, "3")
    with pytest.raises(ValueError, match="edge_index"):
        random_walk_pe(ei, 2, 3)
    with pytest.raises(ValueError, match="batch"):
        random_walk_pe(ei, 4, 3, batch=torch.tensor([0, 1, 0, 1]))
