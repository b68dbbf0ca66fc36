"""Atomic file writes (a results file is either the old one or the complete new one), and the
reader of the append-only JSON Lines logs."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Union

__all__ = ["atomic_write_text", "atomic_write_json", "read_jsonl"]


def atomic_write_text(path: Union[str, Path], text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


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
            raise ValueError(f"{path}, line {i + 1}: not valid JSON ({err.msg}); the log is "
                             "damaged: delete the run's folder to run it again") from None
    return rows
