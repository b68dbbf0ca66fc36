"""gatlib's native CPU code: built with the system's C compiler at first use, loaded through
ctypes.

Three parts, all plain C99 without Python or torch headers (``gatlib_native.c``):

- ``attention.h``: the fused attention kernels of the CPU backend
  (:mod:`gatlib.ops.cpu.fused`), a few passes over the graph's CSR view per op and direction;
- ``gatv2.h``: GATv2's score ``a . LeakyReLU(W_s x_j + W_d x_i)`` and its gradients without
  the ``[E, H, C]`` activations (:mod:`gatlib.nn._fused`);
- ``csr.h``: the CSR view of an ``edge_index`` (with or without the layers' self-loops) by two
  counting sorts, O(E + N) (:mod:`gatlib.graph.csr`).

The library is compiled once per machine and source version into a cache folder
(``$GATLIB_CACHE_DIR``, else ``$XDG_CACHE_HOME/gatlib``, else ``~/.cache/gatlib``) by ``$CC``
(default ``cc``), under a temporary name and renamed, so that concurrent processes never load a
half-written file. Without a compiler, or with ``GATLIB_NATIVE=0`` in the environment, gatlib
runs on torch's kernels instead (the same answers, slower on small graphs); :func:`status` says
which and why.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Sequence

__all__ = ["available", "status", "library"]

_VERSION = 8                                   # gatlib_native_version() in gatlib_native.c
_HERE = Path(__file__).resolve().parent
_SOURCES = ("gatlib_native.c", "attention.h", "gatv2.h", "csr.h")
_FLAGS = ("-O3", "-fPIC", "-shared", "-fopenmp-simd", "-fno-math-errno", "-std=gnu99")
# Tried in order, the first that builds and loads is used: OpenMP (the process's runtime: loaded
# after torch, the library shares torch's libgomp and its thread pool) with the machine's vector
# units and glibc's vector exp/log (libmvec), then without OpenMP, without libmvec, portable.
_VARIANTS = (("-march=native", "-fopenmp", "-DGATLIB_MVEC", "-lmvec"),
             ("-march=native", "-DGATLIB_MVEC", "-lmvec"), ("-march=native",), ())

_lock = threading.Lock()
_state = {"lib": None, "reason": None, "path": None}


def _cache_dir() -> Path:
    env = os.environ.get("GATLIB_CACHE_DIR")
    if env:
        return Path(env) / "native"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gatlib" / "native"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "flags")):
                    return line
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()


def _compile(cc: str, out: Path, extra: Sequence[str]) -> None:
    cmd = [cc, *_FLAGS, "-o", str(out), str(_HERE / "gatlib_native.c"), *extra, "-lm"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {res.stderr.strip()[-400:]}")


def _folder() -> Path:
    folder = _cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        folder = Path(tempfile.gettempdir()) / f"gatlib-native-{os.getuid()}"
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def _build(cc: str, path: Path, extra: Sequence[str]) -> None:
    """Compile one variant to ``path``, under a temporary name renamed when done: concurrent
    processes never load a half-written library (the rename is atomic; the last one wins with
    identical bytes)."""
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=path.parent)
    os.close(fd)
    try:
        _compile(cc, Path(tmp), extra)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _open():
    """The first variant that builds (or is cached) and loads, and its path. A variant that
    failed leaves a ``.failed`` note beside its name, so later processes skip it at once."""
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        raise RuntimeError(f"no C compiler ({cc!r} not found; set CC or install one)")
    text = b"".join((_HERE / name).read_bytes() for name in _SOURCES)
    folder = _folder()
    errors = []
    for extra in _VARIANTS:
        key = hashlib.sha256(text + repr((_FLAGS, extra, cc, _cpu_model(),
                                          sys.platform)).encode()).hexdigest()[:16]
        path = folder / f"libgatlib_native-{key}.so"
        failed = path.with_name(path.name + ".failed")
        if failed.exists():
            errors.append(failed.read_text().strip())
            continue
        try:
            if not path.exists():
                _build(cc, path, extra)
            return ctypes.CDLL(str(path)), path
        except subprocess.TimeoutExpired as exc:      # a busy machine: try again next time
            errors.append(f"{' '.join(extra) or 'portable'}: {exc}")
        except (RuntimeError, OSError) as exc:
            errors.append(f"{' '.join(extra) or 'portable'}: {exc}")
            try:
                failed.write_text(errors[-1] + "\n")
            except OSError:
                pass
    raise RuntimeError("no variant built and loaded: " + "; ".join(errors)[-600:])


def _declare(lib) -> None:
    i64, ptr, i32 = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int
    build = lib.gatlib_build_csr
    build.argtypes = [ptr, ptr, i64, i64, i64, i32, i64] + [ptr] * 9
    build.restype = i64
    for suffix, real in (("_f32", ctypes.c_float), ("_f64", ctypes.c_double)):
        fwd = getattr(lib, "attention_forward" + suffix)
        fwd.argtypes = [i32, i64, i64, i64, i64, ptr, ptr, ptr, ptr, ptr, ptr, ptr, ptr, real,
                        real, ptr, ptr, ptr, ptr, i32, i64]
        fwd.restype = i32
        bwd = getattr(lib, "attention_backward" + suffix)
        bwd.argtypes = [i32, i64, i64, i64, i64, i64, ptr, ptr, ptr, ptr, ptr, ptr, ptr, ptr,
                        ptr, ptr, ptr, real, real, ptr, ptr, ptr, ptr, ptr, ptr, ptr, ptr, i64,
                        i32, i64]
        bwd.restype = i32
        v2 = getattr(lib, "gatv2_score_forward" + suffix)
        v2.argtypes = [i64, i64, i64, ptr, ptr, ptr, ptr, ptr, ptr, ptr, real, ptr]
        v2.restype = None
        v2t = getattr(lib, "gatv2_score_backward_targets" + suffix)
        v2t.argtypes = [i64, i64, i64, ptr, ptr, ptr, ptr, ptr, ptr, ptr, real, ptr, ptr, ptr,
                        ptr]
        v2t.restype = None
        v2s = getattr(lib, "gatv2_score_backward_sources" + suffix)
        v2s.argtypes = [i64, i64, i64, ptr, ptr, ptr, ptr, ptr, ptr, ptr, ptr, real, ptr, ptr]
        v2s.restype = None


def _load():
    if os.environ.get("GATLIB_NATIVE", "1").strip() == "0":
        raise RuntimeError("disabled by GATLIB_NATIVE=0")
    if sys.platform == "win32":
        raise RuntimeError("not built on Windows")
    lib, path = _open()
    if lib.gatlib_native_version() != _VERSION:
        raise RuntimeError(f"{path} has ABI version {lib.gatlib_native_version()}, "
                           f"expected {_VERSION}")
    _declare(lib)
    _state["path"] = str(path)
    return lib


def library():
    """The loaded library (ctypes), building it on the first call; None where it cannot be
    built or is switched off (see :func:`status`)."""
    if _state["lib"] is None and _state["reason"] is None:
        with _lock:
            if _state["lib"] is None and _state["reason"] is None:
                try:
                    _state["lib"] = _load()
                except Exception as exc:          # no compiler, no cache folder, ...: torch path
                    _state["reason"] = f"{type(exc).__name__}: {exc}"
    return _state["lib"]


def available() -> bool:
    """Whether the native library is built and loaded (building it on the first call)."""
    return library() is not None


def status() -> str:
    """One line: where the native library was loaded from, or why gatlib runs on torch's
    kernels instead."""
    if available():
        return f"native CPU kernels loaded from {_state['path']}"
    return f"native CPU kernels not used ({_state['reason']}); gatlib uses torch's kernels"


def _reset() -> None:
    """Forget the loaded library and the reason (tests: rebuild under another environment)."""
    with _lock:
        _state.update(lib=None, reason=None, path=None)


