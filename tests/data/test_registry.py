"""The dataset registry: look-up, fetch (link / copy with sha256 checks), verify, and loading
real datasets from the mirror without any download."""
import dataclasses
import hashlib
import sys

import pytest

import gatlib.data
import gatlib.data.root
from gatlib.data import (DatasetNotFound, fetch, get, list_datasets, load_dataset, mirror_roots,
                         verify)
from gatlib.data import registry

NAMES = ["Cora", "CiteSeer", "PubMed", "MUTAG", "PROTEINS", "ENZYMES", "IMDB-BINARY", "NCI1",
         "Minesweeper", "Tolokers", "chameleon", "squirrel", "Actor", "Cornell", "Texas",
         "Wisconsin"]

# The real mirror ($GATLIB_MIRROR, which the Makefile and CI set where one exists), if any.
MIRROR = next((m for m in mirror_roots() if (m / "Planetoid" / "Cora" / "raw").is_dir()), None)
needs_mirror = pytest.mark.skipif(
    MIRROR is None, reason="no dataset mirror here (gatlib.data.mirror_roots() found none with "
                           "Planetoid/Cora/raw; set GATLIB_MIRROR)")


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt by PyG to download fails the test loudly."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")
    import torch_geometric.data  # noqa: F401  (loads the modules patched below)
    import torch_geometric.datasets  # noqa: F401
    import torch_geometric.io.fs as fs
    for mod in list(sys.modules.values()):
        name = getattr(mod, "__name__", "")
        if name.startswith("torch_geometric") and hasattr(mod, "download_url"):
            monkeypatch.setattr(mod, "download_url", refuse)
    monkeypatch.setattr(fs, "cp", refuse)          # Planetoid and TUDataset download via fs.cp


# ------------------------------------------------------------------------------ look-up

def test_registry_lists_all_datasets_with_unique_names():
    entries = list_datasets()
    assert [e.name for e in entries] == NAMES
    assert len({e.name.lower() for e in entries}) == len(entries) == 16
    for e in entries:
        assert e.task in ("node", "graph")
        assert e.raw_files and all(len(sha) == 64 for _, sha in e.raw_files.values())
        assert e.description and e.stats["classes"] >= 2
        assert e.folder.startswith(e.pyg_root)
    assert {e.name for e in entries if e.task == "graph"} == {
        "MUTAG", "PROTEINS", "ENZYMES", "IMDB-BINARY", "NCI1"}
    # Each class's own layout.
    assert get("minesweeper").folder == "HeterophilousGraphDataset/minesweeper"
    assert get("chameleon").folder == "WikipediaNetwork/chameleon/geom_gcn"
    assert get("chameleon").kwargs["geom_gcn_preprocess"] is True
    assert get("actor").folder == "Actor" and get("actor").pyg_root == "Actor"
    assert get("texas").folder == "WebKB/texas"


def test_get_is_case_insensitive_and_unknown_names_error_clearly():
    assert get("cora") is get("CORA") is get("Cora")
    assert get("imdb-binary").name == "IMDB-BINARY"
    assert get("Chameleon").name == "chameleon"
    with pytest.raises(ValueError, match="unknown dataset 'Nope'.*Cora.*Wisconsin"):
        get("Nope")
    with pytest.raises(ValueError, match="known datasets"):
        load_dataset("PubMedX")


# ------------------------------------------------------------------------------ fake mirror

def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


FILES = {"a.txt": b"hello graph\n", "b.bin": bytes(range(256)) * 4}


@pytest.fixture
def toy(monkeypatch, tmp_path):
    """A fake mirror with one dataset, 'Toy', registered with its files' sha256."""
    mirror = tmp_path / "mirror"
    raw = mirror / "Fake" / "toy" / "raw"
    raw.mkdir(parents=True)
    for name, data in FILES.items():
        (raw / name).write_bytes(data)
    entry = dataclasses.replace(
        get("Texas"), name="Toy", pyg_root="Fake", folder="Fake/toy",
        raw_files={n: (len(d), _sha(d)) for n, d in FILES.items()})
    monkeypatch.setitem(registry._REGISTRY, "toy", entry)
    return mirror, raw, tmp_path / "local"


