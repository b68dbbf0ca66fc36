import itertools

import pytest
import torch

from gatlib.nn.encoders import LapPEEncoder, RWSEEncoder


def sign_vectors(k):
    return [torch.tensor(s, dtype=torch.float32) for s in itertools.product([1.0, -1.0], repeat=k)]


def matching_signs(enc, pe, out):
    """The sign vectors s for which eval-mode enc(pe * s) equals out."""
    was_training = enc.training
    enc.eval()
    with torch.no_grad():
        hits = [s for s in sign_vectors(pe.size(1))
                if torch.allclose(enc(pe * s), out, atol=1e-6)]
    enc.train(was_training)
    return hits


@pytest.mark.parametrize("hidden", [None, 8])
def test_lap_pe_encoder_shapes_and_repr(hidden):
    enc = LapPEEncoder(3, 5, hidden=hidden)
    assert enc(torch.randn(7, 3)).shape == (7, 5)
    assert enc(torch.randn(0, 3)).shape == (0, 5)
    assert repr(LapPEEncoder(8, 16)) == "LapPEEncoder(8, 16)"
    assert repr(LapPEEncoder(8, 16, hidden=32, dropout=0.1)) == \
        "LapPEEncoder(8, 16, hidden=32, dropout=0.1)"


@pytest.mark.parametrize("hidden", [None, 8])
def test_sign_flip_only_in_training(hidden):
    torch.manual_seed(0)
    enc = LapPEEncoder(3, 4, hidden=hidden)
    pe = torch.randn(6, 3)
    enc.eval()
    out = enc(pe)
    assert torch.equal(out, enc(pe))                     # eval: deterministic, no flip
    assert torch.equal(out, enc.mlp(pe))
    enc.train()
    seen = set()
    for seed in range(8):
        torch.manual_seed(seed)
        out_t = enc(pe)
        hits = matching_signs(enc, pe, out_t)
        assert len(hits) == 1                            # some per-column flip of the input
        seen.add(tuple(hits[0].tolist()))
    assert len(seen) > 1                                 # different seeds, different flips


def test_sign_flip_per_graph_with_batch():
    torch.manual_seed(0)
    enc = LapPEEncoder(2, 3).train()
    pe = torch.randn(9, 2)
    batch = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    per_graph = set()
    for seed in range(6):
        torch.manual_seed(seed)
        out = enc(pe, batch)
        for g in range(3):
            rows = batch == g
            hits = matching_signs(enc, pe[rows], out[rows])
            assert len(hits) == 1                        # one sign vector per graph
            per_graph.add((seed, g, tuple(hits[0].tolist())))
    signs_by_seed = {}
    for seed, g, s in per_graph:
        signs_by_seed.setdefault(seed, set()).add(s)
    assert any(len(v) > 1 for v in signs_by_seed.values())  # graphs flip independently


def test_padded_columns_stay_zero():
    torch.manual_seed(0)
    enc = LapPEEncoder(3, 4).train()
    pe = torch.zeros(5, 3)
    pe[:, 0] = torch.randn(5)                            # columns 1, 2: zero padding
    with torch.no_grad():
        allowed = [enc.mlp(pe), enc.mlp(pe * torch.tensor([-1.0, 1.0, 1.0]))]
        for _ in range(6):
            out = enc(pe)
            assert any(torch.allclose(out, a, atol=1e-6) for a in allowed)


@pytest.mark.parametrize("hidden", [None, 8])
def test_lap_pe_encoder_compile_matches_eager(hidden):
    torch.manual_seed(0)
    enc = LapPEEncoder(4, 6, hidden=hidden).eval()
    pe = torch.randn(10, 4)
    compiled = torch.compile(enc, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(pe), enc(pe))
    enc.train()
    small = pe[:, :3]
    enc3 = LapPEEncoder(3, 6, hidden=hidden).train()
    compiled3 = torch.compile(enc3, backend="aot_eager", fullgraph=True)
    assert len(matching_signs(enc3, small, compiled3(small))) == 1
    batch = torch.tensor([0] * 5 + [1] * 5)
    out = compiled3(small, batch)
    for g in range(2):
        assert len(matching_signs(enc3, small[batch == g], out[batch == g])) == 1


def test_rwse_encoder():
    torch.manual_seed(0)
    enc = RWSEEncoder(5, 7)
    assert repr(enc) == "RWSEEncoder(5, 7)"
    rw = torch.rand(12, 5)
    out = enc(rw)
    assert out.shape == (12, 7)
    # BatchNorm in training uses batch statistics: out = W * standardised(rw) + b.
    z = (rw - rw.mean(0)) / torch.sqrt(rw.var(0, unbiased=False) + enc.norm.eps)
    torch.testing.assert_close(out, enc.lin(z), atol=1e-5, rtol=1e-5)
    enc.eval()
    torch.testing.assert_close(torch.compile(enc, backend="aot_eager", fullgraph=True)(rw),
                               enc(rw))


def test_bf16_autocast():
    torch.manual_seed(0)
    for enc, x in [(LapPEEncoder(4, 6, hidden=8), torch.randn(10, 4)),
                   (RWSEEncoder(5, 6), torch.rand(10, 5))]:
        for mode in (True, False):
            enc.train(mode)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = enc(x)
            assert out.shape == (10, 6) and torch.isfinite(out.float()).all()
            assert out.dtype == torch.bfloat16


@pytest.mark.parametrize("make", [lambda: LapPEEncoder(3, 4, hidden=5), lambda: RWSEEncoder(3, 4)])
def test_reset_parameters(make):
    enc = make()
    with torch.no_grad():
        for p in enc.parameters():
            p.fill_(0.5)
    if isinstance(enc, RWSEEncoder):
        enc(torch.rand(6, 3))                            # moves the running statistics
    torch.manual_seed(3)
    enc.reset_parameters()
    first = {k: v.clone() for k, v in enc.state_dict().items()}
    assert not all(torch.all(p == 0.5) for p in enc.parameters())
    torch.manual_seed(3)
    enc.reset_parameters()
    for k, v in enc.state_dict().items():
        assert torch.equal(v, first[k])
    if isinstance(enc, RWSEEncoder):
        assert torch.equal(enc.norm.running_mean, torch.zeros(3))
        assert torch.equal(enc.norm.running_var, torch.ones(3))


def test_bad_arguments():
    with pytest.raises(ValueError, match="k"):
        LapPEEncoder(0, 4)
    with pytest.raises(ValueError, match="out_channels"):
        LapPEEncoder(2, 0)
    with pytest.raises(ValueError, match="dropout"):
        LapPEEncoder(2, 3, dropout=1.0)
    with pytest.raises(ValueError, match="steps"):
        RWSEEncoder(0, 4)
    with pytest.raises(ValueError, match="pe"):
        LapPEEncoder(2, 3)(torch.randn(4, 3))
    with pytest.raises(ValueError, match="rw"):
        RWSEEncoder(2, 3)(torch.randn(4, 3))
