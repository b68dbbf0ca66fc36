"""Data is checked when it is loaded, not only when fetched: every raw file's size and sha256
against the registry (once per file version, through a stamp beside the processed data), and
the processed cache against the raw files it was built from. Tests work on copies in
tmp_path; the shared mirror is only read."""
import dataclasses
import hashlib
import os
import shutil

import pytest
import torch

import gatlib.data
import gatlib.data.root
from gatlib import cli
from gatlib.data import (DatasetDamaged, DatasetNotFound, check_dataset, dataset_status, get,
                         load_dataset, mirror_roots)
from gatlib.data import checks, registry

MIRROR = next((m for m in mirror_roots() if (m / "TUDataset" / "MUTAG" / "raw").is_dir()
               and (m / "Planetoid" / "Cora" / "raw").is_dir()), None)
needs_mirror = pytest.mark.skipif(MIRROR is None, reason="no dataset mirror with MUTAG and Cora "
                                                         "here (set GATLIB_MIRROR)")


def _flip(path, offset=100, n=3):
    """Flip ``n`` bytes of a file in place: same size, other content."""
    data = bytearray(path.read_bytes())
    for i in range(offset, offset + n):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


def _copy(name, root):
    """A real (not linked) copy of a dataset's raw files under ``root``."""
    entry = get(name)
    dst = root / entry.folder / "raw"
    shutil.copytree(MIRROR / entry.folder / "raw", dst)
    for p in dst.iterdir():
        os.chmod(p, 0o644)                   # the mirror's files are read-only
    return dst


@pytest.fixture
def offline(monkeypatch):
    """No mirror: only the local copies of a test count."""
    monkeypatch.setattr(gatlib.data.root, "mirror_roots", lambda: [])


@pytest.fixture
def count_hashes(monkeypatch):
    seen = []
    real = checks._sha256

    def counting(path, *a):
        seen.append(path.name)
        return real(path, *a)
    monkeypatch.setattr(checks, "_sha256", counting)
    return seen


@pytest.fixture
def no_parse(monkeypatch):
    """PyG's parsers fail the test if they are reached."""
    import torch_geometric.datasets as D

    def refuse(self):
        raise AssertionError(f"{type(self).__name__}.process reached")
    for cls in (D.TUDataset, D.Planetoid):
        monkeypatch.setattr(cls, "process", refuse)


# ------------------------------------------------------------------ a fake dataset, no mirror

FILES = {"a.txt": b"hello graph\n" * 20, "b.bin": bytes(range(256)) * 4}


@pytest.fixture
def fake(monkeypatch, tmp_path, offline):
    root = tmp_path / "local"
    raw = root / "Fake" / "toy" / "raw"
    raw.mkdir(parents=True)
    for name, data in FILES.items():
        (raw / name).write_bytes(data)
    entry = dataclasses.replace(
        get("Texas"), name="Toy", pyg_root="Fake", folder="Fake/toy", source="the toy source",
        raw_files={n: (len(d), hashlib.sha256(d).hexdigest()) for n, d in FILES.items()})
    monkeypatch.setitem(registry._REGISTRY, "toy", entry)
    return root, raw


