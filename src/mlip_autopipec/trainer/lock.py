"""One fit per folder: an exclusive lock on ``<fit folder>/.fit.lock`` for the fit's whole life.

The lock is ``fcntl.flock`` on a file inside the folder, so the kernel releases
it when its holder ends, however it ends (``kill -9`` included): a lock left by
a killed run never blocks the next one.  The holder's pid, host and start time
are written into the file, for the message that refuses a second fit.  The
lock's file descriptor is also handed to pacemaker, so the folder stays locked
for as long as any process of the fit lives.  On Linux ``flock`` works on local
file systems and on NFS (emulated there with byte-range locks, which NFSv4 and
lockd support).
"""

from __future__ import annotations

import datetime
import fcntl
import os
import socket
from pathlib import Path

from mlip_autopipec.exceptions import TrainerError

LOCK_NAME = ".fit.lock"


class FitFolderLock:
    """``with FitFolderLock(folder):`` holds the folder's lock or raises :class:`TrainerError` naming its holder."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> None:
        """Take the lock at once, or raise :class:`TrainerError` (the folder is in use) without waiting."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited unless passed on purpose
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise TrainerError(
                f"fit folder {self.folder} is in use by another fit ({holder}): one folder takes one fit at a time; "
                "wait for it to finish, or stop that process"
            ) from None
        except OSError as err:
            os.close(fd)
            raise TrainerError(f"cannot lock the fit folder {self.folder} ({self.path}): {err}") from err
        started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {started}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the last descriptor releases the flock
            self.fd = None

    def __enter__(self) -> FitFolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 512, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "holder unknown"


__all__ = ["LOCK_NAME", "FitFolderLock"]
