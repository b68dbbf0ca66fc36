"""The dataset registry (DESIGN.md section 6): what each dataset is, where PyG keeps its raw
files, and their sha256, so that datasets are linked or copied from a mirror and checked, never
downloaded, and checked again whenever they are loaded (:func:`check_dataset`: each file is
hashed once per version; a stamp beside ``raw/`` and ``processed/`` remembers it).

The entries are the datasets of the mirror described in ``../shared/datasets/MANIFEST.md``; the
file tables (bytes and sha256) were parsed from that manifest once and are stored at the end of
this module, so the package never reads the mirror's manifest.

Raw folders follow each PyG class's own ``raw_dir`` (checked against PyG 2.8), relative to the
dataset root (the ``root`` given to the class in brackets):

- Planetoid: ``Planetoid/<Name>/raw``, name case kept (``Planetoid``)
- TUDataset: ``TUDataset/<NAME>/raw`` (``TUDataset``)
- HeterophilousGraphDataset: ``HeterophilousGraphDataset/<name>/raw``, lower case
  (``HeterophilousGraphDataset``)
- WikipediaNetwork, ``geom_gcn_preprocess=True``: ``WikipediaNetwork/<name>/geom_gcn/raw``
  (``WikipediaNetwork``)
- WebKB: ``WebKB/<name>/raw``, lower case (``WebKB``)
- Actor: ``Actor/raw``, no name folder (``Actor``)

Example::

    from gatlib.data import fetch, load_dataset
    ds = load_dataset("cora")                       # links Planetoid/Cora/raw from a mirror
    print(fetch(["MUTAG", "Texas"], copy=True))     # copies, checking every sha256
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from ..utils.errors import UserError
from . import root as _root
from .root import DatasetDamaged, DatasetNotFound

__all__ = ["DatasetEntry", "FetchRecord", "FetchReport", "DatasetStatus", "UnknownDataset",
           "list_datasets", "get", "load_dataset", "check_dataset", "dataset_checksum",
           "dataset_status", "fetch", "verify"]


class UnknownDataset(UserError, ValueError):
    """A name that is not in the registry."""

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset of the registry.

    Attributes:
        name: the canonical name (``get`` matches it case-insensitively).
        task: ``"node"`` (node classification on one graph) or ``"graph"`` (graph
            classification).
        pyg_class: the class's name in ``torch_geometric.datasets``.
        kwargs: constructor arguments other than ``root``, ``transform``, ``pre_transform``.
        pyg_root: folder, relative to the dataset root, passed to the class as ``root``.
        folder: folder, relative to the dataset root, that holds ``raw/`` (the class's
            ``raw_dir`` without the trailing ``raw``).
        raw_files: ``{file name: (bytes, sha256)}`` of every file in ``raw/``.
        stats: published statistics, with edges counted as PyG stores them (both directions):
            node tasks ``nodes, edges, features, classes``; graph tasks ``graphs, avg_nodes,
            avg_edges, features, classes``.
        description: one line with the published statistics.
        source: where the raw files come from (the public repository the mirror took them
            from), for a user who must get them again.
    """
    name: str
    task: str
    pyg_class: str
    kwargs: Mapping[str, Any]
    pyg_root: str
    folder: str
    raw_files: Mapping[str, Tuple[int, str]] = field(repr=False)
    stats: Mapping[str, float] = field(repr=False)
    description: str = ""
    source: str = ""

    def __hash__(self) -> int:
        return hash(self.name)

    @property
    def cls(self):
        """The PyG dataset class (imported on first use)."""
        import torch_geometric.datasets as D
        return getattr(D, self.pyg_class)

    @property
    def num_bytes(self) -> int:
        """Total size of the raw files."""
        return sum(size for size, _ in self.raw_files.values())

    def raw_dir(self, root: Optional[PathLike] = None) -> Path:
        """``<root>/<folder>/raw`` (``root`` defaults to :func:`dataset_root`)."""
        return _local_root(root) / self.folder / "raw"


