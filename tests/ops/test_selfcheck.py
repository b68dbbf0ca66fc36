"""The self-check that a backend's kernels pass before automatic choice trusts them
(``gatlib.ops.selfcheck``): the real Triton kernels pass it (under Triton's interpreter on the
CPU, natively on a GPU), deliberately broken kernel tables fail it with the comparison that
caught them, dispatch then falls back to the next backend with one warning, verdicts are cached
only in private folders, a forced backend is never checked, the check never runs while
torch.compile traces, and ``backend_report`` / ``gatlib doctor`` say what runs where and why.

The dispatch tests use a probe backend on the CPU (first in the search order, the CPU
backend's calls, a self-check over a given table): the mechanism the Triton backend uses on
CUDA, where it is chosen automatically.
"""
import json
import math
import os
import stat

import pytest
import torch

from gatlib._private import private_folder
from gatlib.cli import main as cli_main
from gatlib.ops import BackendError, backend_report, dispatch, gat_attention, reference
from gatlib.ops import select, self_check, use_backend
from gatlib.ops.backend import FLOATS, Backend, Kernels
from gatlib.ops.cpu import KERNELS as CPU_KERNELS
from gatlib.ops.dispatch import get_backend, register_backend
from gatlib.ops.selfcheck import (FAMILIES, NOT_WHILE_TRACING, SelfCheck, builtin_graph,
                                  check_family)

CPU = torch.device("cpu")


def _interpreted() -> bool:
    try:
        from gatlib.ops.triton import kernels
    except ImportError:
        return False
    return kernels.interpreted()


needs_triton = pytest.mark.skipif(not (_interpreted() or torch.cuda.is_available()),
                                  reason="Triton needs a CUDA device or TRITON_INTERPRET=1")
TRITON_DEVICE = "cpu" if _interpreted() else "cuda"


# ------------------------------------------------------------------ broken kernel tables

def _scaled_forward(k: Kernels, factor: float) -> Kernels:
    def forward(*args):
        res = k.forward(*args)
        if isinstance(res, torch.Tensor):                      # segment softmax
            return res * factor
        out, lse, alpha = res
        return out * factor, lse, alpha
    return Kernels(forward, k.backward)


def _nan_on_empty_rows(k: Kernels) -> Kernels:
    """Right everywhere but on targets without in-edges, where it writes NaN."""
    def forward(*args):
        out, lse, alpha = k.forward(*args)
        empty = torch.isneginf(lse).t()                         # [T, H]
        return out.masked_fill(empty.unsqueeze(-1), math.nan), lse, alpha
    return Kernels(forward, k.backward)


def _zero_grad(k: Kernels, which: int) -> Kernels:
    def backward(*args):
        grads = list(k.backward(*args))
        grads[which] = torch.zeros_like(grads[which])
        return tuple(grads)
    return Kernels(k.forward, backward)


def _mask_ignored_in_backward(k: Kernels) -> Kernels:
    """Right without dropout; with a dropout mask, the backward forgets it."""
    def backward(grad_out, grad_alpha, a_src, a_dst, v, lse, graph, term, mask, slope, p):
        return k.backward(grad_out, grad_alpha, a_src, a_dst, v, lse, graph, term, None,
                          slope, 0.0)
    return Kernels(k.forward, backward)


def _raises(k: Kernels) -> Kernels:
    def forward(*args):
        raise RuntimeError("PassManager::run failed (a compile error, as Triton reports one)")
    return Kernels(forward, k.backward)


BREAKAGES = {
    # name: (op, how, the comparison that must catch it)
    "forward 0.1% off": ("gat_attention", lambda k: _scaled_forward(k, 1.001),
                         "forward out [-inf terms, weights returned]"),
    "NaN on empty rows": ("sparse_attention", _nan_on_empty_rows,
                          "forward out [-inf terms, weights returned]"),
    "zero gradient of v": ("attend", lambda k: _zero_grad(k, 1),
                           "backward grad of v [-inf terms, weights returned]"),
    "dropout mask ignored by the backward": ("gat_attention", _mask_ignored_in_backward,
                                             "backward grad of a_src [dropout mask]"),
    "softmax 1% off": ("segment_softmax", lambda k: _scaled_forward(k, 1.01), "forward out"),
    "compile error": ("sparse_attention", _raises,
                      "compile or launch [-inf terms, weights returned]"),
}


def broken(table, name):
    op, how, _ = BREAKAGES[name]
    return dict(table, **{op: how(table[op])})


# ------------------------------------------------------------------------- the Triton table

def _triton():
    import gatlib.ops.triton as tr
    return tr