def test_files_are_hashed_once_per_version(fake, count_hashes):
    root, raw = fake
    folder = check_dataset("Toy", root)
    assert sorted(count_hashes) == ["a.txt", "b.bin"]
    assert (folder / ".gatlib-verified.json").is_file()
    count_hashes.clear()
    check_dataset("Toy", root)
    assert count_hashes == []                        # a stat per file, no hashing
    st = (raw / "a.txt").stat()
    os.utime(raw / "a.txt", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    check_dataset("Toy", root)
    assert count_hashes == ["a.txt"]                 # only the file that changed
    assert dataset_status("Toy", root).verified


def test_altered_and_truncated_files_are_named_with_the_fix(fake):
    root, raw = fake
    check_dataset("Toy", root)
    _flip(raw / "b.bin")                             # same size, new mtime
    with pytest.raises(DatasetDamaged) as err:
        check_dataset("Toy", root)
    msg = str(err.value)
    assert str(raw / "b.bin") in msg and "sha256 expected" in msg
    assert "gatlib data fetch Toy --mirror DIR" in msg and "the toy source" in msg
    (raw / "b.bin").write_bytes(FILES["b.bin"][:500])
    with pytest.raises(DatasetDamaged, match=r"b\.bin is damaged: 500 bytes, expected 1,024 "
                                             r"\(cut short\)"):
        check_dataset("Toy", root)
    assert not dataset_status("Toy", root).verified


def test_data_list_shows_where_each_dataset_is(fake, tmp_path, monkeypatch, capsys):
    root, _ = fake
    mirror = tmp_path / "mirror"
    for name in ("MUTAG",):
        entry = get(name)
        (mirror / entry.folder / "raw").mkdir(parents=True)
        for fname in entry.raw_files:
            (mirror / entry.folder / "raw" / fname).write_bytes(b"x")
    monkeypatch.setattr(gatlib.data.root, "mirror_roots", lambda: [mirror])
    monkeypatch.setenv("GATLIB_DATA", str(root))
    assert cli.main(["data", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"local root: {root} ($GATLIB_DATA); mirror: {mirror}")
    assert out[0].endswith("downloads: off (GATLIB_OFFLINE)")
    rows = {ln.split()[0]: ln for ln in out[2:] if ln.split()}
    assert rows["Toy"].split()[2] == "local" and str(root / "Fake" / "toy" / "raw") in rows["Toy"]
    assert rows["MUTAG"].split()[2] == "mirror" and "linked on first use" in rows["MUTAG"]
    assert rows["Cora"].split()[2] == "missing" and "downloads off" in rows["Cora"]
    assert "`gatlib data fetch NAME` downloads" in out[-1] and "--mirror DIR" in out[-1]


# ------------------------------------------------------------------ real files, copied

@needs_mirror
def test_flipped_bytes_never_reach_pyg(tmp_path, offline, no_parse, monkeypatch, capsys):
    """Three bytes flipped in a raw file (same size) made loading segfault or train on wrong
    data; now the file is named before PyG parses anything, also from `gatlib train`."""
    raw = _copy("MUTAG", tmp_path)
    _flip(raw / "MUTAG_A.txt")
    with pytest.raises(DatasetDamaged, match=r"MUTAG_A\.txt is damaged: sha256") as err:
        load_dataset("MUTAG", root=tmp_path)
    assert "gatlib data fetch MUTAG --mirror DIR" in str(err.value)
    assert "bknyaz/graph_nn" in str(err.value)
    assert not (tmp_path / "TUDataset" / "MUTAG" / "processed").exists()
    monkeypatch.setenv("GATLIB_DATA", str(tmp_path))
    cfg = tmp_path / "mutag.yaml"
    cfg.write_text("dataset: MUTAG\ntask: graph\ntrain: {epochs: 1}\n")
    assert cli.main(["train", "--config", str(cfg), "--results", str(tmp_path / "r"),
                     "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "MUTAG_A.txt is damaged" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2


@needs_mirror
def test_truncated_pickle_is_named_not_unpickled(tmp_path, offline, no_parse):
    raw = _copy("Cora", tmp_path)
    path = raw / "ind.cora.x"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DatasetDamaged, match=r"ind\.cora\.x is damaged: 1,000 bytes, expected "
                                             r"22,119 \(cut short\)"):
        load_dataset("Cora", root=tmp_path)


@needs_mirror
def test_processed_cache_of_other_raw_files_is_rebuilt(tmp_path, offline, capsys):
    from torch_geometric.datasets import TUDataset
    good = TUDataset(str(_copy("MUTAG", tmp_path / "good") and tmp_path / "good" / "TUDataset"),
                     "MUTAG")
    raw = _copy("MUTAG", tmp_path / "local")
    labels = raw / "MUTAG_graph_labels.txt"
    original = labels.read_bytes()
    labels.write_bytes(original.replace(b"-1", b" 1"))        # every graph in one class
    stale = TUDataset(str(tmp_path / "local" / "TUDataset"), "MUTAG")   # PyG alone: no check
    assert not torch.equal(stale._data.y, good._data.y)
    labels.write_bytes(original)                              # the raw files are good again
    ds = load_dataset("MUTAG", root=tmp_path / "local")
    assert "rebuilding" in capsys.readouterr().err
    assert torch.equal(ds._data.y, good._data.y)
    # Loaded again: nothing is rebuilt.
    ds = load_dataset("MUTAG", root=tmp_path / "local")
    assert "rebuilding" not in capsys.readouterr().err


@needs_mirror
def test_damaged_processed_file_is_detected_and_rebuilt(tmp_path, offline, capsys):
    _copy("MUTAG", tmp_path)
    ds = load_dataset("MUTAG", root=tmp_path)
    want = ds._data.x.clone()
    data_pt = tmp_path / "TUDataset" / "MUTAG" / "processed" / "data.pt"
    _flip(data_pt, offset=data_pt.stat().st_size - 200, n=3)
    capsys.readouterr()
    again = load_dataset("MUTAG", root=tmp_path)
    err = capsys.readouterr().err
    assert "data.pt is damaged" in err and "rebuilding" in err
    assert torch.equal(again._data.x, want)


@needs_mirror
def test_linked_mirror_is_checked_and_never_written(tmp_path, monkeypatch, count_hashes):
    monkeypatch.setattr(gatlib.data.root, "mirror_roots", lambda: [MIRROR])
    before = sorted(p.name for p in (MIRROR / "TUDataset" / "MUTAG").iterdir())
    load_dataset("MUTAG", root=tmp_path)
    assert sorted(count_hashes)[:6] == sorted(get("MUTAG").raw_files)
    assert (tmp_path / "TUDataset" / "MUTAG" / "raw").is_symlink()
    assert sorted(p.name for p in (MIRROR / "TUDataset" / "MUTAG").iterdir()) == before
    count_hashes.clear()
    load_dataset("MUTAG", root=tmp_path)
    assert count_hashes == []
    st = dataset_status("MUTAG", tmp_path)
    assert st.state == "linked" and st.verified and st.path == (
        MIRROR / "TUDataset" / "MUTAG" / "raw").resolve()


def test_missing_dataset_is_a_short_user_error(tmp_path, offline, capsys):
    with pytest.raises(DatasetNotFound, match="MUTAG: not in .*downloads are off "
                                              r"\(GATLIB_OFFLINE\); it would be fetched from "
                                              "https://.*MUTAG.zip.*gatlib data fetch MUTAG "
                                              "--mirror DIR") as err:
        check_dataset("MUTAG", tmp_path)
    assert "\n" not in str(err.value)


@needs_mirror
def test_a_load_waits_while_another_builds_the_dataset(tmp_path, offline, capsys):
    """Loading a dataset holds a lock on its folder: a second loader waits for the first to
    build and record the processed cache, instead of finding it half-built (and removing it
    as unrecorded)."""
    import threading

    from gatlib.utils import FolderLock
    _copy("MUTAG", tmp_path)
    folder = tmp_path / "TUDataset" / "MUTAG"
    out = []
    with FolderLock(folder):                        # as if another process were building it
        t = threading.Thread(target=lambda: out.append(load_dataset("MUTAG", root=tmp_path)))
        t.start()
        t.join(1.0)
        assert t.is_alive() and out == []           # waiting, not reading
    t.join(60)
    assert len(out) == 1 and len(out[0]) == 188
    assert "rebuilding" not in capsys.readouterr().err
