"""The registry's checksums are package data (gatlib/data/checksums.json), shipped with the
package, and every entry's file table is read from them."""
import json
import re
from pathlib import Path

from gatlib.data import list_datasets

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "gatlib" / "data" / "checksums.json"


def test_every_entry_reads_its_files_from_checksums_json():
    table = json.loads(TABLE.read_text())["files"]
    entries = list_datasets()
    assert {e.folder for e in entries} == set(table)
    for e in entries:
        assert {f: tuple(v[:2]) for f, v in table[e.folder].items()} == dict(e.raw_files)
        assert {f: v[2] for f, v in table[e.folder].items()} == dict(e.sources)
        assert all(re.fullmatch(r"[0-9a-f]{64}", sha) and size > 0
                   for size, sha in e.raw_files.values())


def test_checksums_json_is_package_data():
    text = (ROOT / "pyproject.toml").read_text()
    section = text[text.index("[tool.setuptools.package-data]"):]
    assert re.search(r'"gatlib\.data" = \[[^\]]*"checksums\.json"', section)
    # No hash is written in the code any more.
    for module in (ROOT / "gatlib" / "data").glob("*.py"):
        assert not re.search(r"[0-9a-f]{64}", module.read_text()), module.name