# Where the mirror's raw files come from (its MANIFEST.md lists repository, commit and path of
# each file), by PyG class.
_SOURCES = {
    "Planetoid": "github.com/kimiyoung/planetoid (data/)",
    "TUDataset": "the TU Dortmund graph collection (chrsmrrs.github.io/datasets), as mirrored "
                 "in github.com/bknyaz/graph_nn",
    "HeterophilousGraphDataset": "github.com/yandex-research/heterophilous-graphs (data/)",
    "WikipediaNetwork": "github.com/graphdml-uiuc-jlu/geom-gcn (new_data/, splits/; the feature "
                        "file rebuilt from yandex-research/heterophilous-graphs, see the "
                        "mirror's MANIFEST.md)",
    "Actor": "github.com/graphdml-uiuc-jlu/geom-gcn (new_data/film, splits/)",
    "WebKB": "github.com/graphdml-uiuc-jlu/geom-gcn (new_data/, splits/)",
}


def _entry(name, task, pyg_class, kwargs, pyg_root, folder, stats, description):
    return DatasetEntry(name=name, task=task, pyg_class=pyg_class, kwargs=dict(kwargs),
                        pyg_root=pyg_root, folder=folder, raw_files=_RAW_FILES[folder],
                        stats=dict(stats), description=description,
                        source=_SOURCES[pyg_class])


def _node(name, pyg_class, kwargs, pyg_root, folder, nodes, edges, features, classes, extra):
    stats = dict(nodes=nodes, edges=edges, features=features, classes=classes)
    desc = (f"{nodes:,} nodes, {edges:,} edges, {features:,} features, {classes} classes"
            + (f"; {extra}" if extra else ""))
    return _entry(name, "node", pyg_class, kwargs, pyg_root, folder, stats, desc)


def _graph(name, graphs, avg_nodes, avg_edges, features, classes, extra):
    stats = dict(graphs=graphs, avg_nodes=avg_nodes, avg_edges=avg_edges, features=features,
                 classes=classes)
    desc = (f"{graphs:,} graphs, ~{avg_nodes} nodes, ~{avg_edges} edges per graph, "
            f"{features} features, {classes} classes" + (f"; {extra}" if extra else ""))
    return _entry(name, "graph", "TUDataset", {"name": name}, "TUDataset", f"TUDataset/{name}",
                  stats, desc)


def _build() -> Dict[str, DatasetEntry]:
    geom = "10 geom-gcn splits 48/32/20"
    entries = [
        _node("Cora", "Planetoid", {"name": "Cora"}, "Planetoid", "Planetoid/Cora",
              2708, 10556, 1433, 7, "citation graph, public split 140/500/1000"),
        _node("CiteSeer", "Planetoid", {"name": "CiteSeer"}, "Planetoid", "Planetoid/CiteSeer",
              3327, 9104, 3703, 6, "citation graph, public split 120/500/1000"),
        _graph("MUTAG", 188, 17.93, 39.59, 7, 2, "mutagenic compounds"),
        _graph("PROTEINS", 1113, 39.06, 145.63, 3, 2, "enzymes vs non-enzymes"),
        _graph("ENZYMES", 600, 32.63, 124.27, 3, 6, "EC top-level classes"),
        _graph("IMDB-BINARY", 1000, 19.77, 193.06, 0, 2,
               "movie collaboration ego-graphs, no node features"),
        _graph("NCI1", 4110, 29.87, 64.60, 37, 2, "anti-cancer screens"),
        _node("Minesweeper", "HeterophilousGraphDataset", {"name": "Minesweeper"},
              "HeterophilousGraphDataset", "HeterophilousGraphDataset/minesweeper",
              10000, 78804, 7, 2, "heterophilous grid, 10 splits 50/25/25"),
        _node("Tolokers", "HeterophilousGraphDataset", {"name": "Tolokers"},
              "HeterophilousGraphDataset", "HeterophilousGraphDataset/tolokers",
              11758, 1038000, 10, 2, "crowd-workers graph, 10 splits 50/25/25"),
        _node("chameleon", "WikipediaNetwork", {"name": "chameleon", "geom_gcn_preprocess": True},
              "WikipediaNetwork", "WikipediaNetwork/chameleon/geom_gcn",
              2277, 36101, 2325, 5, f"Wikipedia pages, {geom} (feature file rebuilt)"),
        _node("squirrel", "WikipediaNetwork", {"name": "squirrel", "geom_gcn_preprocess": True},
              "WikipediaNetwork", "WikipediaNetwork/squirrel/geom_gcn",
              5201, 217073, 2089, 5, f"Wikipedia pages, {geom} (feature file rebuilt)"),
        _node("Actor", "Actor", {}, "Actor", "Actor",
              7600, 30019, 932, 5, f"actor co-occurrence (film), {geom}"),
        _node("Cornell", "WebKB", {"name": "Cornell"}, "WebKB", "WebKB/cornell",
              183, 298, 1703, 5, f"web pages, {geom} (upstream features are Texas's)"),
        _node("Texas", "WebKB", {"name": "Texas"}, "WebKB", "WebKB/texas",
              183, 325, 1703, 5, f"web pages, {geom}"),
        _node("Wisconsin", "WebKB", {"name": "Wisconsin"}, "WebKB", "WebKB/wisconsin",
              251, 515, 1703, 5, f"web pages, {geom}"),
    ]
    return {e.name.lower(): e for e in entries}


