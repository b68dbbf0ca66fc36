"""Downloading a dataset's raw files from their pinned public sources.

Every raw file of the registry names its source (:mod:`gatlib.data.registry`): a file of a
GitHub repository at a full commit id, a member of a zip archive there, or a file rebuilt from
an upstream file (:mod:`gatlib.data.rebuild`). :func:`download` fetches them over HTTPS into a
temporary folder beside ``raw/``, with a progress bar, checks each file's size and sha256
against the registry, and only then renames the folder into place: a failed, cut or refused
download installs nothing and leaves no half-written file.

- A cut transfer or a server error (5xx, 408, 429) is retried with exponential backoff; other
  HTTP errors (a 404) and a wrong hash are not.
- Archives are read safely: an entry with an absolute path or a ``..`` component refuses the
  whole archive, members are found by file name wherever the archive keeps them, and sizes are
  capped (the download by the recorded size, the members by the registry's sizes). Every file
  installed from an archive or a rebuild is checked against the registry's own sha256; an
  archive whose bytes differ from upstream's recorded ones (a mirror server that re-packed it)
  is said in one line, and its members still have to match.
- ``GATLIB_DATA_URL=<base>`` replaces the scheme and host of every source URL
  (``https://host/a/b/c`` becomes ``<base>/a/b/c``): a company's own mirror server, or a test.
- ``GATLIB_OFFLINE=1`` (or ``true``, ``yes``, ``on``) turns downloading off: a missing dataset
  is then an error naming the URL it would have fetched and the mirror option.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from .checks import _say, _sha256
from .registry import COMMITS, UPSTREAM, DatasetEntry
from .root import DatasetDamaged, DatasetNotFound

__all__ = ["download", "download_bytes", "source_url", "url_base", "offline", "install_folder", "DownloadError"]

UPSTREAM_BASE = "https://raw.githubusercontent.com"   # GitHub's raw files, by commit and path
TIMEOUT_S = 30.0                                      # per connection attempt
ATTEMPTS = 4                                          # tries per file (cut transfers, 5xx)
BACKOFF_S = 0.5                                       # first wait; doubled after each try
_MEMBER_LIMIT = 1 << 30                               # total bytes of an archive's members
_CHUNK = 1 << 16


class DownloadError(DatasetNotFound):
    """A source could not be reached or served no such file (the message names the URL)."""


def offline() -> bool:
    """Whether ``GATLIB_OFFLINE`` turns downloading off."""
    return os.environ.get("GATLIB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def url_base() -> str:
    """What replaces the scheme and host of every source URL: ``$GATLIB_DATA_URL`` when set,
    else GitHub's raw-file host."""
    return os.environ.get("GATLIB_DATA_URL", "").strip().rstrip("/") or UPSTREAM_BASE


def source_url(repo: str, path: str) -> str:
    """The URL of ``path`` in repository ``repo`` at its pinned commit, with the scheme and host
    replaced by ``$GATLIB_DATA_URL`` when set (``https://host/a/b`` becomes ``<base>/a/b``)."""
    return url_base() + urlsplit(f"{UPSTREAM_BASE}/{repo}/{COMMITS[repo]}/{path}").path


def _mirror_hint(name: str) -> str:
    return (f"to work offline, put a mirror folder in PyG's layout in GATLIB_MIRROR or run "
            f"`gatlib data fetch {name} --mirror DIR`")


def install_folder(new: Path, raw: Path) -> None:
    """Put ``new`` (a finished folder or symlink beside ``raw``) in place of ``raw``, so that
    ``raw`` is never seen half-written (renames within one folder)."""
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


# ------------------------------------------------------------------------------ one file

def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, HTTPError):
        return exc.code in (408, 429) or exc.code >= 500
    return isinstance(exc, (URLError, http.client.HTTPException, ConnectionError,
                            TimeoutError, socket.timeout))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, URLError):
        return str(exc.reason)
    if isinstance(exc, http.client.IncompleteRead):
        return f"connection cut after {len(exc.partial):,} bytes"
    return f"{type(exc).__name__}: {exc}"