@needs_triton
@pytest.mark.parametrize("op,dtype", [(op, torch.float32) for op in FAMILIES]
                         + [("gat_attention", torch.bfloat16), ("sparse_attention", torch.float64)])
def test_triton_kernels_pass_their_check(op, dtype):
    tr = _triton()
    v = check_family(op, tr.table.KERNELS, TRITON_DEVICE, dtype, tr._check_graph_args)
    assert v.passed, v.reason
    assert v.reason == "" and v.check == ""
    # Forward and backward were compared, each input's gradient in each case included.
    assert any(k.startswith("forward out") for k in v.errors)
    grads = {"gat_attention": 7, "sparse_attention": 7, "attend": 4, "segment_softmax": 1}
    assert sum(k.startswith("backward") for k in v.errors) == grads[op]
    assert all(e < 1e-2 for e in v.errors.values())


@needs_triton
@pytest.mark.parametrize("name", list(BREAKAGES))
def test_broken_triton_table_is_caught(name):
    tr = _triton()
    op, _, caught_by = BREAKAGES[name]
    v = check_family(op, broken(tr.table.KERNELS, name), TRITON_DEVICE, torch.float32,
                     tr._check_graph_args)
    assert not v.passed
    assert v.check == caught_by, v
    assert v.reason.startswith(f"self-check failed: {caught_by}: ")


@needs_triton
def test_the_check_takes_the_split_path():
    """The built-in graph's hubs are longer than the check's row split on both sides, so the
    split-and-merge kernels are checked too; it has an empty row and an isolated node."""
    tr = _triton()
    from gatlib.graph import to_csr
    ei, N, masked = builtin_graph("cpu")
    csr = to_csr(ei, N)
    deg_in = csr.rowptr[1:] - csr.rowptr[:-1]
    deg_out = csr.rowptr_t[1:] - csr.rowptr_t[:-1]
    assert deg_in.max() > tr.CHECK_SPLIT and deg_out.max() > tr.CHECK_SPLIT
    assert (deg_in == 0).sum() >= 2 and deg_in[9] == 0 and deg_out[9] == 0
    assert masked.any() and bool(masked[ei[1] == 2].all())
    pairs = list(map(tuple, ei.t().tolist()))
    assert len(set(pairs)) < len(pairs) and any(s == d for s, d in pairs)


@needs_triton
def test_triton_backend_checks_and_caches_on_first_use(monkeypatch, tmp_path):
    """The real backend: its self-check writes a 0600 verdict into a 0700 folder beside
    Triton's cache ($TRITON_CACHE_DIR), keyed by device model, versions, dtype and family."""
    tr = _triton()
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "triton" / "cache"))
    check = tr.SELF_CHECK
    assert get_backend("triton").self_check is check
    monkeypatch.setattr(check, "_memo", {})
    device = torch.device(TRITON_DEVICE)
    assert check("segment_softmax", device, torch.float32) == ""
    folder = tmp_path / "triton" / "gatlib-selfcheck"
    assert tr.verdict_folder() == folder
    (path,) = folder.iterdir()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    key = data["key"]
    import triton
    assert key["triton"] == triton.__version__ and key["family"] == "segment_softmax"
    assert key["dtype"] == "float32" and key["kernels"] and key["gatlib"]
    assert data["verdict"]["passed"] is True


# --------------------------------------------------------------------- the probe backend

@pytest.fixture
def backends():
    """Restore the registered backends and the warnings already given after the test."""
    saved, warned = dict(dispatch._BACKENDS), set(dispatch._WARNED)
    yield
    dispatch._BACKENDS.clear()
    dispatch._BACKENDS.update(saved)
    dispatch._WARNED.clear()
    dispatch._WARNED.update(warned)


def probe(table, folder, name="probe"):
    """A backend first in the search order on the CPU: the CPU backend's calls, with a
    self-check over ``table``; its verdicts in ``folder()``."""
    check = SelfCheck(name, table, folder=folder)
    b = Backend(name, frozenset({"cpu"}), FLOATS, calls=dict(get_backend("cpu").calls),
                graph_args=get_backend("cpu").graph_args, self_check=check)
    register_backend(b, first=True)
    return check


def _verdicts(tmp_path, name="verdicts"):
    return lambda: private_folder(name, root=tmp_path)


def _gat_inputs():
    g = torch.Generator().manual_seed(0)
    ei = torch.tensor([[0, 1, 2, 2, 3], [1, 2, 0, 0, 0]])
    return (torch.randn(4, 2, generator=g), torch.randn(4, 2, generator=g),
            torch.randn(4, 2, 3, generator=g), ei)


