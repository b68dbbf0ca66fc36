"""Sequence and image tasks: long-range sequences on path graphs, digits on grid graphs, splits."""
import types

import pytest
import torch
from torch_geometric.loader import DataLoader
from torch_geometric.utils import coalesce

import gatlib.graph
from gatlib.data import digits_graphs, long_range_sequences, receptive_field, stratified_split
from gatlib.graph import complete_graph, grid_graph, path_graph


def _hops_to(target: int, edge_index, num_nodes: int):
    """Fewest layers of message passing (j -> i along edges) after which ``target`` depends on
    each node: ``[N]``, -1 where it never does."""
    hops = torch.full((num_nodes,), -1, dtype=torch.long)
    hops[target] = 0
    frontier, step = torch.tensor([target]), 0
    src, dst = edge_index
    while frontier.numel():
        step += 1
        reached = src[torch.isin(dst, frontier)]
        frontier = torch.unique(reached[hops[reached] < 0])
        hops[frontier] = step
    return hops


def _edge_set(edge_index):
    return set(map(tuple, edge_index.t().tolist()))


# ------------------------------------------------------------------------------ sequences

def test_sequences_shapes_dtypes_and_features():
    length, vocab = 16, 5
    data = long_range_sequences(50, length, vocab, seed=1)
    assert len(data) == 50
    for d in data:
        assert d.x.shape == (length, vocab + 2) and d.x.dtype == torch.float32
        assert d.y.shape == (1,) and d.y.dtype == torch.long
        assert d.deciding.shape == (1,) and d.deciding.dtype == torch.long
        assert d.edge_index.dtype == torch.long and d.num_nodes == length
        tok, cls, flag = d.x[:, :vocab], d.x[:, vocab], d.x[:, vocab + 1]
        assert tok[0].sum() == 0 and cls[0] == 1 and cls[1:].sum() == 0      # CLS at node 0
        assert torch.equal(tok[1:].sum(1), torch.ones(length - 1))            # one-hot tokens
        assert flag.sum() == 1 and flag[d.deciding].item() == 1               # one flag, at p


@pytest.mark.parametrize("length,min_distance", [(16, None), (16, 1), (16, 15), (40, 30)])
def test_label_is_the_token_at_the_flagged_position(length, min_distance):
    vocab = 6
    data = long_range_sequences(300, length, vocab, min_distance=min_distance, seed=2)
    lo = length // 2 if min_distance is None else min_distance
    p = torch.cat([d.deciding for d in data])
    assert int(p.min()) == lo and int(p.max()) == length - 1          # the whole range, no more
    for d in data:
        q = int(d.deciding)
        assert int(d.y) == int(d.x[q, :vocab].argmax()) and d.x[q, :vocab].sum() == 1


def test_classes_are_balanced():
    num_graphs, vocab = 2000, 8
    y = torch.cat([d.y for d in long_range_sequences(num_graphs, 32, vocab, seed=0)])
    counts = torch.bincount(y, minlength=vocab).float()
    assert counts.numel() == vocab and int(y.min()) >= 0
    expected = num_graphs / vocab
    assert bool(((counts - expected).abs() <= 0.3 * expected).all()), counts.tolist()


def test_same_seed_same_data_other_seed_other_data():
    a, b = long_range_sequences(20, 24, seed=5), long_range_sequences(20, 24, seed=5)
    c = long_range_sequences(20, 24, seed=6)
    for u, v in zip(a, b):
        assert torch.equal(u.x, v.x) and torch.equal(u.y, v.y)
        assert torch.equal(u.deciding, v.deciding) and torch.equal(u.edge_index, v.edge_index)
    assert not all(torch.equal(u.x, w.x) for u, w in zip(a, c))
    assert not torch.equal(torch.cat([d.y for d in a]), torch.cat([d.y for d in c]))


