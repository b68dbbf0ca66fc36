"""gatlib's native CPU code: built with the system's C compiler at first use, loaded through
ctypes.

Three parts, all plain C99 without Python or torch headers (``gatlib_native.c``):

- ``attention.h``: the fused attention kernels of the CPU backend
  (:mod:`gatlib.ops.cpu.fused`), a few passes over the graph's CSR view per op and direction;
- ``gatv2.h``: GATv2's score ``a . LeakyReLU(W_s x_j + W_d x_i)`` and its gradients without
  the ``[E, H, C]`` activations (:mod:`gatlib.ops.cpu.gatv2`);
- ``csr.h``: the CSR view of an ``edge_index`` (with or without the layers' self-loops) by two
  counting sorts, O(E + N) (:mod:`gatlib.graph.csr`);
- ``sample.h``: a hop of neighbour sampling with the sources relabelled in the same pass
  (:mod:`gatlib.loader.sampler`);
- ``dropout.h``: dropout's keep masks and factors from a counter-based random stream
  (:mod:`gatlib.ops.dropout`).

Every function is declared once, in :mod:`gatlib.native.abi`, and called through
:func:`gatlib.native.abi.call`, which checks each tensor it hands to C; the C code checks every
index it reads and returns an error (a ValueError naming the array) instead of reading out of
bounds.

**Where and how it is built.** Once per machine, source and compiler into the private cache
folder ``native/`` of :func:`gatlib._private.cache_root` (``$GATLIB_CACHE_DIR``, else
``$XDG_CACHE_HOME/gatlib``, else ``~/.cache/gatlib``), created 0700. Before a library is
loaded, the folder and the file must be owned by the current user and not writable by group or
others; a folder that fails is refused with one warning and a private ``mkdtemp`` folder is used
for the process. The file name is a hash of the sources, the flags, the compiler (``$CC``,
default ``cc``, which may carry arguments, e.g. ``ccache gcc``; its resolved path and its
``--version`` line), the C library's version and the CPU's feature flags, so a cache shared
between machines never loads a library built for other vector units. The build targets the
machine's own CPU (``-march=native``); ``$GATLIB_NATIVE_MARCH`` names another target (e.g.
``haswell``: AVX2 without AVX-512). Processes that build the
same library take turns on a file lock; a compile is stopped after ``$GATLIB_NATIVE_TIMEOUT``
seconds (default 300). A variant that fails leaves a ``.failed`` note naming the compiler,
which expires after an hour (:data:`FAILED_TTL_S`).

Without a compiler, or with ``GATLIB_NATIVE`` set to ``0``, ``false``, ``off`` or ``no``,
gatlib runs on torch's kernels instead (the same answers, slower on small graphs);
:func:`status` says which and why, in one line.
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from .. import _private
from . import abi

__all__ = ["available", "status", "library"]

_VERSION = 11                                  # gatlib_native_version() in gatlib_native.c
_HERE = Path(__file__).resolve().parent
_SOURCES = ("gatlib_native.c", "attention.h", "gatv2.h", "csr.h", "sample.h", "dropout.h")
# -fno-trapping-math: no code here reads the floating-point exception flags, and without it gcc
# vectorises no loop with a select on a float compare (x > 0 ? x : slope * x) unless the target
# has AVX-512's masks: an AVX2 build ran those per-head loops scalar, branching on every score.
_FLAGS = ("-O3", "-fPIC", "-shared", "-fopenmp-simd", "-fno-math-errno", "-fno-trapping-math",
          "-std=gnu99")
# Tried in order, the first that builds and loads is used: OpenMP (the process's runtime: loaded
# after torch, the library shares torch's libgomp and its thread pool) with the machine's vector
# units and glibc's vector exp/log (libmvec), then without OpenMP, without libmvec, portable.
# "-march=native" is "-march=$GATLIB_NATIVE_MARCH" when that is set (e.g. "haswell" for AVX2
# without AVX-512, or "x86-64-v3": a library for a fleet of machines, or a narrower build timed
# on a wider CPU).
_VARIANTS = (("-march=native", "-fopenmp", "-DGATLIB_MVEC", "-lmvec"),
             ("-march=native", "-DGATLIB_MVEC", "-lmvec"), ("-march=native",), ())
# A failed variant's note is believed this long, then the variant is tried again (a compiler
# killed for memory while several processes built at once should not cost the machine its
# fastest variant for good).
FAILED_TTL_S = 3600.0
_OFF = ("0", "false", "off", "no")

_lock = threading.Lock()
_state = {"lib": None, "reason": None, "path": None, "variant": None, "skipped": ()}


def _variants() -> Tuple[Tuple[str, ...], ...]:
    """The build variants, in order, with ``$GATLIB_NATIVE_MARCH`` (checked) as the target."""
    raw = os.environ.get("GATLIB_NATIVE_MARCH", "").strip()
    if not raw:
        return _VARIANTS
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}", raw):
        raise RuntimeError(f"GATLIB_NATIVE_MARCH={raw!r} is not a CPU name for -march (letters, "
                           f"digits and . _ + -, e.g. haswell, x86-64-v3, native)")
    return tuple(tuple(f"-march={raw}" if f == "-march=native" else f for f in v)
                 for v in _VARIANTS)


def _timeout() -> float:
    raw = os.environ.get("GATLIB_NATIVE_TIMEOUT", "300")
    try:
        value = float(raw)
    except ValueError:
        raise RuntimeError(f"GATLIB_NATIVE_TIMEOUT={raw!r} is not a number of seconds")
    if not value > 0:
        raise RuntimeError(f"GATLIB_NATIVE_TIMEOUT={raw!r} must be > 0 seconds")
    return value


def _compiler() -> Tuple[List[str], str]:
    """``$CC`` split as a shell would (``ccache gcc`` works) with its program resolved, and the
    compiler's identity: the resolved path and the first line of ``--version``."""
    raw = os.environ.get("CC", "").strip() or "cc"
    try:
        cmd = shlex.split(raw)
    except ValueError as exc:
        raise RuntimeError(f"CC={raw!r} cannot be parsed ({exc})")
    found = shutil.which(cmd[0])
    if found is None:
        raise RuntimeError(f"no C compiler ({cmd[0]!r} not found; set CC or install one)")
    cmd[0] = os.path.realpath(found)
    try:
        res = subprocess.run(cmd + ["--version"], capture_output=True, text=True, timeout=60)
        version = (res.stdout or res.stderr).strip().splitlines()[0] if res.returncode == 0 \
            else f"--version failed ({res.returncode})"
    except (OSError, subprocess.TimeoutExpired, IndexError) as exc:
        version = f"--version failed ({type(exc).__name__})"
    return cmd, f"{' '.join(cmd)} [{version}]"


