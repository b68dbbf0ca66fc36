"""The dataset registry: what each dataset is, where PyG keeps its raw
files, and their sha256 (the package data ``gatlib/data/checksums.json``), looked up by name.

Each raw file has its size, sha256 and pinned source in ``checksums.json``: a file of a public
GitHub repository at a full commit id, a member of a zip archive there, or a file rebuilt from
an upstream file by a named procedure (:mod:`gatlib.data.rebuild`). Checking files against them
is :mod:`gatlib.data.checks`'s, loading :mod:`gatlib.data.load`'s, downloading them
:mod:`gatlib.data.download`'s, linking or copying them from a mirror :mod:`gatlib.data.install`'s.

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
    ds = load_dataset("cora")                       # downloads Planetoid/Cora/raw when missing
    print(fetch(["MUTAG", "Texas"]))                # downloads (or links from $GATLIB_MIRROR)
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from ..utils.errors import UserError
from . import root as _root

__all__ = ["DatasetEntry", "UnknownDataset", "list_datasets", "get", "dataset_checksum",
           "COMMITS", "UPSTREAM"]


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
        sources: ``{file name: source}``, where each file comes from: ``{"repo", "path"}`` (a
            file of the repository at its pinned commit, :data:`COMMITS`), ``{"repo",
            "archive", "member"}`` (a member of a zip archive there) or ``{"repo", "rebuild",
            "from"}`` (rebuilt by :data:`gatlib.data.rebuild.REBUILDS`).
        stats: published statistics, with edges counted as PyG stores them (both directions):
            node tasks ``nodes, edges, features, classes``; graph tasks ``graphs, avg_nodes,
            avg_edges, features, classes``.
        description: one line with the published statistics.
        source: where the raw files come from, in words (repositories and commits).
    """
    name: str
    task: str
    pyg_class: str
    kwargs: Mapping[str, Any]
    pyg_root: str
    folder: str
    raw_files: Mapping[str, Tuple[int, str]] = field(repr=False)
    sources: Mapping[str, Mapping[str, str]] = field(repr=False)
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


def _table() -> Dict[str, Any]:
    """The package data ``checksums.json``: commits, upstream files and raw files."""
    return json.loads((Path(__file__).with_name("checksums.json")).read_text())


_TABLE = _table()
COMMITS: Dict[str, str] = dict(_TABLE["commits"])
"""``{owner/repo: full commit id}``: the one commit each source repository is read at."""
UPSTREAM: Dict[str, Tuple[int, str]] = {k: (int(v[0]), v[1])
                                        for k, v in _TABLE["upstream"].items()}
"""``{owner/repo/path: (bytes, sha256)}`` of the archives and rebuild inputs, as upstream serves
them (their members and outputs are checked against ``raw_files``)."""
_RAW_FILES = {folder: {f: (int(v[0]), v[1]) for f, v in files.items()}
              for folder, files in _TABLE["files"].items()}
_RAW_SOURCES = {folder: {f: dict(v[2]) for f, v in files.items()}
                for folder, files in _TABLE["files"].items()}


def _describe(sources: Mapping[str, Mapping[str, str]]) -> str:
    """Where a dataset's files come from, in words: each repository at its commit, and what of
    it."""
    parts: Dict[str, set] = {}
    for s in sources.values():
        what = (s["archive"] if "archive" in s else
                f"{s['from']} (rebuilt: {s['rebuild']})" if "rebuild" in s else
                s["path"].rsplit("/", 1)[0] + "/")
        parts.setdefault(s["repo"], set()).add(what)
    return "; ".join(f"github.com/{repo} @ {COMMITS[repo][:10]}: {', '.join(sorted(w))}"
                     for repo, w in parts.items())


def _entry(name, task, pyg_class, kwargs, pyg_root, folder, stats, description):
    return DatasetEntry(name=name, task=task, pyg_class=pyg_class, kwargs=dict(kwargs),
                        pyg_root=pyg_root, folder=folder, raw_files=_RAW_FILES[folder],
                        sources=_RAW_SOURCES[folder], stats=dict(stats),
                        description=description, source=_describe(_RAW_SOURCES[folder]))


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
        _node("PubMed", "Planetoid", {"name": "PubMed"}, "Planetoid", "Planetoid/PubMed",
              19717, 88648, 500, 3, "citation graph, public split 60/500/1000"),
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



def _local_root(root: Optional[PathLike]) -> Path:
    return Path(root).expanduser() if root is not None else _root.dataset_root()


def dataset_checksum(name: str) -> str:
    """One sha256 for a registered dataset's raw files (over the registry's file names and
    hashes): what a training run records as its data, and what a processed cache records as
    the raw files it was built from."""
    entry = get(name)
    table = sorted((f, sha) for f, (_, sha) in entry.raw_files.items())
    return hashlib.sha256(json.dumps(table).encode()).hexdigest()


_REGISTRY: Dict[str, DatasetEntry] = _build()
