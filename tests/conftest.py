import os

import pytest
import torch

# No test reaches the internet: datasets come from a mirror ($GATLIB_MIRROR, set by the Makefile
# and CI) or, in tests/data/test_download.py, from a server on 127.0.0.1.
os.environ.setdefault("GATLIB_OFFLINE", "1")


def backends_under_test(device: str = "cpu"):
    """The backends other than the reference that can run on ``device`` when forced: Triton on
    CPU tensors only under ``TRITON_INTERPRET=1``, never on a machine without triton."""
    from gatlib.ops.dispatch import available_backends, get_backend
    dev = torch.device(device)
    return [b for b in available_backends() if b != "reference"
            and not get_backend(b).why_not("gat_attention", dev, torch.float32, forced=True)]


def random_graph(num_nodes: int, num_edges: int, seed: int = 0, hub: bool = True,
                 num_dst: int = None):
    """A random multigraph with isolated nodes, self-loops, duplicate edges and (optionally) a
    node of very high in-degree. Returns edge_index [2, E]."""
    g = torch.Generator().manual_seed(seed)
    num_dst = num_nodes if num_dst is None else num_dst
    if num_edges == 0 or num_nodes == 0 or num_dst == 0:
        return torch.empty(2, 0, dtype=torch.long)
    # Leave the last node of each side isolated (never a target; never a source either).
    n_src, n_dst = max(num_nodes - 1, 1), max(num_dst - 1, 1)
    src = torch.randint(0, n_src, (num_edges,), generator=g)
    dst = torch.randint(0, n_dst, (num_edges,), generator=g)
    if hub:
        dst[: num_edges // 3] = 0                       # node 0: a third of all edges
    if num_nodes == num_dst:
        src[-3:] = dst[-3:]                             # self-loops
    src = torch.cat([src, src[:5]])                     # duplicate edges
    dst = torch.cat([dst, dst[:5]])
    return torch.stack([src, dst])


@pytest.fixture
def graph_factory():
    return random_graph


def edit_in_place(route: str, edge_index):
    """Write source 5 into edge 0 of ``edge_index`` by ``route``: ``plain`` indexing, through
    ``numpy()``, through ``.data``, through a ``view``, or, for a tensor made by
    ``torch.from_numpy``, by refilling its NumPy buffer (``from_numpy``). Some routes leave the
    tensor's version counter unchanged, which is what the tests check no cache relies on."""
    if route == "plain":
        edge_index[0, 0] = 5
    elif route in ("numpy", "from_numpy"):
        buf = edge_index.numpy()
        new = buf.copy()
        new[0, 0] = 5
        buf[:] = new                                    # the same buffer, refilled
    elif route == "data":
        edge_index.data[0, 0] = 5
    elif route == "view":
        edge_index[0].narrow(0, 0, 1).fill_(5)
    else:
        raise ValueError(f"unknown route {route!r}")
    return edge_index
