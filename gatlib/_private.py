"""Private cache folders: folders only the current user can write, for files gatlib later loads
or trusts (the native library, the GPU self-check's verdicts).

A file that another user can write (or replace, through its folder) must never be loaded into
this process: a shared library runs its constructor on load, and a planted verdict would switch
a kernel on. So every folder gatlib keeps such files in is created 0700, and before a file in it
is trusted, the folder and the file are checked: owned by the current user, not writable by
group or others. A folder that fails is refused with one warning line, and the caller gets a
fresh private temporary folder instead (``tempfile.mkdtemp``: unpredictable, 0700), never a
predictable shared path.
"""
from __future__ import annotations

import os
import stat
import tempfile
import warnings
from pathlib import Path

__all__ = ["cache_root", "private_folder", "fallback_folder", "unsafe_reason", "trusted_file"]

_WRITABLE_BY_OTHERS = stat.S_IWGRP | stat.S_IWOTH
_fallbacks: dict[str, Path] = {}


def cache_root() -> Path:
    """gatlib's cache root: ``$GATLIB_CACHE_DIR``, else ``$XDG_CACHE_HOME/gatlib``, else
    ``~/.cache/gatlib``."""
    env = os.environ.get("GATLIB_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gatlib"


def unsafe_reason(path: Path) -> str | None:
    """Why ``path`` (a folder or a file) must not be trusted, or None when it is safe: it must be
    owned by the current user and not writable by group or others. Symbolic links are judged by
    what they point to and by the link's owner."""
    if not hasattr(os, "getuid"):            # no POSIX owners (Windows): nothing to check
        return None
    uid = os.getuid()
    try:
        link = os.lstat(path)
        st = os.stat(path)
    except OSError as exc:
        return f"{path} cannot be read ({exc.strerror})"
    if stat.S_ISLNK(link.st_mode) and link.st_uid != uid:
        return f"{path} is a link owned by uid {link.st_uid}, not by this user (uid {uid})"
    if st.st_uid != uid:
        return f"{path} is owned by uid {st.st_uid}, not by this user (uid {uid})"
    if st.st_mode & _WRITABLE_BY_OTHERS:
        return f"{path} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def _swappable(parent: Path) -> str | None:
    """Why another user could replace a folder inside ``parent`` (rename it away and plant their
    own): ``parent`` writable by group or others without the sticky bit (as /tmp has)."""
    try:
        st = os.stat(parent)
    except OSError as exc:
        return f"{parent} cannot be read ({exc.strerror})"
    if st.st_mode & _WRITABLE_BY_OTHERS and not st.st_mode & stat.S_ISVTX:
        return f"{parent} is writable by others without the sticky bit"
    return None


def trusted_file(path: Path) -> bool:
    """Whether ``path`` exists and may be loaded: it and its folder pass :func:`unsafe_reason`."""
    return (path.exists() and unsafe_reason(path.parent) is None
            and unsafe_reason(path) is None)


def private_folder(name: str, root: Path | None = None) -> Path:
    """The folder ``<root>/<name>`` (root: :func:`cache_root`), created 0700 when missing, and
    checked: when it cannot be made or fails :func:`unsafe_reason`, one warning line says why and a
    fresh ``mkdtemp`` folder (private, unpredictable, used for this process only) is returned.
    """
    folder = (root if root is not None else cache_root()) / name
    reason = None
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        reason = f"{folder} cannot be created ({exc.strerror})"
    if reason is None:
        reason = unsafe_reason(folder) or _swappable(folder.parent)
    if reason is None:
        return folder
    return fallback_folder(name, reason)


def fallback_folder(name: str, reason: str) -> Path:
    """The private temporary folder for ``name`` (one ``mkdtemp`` per process and name, made on
    the first call), with one warning line saying why the cache folder was refused; for a
    caller that refuses a file inside a folder :func:`private_folder` accepted."""
    if name not in _fallbacks:
        _fallbacks[name] = Path(tempfile.mkdtemp(prefix=f"gatlib-{name.replace(os.sep, '-')}-"))
        warnings.warn(f"gatlib: cache folder refused: {reason}; using the private temporary "
                      f"folder {_fallbacks[name]} for this process (fix the folder's owner or "
                      f"mode, e.g. chmod 700, or set GATLIB_CACHE_DIR)", RuntimeWarning,
                      stacklevel=3)
    return _fallbacks[name]
