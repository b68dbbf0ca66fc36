"""Time and peak memory of a step, each candidate in a fresh process.

A fresh (spawned) process per candidate keeps one candidate's freed-but-cached memory from
hiding the next one's peak. On the CPU the peak is the growth of the resident set during one
step (the kernel's high-water mark ``VmHWM`` is reset first through ``/proc/self/clear_refs``);
on a GPU it is ``torch.cuda.max_memory_allocated`` above the memory held before the step.
"""
from __future__ import annotations

import gc
import importlib
import multiprocessing as mp
import statistics
import time
import traceback
from queue import Empty
from typing import Any, Callable, Dict, Optional, Union

import torch

__all__ = ["measure", "measure_here", "PeakMemory"]


def _status_kib(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_cpu_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")                # 5 = reset the peak resident set size (Linux >= 4.0)
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak memory that the code inside a ``with`` block adds, in bytes (``.bytes``).

    On a GPU: ``torch.cuda.max_memory_allocated`` above what was allocated on entry. On the
    CPU: the growth of the resident set's high-water mark (reset on entry through
    ``/proc/self/clear_refs``, after freed heap pages are handed back to the system with
    ``malloc_trim``); ``None`` where the platform cannot tell.
    """

    def __init__(self, device: Union[str, torch.device] = "cpu"):
        self.cuda = str(device).startswith("cuda")
        self.bytes: Optional[int] = None
        self._base: Optional[int] = None

    def __enter__(self) -> "PeakMemory":
        gc.collect()
        if self.cuda:
            torch.cuda.synchronize()
            self._base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        else:
            _malloc_trim()
            self._base = _status_kib("VmRSS") if _reset_cpu_peak() else None
        return self

    def __exit__(self, *exc) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            self.bytes = torch.cuda.max_memory_allocated() - self._base
        elif self._base is not None:
            hwm = _status_kib("VmHWM")
            self.bytes = None if hwm is None else max(hwm - self._base, 0) * 1024


def _malloc_trim() -> None:
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def measure_here(step: Callable[[], Any], device: str = "cpu", repeats: int = 5,
                 warmup: int = 1) -> Dict[str, Any]:
    """Measure ``step`` in this process: peak memory of one call (after warm-up), then the
    median wall time of ``repeats`` calls.

    Returns a dict with ``time_s`` (median), ``times_s`` (all), ``peak_bytes`` (None where the
    platform cannot measure it) and ``result`` (what the last call returned, if picklable).
    """
    cuda = device.startswith("cuda")

    def sync():
        if cuda:
            torch.cuda.synchronize()
    for _ in range(warmup):
        step()
    sync()
    with PeakMemory(device) as mem:
        step()
        sync()
    peak = mem.bytes
    times = []
    result = None
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        result = step()
        sync()
        times.append(time.perf_counter() - t0)
    return {"time_s": statistics.median(times), "times_s": times, "peak_bytes": peak,
            "result": result}


def _worker(queue, target: str, kwargs: dict, device: str, repeats: int, warmup: int) -> None:
    try:
        module, name = target.rsplit(":", 1)
        setup = getattr(importlib.import_module(module), name)
        step = setup(**kwargs)
        out = measure_here(step, device=device, repeats=repeats, warmup=warmup)
        out.pop("result", None)
        queue.put(("ok", out))
    except BaseException as exc:  # report any failure (out of memory included) to the parent
        kind = "oom" if isinstance(exc, (MemoryError, torch.OutOfMemoryError)) else "error"
        queue.put((kind, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"))


def measure(target: str, kwargs: Optional[dict] = None, device: str = "cpu", repeats: int = 5,
            warmup: int = 1, timeout: float = 1800.0) -> Dict[str, Any]:
    """Measure a step in a fresh spawned process.

    Args:
        target: ``"module:function"``; the function takes ``**kwargs``, builds its inputs and
            returns the zero-argument step to measure (for example, forward plus backward).
        kwargs: arguments of the setup function (picklable).
        device: ``"cpu"`` or ``"cuda"``.
        repeats (int, default 5): timed calls; the median is reported.
        warmup (int, default 1): untimed calls first.
        timeout (float, default 1800): seconds before the worker is killed.

    Returns:
        ``{"status": "ok", "time_s", "times_s", "peak_bytes"}``, or ``{"status": "oom" |
        "error" | "timeout", "message"}`` when the candidate did not finish.
    """
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_worker, args=(queue, target, kwargs or {}, device, repeats,
                                             warmup))
    proc.start()
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, payload = queue.get(timeout=1.0)
            break
        except Empty:
            if not proc.is_alive():
                # Killed without a word: SIGKILL is what the out-of-memory killer sends.
                code = proc.exitcode
                status = "oom" if code == -9 else "error"
                payload = f"worker died with exit code {code}"
                break
            if time.monotonic() > deadline:
                status, payload = "timeout", f"no result within {timeout:.0f} s"
                break
    proc.join(timeout=30)
    if proc.is_alive():
        proc.kill()
        proc.join()
    if status == "ok":
        return {"status": "ok", **payload}
    if proc.exitcode not in (0, None) and status == "timeout":
        # Killed without a word (the kernel's out-of-memory killer, for one).
        status, payload = "oom", f"worker died with exit code {proc.exitcode}"
    return {"status": status, "message": payload}