def test_named_patterns_give_the_expected_graphs():
    n = 20
    cases = {
        ("window", 3, 1): path_graph(n, 3, 1, self_loops=True),
        ("window", 2, 3): path_graph(n, 2, 3, self_loops=True),
        ("dilated", 2, 4): path_graph(n, 2, 4, self_loops=True),
        ("full", 2, 1): complete_graph(n),
    }
    for (pattern, window, dilation), expected in cases.items():
        data = long_range_sequences(4, n, pattern=pattern, window=window, dilation=dilation)
        for d in data:
            assert torch.equal(d.edge_index, expected), pattern
    assert complete_graph(n).size(1) == n * n


def test_callable_pattern_and_one_pattern_for_all_graphs():
    calls = []

    def ring(length):
        calls.append(length)
        i = torch.arange(length)
        return torch.stack([torch.cat([(i - 1) % length, i]), torch.cat([i, i])])

    data = long_range_sequences(5, 12, pattern=ring)
    assert calls == [12]                                           # built once, for the length
    assert all(d.edge_index is data[0].edge_index for d in data)  # shared by every graph
    assert torch.equal(data[0].edge_index, ring(12))


def test_window_model_cannot_reach_the_flag_but_full_attention_can():
    length, window, dilation, layers = 64, 2, 2, 3
    rf = receptive_field(layers, window, dilation)                    # 12
    data = long_range_sequences(30, length, min_distance=rf + 1, window=window,
                                dilation=dilation, pattern="dilated")
    hops = _hops_to(0, data[0].edge_index, length)
    # Node 0 depends on exactly the positions within the receptive field after `layers` layers.
    seen = ((hops >= 0) & (hops <= layers)).nonzero().view(-1)
    assert int(seen.max()) == rf
    # Beyond the receptive field, or never reached (a dilated window skips non-multiples of d).
    assert all(not 0 <= int(hops[d.deciding]) <= layers for d in data)
    assert int(hops[1]) == -1 and int(hops[62]) == 16            # ceil(62 / (w * d)) layers
    full = long_range_sequences(2, length, pattern="full")
    assert int(_hops_to(0, full[0].edge_index, length).max()) == 1


@pytest.mark.parametrize("kwargs,name", [
    (dict(length=16, min_distance=16), "min_distance"),
    (dict(length=16, min_distance=0), "min_distance"),
    (dict(length=16, min_distance=2.5), "min_distance"),
    (dict(pattern="sliding"), "pattern"),
    (dict(pattern=3), "pattern"),
    (dict(vocab=1), "vocab"),
    (dict(length=2), "length"),
    (dict(pattern="dilated", dilation=1), "dilation"),
    (dict(window=0), "window"),
    (dict(num_graphs=-1), "num_graphs"),
    (dict(pattern=lambda n: torch.tensor([[0, n], [0, 0]])), "pattern(length)"),
])
def test_sequence_arguments_are_checked(kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name.replace("(", r"\(").replace(")", r"\)")):
        long_range_sequences(**{"num_graphs": 3, **kwargs})


def test_receptive_field():
    assert receptive_field(3, 2) == 6
    assert receptive_field(4, 3, dilation=2) == 24
    assert receptive_field(0, 5, 5) == 0 and receptive_field(1, 1, 1) == 1
    for args, name in (((-1, 2), "num_layers"), ((2, -1), "window"), ((2, 2, 0), "dilation")):
        with pytest.raises(ValueError, match=name):
            receptive_field(*args)


# ------------------------------------------------------------------------------ sparse patterns

def _fake_patterns(record):
    """A stand-in for gatlib.graph.patterns that records how it is called."""
    def global_tokens(n, tokens, self_loops=False):
        record.setdefault("global_tokens", []).append((n, list(tokens)))
        t = torch.as_tensor(list(tokens))
        nodes = torch.arange(n)
        ei = torch.cat([torch.stack([t.repeat_interleave(n), nodes.repeat(t.numel())]),
                        torch.stack([nodes.repeat(t.numel()), t.repeat_interleave(n)])], 1)
        return coalesce(ei.flip(0), num_nodes=n).flip(0)

    def union(*edge_indices, num_nodes=None):
        return coalesce(torch.cat(edge_indices, 1).flip(0), num_nodes=num_nodes).flip(0)

    def bigbird(n, window=3, num_global=2, num_random=3, seed=0):
        record.setdefault("bigbird", []).append((n, window, num_global, num_random, seed))
        return complete_graph(n, self_loops=False)

    return types.SimpleNamespace(global_tokens=global_tokens, union=union, bigbird=bigbird)


