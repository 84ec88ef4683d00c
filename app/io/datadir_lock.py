"""One owner per data directory: an OS-level lock on `<data_dir>/.lock`, released by the OS when the owner dies.

Two instances on one directory would interleave stream ids in the embedded Valkey, mark each other's runs complete
and count each other's events as duplicates; the second one is refused at start instead. The lock is advisory
(flock on POSIX, msvcrt.locking on Windows) and tied to an open file, so `kill -9` or a crash releases it: there is
no stale lock file to clean up by hand. The holder's pid is written into the file only to name it in the error.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

LOCK_NAME = ".lock"


class DataDirBusy(OSError):
    """Another live process owns the data directory."""


class DataDirLock:
    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _lock(fd)
        except OSError:
            os.close(fd)
            holder = _read_pid(self.path)
            who = f"pid {holder}" if holder else "another process"
            raise DataDirBusy(f"data directory {self.path.parent} is in use by {who}; stop it first or give this "
                              "instance another run.data_dir") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
            _unlock(fd)
        finally:
            os.close(fd)


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
