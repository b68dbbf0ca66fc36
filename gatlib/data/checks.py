"""Checking a dataset's raw files against the registry (size and sha256), once per version of
each file: a stamp beside ``raw/`` (``.gatlib-verified.json``) remembers which versions were
verified (and, for :mod:`gatlib.data.load`, which processed caches were built from them).
:func:`check_dataset` links a mirror's files into the local root first; :func:`verify` reads a
folder and writes nothing; :func:`dataset_status` reads no file at all.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from . import root as _root
from .registry import DatasetEntry, PathLike, _local_root, get
from .root import DatasetDamaged, DatasetNotFound

__all__ = ["check_dataset", "verify", "DatasetStatus", "dataset_status"]


def _sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _fix(entry: DatasetEntry) -> str:
    """How to get good files, for an error message."""
    return (f"Get a good copy with `gatlib data fetch {entry.name}` (downloads it again from "
            f"{entry.source}) or `gatlib data fetch {entry.name} --mirror DIR --copy` (DIR: a "
            f"mirror whose files are good).")


def _check_file(entry: DatasetEntry, path: Path, expected: str) -> str:
    """The sha256 of ``path``; :class:`DatasetDamaged` naming the file when it is not
    ``expected``."""
    actual = _sha256(path)
    if actual != expected:
        where = (f" (a link into {Path(os.path.realpath(path)).parent})"
                 if os.path.realpath(path) != os.path.abspath(path) else "")
        raise DatasetDamaged(f"{entry.name}: {path}{where} is damaged: sha256 expected "
                             f"{expected}, got {actual}. {_fix(entry)}")
    return actual


def _check_size(entry: DatasetEntry, path: Path, size: int, expected: int) -> None:
    if size != expected:
        what = "cut short" if size < expected else "longer than the registry's"
        raise DatasetDamaged(f"{entry.name}: {path} is damaged: {size:,} bytes, expected "
                             f"{expected:,} ({what}). {_fix(entry)}")


def _missing(entry: DatasetEntry, raw: Path) -> List[str]:
    return [f for f in entry.raw_files if not (raw / f).is_file()]


def _how_to_get(entry: DatasetEntry) -> str:
    return (f"Download them with `gatlib data fetch {entry.name}` (from {entry.source}), or "
            f"link them with `gatlib data fetch {entry.name} --mirror DIR` (DIR: a mirror in "
            f"PyG's layout), or set GATLIB_MIRROR to such a mirror or GATLIB_DATA to a dataset "
            f"root that holds them (README: Getting the datasets).")


# The stamp beside raw/ and processed/: which raw files were verified (keyed by real path, size
# and modification time, so that checking them again costs a stat per file) and which processed
# caches were built from them, with their files' hashes.
_STAMP = ".gatlib-verified.json"


def _say(msg: str) -> None:
    print(f"gatlib.data: {msg}", file=sys.stderr)


def _read_stamp(folder: Path) -> Dict[str, Any]:
    try:
        stamp = json.loads((folder / _STAMP).read_text())
        if isinstance(stamp, dict) and stamp.get("version") == 1:
            return stamp
    except (OSError, ValueError):
        pass
    return {"version": 1, "raw": {}, "processed": {}}


def _write_stamp(folder: Path, stamp: Dict[str, Any]) -> None:
    from ..utils import atomic_write_json
    try:
        atomic_write_json(folder / _STAMP, stamp)
    except OSError:                       # a read-only root: checks are simply not cached
        pass


def _file_key(path: Path) -> Dict[str, Any]:
    st = os.stat(path)                    # follows a raw/ link into a mirror
    return {"real": os.path.realpath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _verify_raw(entry: DatasetEntry, folder: Path, stamp: Dict[str, Any]) -> bool:
    """Check every raw file's size and sha256 against the registry, hashing only the files whose
    (real path, size, mtime) differ from the stamp's. Returns whether the stamp changed."""
    raw, seen, changed = folder / "raw", stamp.setdefault("raw", {}), False
    for fname, (size, sha) in sorted(entry.raw_files.items()):
        path = raw / fname
        key = _file_key(path)
        _check_size(entry, path, key["size"], size)
        old = seen.get(fname)
        if old is not None and old.get("sha256") == sha and all(
                old.get(k) == v for k, v in key.items()):
            continue                      # this version of the file was verified before
        seen.pop(fname, None)
        _check_file(entry, path, sha)
        seen[fname] = {**key, "sha256": sha}
        changed = True
    for fname in set(seen) - set(entry.raw_files):
        del seen[fname]
        changed = True
    return changed


