import pytest

from gatlib.data import DatasetNotFound, dataset_root, ensure_raw, mirror_roots


def test_root_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GATLIB_DATA", str(tmp_path))
    assert dataset_root() == tmp_path.resolve()
    monkeypatch.delenv("GATLIB_DATA")
    assert dataset_root().name == "datasets"


def test_raw_folder_is_linked_from_a_mirror_never_written(monkeypatch, tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "Planetoid" / "Toy" / "raw").mkdir(parents=True)
    (mirror / "Planetoid" / "Toy" / "raw" / "file.bin").write_bytes(b"x")
    monkeypatch.setenv("GATLIB_MIRROR", str(mirror))
    root = tmp_path / "local"
    folder = ensure_raw("Planetoid/Toy", root)
    assert folder == root / "Planetoid" / "Toy"
    assert (folder / "raw").is_symlink()
    assert (folder / "raw" / "file.bin").read_bytes() == b"x"
    assert mirror.resolve() in mirror_roots()
    # Second call: already there, nothing changes.
    assert ensure_raw("Planetoid/Toy", root) == folder
    assert sorted(p.name for p in (mirror / "Planetoid" / "Toy").iterdir()) == ["raw"]


def test_missing_dataset_says_where_it_looked(monkeypatch, tmp_path):
    monkeypatch.setenv("GATLIB_MIRROR", str(tmp_path))
    with pytest.raises(DatasetNotFound, match="looked in: .*Nope.*GATLIB_DATA"):
        ensure_raw("Planetoid/Nope", tmp_path / "local")
