"""``gatlib train`` under ``torchrun``: the process group, the rank's device and what the ranks
share.

``torchrun --nproc_per_node K -m gatlib.cli train ...`` starts K processes with ``WORLD_SIZE``,
``RANK`` and ``LOCAL_RANK`` set; :func:`session` joins them into one process group (gloo on
CPU, nccl on CUDA with one GPU per process, ``cuda:LOCAL_RANK``) and leaves it on exit. Inside,
rank 0 alone touches the run folder (lock, config, log, checkpoints, metrics) and evaluates;
the others wait for it at :func:`share` (a broadcast of a Python object from rank 0), so every
rank acts on the same scores and makes the same early-stopping decision.

Without ``torchrun`` (no ``WORLD_SIZE``, or ``WORLD_SIZE=1``) nothing here does anything:
:func:`world` is ``(1, 0)`` and :func:`share` returns its argument.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator, Tuple

import torch

from ..utils import UserError

__all__ = ["DistributedUnsupported", "world", "is_main", "session", "share", "all_mean",
           "barrier", "launched", "check_config"]


class DistributedUnsupported(UserError, ValueError):
    """A config that cannot train under ``torchrun`` (the message says which key to change)."""


def check_config(cfg, world_size: int) -> None:
    """Refuse, before any data is read, a resolved config that cannot train on ``world_size``
    processes: full-batch node training (K processes would repeat the same full-graph step)."""
    if world_size > 1 and cfg["task"] == "node" and cfg["loader"]["kind"] != "neighbor":
        raise DistributedUnsupported(
            f"{cfg['name']}: full-batch node training (loader.kind=full) takes one step on the "
            f"whole graph per epoch, so {world_size} processes would only repeat it; under "
            f"torchrun set loader.kind=neighbor (sampled mini-batches, each rank its share of "
            f"the training nodes) or run it in one process")


def launched() -> bool:
    """Whether this process was started by ``torchrun`` with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _active() -> bool:
    import torch.distributed as dist
    return dist.is_available() and dist.is_initialized()


def world() -> Tuple[int, int]:
    """``(world_size, rank)`` of the process group, ``(1, 0)`` without one."""
    if not _active():
        return 1, 0
    import torch.distributed as dist
    return dist.get_world_size(), dist.get_rank()


def is_main() -> bool:
    """Whether this process is rank 0 (or runs alone)."""
    return world()[1] == 0


@contextmanager
def session(device: str) -> Iterator[str]:
    """Join the ``torchrun`` process group for the body; yields the device this rank trains
    on (``device``, or ``cuda:LOCAL_RANK`` when ``device`` is a CUDA device).

    Backend: nccl for CUDA, gloo for CPU. Without ``torchrun`` (``WORLD_SIZE`` unset or 1) it
    yields ``device`` and does nothing else. The group is destroyed on exit, error or not.
    """
    if not launched() or _active():
        yield device
        return
    import torch.distributed as dist
    cuda = torch.device(device).type == "cuda"
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise UserError(f"LOCAL_RANK={local} but this machine has "
                            f"{torch.cuda.device_count()} GPU(s): start at most one process "
                            f"per GPU (torchrun --nproc_per_node {torch.cuda.device_count()})")
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        yield device
    finally:
        dist.destroy_process_group()


def share(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (a broadcast of a picklable object); ``obj`` alone."""
    if not _active():
        return obj
    import torch.distributed as dist
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if _active():
        import torch.distributed as dist
        dist.barrier()


def all_mean(total: float, count: float) -> float:
    """``sum(total) / sum(count)`` over the ranks (float64); ``total / count`` alone."""
    if not _active():
        return total / max(count, 1)
    import torch.distributed as dist
    t = torch.tensor([total, count], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return t[0].item() / max(t[1].item(), 1)
