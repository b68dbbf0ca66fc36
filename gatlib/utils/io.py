"""Atomic file writes (a results file is either the old one or the complete new one), and the
reader of the append-only JSON Lines logs."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

from .errors import UserError

__all__ = ["DamagedFile", "atomic_write_bytes", "atomic_write_text", "atomic_write_json",
           "fsync_dir", "read_jsonl"]


class DamagedFile(UserError, ValueError):
    """A results file that cannot be read (altered outside gatlib); the message names it."""


def atomic_write_bytes(path: Union[str, Path], data: bytes,
                       before_replace: Optional[Callable[[], None]] = None) -> Path:
    """Write ``data`` to a temporary file beside ``path`` (a name unique to this call, so that
    two processes never share one), flush it to disk (``fsync``), then rename it into place
    and sync the folder: after a crash ``path`` is the old file or the complete new one.
    ``before_replace`` (default None) runs once the new data are on disk, just before the
    rename (a checkpoint moves the file it replaces aside there)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: Union[str, Path], text: str) -> Path:
    """Write ``text`` atomically (see :func:`atomic_write_bytes`)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return atomic_write_bytes(path, text.encode())


def fsync_dir(folder: Union[str, Path]) -> None:
    """Make a rename inside ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_json(path: Union[str, Path], obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_jsonl(path: Union[str, Path]) -> List[Dict[str, Any]]:
    """The rows of a JSON Lines log. A last line cut short (a run killed while it appended)
    is dropped, since it belongs to a step that did not finish; a bad line anywhere else is
    an error that names the file and the line."""
    path = Path(path)
    lines = path.read_text().split("\n")
    rows = []
    for i, ln in enumerate(lines):
        if not ln.strip():
            continue
        try:
            rows.append(json.loads(ln))
        except json.JSONDecodeError as err:
            if i == len(lines) - 1:              # no newline after it: an unfinished append
                break
            raise DamagedFile(f"{path}, line {i + 1}: not valid JSON ({err.msg}); the log is "
                              "damaged: delete the run's folder to run it again") from None
    return rows