def test_fetch_links_a_mirror_folder_and_verifies(toy):
    mirror, raw, local = toy
    report = fetch(["toy"], mirror=mirror, root=local)
    target = local / "Fake" / "toy" / "raw"
    assert report["Toy"].action == "linked" and report["Toy"].target == target
    assert target.is_symlink() and target.resolve() == raw.resolve()
    assert (target / "a.txt").read_bytes() == FILES["a.txt"]
    assert verify("Toy", local) == target
    assert "Toy" in str(report) and "linked" in str(report)
    # Again: already there, nothing changes; the mirror was never written.
    assert fetch(["Toy"], mirror=mirror, root=local)["Toy"].action == "present"
    assert sorted(p.name for p in raw.parent.iterdir()) == ["raw"]


def test_fetch_copies_and_replaces_a_link(toy):
    mirror, raw, local = toy
    fetch(["Toy"], mirror=mirror, root=local)                        # a link first
    report = fetch(["Toy"], mirror=mirror, root=local, copy=True)
    target = local / "Fake" / "toy" / "raw"
    assert report["Toy"].action == "copied"
    assert target.is_dir() and not target.is_symlink()
    assert {p.name: p.read_bytes() for p in target.iterdir()} == FILES
    assert sorted(p.name for p in target.parent.iterdir()) == ["raw"]   # no temp folder left
    verify("toy", local)
    # A verified copy is kept, even when asked for a link.
    assert fetch(["Toy"], mirror=mirror, root=local)["Toy"].action == "present"


@pytest.mark.parametrize("copy", [True, False])
def test_corrupted_file_raises_and_leaves_nothing_half_written(toy, copy):
    mirror, raw, local = toy
    (raw / "b.bin").write_bytes(b"corrupted")
    expected, actual = _sha(FILES["b.bin"]), _sha(b"corrupted")
    with pytest.raises(ValueError, match=f"b.bin.*expected {expected}, got {actual}"):
        fetch(["Toy"], mirror=mirror, root=local, copy=copy)
    folder = local / "Fake" / "toy"
    assert not (folder / "raw").exists() and not (folder / "raw").is_symlink()
    assert not folder.exists() or list(folder.iterdir()) == []       # no partial copy or link


def test_verify_names_missing_and_corrupted_files(toy):
    mirror, raw, local = toy
    verify("Toy", mirror)                                             # the mirror, read only
    (raw / "a.txt").write_bytes(b"changed")
    with pytest.raises(ValueError, match="a.txt.*expected"):
        verify("Toy", mirror)
    (raw / "a.txt").unlink()
    with pytest.raises(DatasetNotFound, match="lacks a.txt"):
        verify("Toy", mirror)


# ------------------------------------------------------------------------------ missing data

def test_missing_dataset_offline_says_where_it_looked(monkeypatch, tmp_path, no_network):
    """Offline (tests run with GATLIB_OFFLINE=1), a dataset in neither the local root nor a
    mirror is one error naming both places, the URL it would fetch and the mirror option."""
    empty = tmp_path / "empty-mirror"
    empty.mkdir()
    monkeypatch.setattr(gatlib.data.root, "mirror_roots", lambda: [empty])
    local = tmp_path / "local"
    with pytest.raises(DatasetNotFound) as err:
        load_dataset("Minesweeper", root=local)
    msg = str(err.value)
    assert "\n" not in msg and "GATLIB_OFFLINE" in msg
    assert str(local / "HeterophilousGraphDataset" / "minesweeper" / "raw") in msg
    assert str(empty / "HeterophilousGraphDataset" / "minesweeper" / "raw") in msg
    assert "/yandex-research/heterophilous-graphs/" in msg and "minesweeper.npz" in msg
    assert "GATLIB_MIRROR" in msg and "--mirror DIR" in msg
    with pytest.raises(DatasetNotFound, match="Minesweeper.*downloads are off.*mirrors "
                                              "looked in: .*empty-mirror"):
        fetch(["Minesweeper"], root=local)
    with pytest.raises(DatasetNotFound, match="mirror .*nowhere is not a folder"):
        fetch(["Minesweeper"], root=local, mirror=tmp_path / "nowhere")
    assert not (local / "HeterophilousGraphDataset" / "minesweeper" / "raw").exists()