def _get(url: str, dest: Path, limit: int, bar, name: str) -> Tuple[int, str]:
    """Download ``url`` to ``dest`` (overwritten), at most ``limit`` bytes; returns (bytes,
    sha256). Cut transfers and server errors are retried with backoff."""
    from .. import __version__
    last: Optional[BaseException] = None
    for attempt in range(ATTEMPTS):
        got = 0
        try:
            req = Request(url, headers={"User-Agent": f"gatlib/{__version__}"})
            with urlopen(req, timeout=TIMEOUT_S) as resp, open(dest, "wb") as out:
                length = resp.headers.get("Content-Length")
                h = hashlib.sha256()
                while True:
                    chunk = resp.read(min(_CHUNK, limit + 1 - got))
                    if not chunk:
                        break
                    got += len(chunk)
                    if got > limit:
                        raise DatasetDamaged(f"{name}: {url} sends more than the {limit:,} "
                                             f"bytes expected; nothing was installed")
                    h.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
                if length is not None and length.isdigit() and got < int(length):
                    raise http.client.IncompleteRead(b"\0" * got, int(length) - got)
            return got, h.hexdigest()
        except BaseException as exc:
            bar.update(-got)
            if not _retryable(exc):
                if isinstance(exc, HTTPError):
                    raise DownloadError(f"{name}: could not download {url}: {_reason(exc)}; "
                                        f"{_mirror_hint(name)}") from None
                raise
            last = exc
            if attempt + 1 < ATTEMPTS:
                time.sleep(BACKOFF_S * 2 ** attempt)
    raise DownloadError(f"{name}: could not reach {url} ({_reason(last)}; {ATTEMPTS} tries); "
                        f"{_mirror_hint(name)}")


def _mismatch(name: str, fname: str, url: str, what: str) -> DatasetDamaged:
    return DatasetDamaged(f"{name}: {fname} from {url} is not the registry's file ({what}); "
                          f"nothing was installed. The source changed or the transfer was "
                          f"altered: report it, or use a mirror ({_mirror_hint(name)})")


def _check(name: str, fname: str, url: str, size: int, sha: str, path: Path) -> None:
    got = path.stat().st_size
    if got != size:
        raise _mismatch(name, fname, url, f"{got:,} bytes, expected {size:,}")
    actual = _sha256(path)
    if actual != sha:
        raise _mismatch(name, fname, url, f"sha256 expected {sha}, got {actual}")


# ------------------------------------------------------------------------------ archives

def _extract(archive: Path, url: str, wanted: Dict[str, Tuple[Path, int]], name: str) -> None:
    """Extract each member of ``wanted`` ({member file name: (destination, registry size)})
    from the zip ``archive``, found by file name in any folder. An entry with an absolute path
    or a ``..`` component refuses the whole archive; sizes are capped."""
    try:
        z = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise DatasetDamaged(f"{name}: {url} is not a zip archive ({exc}); nothing was "
                             f"installed") from None
    with z:
        infos = z.infolist()
        for info in infos:
            parts = info.filename.replace("\\", "/").split("/")
            if info.filename.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
                raise DatasetDamaged(f"{name}: {url} holds the entry {info.filename!r} (an "
                                     f"absolute path or '..'): archive refused, nothing was "
                                     f"installed")
        if sum(i.file_size for i in infos) > _MEMBER_LIMIT:
            raise DatasetDamaged(f"{name}: {url} unpacks to more than {_MEMBER_LIMIT:,} bytes: "
                                 f"archive refused, nothing was installed")
        by_name: Dict[str, List[zipfile.ZipInfo]] = {}
        for info in infos:
            if not info.is_dir():
                by_name.setdefault(info.filename.replace("\\", "/").rsplit("/", 1)[-1],
                                   []).append(info)
        for member, (dest, size) in wanted.items():
            found = by_name.get(member, [])
            if len(found) != 1:
                what = "no" if not found else f"{len(found)} entries named"
                raise DownloadError(f"{name}: {url} holds {what} {member!r}; nothing was "
                                    f"installed")
            with z.open(found[0]) as src, open(dest, "wb") as out:
                data = src.read(size + 1)                  # a member is never read past this
                out.write(data)


# ------------------------------------------------------------------------------ a dataset

