"""A real HTTP server on 127.0.0.1 that serves dataset files under their upstream URL layout
(``/<owner>/<repo>/<commit>/<path>``), built from a mirror folder: plain files as they are,
TU archives zipped from their members (under ``<NAME>//``, as upstream keeps them), and the
npz files that chameleon's and squirrel's features are rebuilt from. Faults can be injected per
path: a connection cut mid-file, other bytes, a 404 (a path not served).

Used by tests/data/test_download.py; also runnable, to try `make run` in a clean clone without
a mirror (``GATLIB_DATA_URL`` pointed at it)::

    python tests/data/upstream.py MIRROR_DIR [PORT]
"""
from __future__ import annotations

import io
import sys
import threading
import zipfile
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from gatlib.data import list_datasets
from gatlib.data.registry import COMMITS


class Upstream:
    """Files by URL path, the hits each got, and the faults to inject."""

    def __init__(self):
        self.files: Dict[str, bytes] = {}
        self.cuts: Counter = Counter()        # path -> how many more responses to cut short
        self.hits: Counter = Counter()
        self.server: Optional[ThreadingHTTPServer] = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self, port: int = 0) -> "Upstream":
        up = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):                                 # noqa: N802 (http.server's name)
                up.hits[self.path] += 1
                data = up.files.get(self.path)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if up.cuts[self.path] > 0:                    # half the body, then hang up
                    up.cuts[self.path] -= 1
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

            def log_message(self, *args):                     # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def url_path(repo: str, path: str) -> str:
    return f"/{repo}/{COMMITS[repo]}/{path}"


def zip_members(members: Dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def features_npz(text: bytes) -> bytes:
    """The npz (``node_features``, ``node_labels``) that a geom-gcn feature file comes from."""
    rows = text.decode().splitlines()[1:]
    x = np.array([[int(v) for v in r.split("\t")[1].split(",")] for r in rows], dtype=np.float32)
    y = np.array([int(r.split("\t")[2]) for r in rows], dtype=np.int64)
    buf = io.BytesIO()
    np.savez(buf, node_features=x, node_labels=y)
    return buf.getvalue()


def serve_mirror(up: Upstream, mirror: Path, names=None) -> Upstream:
    """Add the upstream files of the registered datasets (``names``, default all) that
    ``mirror`` holds."""
    archives: Dict[str, Dict[str, bytes]] = {}
    for entry in list_datasets():
        if names is not None and entry.name not in names:
            continue
        raw = mirror / entry.folder / "raw"
        if not raw.is_dir():
            continue
        for fname, src in entry.sources.items():
            data = (raw / fname).read_bytes()
            if "path" in src:
                up.files[url_path(src["repo"], src["path"])] = data
            elif "archive" in src:
                stem = Path(src["archive"]).stem
                archives.setdefault(url_path(src["repo"], src["archive"]), {})[
                    f"{stem}//{src['member']}"] = data
            else:
                up.files[url_path(src["repo"], src["from"])] = features_npz(data)
    for path, members in archives.items():
        up.files[path] = zip_members(members)
    return up


if __name__ == "__main__":
    server = serve_mirror(Upstream(), Path(sys.argv[1])).start(
        int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    print(f"serving {len(server.files)} files at {server.base} (GATLIB_DATA_URL={server.base})",
          flush=True)
    threading.Event().wait()