def test_broken_table_falls_back_with_one_warning(backends, tmp_path, recwarn):
    check = probe(broken(CPU_KERNELS, "forward 0.1% off"), _verdicts(tmp_path))
    assert select("sparse_attention", CPU, torch.float32) == "probe"      # its family passed
    assert check.runs == 1
    assert select("gat_attention", CPU, torch.float32) == "cpu"           # this one failed
    gat_attention(*_gat_inputs())
    assert select("gat_attention", CPU, torch.float32) == "cpu"
    assert check.runs == 2                                   # each family checked once
    lines = [str(w.message) for w in recwarn if "failed their self-check" in str(w.message)]
    assert len(lines) == 1 and "\n" not in lines[0]
    line = lines[0]
    assert "probe kernels of gat_attention" in line and "gatlib doctor" in line
    assert "forward out [-inf terms, weights returned]" in line
    assert "runs gat_attention on the cpu backend" in line
    # Another dtype is another verdict (checked, failed, warned once more).
    assert select("gat_attention", CPU, torch.float64) == "cpu"
    assert len([w for w in recwarn if "failed their self-check" in str(w.message)]) == 2
    # The fallback's answer is the reference's.
    out = gat_attention(*_gat_inputs())
    torch.testing.assert_close(out, reference.gat_attention_ref(*_gat_inputs())[0])


def test_verdicts_are_cached_in_a_private_folder(backends, tmp_path):
    check = probe(dict(CPU_KERNELS), _verdicts(tmp_path))
    assert select("gat_attention", CPU, torch.float32) == "probe"
    folder = tmp_path / "verdicts"
    (path,) = folder.iterdir()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["verdict"]["passed"] is True
    assert check.runs == 1
    # A new process (a fresh check) reads the verdict and runs nothing: its table would fail.
    again = probe(broken(CPU_KERNELS, "forward 0.1% off"), _verdicts(tmp_path))
    assert select("gat_attention", CPU, torch.float32) == "probe"
    assert again.runs == 0
    assert again.known("gat_attention", CPU, torch.float32).source == str(path)
    # A verdict of another key (another dtype) is not taken for this one.
    with pytest.warns(RuntimeWarning, match="failed their self-check"):
        assert select("gat_attention", CPU, torch.float64) == "cpu"
    assert again.runs == 1


def test_verdicts_others_can_write_are_ignored(backends, tmp_path):
    """A planted 'passed' verdict for a broken table: in a group-writable folder it is never
    read (the folder is refused, a private temporary one used); as a group-writable file in
    a private folder it is ignored and replaced. Both times the check runs and fails."""
    good = SelfCheck("probe", dict(CPU_KERNELS), folder=_verdicts(tmp_path, "planted"))
    assert good("gat_attention", CPU, torch.float32) == ""
    (path,) = (tmp_path / "planted").iterdir()
    os.chmod(tmp_path / "planted", 0o770)                       # group-writable folder
    with pytest.warns(RuntimeWarning, match="cache folder refused"):
        check = probe(broken(CPU_KERNELS, "forward 0.1% off"),
                      _verdicts(tmp_path, "planted"), name="probe")
        with pytest.warns(RuntimeWarning, match="failed their self-check"):
            assert select("gat_attention", CPU, torch.float32) == "cpu"
    assert check.runs == 1 and path.exists()
    assert check.known("gat_attention", CPU, torch.float32).source == "checked now"

    os.chmod(tmp_path / "planted", 0o700)
    os.chmod(path, 0o666)                                       # group-writable file
    check = SelfCheck("probe", broken(CPU_KERNELS, "forward 0.1% off"),
                      folder=_verdicts(tmp_path, "planted"))
    assert check("gat_attention", CPU, torch.float32).startswith("self-check failed")
    assert check.runs == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600           # replaced by the new verdict
    assert json.loads(path.read_text())["verdict"]["passed"] is False


def test_forced_backend_is_not_checked(backends, tmp_path, monkeypatch):
    check = probe(broken(CPU_KERNELS, "forward 0.1% off"), _verdicts(tmp_path))
    monkeypatch.setenv("GATLIB_BACKEND", "probe")
    assert select("gat_attention", CPU, torch.float32) == "probe"
    monkeypatch.delenv("GATLIB_BACKEND")
    with use_backend("probe"):
        assert select("gat_attention", CPU, torch.float32) == "probe"
    assert check.runs == 0
    with pytest.warns(RuntimeWarning, match="failed their self-check"):
        assert select("gat_attention", CPU, torch.float32) == "cpu"
    assert check.runs == 1