def test_incomplete_raw_folder_is_reported_and_replaced(monkeypatch, tmp_path, no_network,
                                                        capsys):
    """A local raw/ that lacks files is replaced by a download (offline: an error), and the
    files it lacks are named."""
    monkeypatch.setattr(gatlib.data.root, "mirror_roots", lambda: [])
    raw = tmp_path / "TUDataset" / "MUTAG" / "raw"
    raw.mkdir(parents=True)
    (raw / "README.txt").write_text("only this")
    with pytest.raises(DatasetNotFound, match="downloads are off"):
        load_dataset("MUTAG", root=tmp_path)
    assert "lacks MUTAG_A.txt" in capsys.readouterr().err
    assert (raw / "README.txt").read_text() == "only this"


# ------------------------------------------------------------------------------ real mirror

@pytest.fixture(scope="module")
def local_root(tmp_path_factory):
    return tmp_path_factory.mktemp("datasets")


@needs_mirror
def test_mirror_holds_every_registered_file():
    # PubMed is downloaded only: its ind.pubmed.allx (7.6 MB) is not kept in the mirror.
    assert [e.name for e in list_datasets() if not (MIRROR / e.folder).is_dir()] == ["PubMed"]
    for e in list_datasets():
        if e.name == "PubMed":
            continue
        raw = MIRROR / e.folder / "raw"
        for fname, (size, _) in e.raw_files.items():
            assert (raw / fname).stat().st_size == size, (e.name, fname)


@needs_mirror
def test_load_cora(local_root, no_network):
    ds = load_dataset("Cora", root=local_root)
    data, stats = ds[0], get("Cora").stats
    assert (data.num_nodes, data.num_edges) == (stats["nodes"], stats["edges"]) == (2708, 10556)
    assert ds.num_features == 1433 and ds.num_classes == 7
    assert [int(m.sum()) for m in (data.train_mask, data.val_mask, data.test_mask)] == [
        140, 500, 1000]
    raw = local_root / "Planetoid" / "Cora" / "raw"
    assert raw.is_symlink()                             # linked, processed/ written locally
    assert (local_root / "Planetoid" / "Cora" / "processed").is_dir()
    assert not (MIRROR / "Planetoid" / "Cora" / "processed").exists()


@needs_mirror
def test_load_mutag(local_root, no_network):
    ds = load_dataset("mutag", root=local_root)
    assert len(ds) == 188 and ds.num_features == 7 and ds.num_classes == 2
    avg_nodes = sum(g.num_nodes for g in ds) / len(ds)
    assert avg_nodes == pytest.approx(get("MUTAG").stats["avg_nodes"], abs=0.01)


@needs_mirror
def test_load_minesweeper(local_root, no_network):
    ds = load_dataset("Minesweeper", root=local_root)
    data = ds[0]
    assert (data.num_nodes, data.num_edges, ds.num_features, ds.num_classes) == (
        10000, 78804, 7, 2)
    assert tuple(data.train_mask.shape) == (10000, 10)


@needs_mirror
def test_verify_on_the_mirror():
    assert verify("MUTAG", MIRROR) == MIRROR / "TUDataset" / "MUTAG" / "raw"
    verify("texas", MIRROR)
