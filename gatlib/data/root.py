"""Where datasets live.

The local root is ``$GATLIB_DATA``, else ``datasets/`` in the checkout (a source checkout of
gatlib), else ``datasets`` in gatlib's user cache (``$XDG_CACHE_HOME/gatlib``, default
``~/.cache/gatlib``). A mirror laid out as PyG's dataset classes expect
(``<mirror>/Planetoid/Cora/raw/...``) is used only when named: ``$GATLIB_MIRROR`` (or
``--mirror DIR`` on the command line); its ``raw/`` folders are linked into the local root (PyG
writes ``processed/`` beside ``raw/``, so nothing is ever built inside the mirror). A dataset in
neither place is downloaded from its pinned source (:mod:`gatlib.data.download`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

from ..utils.errors import UserError

__all__ = ["dataset_root", "mirror_roots", "ensure_raw", "DatasetNotFound", "DatasetDamaged"]

_CHECKOUT = Path(__file__).resolve().parents[2]


class DatasetNotFound(UserError, FileNotFoundError):
    """A dataset's raw files are neither in the local root nor in a mirror."""


class DatasetDamaged(UserError, ValueError):
    """A dataset file differs from the registry's (sha256 or size): cut short, altered or
    replaced. The message names the file and how to get a good copy."""


def dataset_root() -> Path:
    """The local dataset root: ``$GATLIB_DATA``, else ``datasets/`` in the checkout, else
    ``datasets`` in gatlib's user cache (an installed gatlib has no checkout)."""
    env = os.environ.get("GATLIB_DATA")
    if env:
        return Path(env).expanduser().resolve()
    if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "datasets").is_dir():
        return _CHECKOUT / "datasets"
    from .._private import cache_root
    return cache_root() / "datasets"


def mirror_roots() -> List[Path]:
    """The mirror folder named by ``$GATLIB_MIRROR``, when it is a folder (else none): the
    package never assumes where a mirror is."""
    env = os.environ.get("GATLIB_MIRROR", "").strip()
    return [p for p in [Path(env).expanduser().resolve()] if p.is_dir()] if env else []


def ensure_raw(relpath: str, root: Optional[Path] = None) -> Path:
    """Make ``<root>/<relpath>/raw`` present, linking it from a mirror when needed (no
    download: :func:`gatlib.data.check_dataset` and :func:`gatlib.data.load_dataset` do that).

    Returns the dataset folder ``<root>/<relpath>``; raises :class:`DatasetNotFound` naming every
    place it looked when no copy exists.
    """
    root = Path(root) if root is not None else dataset_root()
    target = root / relpath
    raw = target / "raw"
    if raw.is_dir() and any(raw.iterdir()):
        return target
    looked = [raw]
    for mirror in mirror_roots():
        src = mirror / relpath / "raw"
        looked.append(src)
        if src.is_dir() and any(src.iterdir()):
            target.mkdir(parents=True, exist_ok=True)
            if raw.is_symlink() or raw.exists():
                raw.unlink() if raw.is_symlink() else raw.rmdir()
            raw.symlink_to(src, target_is_directory=True)
            return target
    raise DatasetNotFound(
        f"dataset files for {relpath!r} not found; looked in: "
        + ", ".join(str(p) for p in looked)
        + ". Set GATLIB_DATA to a folder holding them in PyG's layout, or GATLIB_MIRROR to a "
          "mirror of that layout (its raw/ folders are linked, never written), or run "
          "`gatlib data fetch` to download them.")
