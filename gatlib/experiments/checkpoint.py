"""Checkpoints a crash cannot spoil: written atomically with ``fsync``, checked by a sha256 on
load, and the previous one kept, so that a damaged file costs a few epochs, never the run.

File layout: the line ``gatlib-checkpoint 1 <sha256 of the payload>``, then the payload
(``torch.save`` bytes). ``checkpoint.pt`` is the newest, ``checkpoint.prev.pt`` the one before.
"""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple

import torch

from ..utils import atomic_write_bytes

__all__ = ["save_checkpoint", "load_checkpoint", "load_latest", "CheckpointDamaged",
           "checkpoint_files"]

_MAGIC = b"gatlib-checkpoint 1 "


class CheckpointDamaged(RuntimeError):
    """A checkpoint file is cut short, altered or unreadable."""


def _prev(path: Path) -> Path:
    return path.with_name(path.stem + ".prev" + path.suffix)


def checkpoint_files(path: Path) -> List[Path]:
    """The newest checkpoint and the one before it (whether or not they exist)."""
    path = Path(path)
    return [path, _prev(path)]


def save_checkpoint(obj: Any, path: Path) -> None:
    """Write ``obj`` to ``path`` atomically, keeping the checkpoint it replaces as
    ``<stem>.prev<suffix>``. A crash at any point leaves at least one complete checkpoint."""
    path = Path(path)
    buf = io.BytesIO()
    torch.save(obj, buf)
    payload = buf.getvalue()
    data = _MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload
    # The new file goes to a temporary name unique to this call and is flushed to disk; only
    # then is the current one moved aside and the new one renamed into place.
    atomic_write_bytes(path, data, before_replace=lambda: _keep_previous(path))


def _keep_previous(path: Path) -> None:
    try:
        os.replace(path, _prev(path))          # killed here: only .prev exists, and it is good
    except FileNotFoundError:                  # the first checkpoint
        pass


def load_checkpoint(path: Path) -> Any:
    """Read a checkpoint written by :func:`save_checkpoint`; :class:`CheckpointDamaged` (with
    the reason) when it is cut short, altered or not one."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointDamaged(f"cannot read it ({exc.strerror})") from None
    if not data.startswith(_MAGIC):
        # A checkpoint of a gatlib that wrote no header: loaded as it is, if torch can.
        try:
            return torch.load(io.BytesIO(data), weights_only=False)
        except Exception as exc:
            raise CheckpointDamaged(f"it has no gatlib header and torch cannot load it "
                                    f"({type(exc).__name__}: {exc})") from None
    head, sep, payload = data[len(_MAGIC):].partition(b"\n")
    if not sep or len(head) != 64:
        raise CheckpointDamaged(f"it is cut short ({len(data)} bytes)")
    if hashlib.sha256(payload).hexdigest().encode() != head:
        raise CheckpointDamaged(f"its sha256 does not match its header ({len(data)} bytes: cut "
                                "short or altered)")
    try:
        return torch.load(io.BytesIO(payload), weights_only=False)
    except Exception as exc:                    # the hash matched: an incompatible file
        raise CheckpointDamaged(f"torch cannot load it ({type(exc).__name__}: {exc})") from None


def load_latest(path: Path, use: Callable[[Any], None],
                say: Callable[[str], None]) -> Optional[Tuple[Path, Any]]:
    """Load the newest good checkpoint of ``path`` (itself, else its ``.prev``) and hand it to
    ``use`` (which may raise to reject it, e.g. on a state-dict mismatch). A damaged file is
    renamed ``*.damaged`` and reported through ``say``. Returns ``(file, checkpoint)``, or None
    when there is none (the run starts from scratch, which ``say`` reports when a damaged file
    was found)."""
    damaged = []
    for f in checkpoint_files(path):
        if not f.exists():
            continue
        try:
            ck = load_checkpoint(f)
            use(ck)
        except (CheckpointDamaged, RuntimeError, KeyError, ValueError, TypeError) as exc:
            damaged.append(f"{f.name} ({exc})")
            os.replace(f, f.with_name(f.name + ".damaged"))
            continue
        if damaged:
            say(f"checkpoint damaged: {'; '.join(damaged)}; resuming from {f.name} instead")
        return f, ck
    if damaged:
        say(f"checkpoint damaged: {'; '.join(damaged)}; no good checkpoint left, so the run "
            "starts from scratch")
    return None