def _ready_raw(entry: DatasetEntry, local: Path) -> Path:
    """``<local>/<folder>`` with every raw file present: linked from a mirror when one holds
    them, else downloaded from their sources (one line says what and from where)."""
    from .download import download
    try:
        folder = _root.ensure_raw(entry.folder, local)       # links from a mirror if needed
    except DatasetNotFound:
        download(entry, local)                               # one-line errors, names the URL
        return local / entry.folder
    raw = folder / "raw"
    missing = _missing(entry, raw)
    if missing and not raw.is_symlink():                     # a partial local copy: replaced
        _say(f"{entry.name}: {raw} lacks {', '.join(missing)}")
        download(entry, local)
        return folder
    if missing:
        looked = [raw] + [m / entry.folder / "raw" for m in _root.mirror_roots()]
        raise DatasetNotFound(
            f"{entry.name}: {raw} lacks {', '.join(missing)}; looked in: "
            + ", ".join(str(p) for p in looked) + ". " + _how_to_get(entry))
    return folder


def check_dataset(name: str, root: Optional[PathLike] = None) -> Path:
    """Make sure dataset ``name`` can be loaded: its raw files present in the local root (linked
    from a mirror when needed) and each of the registry's size and sha256. A file is hashed once
    per version: the result is kept in a stamp beside ``raw/`` keyed by the file's real path,
    size and modification time, so a second check costs a ``stat`` per file.

    Returns the dataset's folder (``<root>/<folder>``, which holds ``raw/``).

    Raises:
        DatasetNotFound: files missing (says where it looked and how to get them).
        DatasetDamaged: a file of the wrong size or sha256 (names the file and the fix).
    """
    entry = get(name)
    folder = _ready_raw(entry, _local_root(root))
    stamp = _read_stamp(folder)
    if _verify_raw(entry, folder, stamp):
        _write_stamp(folder, stamp)
    return folder


def verify(name: str, root: Optional[PathLike] = None) -> Path:
    """Check the sha256 of every raw file of ``name`` under ``root`` (a local root or a mirror;
    read only). Returns the raw folder checked.

    Raises:
        DatasetNotFound: a file is missing (the message names them and the folder).
        ValueError: a file's sha256 differs (the message names the file, expected and actual
            hash).
    """
    entry = get(name)
    raw = entry.raw_dir(root)
    missing = _missing(entry, raw)
    if missing:
        raise DatasetNotFound(f"{entry.name}: {raw} lacks {', '.join(missing)}. "
                              + _how_to_get(entry))
    for fname, (_, sha) in entry.raw_files.items():
        _check_file(entry, raw / fname, sha)
    return raw


@dataclass
class DatasetStatus:
    """Where a dataset's raw files are, without reading them (``gatlib data list``).

    ``state`` is ``"local"`` (a folder in the local root holds every file), ``"linked"``
    (the local ``raw/`` links to a mirror folder, ``path``), ``"mirror"`` (not in the local root
    yet; a mirror holds them and the first load links them), ``"incomplete"`` (the local
    ``raw/`` lacks files, listed in ``detail``), ``"downloadable"`` (nowhere here; the first
    load downloads them, ``detail`` says how much from where) or ``"missing"`` (nowhere, and
    downloads are off: ``GATLIB_OFFLINE``). ``verified`` is whether the
    files were checked against the registry's sha256 in this version (the stamp of
    :func:`check_dataset`)."""
    name: str
    state: str
    path: Optional[Path]
    detail: str = ""
    verified: bool = False


def dataset_status(name: str, root: Optional[PathLike] = None) -> DatasetStatus:
    """Where dataset ``name`` is: the local root, linked from a mirror, only in a mirror, or
    nowhere (no file is read or written)."""
    entry = get(name)
    folder = _local_root(root) / entry.folder
    raw = folder / "raw"
    if raw.is_dir() and any(raw.iterdir()):
        missing = _missing(entry, raw)
        if missing:
            return DatasetStatus(entry.name, "incomplete", raw, "lacks " + ", ".join(missing))
        seen = _read_stamp(folder).get("raw", {})
        verified = all(fname in seen and seen[fname].get("sha256") == sha and all(
            seen[fname].get(k) == v for k, v in _file_key(raw / fname).items())
            for fname, (_, sha) in entry.raw_files.items())
        if raw.is_symlink():
            return DatasetStatus(entry.name, "linked", Path(os.path.realpath(raw)), "",
                                 verified)
        return DatasetStatus(entry.name, "local", raw, "", verified)
    for m in _root.mirror_roots():
        src = m / entry.folder / "raw"
        if src.is_dir() and not _missing(entry, src):
            return DatasetStatus(entry.name, "mirror", src)
    from .download import download_bytes, human_bytes, offline
    size = f"{human_bytes(download_bytes(entry))} from {entry.source}"
    if offline():
        return DatasetStatus(entry.name, "missing", None, f"downloads off; {size}")
    return DatasetStatus(entry.name, "downloadable", None, size)

