"""The package and its two documents are for users anywhere: they name no folder outside the
checkout (such as a dataset mirror beside it) and cite no document the repository lacks."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _texts():
    yield from ((p, p.read_text(errors="replace")) for p in sorted((ROOT / "gatlib").rglob("*"))
                if p.is_file() and p.suffix in (".py", ".json", ".c", ".h", ".md", ".txt"))
    for name in ("README.md", "ARCHITECTURE.md"):
        yield ROOT / name, (ROOT / name).read_text()


def test_no_path_outside_the_checkout():
    bad = [(p.relative_to(ROOT), m.group(0)) for p, text in _texts()
           for m in re.finditer(r"\.\./shared|shared/datasets|/work/", text)]
    assert bad == []


def test_every_cited_markdown_document_is_in_the_repository():
    cited = {(p.relative_to(ROOT), m.group(1)) for p, text in _texts()
             for m in re.finditer(r"\b([A-Z][A-Z_]+\.md)\b", text)}
    missing = [(p, doc) for p, doc in cited
               if not any((base / doc).is_file() for base in (ROOT, ROOT / "experiments",
                                                              p.parent))]
    assert missing == []
