"""One process per run folder: an OS file lock (``fcntl.flock``) on ``<folder>/.lock``.

The kernel drops the lock when its holder exits, however it exits (normal end, exception,
Ctrl-C, ``kill -9``), so a lock is never left stale. The lock file itself stays: deleting it
would let a waiting process lock a file that is no longer the one the next process opens.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Optional, Union

from .errors import UserError

__all__ = ["FolderLock", "FolderLocked"]


class FolderLocked(UserError, RuntimeError):
    """Another process holds the folder's lock."""


class FolderLock:
    """``with FolderLock(folder, what="run"):`` holds an exclusive lock on ``folder`` or fails at
    once with :class:`FolderLocked`, whose message names the folder and the holder's pid.

    Args:
        folder: the folder to lock (created if absent).
        what (default ``"folder"``): what the folder is, for the message.
        blocking (default False): wait for the holder to finish instead of failing.
    """

    def __init__(self, folder: Union[str, Path], what: str = "folder", blocking: bool = False):
        self.folder = Path(folder)
        self.what = what
        self.blocking = blocking
        self.path = self.folder / ".lock"
        self._fd: Optional[int] = None

    def acquire(self) -> "FolderLock":
        import fcntl
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if self.blocking else fcntl.LOCK_NB))
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            who = f"process {holder}" if holder else "another process"
            raise FolderLocked(
                f"{self.folder} is in use by {who} (another gatlib running this {self.what}); "
                f"wait for it to finish or stop it, then run the command again") from None
        # Record the holder for the message above (the lock, not this text, is what counts).
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)                    # closing the descriptor drops the lock
            self._fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_pid(fd: int) -> Optional[int]:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
