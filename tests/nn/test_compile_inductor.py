"""``torch.compile`` with the inductor backend and ``fullgraph=True`` (no graph break) of a GAT
model called, as PyG users call it, with a raw ``edge_index``.

The slowest test of the suite: inductor builds C++ kernels with the system's compiler, and
first checks which vector instructions the CPU has by building small programs (about half of
the time). About 60 s on this project's two shared cores (most of it once per process); the
other compile tests use the ``aot_eager`` backend, which builds nothing."""
import pytest
import torch

from gatlib.nn import GATConv


class GATModel(torch.nn.Module):
    """A GAT layer (8 heads x 4, self-loops added), ELU, and a linear classifier."""

    def __init__(self):
        super().__init__()
        self.conv = GATConv(6, 4, heads=8)
        self.head = torch.nn.Linear(32, 3)

    def forward(self, x, edge_index):
        return self.head(torch.nn.functional.elu(self.conv(x, edge_index)))


def _has_compiler() -> bool:
    import shutil
    return any(shutil.which(cc) for cc in ("cc", "gcc", "clang", "g++", "c++"))


@pytest.mark.skipif(not _has_compiler(), reason="inductor needs a C++ compiler on the CPU")
def test_inductor_fullgraph_with_raw_edge_index():
    """The compiled model equals the eager one, forward and backward (input and parameter
    gradients), on a multigraph with self-loops, duplicate edges and an isolated node; a second
    graph of the same shape reuses the compiled code."""
    torch.manual_seed(0)
    model = GATModel()
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="inductor", fullgraph=True, dynamic=False)
    for seed in (0, 1):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(12, 6, generator=g, requires_grad=True)
        edge_index = torch.randint(0, 11, (2, 40), generator=g)            # node 11 isolated
        edge_index[:, :3] = torch.tensor([[2, 5, 5], [2, 5, 5]])           # loops, duplicates
        got, want = compiled(x, edge_index), model(x, edge_index)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        leaves = [x, *model.parameters()]
        for a, b in zip(torch.autograd.grad(got.sum(), leaves),
                        torch.autograd.grad(want.sum(), leaves)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