def test_global_and_bigbird_call_the_patterns_module_once_with_node_0_global(monkeypatch):
    record = {}
    monkeypatch.setattr(gatlib.graph, "patterns", _fake_patterns(record), raising=False)
    data = long_range_sequences(6, 10, pattern="global", window=1)
    assert record["global_tokens"] == [(10, [0])]
    assert all(d.edge_index is data[0].edge_index for d in data)
    bb = long_range_sequences(6, 10, pattern="bigbird", window=2, num_random=4, seed=7)
    assert record["bigbird"] == [(10, 2, 1, 4, 7)]
    assert all(d.edge_index is bb[0].edge_index for d in bb)


def test_global_pattern_is_window_plus_node_0_joined_to_all():
    pytest.importorskip("gatlib.graph.patterns")
    n, window = 30, 2
    ei = long_range_sequences(3, n, pattern="global", window=window)[0].edge_index
    star = {(0, i) for i in range(n)} | {(j, 0) for j in range(n)}
    expected = _edge_set(path_graph(n, window, self_loops=True)) | star
    assert _edge_set(ei) - {(0, 0)} == expected - {(0, 0)}
    assert ei.size(1) == len(_edge_set(ei))                                   # no duplicates
    assert bool((ei[1][1:] >= ei[1][:-1]).all())                              # sorted by target
    assert int(_hops_to(0, ei, n).max()) == 1


def test_bigbird_pattern_is_drawn_once_from_the_seed():
    patterns = pytest.importorskip("gatlib.graph.patterns")
    n = 40
    a = long_range_sequences(4, n, pattern="bigbird", window=2, num_random=3, seed=11)
    b = long_range_sequences(4, n, pattern="bigbird", window=2, num_random=3, seed=11)
    expected = patterns.bigbird(n, window=2, num_global=1, num_random=3, seed=11)
    for d in a + b:
        assert torch.equal(d.edge_index, expected)
    assert int(_hops_to(0, a[0].edge_index, n).max()) == 1                   # node 0 is global


# ------------------------------------------------------------------------------ digits

@pytest.fixture(scope="module")
def digits_images():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    digits = sklearn_datasets.load_digits()
    return torch.as_tensor(digits.images, dtype=torch.float32), torch.as_tensor(digits.target)


@pytest.mark.parametrize("patch,nodes", [(1, 64), (2, 16), (4, 4)])
def test_digits_patches_reconstruct_the_images(digits_images, patch, nodes):
    images, target = digits_images
    data, num_classes = digits_graphs(patch=patch)
    assert num_classes == 10 and len(data) == 1797
    side, f = 8 // patch, patch * patch
    for d in data:
        assert d.num_nodes == nodes and d.x.shape == (nodes, f + 2)
        assert d.x.dtype == torch.float32 and d.y.shape == (1,) and d.y.dtype == torch.long
    x = torch.stack([d.x for d in data])                                      # [B, P, f + 2]
    pix = x[:, :, :f].reshape(-1, side, side, patch, patch)                   # [B, R, C, p, p]
    rebuilt = pix.permute(0, 1, 3, 2, 4).reshape(-1, 8, 8)                    # [B, 8, 8]
    torch.testing.assert_close(rebuilt, images / 16, rtol=0, atol=1e-7)
    assert float(x[:, :, :f].min()) >= 0 and float(x[:, :, :f].max()) <= 1
    assert torch.equal(torch.cat([d.y for d in data]), target.long())
    # Coordinates: (row, col) / (side - 1) of each patch in row-major order.
    coords = x[0, :, f:]
    assert float(coords.min()) == 0.0 and float(coords.max()) == 1.0
    r, c = torch.arange(nodes) // side, torch.arange(nodes) % side
    torch.testing.assert_close(coords, torch.stack([r, c], 1).float() / (side - 1))
    assert torch.equal(x[:, :, f:], coords.expand_as(x[:, :, f:]))           # same in every graph


