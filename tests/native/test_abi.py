"""One table for the native ABI (gatlib.native.abi): the C prototypes, score kinds and status
codes parsed from the sources agree with it, so a mismatch fails here instead of corrupting
memory; and every call checks the tensors it hands to C."""
import re
from pathlib import Path

import pytest
import torch

from gatlib import native
from gatlib.native import abi

SOURCES = [Path(native.__file__).parent / n for n in native._SOURCES]
TEXT = "\n".join(p.read_text() for p in SOURCES)
# A C type as the table writes it.
_TYPES = {"int": "int", "int64_t": "int64", "REAL": "real", "uint8_t": "uint8"}


def _param(text: str):
    """``const int64_t *restrict rowptr`` -> ``("rowptr", "int64*")``."""
    pointer = "*" in text
    words = [w for w in re.findall(r"\w+", text) if w not in ("const", "restrict")]
    base, name = words[0], words[-1]
    return name, _TYPES[base] + ("*" if pointer else "")


def c_prototypes():
    """``{name: (return type, per real type, ((arg, type), ...))}`` of every exported function
    (non-static, at the start of a line) of the sources."""
    out = {}
    pattern = re.compile(r"^(int|int64_t|void)\s+(?:FN\((\w+)\)|(\w+))\s*\(([^)]*)\)\s*\{",
                         re.MULTILINE)
    for ret, fn_name, plain_name, params in pattern.findall(TEXT):
        params = " ".join(params.split())
        args = () if params in ("", "void") else tuple(_param(p) for p in params.split(","))
        out[fn_name or plain_name] = (_TYPES.get(ret, ret), bool(fn_name), args)
    return out


def test_the_table_is_the_c_prototypes():
    c = c_prototypes()
    table = {name: (ret, per_real, tuple((a.name, a.type) for a in args))
             for name, (ret, per_real, args) in abi.FUNCTIONS.items()}
    assert set(c) == set(table)
    for name in c:
        assert c[name] == table[name], name


def test_the_parser_sees_a_mismatch():
    """The comparison above can fail: a swapped pair of arguments is found."""
    ret, per_real, args = c_prototypes()["attention_forward"]
    swapped = args[:1] + (args[2], args[1]) + args[3:]
    assert swapped != tuple((a.name, a.type) for a in abi.FUNCTIONS["attention_forward"][2])


def test_one_score_kind_enum_and_status_codes():
    kinds = {m.group(1): int(m.group(2))
             for m in re.finditer(r"KIND_(\w+) = (\d+)", TEXT)}
    assert kinds == {k.name: int(k) for k in abi.ScoreKind}
    codes = {int(m.group(2)): m.group(1) for m in re.finditer(r"GATLIB_(\w+) = (-?\d+)", TEXT)}
    names = {0: "OK", -1: "NO_MEMORY"}
    assert codes == {s: names.get(s, "BAD_" + w.upper()) for s, w in abi.STATUS.items()}
    version = re.search(r"gatlib_native_version\(void\) \{ return (\d+); \}", TEXT)
    assert int(version.group(1)) == native._VERSION


def test_triton_and_the_cpu_backend_use_the_enum():
    from gatlib.ops.cpu import fused
    assert fused.ScoreKind is abi.ScoreKind
    triton_fwd = pytest.importorskip("gatlib.ops.triton.attention_fwd")
    assert (triton_fwd.GAT, triton_fwd.DOT) == (abi.ScoreKind.GAT, abi.ScoreKind.DOT)


@pytest.mark.skipif(not native.available(), reason=native.status())
def test_every_tensor_is_checked_at_the_boundary():
    lib = native.library()
    ok = dict(src=torch.zeros(3, dtype=torch.long), dst=torch.zeros(3, dtype=torch.long), E=3,
              S=2, T=2, loops=0, L=0, rowptr=torch.empty(3, dtype=torch.long),
              rowptr_t=torch.empty(3, dtype=torch.long), keep=torch.empty(3, dtype=torch.long),
              cnt=torch.empty(6, dtype=torch.long), nthreads=1,
              pairs=torch.empty(6, dtype=torch.long),
              **{k: torch.empty(3, dtype=torch.long)
                 for k in ("col", "row", "perm", "col_t", "perm_t")})
    assert abi.call(lib, "gatlib_build_csr", **ok) == 3
    bad = {"src": torch.zeros(3, dtype=torch.int32),                 # dtype
           "dst": torch.zeros(6, dtype=torch.long)[::2],              # not contiguous
           "rowptr": torch.empty(2, dtype=torch.long),                # length
           "col": torch.empty(3, dtype=torch.long, device="meta"),    # device
           "keep": None}                                              # required
    for name, value in bad.items():
        with pytest.raises(TypeError, match=f"argument {name} "):
            abi.call(lib, "gatlib_build_csr", **{**ok, name: value})