def _plan(entry: DatasetEntry) -> Tuple[Dict[str, List[str]], Dict[str, List[str]]]:
    """The files fetched as they are ({upstream key: [file]}) and the upstream objects that
    others come from ({upstream key: [file]}: archives and rebuild inputs)."""
    plain: Dict[str, List[str]] = {}
    derived: Dict[str, List[str]] = {}
    for fname, src in sorted(entry.sources.items()):
        if "path" in src:
            plain.setdefault(f"{src['repo']}/{src['path']}", []).append(fname)
        else:
            key = f"{src['repo']}/{src.get('archive') or src['from']}"
            derived.setdefault(key, []).append(fname)
    return plain, derived


def download_bytes(entry: DatasetEntry) -> int:
    """How many bytes :func:`download` transfers for ``entry`` (archives and rebuild inputs
    counted as upstream serves them)."""
    plain, derived = _plan(entry)
    return (sum(entry.raw_files[f][0] for files in plain.values() for f in files)
            + sum(UPSTREAM[k][0] for k in derived))


def human_bytes(n: int) -> str:
    """``8.7 MB``, ``24 kB``: a download's size for a message."""
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.0f} kB"


def _url(key: str) -> str:
    owner, repo, path = key.split("/", 2)
    return source_url(f"{owner}/{repo}", path)


def download(entry: DatasetEntry, local: Path, progress: bool = True) -> Path:
    """Download ``entry``'s raw files into ``<local>/<folder>/raw``, checked and installed
    atomically (see the module's docstring); returns the raw folder.

    Raises:
        DownloadError: offline, a source that cannot be reached, a 404 (names the URL).
        DatasetDamaged: a file whose size or sha256 is not the registry's, or a refused archive
            (names the file, the URL and both hashes). Nothing is installed in either case.
    """
    plain, derived = _plan(entry)
    first = _url(next(iter(derived or plain)))
    target = local / entry.folder
    if offline():
        from .root import mirror_roots
        where = ", ".join(str(p) for p in [target / "raw"]
                          + [m / entry.folder / "raw" for m in mirror_roots()])
        raise DownloadError(f"{entry.name}: not in {where} and downloads are off "
                            f"(GATLIB_OFFLINE); it would be fetched from {first}; "
                            f"{_mirror_hint(entry.name)}")
    target.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".raw-partial-", dir=target))
    total = download_bytes(entry)
    where = first if len(plain) + len(derived) == 1 else (
        f"{first.rsplit('/', 1)[0]}/ and {len(plain) + len(derived) - 1} more")
    _say(f"downloading {entry.name} ({human_bytes(total)}) from {where}")
    from tqdm.auto import tqdm
    bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"download {entry.name}",
               disable=not progress, leave=False, file=sys.stderr)
    try:
        for key, files in plain.items():
            url = _url(key)
            for fname in files:                             # one file per key in practice
                size, sha = entry.raw_files[fname]
                _get(url, tmp / fname, size, bar, entry.name)
                _check(entry.name, fname, url, size, sha, tmp / fname)
        up = tmp / ".upstream"
        up.mkdir()
        for key, files in derived.items():
            url, (usize, usha) = _url(key), UPSTREAM[key]
            src = up / key.rsplit("/", 1)[-1]
            got, sha = _get(url, src, max(4 * usize, 64 << 20), bar, entry.name)
            if (got, sha) != (usize, usha):
                _say(f"{entry.name}: {url} differs from the upstream file recorded in the "
                     f"registry (sha256 {usha}, got {sha}); its files are checked one by one")
            recipe = entry.sources[files[0]]
            if "archive" in recipe:
                _extract(src, url, {entry.sources[f]["member"]: (tmp / f, entry.raw_files[f][0])
                                    for f in files}, entry.name)
            else:
                from .rebuild import REBUILDS
                for fname in files:
                    REBUILDS[entry.sources[fname]["rebuild"]](src, tmp / fname)
            for fname in files:
                _check(entry.name, fname, url, *entry.raw_files[fname], tmp / fname)
        shutil.rmtree(up)
        install_folder(tmp, target / "raw")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        bar.close()
    return target / "raw"
