"""Atomic writes: complete files or none, with the mode a plain open() gives."""
import json
import os

import pytest

from gatlib.utils import atomic_write_json, atomic_write_text, read_jsonl


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


def test_read_jsonl_drops_a_torn_last_line_only(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"epoch": 0}\n\n{"epoch": 1}\n{"epo')        # killed while appending
    assert read_jsonl(path) == [{"epoch": 0}, {"epoch": 1}]
    path.write_text('{"epoch": 0}\n{"epo\n{"epoch": 2}\n')          # damaged in the middle
    with pytest.raises(ValueError, match=r"log\.jsonl, line 2: not valid JSON.*delete"):
        read_jsonl(path)
    path.write_text('{"epoch": 0}\n{"epoch": 1\n')                   # a complete bad line
    with pytest.raises(ValueError, match="line 2"):
        read_jsonl(path)
