"""Getting a dataset's raw files from a mirror into the local root: :func:`fetch` links
(default) or copies each ``raw/`` folder, checking every file's sha256 first, and installs it
so that an interrupted or failed fetch never leaves a half-written ``raw/``.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

from . import root as _root
from .registry import DatasetEntry, PathLike, _local_root, get, list_datasets
from .root import DatasetNotFound
from .checks import _check_file, _missing, verify

__all__ = ["FetchRecord", "FetchReport", "fetch"]


@dataclass
class FetchRecord:
    """What :func:`fetch` did for one dataset: ``action`` is ``"linked"``, ``"copied"`` or
    ``"present"`` (a verified copy or link was already there)."""
    name: str
    action: str
    source: Optional[Path]
    target: Path
    files: int
    bytes: int


@dataclass
class FetchReport:
    """The records of one :func:`fetch`; ``str()`` gives a table."""
    records: List[FetchRecord] = field(default_factory=list)

    def __iter__(self) -> Iterator[FetchRecord]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, name: str) -> FetchRecord:
        for r in self.records:
            if r.name.lower() == name.lower():
                return r
        raise KeyError(name)

    def __str__(self) -> str:
        lines = [f"{'dataset':<12} {'action':<8} {'files':>5} {'MB':>7}  target"]
        for r in self.records:
            lines.append(f"{r.name:<12} {r.action:<8} {r.files:>5} {r.bytes / 1e6:>7.2f}  "
                         f"{r.target}")
        lines.append(f"{len(self.records)} dataset(s), all sha256 verified")
        return "\n".join(lines)


def _find_source(entry: DatasetEntry, mirrors: Sequence[Path]) -> Tuple[Optional[Path],
                                                                          List[Path]]:
    looked = []
    for m in mirrors:
        src = m / entry.folder / "raw"
        looked.append(src)
        if src.is_dir() and not _missing(entry, src):
            return src, looked
    return None, looked


def _install(new: Path, raw: Path) -> None:
    """Put ``new`` (a finished folder or symlink beside ``raw``) in place of ``raw``."""
    if raw.is_symlink() or raw.is_file():
        if new.is_symlink():
            os.replace(new, raw)                           # atomic swap of one link for another
            return
        raw.unlink()
    elif raw.is_dir():
        old = raw.with_name(f".raw-old-{uuid.uuid4().hex[:8]}")
        raw.rename(old)
        new.rename(raw)
        shutil.rmtree(old, ignore_errors=True)
        return
    new.rename(raw)


def _fetch_one(entry: DatasetEntry, src: Path, local: Path, copy: bool) -> FetchRecord:
    target = local / entry.folder
    raw = target / "raw"
    n, size = len(entry.raw_files), entry.num_bytes
    # Already there: a real folder (or, when linking, a link to this source) that verifies.
    same_link = raw.is_symlink() and raw.resolve() == src.resolve()
    if raw.is_dir() and ((not raw.is_symlink()) or (same_link and not copy)):
        try:
            verify(entry.name, local)
            return FetchRecord(entry.name, "present", src, raw, n, size)
        except (DatasetNotFound, ValueError):
            pass                                           # replaced below by a good copy
    target.mkdir(parents=True, exist_ok=True)
    if not copy:
        for fname, (_, sha) in entry.raw_files.items():    # check the mirror before linking
            _check_file(entry, src / fname, sha)
        link = target / f".raw-link-{uuid.uuid4().hex[:8]}"
        link.symlink_to(src.resolve(), target_is_directory=True)
        _install(link, raw)
        return FetchRecord(entry.name, "linked", src, raw, n, size)
    # Copy into a temporary folder beside raw/, check every copied file, then rename: an
    # interrupted or failed copy never leaves a half-written raw/.
    tmp = Path(tempfile.mkdtemp(prefix=".raw-partial-", dir=target))
    try:
        for path in sorted(src.iterdir()):
            if path.is_file():
                shutil.copy2(path, tmp / path.name)
        for fname, (_, sha) in entry.raw_files.items():
            _check_file(entry, tmp / fname, sha)
        _install(tmp, raw)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return FetchRecord(entry.name, "copied", src, raw, n, size)


def fetch(names: Optional[Sequence[str]] = None, mirror: Optional[PathLike] = None,
          root: Optional[PathLike] = None, copy: bool = False,
          progress: bool = True) -> FetchReport:
    """Link (default) or copy each dataset's ``raw/`` folder from a mirror into the local root,
    checking the sha256 of every file.

    Args:
        names: registered names (case-insensitive); default: every dataset.
        mirror: a mirror folder in PyG's layout (default: :func:`mirror_roots`, in order).
        root: the local dataset root (default :func:`dataset_root`).
        copy: copy the files instead of linking ``raw/`` to the mirror's folder. A local
            ``raw/`` that already verifies is kept: a real folder always, a link to the same
            mirror folder when ``copy`` is false; anything else there is replaced.
        progress: a tqdm bar when there are several datasets.

    Returns:
        A :class:`FetchReport` with one record per dataset.

    Raises:
        ValueError: a file's sha256 differs (names the file, expected and actual hash); nothing
            is left half-written (a copy goes to a temporary folder that is renamed at the
            end; a link is made only after the mirror's files check out).
        DatasetNotFound: a dataset is in no mirror (after the others were fetched); the message
            lists where it looked.
    """
    entries = list_datasets() if names is None else [get(n) for n in names]
    local = _local_root(root)
    if mirror is not None:
        mirrors = [Path(mirror).expanduser().resolve()]
        if not mirrors[0].is_dir():
            raise DatasetNotFound(f"mirror {mirrors[0]} is not a folder; give a folder in PyG's "
                                  f"layout (e.g. <mirror>/Planetoid/Cora/raw/...)")
    else:
        mirrors = _root.mirror_roots()
    report, not_found = FetchReport(), []
    from tqdm.auto import tqdm
    bar = tqdm(entries, desc="gatlib data fetch", unit="dataset",
               disable=not progress or len(entries) < 2)
    for entry in bar:
        bar.set_postfix_str(entry.name)
        src, looked = _find_source(entry, mirrors)
        if src is None:
            not_found.append(f"{entry.name} (looked in: "
                             + (", ".join(str(p) for p in looked) or "no mirror found") + ")")
            continue
        report.records.append(_fetch_one(entry, src, local, copy))
    if not_found:
        raise DatasetNotFound(
            "not found in any mirror: " + "; ".join(not_found) + ". Pass --mirror DIR (or "
            "mirror=...) or set GATLIB_MIRROR to a folder in PyG's layout; nothing is "
            "downloaded." + (f" Fetched meanwhile:\n{report}" if report.records else ""))
    return report