def _libc() -> str:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (AttributeError, ValueError, OSError):
        return " ".join(platform.libc_ver())


def _cpu_features() -> str:
    """The CPU's feature flags (what ``-march=native`` chooses by), sorted, with the model."""
    lines = []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key = line.split(":", 1)[0].strip()
                if key in ("flags", "Features", "model name", "vendor_id", "CPU implementer",
                           "CPU part", "isa"):
                    lines.append(key + ":" + " ".join(sorted(line.split(":", 1)[1].split())))
                if key in ("flags", "Features") and lines:
                    break                       # the first processor describes them all
    except OSError:
        pass
    return "\n".join(lines) or f"{platform.machine()} {platform.processor()}"


def _key(text: bytes, extra: Sequence[str], identity: str, machine: str) -> str:
    ident = repr((_FLAGS, tuple(extra), identity, _libc(), machine, sys.platform,
                  platform.machine()))
    return hashlib.sha256(text + ident.encode()).hexdigest()[:20]


def _compile(cc: List[str], out: Path, extra: Sequence[str], timeout: float) -> None:
    cmd = [*cc, *_FLAGS, "-o", str(out), str(_HERE / "gatlib_native.c"), *extra, "-lm"]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TimeoutError(f"the compiler ran past {timeout:g} s (GATLIB_NATIVE_TIMEOUT) and was "
                           f"stopped")
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {res.stderr.strip()[-400:]}")


def _build(cc: List[str], path: Path, extra: Sequence[str], timeout: float) -> None:
    """Compile one variant to ``path``, under a temporary name renamed when done: concurrent
    processes never load a half-written library. The file is made 0700 (the compiler creates
    it with the umask)."""
    fd, tmp = tempfile.mkstemp(suffix=".so.tmp", dir=path.parent)
    os.close(fd)
    try:
        _compile(cc, Path(tmp), extra, timeout)
        os.chmod(tmp, 0o700)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class _Busy(RuntimeError):
    """Another process held the build lock too long (nothing is noted against the variant)."""


