"""The worker processes of ``gatlib compare --jobs N``: one thread each (workers, not threads,
share the cores), started with Ctrl-C ignored so that the parent alone handles it and stops
them at once."""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

__all__ = ["start_pool", "stop_pool"]


def _worker_init() -> None:
    import threading
    # One thread per worker: workers, not threads, share the cores.
    torch.set_num_threads(1)
    # tqdm's default lock is a multiprocessing semaphore; a worker stopped by Ctrl-C would
    # leave it behind (and a warning about it). Workers draw no bars: a thread lock will do.
    tqdm.set_lock(threading.RLock())


def _noop() -> None:
    return None


def start_pool(jobs: int):
    """``jobs`` worker processes, started now with Ctrl-C ignored (a worker inherits that from
    birth, even while it imports): Ctrl-C is the parent's to handle, and it stops the workers,
    so the user sees one line, not a traceback from each worker."""
    import multiprocessing as mp
    import signal
    import threading
    from concurrent.futures import ProcessPoolExecutor
    pool = ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"),
                               initializer=_worker_init)
    if threading.current_thread() is not threading.main_thread():
        return pool
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for _ in range(jobs):
            pool.submit(_noop)            # each submit starts a worker while none is idle
    finally:
        signal.signal(signal.SIGINT, old)
    return pool


def stop_pool(pool) -> None:
    """Stop the workers at once (their unfinished runs are lost; finished ones are on disk)."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.join(5)
    # The pool sees its workers gone, fails what was pending and frees its queues.
    pool.shutdown(wait=True, cancel_futures=True)
