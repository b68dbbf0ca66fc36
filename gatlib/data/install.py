"""Getting datasets' raw files into the local root: :func:`fetch` links (default) or copies
each ``raw/`` folder from a mirror when one is named, else downloads it from its pinned source
(:mod:`gatlib.data.download`), checking every file's sha256 first, and installs it so that an
interrupted or failed fetch never leaves a half-written ``raw/``.
"""
from __future__ import annotations

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
from .download import download, install_folder

__all__ = ["FetchRecord", "FetchReport", "fetch"]


@dataclass
class FetchRecord:
    """What :func:`fetch` did for one dataset: ``action`` is ``"linked"``, ``"copied"``,
    ``"downloaded"`` or ``"present"`` (a verified copy or link was already there);
    ``source`` is the mirror folder, or None for a download."""
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
        lines = [f"{'dataset':<12} {'action':<10} {'files':>5} {'MB':>7}  target"]
        for r in self.records:
            lines.append(f"{r.name:<12} {r.action:<10} {r.files:>5} {r.bytes / 1e6:>7.2f}  "
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


def _present(entry: DatasetEntry, src: Optional[Path], local: Path,
             copy: bool) -> Optional[FetchRecord]:
    """A record when ``raw/`` is already a verified real folder (or, when linking, a link to
    this mirror's folder); else None (whatever is there is replaced)."""
    raw = local / entry.folder / "raw"
    same_link = (src is not None and raw.is_symlink() and raw.resolve() == src.resolve())
    if raw.is_dir() and ((not raw.is_symlink()) or (same_link and not copy)):
        try:
            verify(entry.name, local)
            return FetchRecord(entry.name, "present", src, raw, len(entry.raw_files),
                               entry.num_bytes)
        except (DatasetNotFound, ValueError):
            pass                                           # replaced by a good copy
    return None


def _fetch_one(entry: DatasetEntry, src: Path, local: Path, copy: bool) -> FetchRecord:
    target = local / entry.folder
    raw = target / "raw"
    n, size = len(entry.raw_files), entry.num_bytes
    done = _present(entry, src, local, copy)
    if done is not None:
        return done
    target.mkdir(parents=True, exist_ok=True)
    if not copy:
        for fname, (_, sha) in entry.raw_files.items():    # check the mirror before linking
            _check_file(entry, src / fname, sha)
        link = target / f".raw-link-{uuid.uuid4().hex[:8]}"
        link.symlink_to(src.resolve(), target_is_directory=True)
        install_folder(link, raw)
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
        install_folder(tmp, raw)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return FetchRecord(entry.name, "copied", src, raw, n, size)


def fetch(names: Optional[Sequence[str]] = None, mirror: Optional[PathLike] = None,
          root: Optional[PathLike] = None, copy: bool = False,
          progress: bool = True) -> FetchReport:
    """Get each dataset's ``raw/`` folder into the local root, checking the sha256 of every
    file: linked (default) or copied from a mirror when one holds it, else downloaded from its
    pinned source (unless ``GATLIB_OFFLINE`` is set).

    Args:
        names: registered names (case-insensitive); default: every dataset.
        mirror: a mirror folder in PyG's layout (default: ``$GATLIB_MIRROR``, when set).
        root: the local dataset root (default :func:`dataset_root`).
        copy: copy the files instead of linking ``raw/`` to the mirror's folder. A local
            ``raw/`` that already verifies is kept: a real folder always, a link to the same
            mirror folder when ``copy`` is false; anything else there is replaced.
        progress: a tqdm bar when there are several datasets, and one per download.

    Returns:
        A :class:`FetchReport` with one record per dataset.

    Raises:
        ValueError: a file's sha256 differs (names the file, expected and actual hash); nothing
            is left half-written (a copy goes to a temporary folder that is renamed at the
            end; a link is made only after the mirror's files check out).
        DatasetNotFound: a dataset is in no mirror and cannot be downloaded (offline, a
            source unreachable or missing; after the others were fetched); the message names
            the URL and where it looked.
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
        if src is not None:
            report.records.append(_fetch_one(entry, src, local, copy))
            continue
        done = _present(entry, None, local, copy)
        if done is not None:
            report.records.append(done)
            continue
        try:
            raw = download(entry, local, progress=progress)
        except DatasetNotFound as exc:
            not_found.append(str(exc) + (f" (mirrors looked in: {', '.join(map(str, looked))})"
                                         if looked else ""))
            continue
        report.records.append(FetchRecord(entry.name, "downloaded", None, raw,
                                          len(entry.raw_files), entry.num_bytes))
    if not_found:
        raise DatasetNotFound("; ".join(not_found) + (f". Fetched meanwhile:\n{report}"
                                                      if report.records else ""))
    return report
