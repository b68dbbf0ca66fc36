"""The one loading path of a registered dataset: :func:`load_dataset` checks the raw files
(:func:`gatlib.data.checks.check_dataset`'s checks), makes sure PyG's processed cache was
built from them, and builds the PyG dataset with PyG's own download switched off.
"""
from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional

from .registry import DatasetEntry, PathLike, _local_root, dataset_checksum, get
from .root import DatasetNotFound
from . import checks
from .checks import _ready_raw, _read_stamp, _say, _verify_raw, _write_stamp

__all__ = ["load_dataset"]


def load_dataset(name: str, root: Optional[PathLike] = None, transform: Optional[Callable] = None,
                 pre_transform: Optional[Callable] = None, **kwargs):
    """The PyG dataset ``name`` from the local dataset root, checked, never downloaded.

    When ``<root>/<folder>/raw`` is absent it is linked from the first mirror that has it
    (:func:`gatlib.data.ensure_raw`); PyG then writes ``processed/`` beside it, in the local
    root. Before PyG reads anything, every raw file's size and sha256 is checked against the
    registry (once per version of the file, see :func:`check_dataset`), and a processed cache
    is rebuilt when it was not built from these raw files or its files changed since (each
    processed file's sha256 is recorded when it is built). A processed cache PyG cannot read
    is rebuilt once.

    Args:
        name: a registered name (case-insensitive), see :func:`list_datasets`.
        root: the local dataset root (default :func:`dataset_root`: ``$GATLIB_DATA`` or
            ``datasets/`` in the checkout).
        transform, pre_transform: passed to the PyG class.
        **kwargs: further constructor arguments (e.g. ``use_node_attr=True`` for TUDataset);
            they override the entry's ``kwargs``.

    Raises:
        DatasetNotFound: no complete copy of the raw files locally or in a mirror; the message
            says where it looked and how to get them.
        DatasetDamaged: a raw file differs from the registry (cut short, altered); the message
            names the file and how to get a good copy. PyG never parses such a file.
    """
    entry = get(name)
    local = _local_root(root)
    folder = _ready_raw(entry, local)
    # One process at a time checks and builds a dataset's folder: another one waits, then
    # finds the processed cache built and recorded (never half-built, never removed by it).
    with _building(folder):
        return _load(entry, local, folder, transform, pre_transform, kwargs)


@contextmanager
def _building(folder: Path) -> Iterator[None]:
    from ..utils import FolderLock
    try:
        lock = FolderLock(folder, what="dataset", blocking=True).acquire()
    except OSError:                       # a read-only root: nothing will be written there
        yield
        return
    try:
        yield
    finally:
        lock.release()


def _load(entry: DatasetEntry, local: Path, folder: Path, transform, pre_transform,
          kwargs: Dict[str, Any]):
    stamp = _read_stamp(folder)
    raw_sum = dataset_checksum(entry.name)
    changed = _verify_raw(entry, folder, stamp)
    changed |= _check_processed(entry, folder, stamp, raw_sum)
    if changed:
        _write_stamp(folder, stamp)
    cls = entry.cls
    args = {**entry.kwargs, **kwargs}
    existed = {p.name for p in folder.glob("processed*") if p.is_dir()}

    def build():
        with _no_download(cls):
            return cls(str(local / entry.pyg_root), transform=transform,
                       pre_transform=pre_transform, **args)
    try:
        ds = build()
    except (DatasetNotFound, TypeError):
        raise
    except Exception as exc:
        if not existed:
            raise
        # The raw files are good, so the processed cache is what PyG could not read.
        for pname in existed:
            shutil.rmtree(folder / pname, ignore_errors=True)
            stamp["processed"].pop(pname, None)
        _say(f"{entry.name}: rebuilding the processed cache from the raw files: PyG could not "
             f"read it ({type(exc).__name__}: {str(exc)[:200]})")
        ds = build()
    if _record_processed(folder, Path(ds.processed_dir), stamp, raw_sum):
        _write_stamp(folder, stamp)
    return ds


def _processed_files(pdir: Path) -> Dict[str, Dict[str, Any]]:
    return {p.name: {"size": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns}
            for p in sorted(pdir.iterdir()) if p.is_file()}


def _check_processed(entry: DatasetEntry, folder: Path, stamp: Dict[str, Any],
                     raw_sum: str) -> bool:
    """Remove each processed cache (``processed*/`` beside ``raw/``) that was not built from
    these raw files by gatlib, or whose files changed since: PyG then rebuilds it. Returns
    whether the stamp changed."""
    records, changed = stamp.setdefault("processed", {}), False
    for pdir in sorted(folder.glob("processed*")):
        if not pdir.is_dir():
            continue
        rec = records.get(pdir.name)
        why = None
        if rec is None:
            why = "it was not built by gatlib from checked raw files"
        elif rec.get("raw") != raw_sum:
            why = "it was built from other raw files"
        else:
            now, want = _processed_files(pdir), rec.get("files", {})
            if set(now) != set(want):
                why = "its files changed"
            else:
                for fname, info in now.items():
                    w = want[fname]
                    if (info["size"], info["mtime_ns"]) == (w["size"], w["mtime_ns"]):
                        continue
                    if info["size"] != w["size"] or checks._sha256(pdir / fname) != w["sha256"]:
                        why = f"{fname} is damaged (its sha256 changed since it was built)"
                        break
                    w["mtime_ns"] = info["mtime_ns"]          # touched, same bytes
                    changed = True
        if why is not None:
            _say(f"{entry.name}: rebuilding {pdir} from the raw files: {why}")
            shutil.rmtree(pdir)
            records.pop(pdir.name, None)
            changed = True
    return changed


def _record_processed(folder: Path, pdir: Path, stamp: Dict[str, Any], raw_sum: str) -> bool:
    """Record the processed cache PyG has (re)built or loaded, hashing only changed files."""
    if not pdir.is_dir() or pdir.parent != folder:
        return False
    rec = stamp.setdefault("processed", {}).get(pdir.name, {})
    old = rec.get("files", {}) if rec.get("raw") == raw_sum else {}
    files = {}
    for fname, info in _processed_files(pdir).items():
        w = old.get(fname)
        same = w is not None and (w["size"], w["mtime_ns"]) == (info["size"], info["mtime_ns"])
        files[fname] = {**info, "sha256": w["sha256"] if same else checks._sha256(pdir / fname)}
    new = {"raw": raw_sum, "files": files}
    if new == stamp["processed"].get(pdir.name):
        return False
    stamp["processed"][pdir.name] = new
    return True


@contextmanager
def _no_download(cls) -> Iterator[None]:
    """While a dataset is built, PyG's own download is replaced by an error: raw files are
    checked beforehand, so this only fires when a class looks for files the registry does not
    know (for example a constructor argument that changes ``raw_dir``)."""
    def download(self):
        raise DatasetNotFound(f"{cls.__name__} wanted to download into {self.raw_dir}, which "
                              f"lacks {self.raw_file_names}; gatlib never downloads.")
    had = "download" in cls.__dict__
    old = cls.__dict__.get("download")
    cls.download = download
    try:
        yield
    finally:
        if had:
            cls.download = old
        else:
            del cls.download
