"""Atomic writes: complete files or none, with the mode a plain open() gives."""
import json
import os

import pytest

from gatlib.utils import atomic_write_json, atomic_write_text


def test_atomic_write_creates_parents_and_plain_mode(tmp_path):
    path = atomic_write_json(tmp_path / "a" / "b" / "m.json", {"x": 1})
    assert json.loads(path.read_text()) == {"x": 1}
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in path.parent.iterdir()] == ["m.json"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = atomic_write_text(tmp_path / "t.txt", "old")

    class Boom:
        def __str__(self):
            raise RuntimeError("boom")
    with pytest.raises(TypeError):
        atomic_write_text(path, Boom())
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]