def test_digits_graph_structure_and_options():
    data, _ = digits_graphs(patch=2, radius=1, diagonal=True)
    assert torch.equal(data[0].edge_index, grid_graph(4, 4, 1, True))
    data, _ = digits_graphs(patch=1, radius=2, diagonal=False, coords=False)
    assert torch.equal(data[5].edge_index, grid_graph(8, 8, 2, False))
    assert data[5].x.shape == (64, 1)
    for patch, n in ((1, 64), (4, 4)):
        full, _ = digits_graphs(patch=patch, full=True)
        assert torch.equal(full[3].edge_index, complete_graph(n))
        assert full[3].edge_index.size(1) == n * n


@pytest.mark.parametrize("patch", [3, 8, 0, True])
def test_digits_bad_patch(patch):
    with pytest.raises(ValueError, match="patch"):
        digits_graphs(patch=patch)


# ------------------------------------------------------------------------------ splits

def test_stratified_split_is_disjoint_covering_stratified_and_seeded():
    y = torch.cat([torch.full((100,), 3), torch.full((50,), 7), torch.full((30,), -1)])
    train, val, test = stratified_split(y, (0.8, 0.1, 0.1), seed=0)
    every = torch.cat([train, val, test])
    assert every.dtype == torch.long and torch.equal(every.sort().values, torch.arange(180))
    for idx, frac in ((train, 0.8), (val, 0.1), (test, 0.1)):
        assert torch.equal(idx, idx.sort().values)
        for label, count in ((3, 100), (7, 50), (-1, 30)):
            assert int((y[idx] == label).sum()) == round(frac * count)
    again = stratified_split(y, (0.8, 0.1, 0.1), seed=0)
    other = stratified_split(y, (0.8, 0.1, 0.1), seed=1)
    assert all(torch.equal(a, b) for a, b in zip((train, val, test), again))
    assert not torch.equal(test, other[2])
    # Fractions below 1 leave the rest out; rounding leftovers go to train only at sum 1.
    tr, va, te = stratified_split(y, (0.5, 0.1, 0.1))
    assert (tr.numel(), va.numel(), te.numel()) == (90, 18, 18)
    tr, va, te = stratified_split(torch.zeros(5, dtype=torch.long))
    assert tr.numel() + va.numel() + te.numel() == 5


def test_stratified_split_checks_its_arguments():
    with pytest.raises(ValueError, match="fractions"):
        stratified_split(torch.zeros(10, dtype=torch.long), (0.8, 0.3, 0.1))
    with pytest.raises(ValueError, match="fractions"):
        stratified_split(torch.zeros(10, dtype=torch.long), (0.8, 0.2))
    with pytest.raises(TypeError, match="y"):
        stratified_split(torch.zeros(10), (0.8, 0.1, 0.1))


# ------------------------------------------------------------------------------ end to end

@pytest.mark.parametrize("layer", ["gat", "dense"])
def test_graph_classifier_runs_on_both_tasks(layer):
    from gatlib.nn import GraphClassifier
    torch.manual_seed(0)
    digits, num_digits = digits_graphs(patch=2)
    seqs = long_range_sequences(8, 16, vocab=4, seed=0)
    for data, num_classes in ((digits[:8], num_digits), (seqs, 4)):
        batch = next(iter(DataLoader(data, batch_size=8)))
        model = GraphClassifier(batch.num_features, 16, num_classes, num_layers=2, layer=layer,
                                heads=2)
        logits = model(batch.x, batch.edge_index, batch.batch)
        assert logits.shape == (8, num_classes) and bool(torch.isfinite(logits).all())
        torch.nn.functional.cross_entropy(logits, batch.y).backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert all(g is not None and bool(torch.isfinite(g).all()) for g in grads)
        assert any(float(g.abs().sum()) > 0 for g in grads)
    assert batch.deciding.shape == (8,)                       # per-graph positions, not offset