def test_no_backend_fits_lists_every_reason(backends, tmp_path):
    probe(broken(CPU_KERNELS, "compile error"), _verdicts(tmp_path))
    del dispatch._BACKENDS["reference"]
    with pytest.raises(BackendError) as info:
        select("sparse_attention", torch.device("meta"), torch.float32)
    text = str(info.value)
    assert "no gatlib backend can run sparse_attention on meta" in text
    assert "probe: it runs on ['cpu'], the inputs are on meta" in text
    assert "cpu: it runs on ['cpu'], the inputs are on meta" in text
    assert "triton: " in text
    del dispatch._BACKENDS["cpu"]                # the probe's self-check is the last reason
    with pytest.raises(BackendError, match="probe: self-check failed: compile or launch "
                                           r"\[-inf terms, weights returned\]: "
                                           "RuntimeError: PassManager::run failed"):
        select("sparse_attention", CPU, torch.float32)


def test_the_check_runs_in_eager_mode_whatever_the_callers_context(backends, tmp_path):
    check = probe(dict(CPU_KERNELS), _verdicts(tmp_path))
    with torch.inference_mode():
        out = gat_attention(*_gat_inputs())
    with torch.no_grad():
        assert select("sparse_attention", CPU, torch.float32) == "probe"
    assert check.runs == 2
    torch.testing.assert_close(out, reference.gat_attention_ref(*_gat_inputs())[0])
    # The caller's deterministic mode is set aside during the check and restored after it.
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        assert select("attend", CPU, torch.float32) == "probe" and check.runs == 3
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.use_deterministic_algorithms(was)


def test_never_checked_while_torch_compile_traces(backends, tmp_path):
    check = probe(dict(CPU_KERNELS), _verdicts(tmp_path))
    a_src, a_dst, v, ei = _gat_inputs()
    compiled = torch.compile(lambda a, b, c: gat_attention(a, b, c, ei), backend="eager",
                             fullgraph=True)
    out = compiled(a_src, a_dst, v)                 # traced: no check ran, the probe passed
    assert check.runs == 0                          # over for the next backend (no break)
    assert check("gat_attention", CPU, torch.float32) == ""       # eager: the check runs
    assert check.runs == 1
    torch.testing.assert_close(out, reference.gat_attention_ref(a_src, a_dst, v, ei)[0])
    assert NOT_WHILE_TRACING.startswith("not self-checked yet")


def test_self_check_runs_what_automatic_choice_would(backends, tmp_path):
    check = probe(broken(CPU_KERNELS, "softmax 1% off"), _verdicts(tmp_path))
    res = self_check(CPU, dtypes=(torch.float32,))
    assert check.runs == len(FAMILIES)
    assert res[("probe", "gat_attention", torch.float32)] == ""
    assert res[("probe", "segment_softmax", torch.float32)].startswith(
        "self-check failed: forward out")
    assert not any(name == "triton" for name, _, _ in res)       # not chosen on the CPU


# ------------------------------------------------------------------------ report and CLI

def test_backend_report_says_what_runs_where_and_why(backends, tmp_path):
    probe(broken(CPU_KERNELS, "NaN on empty rows"), _verdicts(tmp_path))
    text = backend_report(CPU, dtypes=(torch.float32,), file=None)
    rows = {ln.split()[0]: ln for ln in text.splitlines() if ln.split()
            and ln.split()[0] in FAMILIES}
    assert rows["sparse_attention"].split()[2] == "cpu"
    assert rows["gat_attention"].split()[2] == "probe"
    assert "self-check passed (checked now" in rows["gat_attention"]
    assert "not probe [" in rows["sparse_attention"]
    notes = [ln for ln in text.splitlines() if ln.startswith("[")]
    assert any("self-check failed: forward out [-inf terms, weights returned]: scaled error"
               in ln for ln in notes)
    assert any("on cpu it runs only when forced" in ln for ln in notes)     # triton's reason
    assert "native CPU library:" in text and "probe" in text.splitlines()[3]
    # check=False runs nothing new and says so.
    other = probe(dict(CPU_KERNELS), _verdicts(tmp_path, "other"), name="other")
    text = backend_report(CPU, dtypes=(torch.float64,), check=False, file=None)
    assert other.runs == 0 and "self-check pending (runs on first use)" in text


def test_doctor_exit_status(backends, tmp_path, capsys):
    assert cli_main(["doctor", "--device", "cpu", "--dtypes", "float32"]) == 0
    out = capsys.readouterr().out
    assert "gat_attention     float32   cpu" in out
    probe(broken(CPU_KERNELS, "zero gradient of v"), _verdicts(tmp_path))
    assert cli_main(["doctor", "--device", "cpu", "--dtypes", "float32"]) == 1
    captured = capsys.readouterr()
    assert "1 self-check(s) failed" in captured.err
    assert "backward grad of v" in captured.out
    assert cli_main(["doctor", "--dtypes", "float8"]) == 2
    assert "--dtypes must be" in capsys.readouterr().err