# ------------------------------------------------------------------------------ look-up

def list_datasets() -> List[DatasetEntry]:
    """Every registered dataset, in registry order."""
    return list(_REGISTRY.values())


def get(name: str) -> DatasetEntry:
    """The entry of ``name`` (case-insensitive); a ``ValueError`` lists the known names."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    try:
        return _REGISTRY[name.lower()]
    except KeyError:
        known = ", ".join(e.name for e in _REGISTRY.values())
        raise UnknownDataset(f"unknown dataset {name!r}; known datasets: {known}") from None


# ------------------------------------------------------------------------------ helpers

def _local_root(root: Optional[PathLike]) -> Path:
    return Path(root).expanduser() if root is not None else _root.dataset_root()


def _sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _fix(entry: DatasetEntry) -> str:
    """How to get good files, for an error message."""
    return (f"Get a good copy with `gatlib data fetch {entry.name} --mirror DIR --copy` (DIR: "
            f"a mirror whose files are good), or from the source: {entry.source or 'unknown'}.")


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
    return (f"Link or copy them with `gatlib data fetch {entry.name} --mirror DIR` (DIR: a "
            f"mirror in PyG's layout, e.g. ../shared/datasets), or set GATLIB_MIRROR to such a "
            f"mirror (its raw/ folders are linked, never written) or GATLIB_DATA to a dataset "
            f"root that holds them; the files come from {entry.source or 'their source'}. "
            f"Nothing is downloaded (README: Getting the datasets).")


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


# ------------------------------------------------------------------------------ loading

def dataset_checksum(name: str) -> str:
    """One sha256 for a registered dataset's raw files (over the registry's file names and
    hashes): what a training run records as its data, and what a processed cache records as
    the raw files it was built from."""
    entry = get(name)
    table = sorted((f, sha) for f, (_, sha) in entry.raw_files.items())
    return hashlib.sha256(json.dumps(table).encode()).hexdigest()


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
                    if info["size"] != w["size"] or _sha256(pdir / fname) != w["sha256"]:
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
        files[fname] = {**info, "sha256": w["sha256"] if same else _sha256(pdir / fname)}
    new = {"raw": raw_sum, "files": files}
    if new == stamp["processed"].get(pdir.name):
        return False
    stamp["processed"][pdir.name] = new
    return True


def _ready_raw(entry: DatasetEntry, local: Path) -> Path:
    """``<local>/<folder>`` with every raw file present (linked from a mirror when needed)."""
    try:
        folder = _root.ensure_raw(entry.folder, local)       # links from a mirror if needed
    except DatasetNotFound:
        looked = [local / entry.folder / "raw"] + [m / entry.folder / "raw"
                                                  for m in _root.mirror_roots()]
        raise DatasetNotFound(
            f"{entry.name}: raw files not found; looked in: "
            + ", ".join(str(p) for p in looked)
            + ("" if len(looked) > 1 else " (no mirror found)") + ". "
            + _how_to_get(entry)) from None
    raw = folder / "raw"
    missing = _missing(entry, raw)
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
    ``raw/`` lacks files, listed in ``detail``) or ``"missing"``. ``verified`` is whether the
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
    return DatasetStatus(entry.name, "missing", None)


# ------------------------------------------------------------------------------ fetching

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


# ------------------------------------------------------------------------------ raw files
# {folder: {file: (bytes, sha256)}}, parsed once from ../shared/datasets/MANIFEST.md.
_RAW_FILES: Dict[str, Dict[str, Tuple[int, str]]] = {
    "Planetoid/Cora": {
        "ind.cora.allx":
            (257305, "9419ba2f26f5c35243db64aba110e0f35a04851609e0dc5433450676ca6b8543"),
        "ind.cora.ally":
            (47959, "2b998f5cc7fedc86e7f97ca2498f47a1ffc1462c29e2d578b23bf3f62b6e7d71"),
        "ind.cora.graph":
            (59847, "58f13302f39dde8852dad6fe6d15b89b077b6d7f837626bce671ef80344b383d"),
        "ind.cora.test.index":
            (5000, "297ce89af2b51a6a194181c7dbe1796c6a1cf9cd9349a88383b1b1e227867875"),
        "ind.cora.tx": (148025, "b9afbaa4a400df991f6f02ef677e1e44da55ffc04801fd02f9e673987829226a"),
        "ind.cora.ty": (28135, "41f5ac76596a1699cc33f53084a2419e92961c42bb75f36fc38e616d348532ad"),
        "ind.cora.x": (22119, "23cfa55d91c6f624233f5eb7b6e3f141f1bd2b2ae39608a63cf5d084bb27baab"),
        "ind.cora.y": (4054, "94465c14eb53e04ca262198dcbb2521ee8af60fb3f3d546cd6ca24a511b0e7d1"),
    },
    "Planetoid/CiteSeer": {
        "ind.citeseer.allx":
            (595021, "2ac30345d95c9ec933a817ee0bdd6a5f077f8c184a20e696910192d534414668"),
        "ind.citeseer.ally":
            (55623, "f704b2d986dde6c2669934de1f3ae5696a6cf9455c0f6b2646a2d135ea0a1c95"),
        "ind.citeseer.graph":
            (61987, "d79a4ef9d3e7169aee8946145f6b7306e35bc79bffad26346cfb94e10e9912a7"),
        "ind.citeseer.test.index":
            (5000, "2af990671580b6b2df5d158d1038f8292e30c9cd821b5453f399659b25b723d4"),
        "ind.citeseer.tx":
            (260321, "539a8906a2da97628d212f2fdd668c109a8b3f0d36574b59e5d3fd5b5303da21"),
        "ind.citeseer.ty":
            (24135, "55e5bd1ba1e733a04598753ad1a8d57957f4b8f89e74519f41f4f4938767e4ce"),
        "ind.citeseer.x":
            (31087, "d20de19150741e555de0ed037195630fc194114ebc7fd72ced62810148aa22f6"),
        "ind.citeseer.y":
            (3014, "8ba87e515d8e3ee3cf52f6d2c5b86aa73f11ecad825a808455209ec26cd54924"),
    },
    "TUDataset/MUTAG": {
        "MUTAG_A.txt": (76940, "d9656ca7493f3445d737c711710bb36fd432dddd1c0ea32e1d4713c86ebd28e2"),
        "MUTAG_edge_labels.txt":
            (14884, "4669ce755075ff86c3240709345745886400908fa637a49310459b9c267b3e56"),
        "MUTAG_graph_indicator.txt":
            (11532, "7d520a4d6c7961c0cdeabe076d8fe27e795b6d373485c9a2b744987e560a2056"),
        "MUTAG_graph_labels.txt":
            (439, "a1518ea39ba3426bd42f57396b9c4baffe68e9adc718caeeab0119c6591a5f2c"),
        "MUTAG_node_labels.txt":
            (6742, "678f429965490e84dd27713017538c995fc05d1621beac910848b600015ee863"),
        "README.txt": (2611, "66de65e4826e112482ec680bbbdf7c0af56d826ce935c110786d130b79b76b06"),
    },
    "TUDataset/PROTEINS": {
        "PROTEINS_A.txt":
            (2022990, "4c4b33e272fc95cac6d27ed6d5d12b9a852c8610e91fff59f8f0dbdd5a20df67"),
        "PROTEINS_graph_indicator.txt":
            (169673, "8d4ff1e852a5c28561e9bffb44cf9490bc552b13a3b6156dd12dc7f44e9afc4a"),
        "PROTEINS_graph_labels.txt":
            (2226, "c0ef9810c440775252872318d0c8adc385588e14bc4c47a2c34aa96ee3c7cdcd"),
        "PROTEINS_node_attributes.txt":
            (478190, "54eef829abb37e458a5fbf3a3c581e48e5810e220463c2cd951856b9ceb08f07"),
        "PROTEINS_node_labels.txt":
            (86942, "f758e8ad3d6e3c026b50833d75f6f90735b94eb3345e4243707f495ca8afea8d"),
        "README.txt": (2221, "e9c4ed2c9a4059ddfdc2eb7330ebecfc6c8d42dabd5ce2ee67f28aed0db49da7"),
    },
    "TUDataset/ENZYMES": {
        "ENZYMES_A.txt":
            (885124, "5553c84f8f562f3e199dfd27192174f485e85c44c1357661098668937a739cbf"),
        "ENZYMES_graph_indicator.txt":
            (74914, "95ba0fa47eba6f02e6b754a215dc66d5b49de3f45f57a128514301a8d7ed5f46"),
        "ENZYMES_graph_labels.txt":
            (1200, "04743e08967e61e65cdacbb90f8df6ee53742b3d2e7b84675b85ebac70506856"),
        "ENZYMES_node_attributes.txt":
            (3876850, "305a8fc3b12f79fb844ef3374d6a3c8ceeb4887dd4f86bbfe37932c4c5434e7b"),
        "ENZYMES_node_labels.txt":
            (39160, "8263eb9b64efa231a5886343483ccfc0342f2407014763a8f738fd51c32ce770"),
        "README.txt": (2568, "32d5fef501200221a2c0e1af3366797fa443ab8f490231c5fb4a8719e1df48cf"),
    },
    "TUDataset/IMDB-BINARY": {
        "IMDB-BINARY_A.txt":
            (4596012, "23c8964bab82f81469271186d721131714a265d0ca8c44ae048118da1d0c4092"),
        "IMDB-BINARY_graph_indicator.txt":
            (76924, "415cc3ba25b8c647dcf34d3de034f675ee070616f3b803be939cb26773489f26"),
        "IMDB-BINARY_graph_labels.txt":
            (2000, "63a44411fd6342b9c4429828c16e144a2a11ef5244e25bb60f0ffa8b3ee2ffce"),
    },
    "TUDataset/NCI1": {
        "NCI1_A.txt": (3235898, "2c028eda59a5fe96e2265a63d9ac236901bd9a7dc658498be13cd704a703076d"),
        "NCI1_graph_indicator.txt":
            (585267, "ffe5acfa754b057d5ce0dc725c5aadb631628161886cc040d38c719635257dc5"),
        "NCI1_graph_labels.txt":
            (8220, "fae44681e70113f496256ae87eaac33b7836e3a97fe8e023933b84fde6a5c8a2"),
        "NCI1_node_labels.txt":
            (245932, "dc0a22b6cbff0c939de00373e823977ba32b358f560e4288d7602f7b51407ee2"),
        "README.txt": (2477, "1866d918409a22531ef00ff7b0f72200c3a06722342c23c5e3299cebb5cd8757"),
    },
    "HeterophilousGraphDataset/minesweeper": {
        "minesweeper.npz":
            (135045, "e664c8dacf1e8ac466c2c09ed4b237bd2c5541f47a6eae9c6092cb87f16412b3"),
    },
    "HeterophilousGraphDataset/tolokers": {
        "tolokers.npz":
            (1329769, "dacf3ac94cec53d03cd2adb5255c08b33dee1656c33ca8164a464bd9450a1667"),
    },
    "WikipediaNetwork/chameleon/geom_gcn": {
        "chameleon_split_0.6_0.2_0.npz":
            (1775, "36605525b69be4e7df5b31fe6a1d044288c6ebf9f9f0514ca151f6a36afc5e8b"),
        "chameleon_split_0.6_0.2_1.npz":
            (1779, "d0779d5a1bedf1967d394468a52c0175fb00595d361fba897faf73322386c952"),
        "chameleon_split_0.6_0.2_2.npz":
            (1777, "86ad0d827bf4301dff830598fc0b70d0dd8689c5b4d72dab1d87a6c1970c4c6e"),
        "chameleon_split_0.6_0.2_3.npz":
            (1755, "37b3e994adf3afc55e16b617ed05af4e3ce308800755839084d77eced0528e9d"),
        "chameleon_split_0.6_0.2_4.npz":
            (1778, "f6b1d067b2b330132839d8b6120077bdc6cf759f7ce421f881a02e2953ec4596"),
        "chameleon_split_0.6_0.2_5.npz":
            (1772, "e7661834275c826692510cea0457b18b2c1ee38771f178d06e701b97541a1f6d"),
        "chameleon_split_0.6_0.2_6.npz":
            (1774, "16648d1197c1d3a2dec385346212c382030b0d5a8c997f4255aa2afa68a6b174"),
        "chameleon_split_0.6_0.2_7.npz":
            (1764, "61adcc53846becefecd466a5364dda23b983d387d1ac5d58c6e24d080c0fcba7"),
        "chameleon_split_0.6_0.2_8.npz":
            (1770, "7076ad5341a8218b1f5b6eccf9cfd15d28286ea11ef5c06eeee77af24ff2bf63"),
        "chameleon_split_0.6_0.2_9.npz":
            (1773, "743c4f813bf6130398a6511eb9ff07d2366c73bd6c7fddaf226a3f9e2917e0e7"),
        "out1_graph_edges.txt":
            (332448, "45ac593de9207470090230c8fd76beeb2f60b5371a9be088e8bf31e7f0619a4b"),
        "out1_node_feature_label.txt":
            (10602901, "5fd29736ff31b43a1bfcf305bc8b4cffc3103fb0957667976b2ea0f78aedcf5b"),
    },
    "WikipediaNetwork/squirrel/geom_gcn": {
        "out1_graph_edges.txt":
            (2115917, "453d8e96754d68e2ab0a7ebb56f93506b59531d95abaec7a2b46fe1eae7c39cd"),
        "out1_node_feature_label.txt":
            (21765097, "ac15ab755983717a187992eef8ce2017aae33ea444fd655b07e4662690dcc03a"),
        "squirrel_split_0.6_0.2_0.npz":
            (3134, "f112b88d3354e86d164d4d915b6a1f695c10f0e01e3e6b9893fc7b09bb93191d"),
        "squirrel_split_0.6_0.2_1.npz":
            (3130, "2486c687c8befb55930a6237f76f1d86ce2ba345782eda6157f4e752d05f304f"),
        "squirrel_split_0.6_0.2_2.npz":
            (3121, "d62ff83862ad96022d3400dfc9b7ca405834ca62767319d97c36b3f02db978c0"),
        "squirrel_split_0.6_0.2_3.npz":
            (3126, "af3d90e0b2718ac7417e10e8b5b382443667412e846cabc3cc4e4a592f4cedae"),
        "squirrel_split_0.6_0.2_4.npz":
            (3124, "fbe848298bb72b88db0704050cf216e2a93c916540d577906f3e644b679a6a2c"),
        "squirrel_split_0.6_0.2_5.npz":
            (3111, "cd04fab46a181151ddd97ce93c65fe79558fb79ffa230b62f488ebfaf5fdcd75"),
        "squirrel_split_0.6_0.2_6.npz":
            (3118, "b9189f7903ca7556a025c54dd5be6c00ec5952d4299e71630bc9876157676412"),
        "squirrel_split_0.6_0.2_7.npz":
            (3138, "ea7fb3ca5d5aa45b917b99fb7d64d4e87322b2b5303a0156c547aa3f1a6c8941"),
        "squirrel_split_0.6_0.2_8.npz":
            (3132, "b43faa190ca6dd4885a39dfc2a93d59f56f5174f3567bdbc49b18dd9cd9b7fb4"),
        "squirrel_split_0.6_0.2_9.npz":
            (3146, "529ade4b86fd191908a96011f25c454653083674b6d4f090b3fdd27af2d14f62"),
    },
    "WebKB/cornell": {
        "cornell_split_0.6_0.2_0.npz":
            (704, "14022a1e19ec7fc0a07a2c06a785a2f9dc52809dbcd1c14fc318f7800675d73f"),
        "cornell_split_0.6_0.2_1.npz":
            (700, "5568fa27e968a724c92211bf97026a36a08893cf94b218043e49b4c973c35cfb"),
        "cornell_split_0.6_0.2_2.npz":
            (695, "763fc1f423395e4172617fa5b6bc0d7adad2241e5fedd1a4f0a098a67f9dc8e9"),
        "cornell_split_0.6_0.2_3.npz":
            (701, "4334321cd9ec42de9d51107fb9a6dc310512e0921bc1cff0f390301ee37315fa"),
        "cornell_split_0.6_0.2_4.npz":
            (759, "2b6b3ef396f4dc7fcdc276fb16b88bb87409b25879dd672b3a506eca844dd8d7"),
        "cornell_split_0.6_0.2_5.npz":
            (754, "1a40ef8b20aa9e1aa850e1abdaba3efac1f66c98ef2c6a59eadefa21136ece6b"),
        "cornell_split_0.6_0.2_6.npz":
            (758, "bcddf4ab59eae4c7d47b8a6cec9025a54ec0e6d3f3bdcd7678e201f25ace4642"),
        "cornell_split_0.6_0.2_7.npz":
            (693, "2b497e12dfc123d7e7c9bb4fc4a82b5bee18409e109a3e3a04da439cacec964d"),
        "cornell_split_0.6_0.2_8.npz":
            (701, "5c4e110d252d7ad156b2e4cd34b6dbd1cecbcc1755f8d72e932cc2a54f2b643c"),
        "cornell_split_0.6_0.2_9.npz":
            (704, "80f1531807194d301affbf6f879a4ab4f56a19bdccb62d192e3ecd1b5275f052"),
        "out1_graph_edges.txt":
            (2001, "c4522a00cc40873c8a04a3a07c49e24a48a507eb284ac9c9f2d3e0590351bbb7"),
        "out1_node_feature_label.txt":
            (624308, "cf5a3ca346cdd1210b8342e22517fcbbdae658065b7a3145f59350e50e6236a3"),
    },
    "WebKB/texas": {
        "out1_graph_edges.txt":
            (2172, "0fe85183243a78cbee9b85a684f8240963d04d1020d10e9cd2b8cfb25e33b476"),
        "out1_node_feature_label.txt":
            (624308, "cf5a3ca346cdd1210b8342e22517fcbbdae658065b7a3145f59350e50e6236a3"),
        "texas_split_0.6_0.2_0.npz":
            (698, "7ba77bf7a8856fcc0ab15623a611b8cdce994e820f577da914123fb4f45272b0"),
        "texas_split_0.6_0.2_1.npz":
            (701, "21cc244a96e3c51ad7993afb4dd227f90e467d82b964bb42d7d9fc500a6ef87f"),
        "texas_split_0.6_0.2_2.npz":
            (756, "b9e96a699ccf3a4c31ffbd03e52b25570889833425d20fa44e06c37b327cf61e"),
        "texas_split_0.6_0.2_3.npz":
            (759, "1a7deeb1285009789d5e6045d7e39f7d019c9223d9a75a2b7ce5e26d33b51f63"),
        "texas_split_0.6_0.2_4.npz":
            (702, "b5419ff3fe31adcae66fdb085d4f47d0b188e9436ab59f438632af969aafc674"),
        "texas_split_0.6_0.2_5.npz":
            (691, "68405fd1b9ff6105d99717220ecbd198785e338bf4a73abee722bbc9703d2667"),
        "texas_split_0.6_0.2_6.npz":
            (756, "8ad78b973164e70e5ac0d282e79adcbc6006e373909fbdfd72a13131e09040b8"),
        "texas_split_0.6_0.2_7.npz":
            (693, "a84bcbf997365bddf5fdf72ed49dc7e435e475f8c6210f8cdee7c8581a2bd6df"),
        "texas_split_0.6_0.2_8.npz":
            (762, "65ba65f296f91d40d2d7d3c9369b67415094a7e254c6eee48cd6d6531c586fdf"),
        "texas_split_0.6_0.2_9.npz":
            (693, "4306981d654ad8835c000c1f73fb6c1e60dfe99e26c13a6073f3b0f4cc3ce6ee"),
    },
    "WebKB/wisconsin": {
        "out1_graph_edges.txt":
            (3606, "ebd213511c88fce1eda450c2f920600c4b8cbb38f02384856bcc47c6ec1807ae"),
        "out1_node_feature_label.txt":
            (856324, "a32b0aa38d42f0d36841e8a8cb646d197f0ff33a182ac75a2b4476aeed3c7e4b"),
        "wisconsin_split_0.6_0.2_0.npz":
            (805, "f66f641e191d35d491cd3b63d6c2cd93c4b436da398984b44c19a8d4d7e7b1a5"),
        "wisconsin_split_0.6_0.2_1.npz":
            (739, "534aeb97266bd5a85a8587adf8eebad3f2e001c1240610f24b62c0ad0c2466ee"),
        "wisconsin_split_0.6_0.2_2.npz":
            (747, "047a5b641778ec3a4c76055fd7f18ecb2424c0952f20dfff7e1b17749d8acbdd"),
        "wisconsin_split_0.6_0.2_3.npz":
            (810, "706c27b4c51d046c0316f1e915f093e4a1fff48b3436b3e7c421eab596a99e77"),
        "wisconsin_split_0.6_0.2_4.npz":
            (812, "7ee813605eec086457aaff022cf3837f2f893fcf8bd37e3a8d2ff0c80e4c4f87"),
        "wisconsin_split_0.6_0.2_5.npz":
            (749, "8094ac2bdaf2cbea8f7a48df66a0800c809b2fd5942740e6b0441b660d3a0dd5"),
        "wisconsin_split_0.6_0.2_6.npz":
            (735, "c423a8deea9b18f9ecb6cfd703578e2159df167de01fe7e6195b88995010252d"),
        "wisconsin_split_0.6_0.2_7.npz":
            (733, "57ad808c8d4dd94dc4404124370bbcebb3dcc597c2bea6457bf05f220adf1527"),
        "wisconsin_split_0.6_0.2_8.npz":
            (741, "27d4d62a2a6aea2cdc399302237512ab0d64fb0c84e648112f97c5896274e42f"),
        "wisconsin_split_0.6_0.2_9.npz":
            (744, "3c149cd124a19021031609e0d7743a7be59aae4f88c8d38410138e8f06f5daaf"),
    },
    "Actor": {
        "film_split_0.6_0.2_0.npz":
            (4214, "4505a41d4e90abd94d1ec22571ce528b09ad7cf20d87f764aebd4177590767f5"),
        "film_split_0.6_0.2_1.npz":
            (4231, "1871b0d24e3977c41e378fd24acc8025b63f86b77739be77a5b558d1287f207d"),
        "film_split_0.6_0.2_2.npz":
            (4224, "d26680e911ef3ecc9fc2a26d90c9d35028c63aadd7a5aea774649d1496c282cb"),
        "film_split_0.6_0.2_3.npz":
            (4207, "6755ad5f6a0be8594b344af3d2261eed935b83b73c4d70136e1a7beea7f78cb0"),
        "film_split_0.6_0.2_4.npz":
            (4233, "328fdca62b25074f21f2922518e042f24b3b8a1fc378f9dfb2cae36439aed902"),
        "film_split_0.6_0.2_5.npz":
            (4224, "5b3161a8dc8de4b2e651ebd56d68e768d1377044895b325566117fe26ab81cb7"),
        "film_split_0.6_0.2_6.npz":
            (4221, "e251b38abd4d7931b5e9ae5aba99dcdf87f0be283bdf6e65421274a1c9ef1df6"),
        "film_split_0.6_0.2_7.npz":
            (4205, "12164ef9f5620a2f12a387f4f2b8636859d42201101d6d32829ade62d5a98326"),
        "film_split_0.6_0.2_8.npz":
            (4217, "405cd1f7f631f678119f8bf2405809e86614d532985beb59566fcf95abd35b3f"),
        "film_split_0.6_0.2_9.npz":
            (4208, "505691c5d41bb37b20d085415dcdde2e8e68b5bc4e1feb2c0e361308002012bb"),
        "out1_graph_edges.txt":
            (323820, "997cdce67ea9c29257d3ffe796328391931901cf823830affa453178b60e2c3e"),
        "out1_node_feature_label.txt":
            (207718, "1d5cdd094f8b91e770f6decfca85b35cf42f75d1efb51055fd6af16e11820ff8"),
    },
}


_REGISTRY: Dict[str, DatasetEntry] = _build()