class _BuildLock:
    """An exclusive ``fcntl.flock`` on ``<folder>/build.lock`` between processes building into
    the folder, waited for up to ``wait_s`` seconds (then RuntimeError)."""

    def __init__(self, folder: Path, wait_s: float):
        self.path, self.wait_s, self.fd = folder / "build.lock", wait_s, None

    def __enter__(self):
        import fcntl
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except OSError:
                if time.monotonic() > deadline:
                    os.close(self.fd)
                    raise _Busy(f"waited {self.wait_s:g} s for another process building the "
                                f"native library (lock {self.path})")
                time.sleep(0.2)

    def __exit__(self, *exc):
        os.close(self.fd)                         # closing the descriptor drops the lock


def _note(failed: Path) -> Optional[str]:
    """The error a fresh ``.failed`` note records, or None when there is none (or it expired, or
    cannot be read: the variant is tried again)."""
    if not _private.trusted_file(failed):
        return None
    try:
        note = json.loads(failed.read_text())
        if time.time() - float(note["time"]) < FAILED_TTL_S:
            return str(note["error"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _write_note(failed: Path, error: str, identity: str) -> None:
    try:
        failed.write_text(json.dumps({"time": time.time(), "compiler": identity,
                                      "error": error}) + "\n")
    except OSError:
        pass


def _trusted_folder() -> Path:
    return _private.private_folder("native")


def _open():
    """The first variant that builds (or is cached) and loads, its path and what was skipped. A
    variant that failed leaves a ``.failed`` note beside its name (with the compiler's identity;
    believed for :data:`FAILED_TTL_S`), so later processes skip it at once."""
    cc, identity = _compiler()
    timeout = _timeout()
    text = b"".join((_HERE / name).read_bytes() for name in _SOURCES)
    machine = _cpu_features()
    folder = _trusted_folder()
    errors: List[str] = []
    variants = _variants()
    for extra in variants:
        label = " ".join(extra) or "portable"
        path = folder / f"libgatlib_native-{_key(text, extra, identity, machine)}.so"
        failed = path.with_name(path.name + ".failed")
        note = _note(failed)
        if note is not None:
            errors.append(f"{label}: {note} (noted earlier)")
            continue
        try:
            if not _private.trusted_file(path):
                if path.exists():            # planted, or left with a loose mode: not loaded
                    folder = _private.fallback_folder(
                        "native", _private.unsafe_reason(path) or f"{path} is not trusted")
                    path = folder / path.name
                    failed = path.with_name(path.name + ".failed")
                with _BuildLock(folder, wait_s=timeout * len(variants)):
                    if not path.exists():
                        _build(cc, path, extra, timeout)
            return ctypes.CDLL(str(path)), path, label, tuple(errors)
        except TimeoutError as exc:              # a hung compiler: noted, and no more tries
            errors.append(f"{label}: {exc}")
            _write_note(failed, errors[-1], identity)
            break
        except _Busy as exc:                     # not this variant's fault: nothing noted
            errors.append(f"{label}: {exc}")
            break
        except (RuntimeError, OSError) as exc:
            errors.append(f"{label}: {exc}")
            _write_note(failed, errors[-1], identity)
    raise RuntimeError("no variant built and loaded: " + "; ".join(errors)[-600:])


def _load():
    flag = os.environ.get("GATLIB_NATIVE", "1").strip()
    if flag.lower() in _OFF:
        raise RuntimeError(f"disabled by GATLIB_NATIVE={flag}")
    if sys.platform == "win32":
        raise RuntimeError("not built on Windows")
    lib, path, variant, skipped = _open()
    if lib.gatlib_native_version() != _VERSION:
        raise RuntimeError(f"{path} has ABI version {lib.gatlib_native_version()}, "
                           f"expected {_VERSION}")
    abi.declare(lib)
    _state.update(path=str(path), variant=variant, skipped=skipped)
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
    """One line: where the native library was loaded from and which build variant (with the
    variants skipped and why), or why gatlib runs on torch's kernels instead."""
    if available():
        line = f"native CPU kernels loaded from {_state['path']} ({_state['variant']})"
        if _state["skipped"]:
            line += "; skipped: " + "; ".join(_state["skipped"])
    else:
        line = f"native CPU kernels not used ({_state['reason']}); gatlib uses torch's kernels"
    return " ".join(line.split())                 # one line, whatever the compiler printed


def _reset() -> None:
    """Forget the loaded library and the reason (tests: rebuild under another environment)."""
    with _lock:
        _state.update(lib=None, reason=None, path=None, variant=None, skipped=())
